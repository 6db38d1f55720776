//! The command line as a user meets it: output formats and bad input.

use std::process::Command;

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

#[test]
fn bad_input_gives_one_line_and_a_nonzero_exit() {
    for args in [
        &["exact", "--lattice", "0"][..],
        &["exact", "--lattice", "1"],
        &["exact", "--lattice", "-4"],
        &["exact", "--lattice", "4", "--beta", "-0.3"],
        &["exact", "--lattice", "4", "--beta", "0"],
        &["exact", "--lattice", "4", "--beta", "NaN"],
        &["exact", "--lattice", "4", "--temperature", "0"],
        &[
            "exact",
            "--lattice",
            "4",
            "--beta",
            "0.3",
            "--temperature",
            "2",
        ],
    ] {
        let out = neuralrg(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
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
}
