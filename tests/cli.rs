//! The command line as a user meets it: output formats and bad input.

mod common;

use std::path::Path;
use std::process::Command;

use common::TRAINED;

use common::formats::{read_npy, read_zip};

fn neuralrg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_neuralrg-gpu"))
        .args(args)
        .output()
        .expect("run neuralrg-gpu")
}

#[test]
fn exact_json_has_the_documented_keys_and_values() {
    let out = neuralrg(&["exact", "--lattice", "8", "--beta", "0.3", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = [
        "lattice",
        "n_sites",
        "beta",
        "alpha",
        "ln_z_ising",
        "ln_z_ising_per_site",
        "ln_det_a",
        "neg_ln_z",
    ];
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), keys.len());
    for k in keys {
        assert!(obj.contains_key(k), "missing {k}");
    }
    assert_eq!(v["n_sites"], 64);
    let want = neuralrg_gpu::physics::exact::ln_z_ising_transfer_matrix(8, 0.3);
    let got = v["ln_z_ising"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-10 * want.abs());
}

#[test]
fn exact_temperature_is_one_over_beta_and_beta_c_is_the_default() {
    let out = neuralrg(&["exact", "--lattice", "4", "--temperature", "2", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["beta"], 0.5);
    let out = neuralrg(&["exact", "--lattice", "4", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["beta"].as_f64().unwrap(),
        neuralrg_gpu::physics::exact::BETA_C
    );
}

#[test]
fn exact_is_finite_at_every_size_up_to_256() {
    for l in [2, 3, 16, 31, 64, 100, 256] {
        for beta in ["0.3", "0.6"] {
            let out = neuralrg(&["exact", "-L", &l.to_string(), "--beta", beta, "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                v["neg_ln_z"].as_f64().unwrap().is_finite(),
                "L={l} beta={beta}"
            );
        }
    }
}

/// Runs `args`, which must fail with one line on stderr, nothing on stdout, and a message
/// that contains every one of `names` (the flag and the reason).
fn refused(args: &[&str], names: &[&str]) {
    let out = neuralrg(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    for name in names {
        assert!(
            err.contains(name),
            "{args:?}: {err:?} does not name {name:?}"
        );
    }
}

#[test]
fn bad_input_gives_one_line_naming_the_flag_and_a_nonzero_exit() {
    let e = "exact";
    for (args, names) in [
        (&[e, "--lattice", "0"][..], &["--lattice", "at least 2"][..]),
        (&[e, "--lattice", "1"], &["--lattice", "at least 2"]),
        (&[e, "--lattice", "-4"], &["--lattice", "-4"]),
        // Beyond memory: refused at once, before any allocation.
        (&[e, "--lattice", "65536"], &["--lattice", "at most 4096"]),
        (
            &[e, "--lattice", "4294967296"],
            &["--lattice", "at most 4096"],
        ),
        (&["plan", "--lattice", "65536"], &["--lattice", "4096"]),
        // A full lattice of blocks in every layer: refused before the plan is built.
        (
            &["plan", "-L", "1024", "--arch", "tebd", "--depth", "1024"],
            &["--depth", "blocks"],
        ),
        (
            &["bench", "-L", "4", "--reps", "18446744073709551615"],
            &["--reps", "from 1 to"],
        ),
        (
            &["bench", "-L", "4", "--warmup", "18446744073709551615"],
            &["--warmup", "at most"],
        ),
        (&[e, "-L", "4", "--beta", "-0.3"], &["--beta", "positive"]),
        (&[e, "-L", "4", "--beta", "0"], &["--beta", "positive"]),
        (&[e, "-L", "4", "--beta", "NaN"], &["--beta", "finite"]),
        (
            &[e, "-L", "4", "--temperature", "0"],
            &["--temperature", "positive"],
        ),
        (
            &[e, "-L", "4", "--beta", "0.3", "--temperature", "2"],
            &["--beta", "--temperature", "cannot be used with"],
        ),
    ] {
        refused(args, names);
    }
}

#[test]
fn messages_name_what_to_change() {
    let dir = std::env::temp_dir().join(format!("neuralrg-cli-msg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = |name: &str| dir.join(name).to_str().unwrap().to_string();
    // Negative numbers reach the option's own check instead of passing for unknown flags.
    refused(
        &["train", "-L", "4", "--steps", "-1"],
        &["--steps", "-1", "whole number"],
    );
    refused(
        &["train", "-L", "4", "--beta1", "-0.5"],
        &["--beta1", "[0, 1)"],
    );
    // A weight that overflows the loss is named, not reported as a divergence of --lr.
    refused(
        &["train", "-L", "4", "--sym-reg", "1e300"],
        &["--sym-reg", "at most 1e6"],
    );
    // A flow too big for the adapter names the flow's flags, not the batch.
    let big = d("big");
    refused(
        &[
            "train",
            "-L",
            "4",
            "--hidden",
            "64",
            "--mlp-layers",
            "2",
            "--couplings",
            "2000",
            "--out",
            &big,
        ],
        &["flow params", "--couplings"],
    );
    assert!(!Path::new(&big).exists(), "a failed run left its directory");
    // A malformed config file: the line and column, on one line.
    let toml = d("bad.toml");
    std::fs::write(&toml, "lattice = 4\nbatch = = 3\n").unwrap();
    refused(
        &["train", "--config", &toml, "--out", &d("never")],
        &["bad.toml", "line 2, column 9"],
    );
    // Seeds and counts TOML cannot store are refused by name, before anything is written.
    let seeded = d("seed");
    refused(
        &[
            "train",
            "-L",
            "4",
            "--seed",
            "18446744073709551615",
            "--out",
            &seeded,
        ],
        &["--seed", "2^63"],
    );
    assert!(!Path::new(&seeded).exists());
    // --perturb belongs to a fresh flow; one so large it breaks the flow writes nothing.
    refused(
        &[
            "sample",
            "--checkpoint",
            &d("none"),
            "--perturb",
            "0.5",
            "--out",
            &d("a.npz"),
        ],
        &["--perturb", "--checkpoint"],
    );
    let npz = d("b.npz");
    refused(
        &[
            "sample",
            "--init",
            "-L",
            "4",
            "--perturb",
            "1e30",
            "--out",
            &npz,
        ],
        &["non-finite", "--perturb", "nothing written"],
    );
    assert!(!Path::new(&npz).exists());
    // Outputs that cannot be written are refused before any work (they failed after it).
    refused(
        &["sample", "--init", "-L", "4", "--out", "/proc/neuralrg.npz"],
        &["--out", "/proc/neuralrg.npz", "cannot be written"],
    );
    let file = d("a-file");
    std::fs::write(&file, b"").unwrap();
    refused(
        &[
            "analyze",
            "--checkpoint",
            TRAINED,
            "--out",
            &format!("{file}/figures"),
            "--rg-flow",
        ],
        &["--out", "a-file is not a directory"],
    );
    // One sample has no standard error, and the output says so instead of printing 0.
    let one = neuralrg(&[
        "sample",
        "--init",
        "-L",
        "4",
        "--batch",
        "1",
        "--out",
        &d("c.npz"),
    ]);
    assert!(one.status.success());
    assert!(String::from_utf8_lossy(&one.stdout).contains("no standard error"));
    // An unknown backend in WGPU_BACKEND is named.
    let out = Command::new(env!("CARGO_BIN_EXE_neuralrg-gpu"))
        .arg("info")
        .env("WGPU_BACKEND", "bogus")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("WGPU_BACKEND=\"bogus\""), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sizes_beyond_the_adapter_limits_are_refused_before_any_work() {
    let out = neuralrg(&[
        "sample",
        "--init",
        "-L",
        "256",
        "--batch",
        "1000",
        "--out",
        "never.npz",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("max_storage_buffer_binding_size") && err.contains("reduce --batch"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!std::path::Path::new("never.npz").exists());
}

/// Runs the program to completion; its stderr, its wall time and its peak resident memory (KiB).
#[cfg(unix)]
#[allow(clippy::zombie_processes)] // reaped by wait4, which also reports the peak memory
fn measured(args: &[&str]) -> (bool, String, i64) {
    use std::os::unix::process::ExitStatusExt;
    let child = Command::new(env!("CARGO_BIN_EXE_neuralrg-gpu"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for our own child, writing into the two locals.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let ok = std::process::ExitStatus::from_raw(status).success();
    (ok, err, usage.ru_maxrss)
}

/// Sizes beyond memory (a --memory-limit, the host's memory, the batch and parameter bounds) are
/// refused in one line, having allocated almost nothing, and write nothing.
#[cfg(unix)]
#[test]
fn sizes_beyond_memory_are_refused_with_bounded_memory_writing_nothing() {
    let dir = std::env::temp_dir().join(format!("neuralrg-cli-mem-{}", std::process::id()));
    let run = dir.join("run");
    let npz = dir.with_extension("npz");
    let (run, npz_path) = (run.to_str().unwrap(), npz.clone());
    let npz = npz_path.to_str().unwrap();
    let huge = "99999999999999999";
    for (args, names) in [
        (
            &["--memory-limit", "1M", "train", "-L", "16", "--out", run][..],
            &["--memory-limit", "1 MiB", "reduce --"][..],
        ),
        (
            &["--memory-limit", "40M", "sample", "--init", "-L", "64"],
            &["--memory-limit", "reduce --batch"],
        ),
        (
            &[
                "train",
                "-L",
                "16",
                "--couplings",
                "100000000",
                "--out",
                run,
            ],
            &["parameters", "--couplings"],
        ),
        (
            &[
                "sample", "--init", "-L", "16", "--batch", huge, "--out", npz,
            ],
            &["--batch", "2^36"],
        ),
        // Each command names its own flag: chains for the samplers, the batch for eval (a
        // checkpoint fixes the lattice).
        (
            &[
                "--memory-limit",
                "1M",
                "hmc",
                "--checkpoint",
                TRAINED,
                "--chains",
                "100000",
                "--trajectories",
                "2",
            ],
            &["--memory-limit", "; reduce --chains"],
        ),
        (
            &[
                "--memory-limit",
                "1M",
                "mcmc",
                "--checkpoint",
                TRAINED,
                "--chains",
                "100000",
                "--iterations",
                "2",
            ],
            &["--memory-limit", "; reduce --chains"],
        ),
        (
            &[
                "--memory-limit",
                "1M",
                "eval",
                "--checkpoint",
                TRAINED,
                "--batch",
                "100000",
                "--samples",
                "100000",
            ],
            &["--memory-limit", "; reduce --batch"],
        ),
        // A ramp's last batch is built first: refused before the first step.
        (
            &[
                "--memory-limit",
                "64M",
                "train",
                "-L",
                "8",
                "--batch",
                "64",
                "--batch-final",
                "8192",
                "--steps",
                "20",
                "--out",
                run,
            ],
            &["--memory-limit", "--batch-final"],
        ),
        (
            &[
                "sample", "--init", "-L", "4096", "--batch", "4000", "--out", npz,
            ],
            &["host memory", "reduce --batch"],
        ),
    ] {
        let mut args = args.to_vec();
        if args.contains(&"sample") && !args.contains(&"--out") {
            args.extend(["--batch", "1000", "--out", npz]);
        }
        let (ok, err, max_rss_kib) = measured(&args);
        assert!(!ok, "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        for name in names {
            assert!(err.contains(name), "{args:?}: {err:?} lacks {name:?}");
        }
        assert!(
            max_rss_kib < 512 * 1024,
            "{args:?} peaked at {max_rss_kib} KiB"
        );
        assert!(!dir.exists(), "{args:?} wrote into {}", dir.display());
        assert!(!npz_path.exists(), "{args:?} wrote {npz}");
    }
}

/// `analyze` refuses more configurations than host memory holds before drawing any, in one line,
/// writing nothing (a tiny flow at L = 512: 100,000 configurations take 236 GB).
#[cfg(unix)]
#[test]
fn analyze_refuses_configurations_beyond_host_memory_before_drawing() {
    let dir = std::env::temp_dir().join(format!("neuralrg-cli-analyze-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (run, out) = (dir.join("run"), dir.join("figures"));
    // The checkpoint written directly (no need to train at L = 512 on the device).
    {
        use neuralrg_gpu::config::{PartialFlow, PartialRunConfig, PartialTrain};
        let config = PartialRunConfig {
            lattice: Some(512),
            flow: PartialFlow {
                hidden: Some(4),
                couplings: Some(2),
                depth: Some(1),
                ..Default::default()
            },
            train: PartialTrain {
                batch: Some(2),
                steps: Some(1),
                ..Default::default()
            },
            ..Default::default()
        }
        .resolve()
        .unwrap();
        std::fs::create_dir_all(&run).unwrap();
        neuralrg_gpu::io::checkpoint::Checkpoint::fresh(config, 1, 0.0)
            .unwrap()
            .save(&run)
            .unwrap();
    }
    let (run, out) = (run.to_str().unwrap(), out.to_str().unwrap());
    for analysis in ["--mi", "--response"] {
        let args = [
            "analyze",
            "--checkpoint",
            run,
            "--out",
            out,
            analysis,
            "--samples",
            "100000",
        ];
        let (ok, err, max_rss_kib) = measured(&args);
        assert!(!ok, "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("host memory") && err.contains("reduce --samples"),
            "{err}"
        );
        assert!(
            max_rss_kib < 512 * 1024,
            "{args:?} peaked at {max_rss_kib} KiB"
        );
        assert!(!std::path::Path::new(out).exists(), "{args:?} wrote {out}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_adapter_is_refused_with_the_list_of_adapters() {
    let out = neuralrg(&["info", "--adapter", "no-such-adapter-xyz"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("available adapters") && err.trim().lines().count() == 1,
        "{err}"
    );
}

#[test]
fn info_json_names_the_adapter() {
    let out = neuralrg(&["info", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!v["name"].as_str().unwrap().is_empty());
    assert!(v["max_storage_buffer_binding_size"].as_u64().unwrap() > 0);
    // Every adapter found, the chosen one among them, so a user can name another.
    let adapters = v["adapters"].as_array().unwrap();
    assert!(
        adapters
            .iter()
            .any(|a| a["name"] == v["name"] && a["backend"] == v["backend"] && a["in_use"] == true),
        "{v}"
    );
    let text = neuralrg(&["info"]);
    let text = String::from_utf8_lossy(&text.stdout);
    let name = v["name"].as_str().unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("  * ") && l.contains(name)),
        "{text}"
    );
}

#[test]
fn bench_json_times_every_workload_with_its_flop_model_and_kernels() {
    let out = neuralrg(&[
        "bench",
        "-L",
        "4",
        "--batch",
        "8",
        "--hidden",
        "4",
        "--couplings",
        "2",
        "--reps",
        "3",
        "--warmup",
        "1",
        "--profile",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["lattice"].as_u64(), v["batch"].as_u64()),
        (Some(4), Some(8))
    );
    let timings = v["timings"].as_array().unwrap();
    let names: Vec<&str> = timings
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "train_step",
            "train_step_symmetric",
            "generate",
            "hmc_leapfrog"
        ]
    );
    let flops: Vec<u64> = timings
        .iter()
        .map(|t| t["flops"].as_u64().unwrap())
        .collect();
    // The flop model in passes: 3, 6 (with the negated pass), 1, 2 (pass and input backward).
    assert!(flops[2] > 0);
    assert_eq!(flops, [3 * flops[2], 6 * flops[2], flops[2], 2 * flops[2]]);
    for t in timings {
        let f = |k: &str| t[k].as_f64().unwrap();
        assert_eq!(t["reps"].as_u64(), Some(3));
        assert!(0.0 < f("min_s") && f("min_s") <= f("median_s") && f("median_s") <= f("max_s"));
        assert!((f("samples_per_s") * f("median_s") - 8.0).abs() < 1e-6);
        let kernels = t["kernels"].as_object().unwrap();
        assert!(kernels.values().all(|s| s.as_f64().unwrap() >= 0.0));
        assert!(
            kernels.keys().any(|k| k.starts_with("flow_coupling")),
            "{kernels:?}"
        );
    }
    // The leapfrog step: the drift, the force (a generation pass and its backward), the kick.
    let leapfrog = timings[3]["kernels"].as_object().unwrap();
    for kernel in ["hmc::drift", "hmc::kick", "flow_backward"] {
        assert!(
            leapfrog.keys().any(|k| k.starts_with(kernel)),
            "{kernel}: {leapfrog:?}"
        );
    }
}

#[test]
fn plan_prints_the_layer_table() {
    let out = neuralrg(&["plan", "--lattice", "16"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // Header line, column line, 8 layers.
    assert_eq!(text.lines().count(), 10, "{text}");
    assert!(text.contains("8 layers"));
}

#[test]
fn flow_bad_input_gives_one_line_naming_the_flag_and_a_nonzero_exit() {
    let pow2 = "power of two";
    let init = ["sample", "--init", "--lattice"];
    for (args, names) in [
        (&["plan", "--lattice", "12"][..], &["--lattice", pow2][..]),
        (&["plan", "--lattice", "2"], &["--lattice", pow2]),
        (
            &["plan", "-L", "16", "--depth", "5"],
            &["--depth", "between 1 and 4"],
        ),
        (
            &["plan", "-L", "16", "--couplings", "0"],
            &["--couplings", "at least 1"],
        ),
        (
            &["plan", "-L", "16", "--hidden", "0"],
            &["--hidden", "between 1 and 128"],
        ),
        (
            &["plan", "-L", "16", "--arch", "ladder"],
            &["--arch", "mera, tree, tebd"],
        ),
        (
            &["sample", "-L", "8", "--out", "x.npz"],
            &["--init", "--checkpoint"],
        ),
        (
            &[init[0], init[1], init[2], "8", "--out", "x.npy"],
            &["--out", ".npz"],
        ),
        (
            &[
                init[0],
                init[1],
                init[2],
                "8",
                "--out",
                "/nonexistent-dir/x.npz",
            ],
            &["--out", "does not exist"],
        ),
        (
            &[
                init[0], init[1], init[2], "8", "--batch", "0", "--out", "x.npz",
            ],
            &["--batch", "at least 1"],
        ),
        (
            &[init[0], init[1], init[2], "6", "--out", "x.npz"],
            &["--lattice", pow2],
        ),
    ] {
        refused(args, names);
    }
}

#[test]
fn sample_writes_a_loadable_npz_and_the_identity_flow_gives_normals() {
    let dir = std::env::temp_dir().join(format!("neuralrg-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.npz");
    let out = neuralrg(&[
        "sample",
        "--init",
        "--lattice",
        "4",
        "--batch",
        "64",
        "--hidden",
        "8",
        "--couplings",
        "2",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let members = read_zip(&std::fs::read(&path).unwrap());
    let (shape, x) = read_npy(&members["x.npy"]);
    assert_eq!(shape, [64, 4, 4]);
    let (_, ln_q) = read_npy(&members["ln_q.npy"]);
    let (_, log_det) = read_npy(&members["log_det.npy"]);
    let (_, ln_pi) = read_npy(&members["ln_pi.npy"]);
    assert_eq!((ln_q.len(), ln_pi.len()), (64, 64));
    // The fresh flow is the identity: x = z, log-det 0, ln q = ln N(x).
    assert!(log_det.iter().all(|&v| v == 0.0));
    for s in 0..64 {
        let zz: f64 = x[s * 16..(s + 1) * 16]
            .iter()
            .map(|&v| (v as f64).powi(2))
            .sum();
        let want = -0.5 * zz - 8.0 * std::f64::consts::TAU.ln();
        assert!((ln_q[s] as f64 - want).abs() < 1e-4 * want.abs());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_command_prints_the_commands_and_fails_as_usage_errors_do() {
    let out = neuralrg(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Commands:") && err.contains("train"), "{err}");
    // Asked for, help is no error.
    assert!(neuralrg(&["--help"]).status.success());
}
