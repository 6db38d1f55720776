//! Checkpoints in the safetensors format: the parameters, Adam's moments and the coupling masks
//! as tensors, the resolved configuration and the step in the metadata. Written atomically.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Metadata, TensorInfo, TensorView};
use safetensors::{Dtype, SafeTensors};
use serde_json::json;
use thiserror::Error;

use super::atomic::write_atomic;
use crate::config::RunConfig;
use crate::flow::{params, FlowPlan};

pub const FILE_NAME: &str = "checkpoint.safetensors";
/// Version 2 carries a checksum; version 1 (before it) is still read.
const FORMAT: &str = "neuralrg-gpu checkpoint 2";
const FORMAT_V1: &str = "neuralrg-gpu checkpoint 1";

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("no checkpoint at {0} (train a model first, or point --resume/--checkpoint at a run directory)")]
    Missing(String),
    #[error("cannot read checkpoint {path}: {message}")]
    Io { path: String, message: String },
    #[error("checkpoint {path} is corrupt or not a neuralrg-gpu checkpoint: {message}")]
    Corrupt { path: String, message: String },
}

/// Everything a run needs to continue bit for bit.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub config: RunConfig,
    /// Completed training steps.
    pub step: u64,
    /// Training time so far, in seconds, summed over the run's sessions (0 in checkpoints
    /// written before it was recorded).
    pub elapsed_s: f64,
    pub params: Vec<f32>,
    pub adam_m: Vec<f32>,
    pub adam_v: Vec<f32>,
    pub masks: Vec<u32>,
}

/// Tensor names, in the order their data is stored.
const TENSORS: [&str; 4] = ["adam_m", "adam_v", "masks", "params"];

/// Metadata fields the checksum covers: all but the checksum itself.
const CHECKED_META: [&str; 5] = ["format", "config", "step", "elapsed_s", "rng"];

/// A tensor's header entry as the checksum sees it: the JSON object of its dtype, shape and
/// offsets (the form format 2 has always used, so older format-2 files still verify).
fn header_entry(info: &TensorInfo) -> String {
    json!({"dtype": info.dtype, "shape": info.shape, "data_offsets": [info.data_offsets.0, info.data_offsets.1]})
        .to_string()
}

/// CRC-32 over the checked metadata fields, every tensor's header entry and all tensor data, so
/// that any damaged byte outside the padding is caught on loading.
fn checksum(meta: &HashMap<String, String>, header: &Metadata, data: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    for key in CHECKED_META {
        crc.update(meta.get(key).map_or("", String::as_str).as_bytes());
        crc.update(&[0]);
    }
    for name in TENSORS {
        crc.update(name.as_bytes());
        crc.update(&[0]);
        crc.update(
            header
                .info(name)
                .map(header_entry)
                .unwrap_or_default()
                .as_bytes(),
        );
        crc.update(&[0]);
    }
    crc.update(data);
    crc.finalize()
}

impl Checkpoint {
    /// A fresh flow of `config` (its seed's parameters, plus N(0, `perturb`^2) noise, and
    /// masks; Adam's moments zero) recorded at `step`: a model to sample or evaluate without
    /// training it.
    pub fn fresh(
        config: RunConfig,
        step: u64,
        perturb: f64,
    ) -> Result<Self, crate::flow::plan::PlanError> {
        let (params, masks) = params::fresh(&config.plan()?, config.train.seed, perturb);
        let zeros = vec![0.0; params.len()];
        Ok(Self {
            config,
            step,
            elapsed_s: 0.0,
            adam_m: zeros.clone(),
            adam_v: zeros,
            params,
            masks,
        })
    }

    /// The safetensors bytes, written by the `safetensors` crate.
    pub fn to_bytes(&self) -> Vec<u8> {
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let tensors: [(&str, Dtype, Vec<u8>, usize); 4] = [
            ("adam_m", Dtype::F32, f32s(&self.adam_m), self.adam_m.len()),
            ("adam_v", Dtype::F32, f32s(&self.adam_v), self.adam_v.len()),
            (
                "masks",
                Dtype::U32,
                self.masks.iter().flat_map(|x| x.to_le_bytes()).collect(),
                self.masks.len(),
            ),
            ("params", Dtype::F32, f32s(&self.params), self.params.len()),
        ];
        let mut meta: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            (
                "config",
                serde_json::to_string(&self.config).expect("config serialises"),
            ),
            ("step", self.step.to_string()),
            ("elapsed_s", self.elapsed_s.to_string()),
            (
                "rng",
                format!(
                    "philox4x32-10 seed {} stream {} counter {}",
                    self.config.train.seed,
                    crate::streams::TRAIN,
                    self.step
                ),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let serialize = |meta: &HashMap<String, String>| {
            let views = tensors.iter().map(|(name, dtype, bytes, len)| {
                let view = TensorView::new(*dtype, vec![*len], bytes).expect("sizes match");
                (*name, view)
            });
            safetensors::serialize(views, Some(meta.clone())).expect("a checkpoint serialises")
        };
        // The checksum covers the tensors' offsets, which the writer chooses: write once to
        // learn them (they do not depend on the metadata), then again with the checksum.
        let draft = serialize(&meta);
        let (n, header) = SafeTensors::read_metadata(&draft).expect("just written");
        let crc = checksum(&meta, &header, &draft[8 + n..]);
        meta.insert("crc32".into(), format!("{crc:08x}"));
        serialize(&meta)
    }

    /// Writes `dir/checkpoint.safetensors` atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        write_atomic(&dir.join(FILE_NAME), &self.to_bytes())
    }

    /// Reads `dir/checkpoint.safetensors` (or `dir` itself if it is a file) and checks that every
    /// tensor fits the configuration's flow.
    pub fn load(dir: &Path) -> Result<Self, CheckpointError> {
        let path = if dir.is_dir() {
            dir.join(FILE_NAME)
        } else {
            dir.to_path_buf()
        };
        let shown = path.display().to_string();
        if !path.exists() {
            return Err(CheckpointError::Missing(shown));
        }
        let bytes = std::fs::read(&path).map_err(|e| CheckpointError::Io {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Self::from_bytes(&bytes).map_err(|message| CheckpointError::Corrupt {
            path: shown,
            message,
        })
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        // The crate checks the header's size and JSON, the dtypes and shapes against the
        // offsets, and that the tensors are contiguous and cover the data exactly.
        let (n, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let data = &bytes[8 + n..];
        let meta = header.metadata().as_ref().ok_or("no metadata")?;
        let text = |key: &str| {
            meta.get(key)
                .map(String::as_str)
                .ok_or(format!("metadata lacks {key:?}"))
        };
        let format = text("format")?;
        if format != FORMAT && format != FORMAT_V1 {
            return Err(format!("unknown format {format:?}"));
        }
        if format == FORMAT {
            let stored = text("crc32")?;
            let computed = format!("{:08x}", checksum(meta, &header, data));
            if stored != computed {
                return Err(format!(
                    "its checksum does not match (stored {stored}, computed {computed}): the file \
                     was damaged after it was written"
                ));
            }
        }
        let config: RunConfig =
            serde_json::from_str(text("config")?).map_err(|e| format!("bad config: {e}"))?;
        // Every size and rate within the command line's bounds before anything is sized by it.
        config.validate().map_err(|e| format!("bad config: {e}"))?;
        let step: u64 = text("step")?.parse().map_err(|_| "bad step".to_string())?;
        let elapsed_s = match meta.get("elapsed_s") {
            None => 0.0,
            Some(t) => t
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or("bad elapsed_s")?,
        };
        let tensor = |name: &str, dtype: Dtype| -> Result<&[u8], String> {
            let info = header.info(name).ok_or(format!("no tensor {name:?}"))?;
            if info.dtype != dtype {
                return Err(format!("tensor {name:?} is not {dtype:?}"));
            }
            if info.shape.len() != 1 {
                return Err(format!("tensor {name:?} is not one-dimensional"));
            }
            let (a, b) = info.data_offsets;
            if a % 4 != 0 || (8 + n) % 8 != 0 {
                return Err(format!("tensor {name:?} is not aligned"));
            }
            Ok(&data[a..b])
        };
        let f32s = |b: &[u8]| {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect()
        };
        let ck = Checkpoint {
            step,
            elapsed_s,
            params: f32s(tensor("params", Dtype::F32)?),
            adam_m: f32s(tensor("adam_m", Dtype::F32)?),
            adam_v: f32s(tensor("adam_v", Dtype::F32)?),
            masks: tensor("masks", Dtype::U32)?
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
                .collect(),
            config,
        };
        let plan = FlowPlan::new(
            ck.config
                .flow_config()
                .map_err(|e| format!("bad flow config: {e}"))?,
        );
        let p = plan.n_params();
        if ck.params.len() != p || ck.adam_m.len() != p || ck.adam_v.len() != p {
            return Err(format!(
                "tensors do not fit the configured flow ({p} parameters)"
            ));
        }
        if ck.masks.len() != plan.layers.len() * plan.layout.couplings {
            return Err("masks do not fit the configured flow".into());
        }
        if let Some(i) = ck.masks.iter().position(|m| !params::is_valid_mask(*m)) {
            return Err(format!("masks[{i}] is not a coupling mask"));
        }
        for (name, v) in [
            ("params", &ck.params),
            ("adam_m", &ck.adam_m),
            ("adam_v", &ck.adam_v),
        ] {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(format!("{name}[{i}] is not finite ({})", v[i]));
            }
        }
        if let Some(i) = ck.adam_v.iter().position(|x| *x < 0.0) {
            return Err(format!("adam_v[{i}] is negative (a second moment)"));
        }
        Ok(ck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PartialRunConfig;

    /// A checkpoint of a flow at L = 4 with `flow`'s settings (the defaults where unset).
    fn checkpoint(flow: crate::config::PartialFlow) -> Checkpoint {
        let config = PartialRunConfig {
            lattice: Some(4),
            flow,
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let plan = FlowPlan::new(config.flow_config().unwrap());
        let p = params::init(&plan, 1);
        Checkpoint {
            step: 7,
            elapsed_s: 12.5,
            adam_m: p.iter().map(|x| x * 0.5).collect(),
            adam_v: p.iter().map(|x| x * x).collect(),
            masks: params::masks(&plan, 1),
            params: p,
            config,
        }
    }

    /// The default flow.
    fn example() -> Checkpoint {
        checkpoint(Default::default())
    }

    /// A tiny flow (hidden 2, one coupling): a few kilobytes.
    fn small() -> Checkpoint {
        checkpoint(crate::config::PartialFlow {
            hidden: Some(2),
            couplings: Some(1),
            ..Default::default()
        })
    }

    #[test]
    fn round_trips_and_is_valid_safetensors() {
        let ck = example();
        let bytes = ck.to_bytes();
        let head_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!((8 + head_len) % 8, 0);
        assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), ck);
    }

    /// Files written before the `safetensors` crate wrote them (by the hand-written writer of
    /// formats 1 and 2) still load, and their checksum still verifies.
    #[test]
    fn earlier_files_still_load() {
        for (bytes, step) in [
            (
                &include_bytes!("../../tests/data/checkpoint-format1.safetensors")[..],
                5,
            ),
            (
                &include_bytes!("../../tests/data/checkpoint-format2.safetensors")[..],
                3,
            ),
        ] {
            let ck = Checkpoint::from_bytes(bytes).unwrap();
            assert_eq!((ck.step, ck.config.lattice), (step, 4));
            assert_eq!(Checkpoint::from_bytes(&ck.to_bytes()).unwrap(), ck);
        }
    }

    #[test]
    fn every_damaged_byte_is_refused() {
        let ck = small();
        let bytes = ck.to_bytes();
        assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), ck);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                Checkpoint::from_bytes(&bad).is_err(),
                "byte {i} of {} flipped and accepted",
                bytes.len()
            );
        }
    }

    /// Fuzz: overwritten, inserted and dropped bytes, truncations and arbitrary header lengths,
    /// in checksummed files and in format-1 files (no checksum, so the mutations reach every
    /// check behind it), never panic. Memory stays bounded by construction: every allocation is
    /// sized by bytes the file really has.
    #[test]
    fn mutated_checkpoints_are_refused_without_panicking() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let v2 = small().to_bytes();
        let mut v1 = v2.clone();
        let at = v2
            .windows(FORMAT.len())
            .position(|w| w == FORMAT.as_bytes())
            .expect("the format is in the header");
        v1[at..at + FORMAT.len()].copy_from_slice(FORMAT_V1.as_bytes());
        assert!(
            Checkpoint::from_bytes(&v1).is_ok(),
            "format 1 without a checksum is read"
        );
        let config = Config {
            cases: 3000,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
        let strategy = (any::<bool>(), 0u8..5, any::<usize>(), any::<u64>());
        runner
            .run(&strategy, |(old, kind, pos, value)| {
                let mut b = if old { v1.clone() } else { v2.clone() };
                let i = pos % b.len();
                match kind {
                    0 => b[i] = value as u8,
                    1 => b.truncate(i),
                    2 => b[..8].copy_from_slice(&value.to_le_bytes()),
                    3 => b.insert(i, value as u8),
                    _ => {
                        b.remove(i);
                    }
                }
                let _ = Checkpoint::from_bytes(&b);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn corruption_is_detected() {
        let bytes = example().to_bytes();
        assert!(Checkpoint::from_bytes(&bytes[..bytes.len() - 4]).is_err());
        assert!(Checkpoint::from_bytes(&bytes[..20]).is_err());
        assert!(Checkpoint::from_bytes(b"garbage").is_err());
        let mut wrong = example();
        wrong.params.pop();
        assert!(Checkpoint::from_bytes(&wrong.to_bytes()).is_err());
        // Well-formed files with values no run can produce, each refused with what is wrong.
        type Spoil = fn(&mut Checkpoint);
        let cases: [(Spoil, &str); 5] = [
            (|c| c.params[3] = f32::NAN, "params[3] is not finite"),
            (|c| c.adam_v[0] = -1.0, "adam_v[0] is negative"),
            (|c| c.masks[1] = 0b00_00_01_00, "masks[1]"),
            (|c| c.config.beta = -0.3, "beta"),
            (|c| c.config.train.batch = 0, "--batch"),
        ];
        for (spoil, what) in cases {
            let mut c = example();
            spoil(&mut c);
            let err = Checkpoint::from_bytes(&c.to_bytes()).unwrap_err();
            assert!(err.contains(what), "{what}: {err}");
        }
    }
}
