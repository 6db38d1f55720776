//! The files other tools read, read back by independent readers written from the format
//! specifications (not from our writers): `.npz` through its zip central directory with every
//! member's CRC-32 checked, `.npy` headers as NumPy's format 1.0 defines them, and the
//! checkpoint's safetensors header against that format's rules.

mod common;

use common::formats::{read_npy, read_zip};
use neuralrg_gpu::config::{PartialFlow, PartialRunConfig};
use neuralrg_gpu::sample::{self, Model};

#[test]
fn npz_members_read_back_exactly_through_the_central_directory() {
    let ctx = common::gpu();
    let config = PartialRunConfig {
        lattice: Some(8),
        flow: PartialFlow {
            hidden: Some(4),
            couplings: Some(2),
            ..PartialFlow::default()
        },
        ..PartialRunConfig::default()
    }
    .resolve()
    .unwrap();
    let model = Model::init(&ctx, &config, 0.3).unwrap();
    let s = sample::draw(&ctx, &model, 5, 2, 0).unwrap();
    let members = read_zip(&s.to_npz().unwrap());
    let names: Vec<&str> = members.keys().map(String::as_str).collect();
    assert_eq!(names, ["ln_pi.npy", "ln_q.npy", "log_det.npy", "x.npy"]);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (name, shape, want) in [
        ("x.npy", vec![5, 8, 8], &s.x),
        ("ln_q.npy", vec![5], &s.ln_q),
        ("log_det.npy", vec![5], &s.log_det),
        ("ln_pi.npy", vec![5], &s.ln_pi),
    ] {
        let (got_shape, got) = read_npy(&members[name]);
        assert_eq!(got_shape, shape, "{name}");
        assert_eq!(bits(&got), bits(want), "{name}");
    }
}

const DTYPE_SIZES: [(&str, usize); 12] = [
    ("BOOL", 1),
    ("U8", 1),
    ("I8", 1),
    ("I16", 2),
    ("U16", 2),
    ("F16", 2),
    ("BF16", 2),
    ("I32", 4),
    ("U32", 4),
    ("F32", 4),
    ("F64", 8),
    ("I64", 8),
];

#[test]
fn checkpoints_follow_the_safetensors_format() {
    let dir = std::env::temp_dir().join(format!("neuralrg-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_neuralrg-gpu"))
        .args([
            "train",
            "--lattice",
            "4",
            "--hidden",
            "4",
            "--couplings",
            "2",
            "--steps",
            "2",
        ])
        .args(["--quiet", "--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    // 8 bytes: the header length N, little-endian u64; then N bytes of UTF-8 JSON that begins
    // with '{' and may be padded with spaces; then the byte buffer.
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    assert!(8 + n <= b.len());
    let header = std::str::from_utf8(&b[8..8 + n]).expect("the header is UTF-8");
    assert!(header.starts_with('{'));
    assert!(
        header.trim_end_matches(' ').ends_with('}'),
        "only spaces pad the header"
    );
    let v: serde_json::Value = serde_json::from_str(header).unwrap();
    let buffer = b.len() - 8 - n;
    let mut spans = Vec::new();
    for (name, t) in v.as_object().unwrap() {
        if name == "__metadata__" {
            // Metadata is a map of strings to strings.
            for (k, val) in t.as_object().unwrap() {
                assert!(val.is_string(), "metadata {k} is not a string");
            }
            continue;
        }
        let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["data_offsets", "dtype", "shape"], "{name}");
        let size = DTYPE_SIZES
            .iter()
            .find(|(d, _)| *d == t["dtype"])
            .unwrap_or_else(|| panic!("{name}: unknown dtype {}", t["dtype"]))
            .1;
        let elems: usize = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .product();
        let off: Vec<usize> = t["data_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(off.len(), 2);
        assert_eq!(
            off[1] - off[0],
            elems * size,
            "{name}: offsets fit shape and dtype"
        );
        spans.push((off[0], off[1], name.clone()));
    }
    // The tensors tile the byte buffer exactly: no gaps, no overlaps, nothing left over.
    spans.sort();
    let mut end = 0;
    for (start, stop, name) in &spans {
        assert_eq!(
            *start, end,
            "{name} does not start where the previous tensor ended"
        );
        end = *stop;
    }
    assert_eq!(end, buffer, "the tensors cover the buffer");
    let names: Vec<&str> = spans.iter().map(|s| s.2.as_str()).collect();
    for want in ["params", "adam_m", "adam_v", "masks"] {
        assert!(names.contains(&want), "{want} missing");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
