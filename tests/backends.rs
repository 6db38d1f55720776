//! The same commands on wgpu's GL backend as on Vulkan, on the same device (Mesa's llvmpipe,
//! which both reach on Linux): every kernel then goes through naga's GLSL writer and Mesa's GLSL
//! compiler instead of SPIR-V, and through wgpu's GL code for buffers, bindings and barriers, so
//! the results must agree to float rounding. The Metal and DX12 paths cannot run here;
//! tests/shaders.rs translates every shader for them. GL through EGL is Linux's: elsewhere this
//! file has no test.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::{Command, Output};

/// Both backends run on this adapter, so that they compute on the same device.
const ADAPTER: &str = "llvmpipe";

fn neuralrg(backend: &str, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_neuralrg-gpu"))
        .env("WGPU_BACKEND", backend)
        .args(["--adapter", ADAPTER])
        .args(args)
        .output()
        .expect("run neuralrg-gpu");
    assert!(
        out.status.success(),
        "WGPU_BACKEND={backend} neuralrg-gpu {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every number in `a` and `b` (JSON values of the same shape) within `tol`, relative to the
/// larger magnitude (or absolute below 1), except the keys named in `skip` (timings).
fn assert_close(a: &serde_json::Value, b: &serde_json::Value, tol: f64, skip: &[&str], at: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (k, v) in x {
                if !skip.contains(&k.as_str()) {
                    assert_close(v, &y[k], tol, skip, &format!("{at}.{k}"));
                }
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let scale = x.abs().max(y.abs()).max(1.0);
            assert!(
                (x - y).abs() <= tol * scale,
                "{at}: GL {x} against Vulkan {y}"
            );
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn gl_backend_trains_evaluates_and_samples_as_vulkan_does() {
    for (backend, name) in [("gl", "Gl"), ("vulkan", "Vulkan")] {
        let info = Command::new(env!("CARGO_BIN_EXE_neuralrg-gpu"))
            .env("WGPU_BACKEND", backend)
            .args(["--adapter", ADAPTER, "info", "--json"])
            .output()
            .expect("run neuralrg-gpu");
        assert!(
            info.status.success(),
            "this test runs Mesa's llvmpipe through both Vulkan and GL: install lavapipe and \
             Mesa's GL driver with EGL (apt-get install -y mesa-vulkan-drivers libvulkan1 \
             libgl1-mesa-dri libegl1 libegl-mesa0): {}",
            String::from_utf8_lossy(&info.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(info["backend"], name, "{info}");
    }

    let root = std::env::temp_dir().join(format!("neuralrg-backends-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut runs = Vec::new();
    for backend in ["gl", "vulkan"] {
        let dir = root.join(backend);
        let d = dir.to_str().unwrap();
        // Training: generation, the target, the loss, both backward passes and Adam.
        neuralrg(
            backend,
            &[
                "train",
                "-L",
                "4",
                "--steps",
                "12",
                "--log-every",
                "4",
                "--eval-samples",
                "256",
                "--quiet",
                "--out",
                d,
            ],
        );
        // Latent HMC: the leapfrog, the flow's backward for the force, the decisions and the
        // observables. Its decisions are discrete: a difference at float rounding is not
        // expected to flip one in 10 trajectories of 4 chains.
        let hmc = neuralrg(
            backend,
            &[
                "hmc",
                "--checkpoint",
                d,
                "--chains",
                "4",
                "--trajectories",
                "10",
                "--thermalise",
                "2",
                "--json",
            ],
        );
        runs.push((
            json_lines(&dir.join("metrics.jsonl")),
            serde_json::from_str::<serde_json::Value>(
                &std::fs::read_to_string(dir.join("eval.json")).unwrap(),
            )
            .unwrap(),
            serde_json::from_slice::<serde_json::Value>(&hmc.stdout).unwrap(),
        ));
    }
    let (gl, vk) = (&runs[0], &runs[1]);
    assert_eq!((gl.0.len(), vk.0.len()), (3, 3));
    for (a, b) in gl.0.iter().zip(&vk.0) {
        assert_close(a, b, 1e-5, &["elapsed_s", "samples_per_s"], "metrics");
    }
    assert_close(&gl.1, &vk.1, 1e-5, &[], "eval.json");
    assert_close(&gl.2, &vk.2, 1e-4, &["seconds", "ess_per_s"], "hmc");
    std::fs::remove_dir_all(&root).unwrap();
}
