//! The figure commands: `plot` draws training curves and `analyze --rg-flow` the renormalised
//! configurations and sample grids, each as PNG, SVG and the CSV behind it; bad input is one
//! line and writes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::TRAINED;

fn neuralrg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_neuralrg-gpu"))
        .args(args)
        .output()
        .unwrap()
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neuralrg-fig-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `args` fail in one line that contains `name`.
fn refused(args: &[&str], name: &str) {
    let o = neuralrg(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(name), "{err}");
}

/// A PNG, an SVG and a CSV with the given header, all non-trivial.
fn check_figure(stem: &Path, csv_header: &str) {
    let png = std::fs::read(stem.with_extension("png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", stem.display());
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"));
    let csv = std::fs::read_to_string(stem.with_extension("csv")).unwrap();
    assert!(csv.starts_with(csv_header), "{csv:.80}");
    assert!(csv.lines().count() > 2);
}

#[test]
fn plot_overlays_training_curves() {
    let dir = fresh_dir("plot");
    let (a, b) = (dir.join("plain"), dir.join("sym"));
    for (run, sym) in [(&a, false), (&b, true)] {
        let mut args = vec![
            "train",
            "-L",
            "4",
            "--hidden",
            "4",
            "--couplings",
            "2",
            "--steps",
            "30",
            "--log-every",
            "5",
            "--quiet",
            "--out",
        ];
        args.push(run.to_str().unwrap());
        args.push(if sym { "--symmetric" } else { "--no-symmetric" });
        assert!(neuralrg(&args).status.success());
    }
    let out = dir.join("curves.png");
    let o = neuralrg(&[
        "plot",
        "--run",
        a.to_str().unwrap(),
        "--run",
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_figure(&out.with_extension(""), "label,x,y,err\n");
    let csv = std::fs::read_to_string(out.with_extension("csv")).unwrap();
    // Both runs, and the symmetrised curve of the second.
    for label in ["plain: q,", "sym: q,", "sym: q_sym,"] {
        assert!(csv.contains(label), "{label}");
    }
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("plain: q,")).count(),
        6
    );
    // Runs whose directories share a name are told apart by their paths.
    let twin = dir.join("again").join("plain");
    std::fs::create_dir_all(&twin).unwrap();
    std::fs::copy(a.join("metrics.jsonl"), twin.join("metrics.jsonl")).unwrap();
    let o = neuralrg(&[
        "plot",
        "--run",
        a.to_str().unwrap(),
        "--run",
        twin.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.with_extension("csv")).unwrap();
    for run in [&a, &twin] {
        let label = format!("{}: q,", run.display());
        assert_eq!(csv.lines().filter(|l| l.starts_with(&label)).count(), 6);
    }

    // Bad input: one line, nothing written.
    let missing = dir.join("none");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let bad = dir.join("bad.png");
    let blocked = dir.join("blocked.png");
    std::fs::create_dir_all(blocked.with_extension("svg")).unwrap();
    for (args, name) in [
        (
            vec![
                "plot",
                "--run",
                empty.to_str().unwrap(),
                "--out",
                bad.to_str().unwrap(),
            ],
            "run directory",
        ),
        (
            vec![
                "plot",
                "--run",
                missing.to_str().unwrap(),
                "--out",
                bad.to_str().unwrap(),
            ],
            "run directory",
        ),
        (
            vec!["plot", "--run", a.to_str().unwrap(), "--out", "x.jpg"],
            "--out must end in .png",
        ),
        (
            vec![
                "plot",
                "--run",
                a.to_str().unwrap(),
                "--run",
                a.to_str().unwrap(),
                "--out",
                bad.to_str().unwrap(),
            ],
            "given twice",
        ),
        // A sibling the figure writes beside FILE.png that is a directory: refused first.
        (
            vec![
                "plot",
                "--run",
                a.to_str().unwrap(),
                "--out",
                blocked.to_str().unwrap(),
            ],
            "which is a directory",
        ),
        (
            vec![
                "plot",
                "--run",
                a.to_str().unwrap(),
                "--out",
                "/no/such/dir/x.png",
            ],
            "does not exist",
        ),
    ] {
        refused(&args, name);
        assert!(!bad.exists() && !bad.with_extension("csv").exists());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn analyze_draws_the_rg_flow_sample_grids_and_mutual_information() {
    let dir = fresh_dir("analyze");
    let o = neuralrg(&[
        "analyze",
        "--checkpoint",
        TRAINED,
        "--out",
        dir.to_str().unwrap(),
        "--rg-flow",
        "--mi",
        "--response",
        "--samples",
        "500",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in ["rg_flow", "samples_spins", "samples_tanh", "mi", "response"] {
        check_figure(&dir.join(name), "panel,row,col,value\n");
    }
    // Two 16 x 16 matrices; the trained flow leaves its latents sharing far less information
    // than the physical variables.
    let mi = std::fs::read_to_string(dir.join("mi.csv")).unwrap();
    assert_eq!(mi.lines().count(), 1 + 2 * 256);
    let mean = |panel: &str| {
        let v: Vec<f64> = mi
            .lines()
            .skip(1)
            .filter(|l| l.starts_with(panel))
            .filter_map(|l| l.rsplit(',').next()?.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(
        mean("0,") < 0.5 * mean("1,"),
        "latent {} physical {}",
        mean("0,"),
        mean("1,")
    );
    // L = 4 and its levels 2 x 2 and 1 x 1: 16 + 4 + 1 values.
    let csv = std::fs::read_to_string(dir.join("rg_flow.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 16 + 4 + 1);
    std::fs::remove_dir_all(&dir).unwrap();

    let never = fresh_dir("never");
    for (args, name) in [
        (
            vec![
                "analyze",
                "--checkpoint",
                TRAINED,
                "--out",
                never.to_str().unwrap(),
            ],
            "--rg-flow",
        ),
        (
            vec![
                "analyze",
                "--checkpoint",
                "/no/such/run",
                "--out",
                never.to_str().unwrap(),
                "--rg-flow",
            ],
            "no checkpoint",
        ),
    ] {
        refused(&args, name);
        assert!(!never.exists());
    }
}

#[test]
fn a_sweep_trains_resumes_plots_and_emits_slurm() {
    let dir = fresh_dir("sweep");
    let out = dir.to_str().unwrap();
    let sweep_with = |extra: &[&str], hidden: &str, steps: &str| {
        let mut a = vec![
            "sweep",
            "--temperatures",
            "2.0,2.5",
            "--depths",
            "1..2",
            "--out",
            out,
        ];
        a.extend(extra);
        a.extend(["--eval-samples", "256", "--", "-L", "4", "--hidden", hidden]);
        a.extend(["--couplings", "1", "--steps", steps, "--save-every", "10"]);
        neuralrg(&a)
    };
    let sweep = |extra: &[&str]| sweep_with(extra, "4", "20");
    // The plan of a fresh sweep, and its Slurm script: nothing trained.
    let plan = sweep(&["--dry-run"]);
    assert!(plan.status.success());
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(text.matches("(new)").count(), 4, "{text}");
    assert!(!dir.exists(), "a dry run wrote");
    assert!(sweep(&["--emit", "slurm"]).status.success());
    let script = dir.join("sweep.slurm");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("#SBATCH --array=0-3") && text.contains("--depth 2 "));
    // Task 1 of the array trains its point, which the sweep then counts as done.
    let task = Command::new("bash")
        .arg(&script)
        .env("SLURM_ARRAY_TASK_ID", "1")
        .output()
        .unwrap();
    assert!(
        task.status.success(),
        "{}",
        String::from_utf8_lossy(&task.stderr)
    );
    let plan = sweep(&["--dry-run"]);
    assert_eq!(
        String::from_utf8_lossy(&plan.stdout)
            .matches("(done)")
            .count(),
        1
    );
    // Training and collecting.
    let o = sweep(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Training says so (what the second run below must not say).
    assert!(String::from_utf8_lossy(&o.stdout).contains("steps in"));
    for p in [
        "T2.0000-depth1",
        "T2.0000-depth2",
        "T2.5000-depth1",
        "T2.5000-depth2",
    ] {
        assert!(dir.join(p).join("checkpoint.safetensors").exists(), "{p}");
    }
    check_figure(&dir.join("fig_s1_error"), "label,x,y,err\n");
    check_figure(&dir.join("fig_s2_samples"), "panel,row,col,value\n");
    // Again: every point is done, nothing is trained, the figures are redrawn.
    let again = sweep(&[]);
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stdout).contains("steps in"));
    let plan = sweep(&["--dry-run"]);
    assert_eq!(
        String::from_utf8_lossy(&plan.stdout)
            .matches("(done)")
            .count(),
        4
    );
    // More steps extend every point: each is resumed to the new total.
    let longer = sweep_with(&["--dry-run"], "4", "30");
    let text = String::from_utf8_lossy(&longer.stdout);
    assert_eq!(
        text.matches("(trained to step 20 of 30)").count(),
        4,
        "{text}"
    );
    assert!(sweep_with(&["--emit", "slurm"], "4", "30").status.success());
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(
        text.contains("#SBATCH --array=0-3")
            && text.matches("--resume").count() == 4
            && text.matches("--steps 30").count() == 4
            && text.matches("--save-every 10").count() == 4,
        "{text}"
    );
    // The same grid with another network is not this sweep: its points are refused by name
    // rather than collected.
    let other = sweep_with(&["--dry-run"], "8", "20");
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success() && err.contains("--hidden") && err.contains("another --out"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Bad input: one line, nothing written.
    // (Each flag once: the range checks, not the parser's refusal of a repeated flag.)
    for (temperatures, depths, reason) in [
        ("2.7:2.0:0.1", "1", "needs FROM <= TO"),
        ("2.0,2.00001", "1", "the same to 4 decimals"),
        ("2.0", "0..2", "whole numbers from 1"),
        // Named as the sweep's flag, not as each point's train --temperature.
        (
            "1e-7",
            "1",
            "--temperatures \"1e-7\": temperatures must be from 1e-6 to 1e6",
        ),
        ("2.0", "1,1", "listed twice"),
    ] {
        let a = [
            "sweep",
            "--temperatures",
            temperatures,
            "--depths",
            depths,
            "--out",
            out,
            "--",
            "-L",
            "4",
        ];
        refused(&a, reason);
        assert!(!dir.exists());
    }
    for (train, name) in [
        (vec!["-L", "4", "--out", "x"], "--out is set by the sweep"),
        (vec!["-L", "4", "--hidden", "0"], "--hidden"),
        (
            vec!["-L", "4", "--steps", "0"],
            "--steps must be at least 1",
        ),
        (vec!["-L", "3"], "--lattice"),
    ] {
        let mut a = vec![
            "sweep",
            "--temperatures",
            "2.0",
            "--depths",
            "1",
            "--out",
            out,
            // Refused in the plan already, not only when training.
            "--dry-run",
            "--",
        ];
        a.extend(train);
        refused(&a, name);
        assert!(!dir.exists());
    }
}
