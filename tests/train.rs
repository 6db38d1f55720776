//! Training end to end through the command line: it learns, respects the variational bound,
//! symmetrisation recovers the ln 2 of a collapsed flow, resume is bit-for-bit, bad input is
//! refused without damage.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use neuralrg_gpu::io::checkpoint::Checkpoint;
use neuralrg_gpu::train::metrics::{self, MetricsLine, MetricsRecord, RollbackRecord};

fn neuralrg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_neuralrg-gpu"))
        .args(args)
        .output()
        .expect("run neuralrg-gpu")
}

fn run_ok(args: &[&str]) -> String {
    let out = neuralrg(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neuralrg-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A small flow that learns L = 4 at beta_c in seconds on lavapipe, trained plainly (q itself)
/// at a constant rate unless a test says otherwise.
const TINY: [&str; 15] = [
    "--lattice",
    "4",
    "--hidden",
    "8",
    "--couplings",
    "4",
    "--lr",
    "0.01",
    "--no-symmetric",
    "--lr-schedule",
    "constant",
    "--warmup-steps",
    "0",
    "--quiet",
    "--log-every",
];

fn train(dir: &Path, extra: &[&str]) -> Vec<MetricsRecord> {
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend(["20", "--out", dir.to_str().unwrap()]);
    args.extend(extra);
    run_ok(&args);
    metrics::read(dir).unwrap()
}

/// Every logged loss stays above -ln Z minus 4 standard errors (eq. 4), the loss falls, and
/// the last one ends within `tol` of -ln Z.
fn check_learning(records: &[(f64, f64, f64)], tol: f64) {
    for &(loss, err, exact) in records {
        assert!(
            loss > exact - 4.0 * err,
            "variational bound violated: {loss} +/- {err} < {exact}"
        );
    }
    let (first, last) = (records[0], *records.last().unwrap());
    assert!(
        last.0 < first.0,
        "the loss did not fall: {} -> {}",
        first.0,
        last.0
    );
    let rel = (last.0 - last.2) / last.2.abs();
    assert!(rel < tol, "final relative error {rel} not below {tol}");
}

#[test]
fn a_tiny_run_learns_and_evaluates() {
    let dir = fresh_dir("plain");
    let m = train(&dir, &["--steps", "1000", "--batch", "64"]);
    assert_eq!(m.len(), 50);
    check_learning(
        &m.iter()
            .map(|r| (r.loss, r.loss_stderr, r.neg_ln_z_exact))
            .collect::<Vec<_>>(),
        0.05,
    );
    let out = run_ok(&[
        "eval",
        "--checkpoint",
        dir.to_str().unwrap(),
        "--samples",
        "2048",
        "--json",
    ]);
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (f, err, exact) = (
        e["free_energy"].as_f64().unwrap(),
        e["stderr"].as_f64().unwrap(),
        e["neg_ln_z_exact"].as_f64().unwrap(),
    );
    assert!(
        f > exact - 4.0 * err && e["rel_error"].as_f64().unwrap() < 0.05,
        "{out}"
    );
    // The importance-sampled estimate is sharper than the bound (this unsymmetrised flow
    // misses one of the two signs, so even the importance-sampled value sits about ln 2 above
    // -ln Z).
    let (f_is, ess) = (
        e["free_energy_is"].as_f64().unwrap(),
        e["ess"].as_f64().unwrap(),
    );
    assert!(
        f_is < f && e["free_energy_is_err"].as_f64().unwrap() > 0.0,
        "{out}"
    );
    assert!(e["rel_error_is"].as_f64().unwrap() < e["rel_error"].as_f64().unwrap());
    assert!(ess > 1.0 && ess <= 2048.0, "{out}");
    let npz = dir.join("s.npz");
    run_ok(&[
        "sample",
        "--checkpoint",
        dir.to_str().unwrap(),
        "--batch",
        "16",
        "--out",
        npz.to_str().unwrap(),
    ]);
    assert!(npz.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn symmetrisation_recovers_the_lost_mode() {
    let dir = fresh_dir("sym");
    let m = train(&dir, &["--steps", "1000", "--batch", "64", "--symmetric"]);
    let sym: Vec<(f64, f64, f64)> = m
        .iter()
        .map(|r| {
            (
                r.loss_sym.unwrap(),
                r.loss_sym_stderr.unwrap(),
                r.neg_ln_z_exact,
            )
        })
        .collect();
    check_learning(&sym, 0.025);
    // q_sym never does worse than q (Appendix D).
    assert!(m.iter().all(|r| r.loss_sym.unwrap() <= r.loss + 1e-3));
    // The flow collapses onto one sign; q_sym recovers exactly the ln 2 that costs q (measured
    // gap 0.69315 at step 1000), a tolerance far below ln 2 itself.
    let last = m.last().unwrap();
    let gap = last.loss - last.loss_sym.unwrap();
    assert!(
        (gap - std::f64::consts::LN_2).abs() < 0.01,
        "plain - symmetric = {gap}, not ln 2"
    );
    // eval of a symmetrised model estimates the q_sym free energy; 1000 = 3 batches of 300 + 100.
    let out = run_ok(&[
        "eval",
        "--checkpoint",
        dir.to_str().unwrap(),
        "--samples",
        "1000",
        "--batch",
        "300",
        "--json",
    ]);
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["samples"], 1000);
    assert!(e["rel_error"].as_f64().unwrap() < 0.025, "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_continues_bit_for_bit() {
    let (a, b) = (fresh_dir("resume-a"), fresh_dir("resume-b"));
    let small = ["--steps", "100", "--batch", "16", "--save-every", "30"];
    train(&a, &small);
    // --steps is the run's total: 100 more.
    run_ok(&[
        "train",
        "--resume",
        a.to_str().unwrap(),
        "--steps",
        "200",
        "--quiet",
    ]);
    train(
        &b,
        &["--steps", "200", "--batch", "16", "--save-every", "30"],
    );
    let (ca, cb) = (Checkpoint::load(&a).unwrap(), Checkpoint::load(&b).unwrap());
    assert_eq!(ca.step, 200);
    assert_eq!(
        (ca.params, ca.adam_m, ca.adam_v, ca.masks),
        (cb.params, cb.adam_m, cb.adam_v, cb.masks)
    );
    assert_eq!(
        metrics::read(&a)
            .unwrap()
            .iter()
            .map(|r| (r.step, r.loss))
            .collect::<Vec<_>>(),
        metrics::read(&b)
            .unwrap()
            .iter()
            .map(|r| (r.step, r.loss))
            .collect::<Vec<_>>()
    );
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The model state and the logged (step, loss, symmetrised loss) of a run directory.
type RunState = (
    Vec<f32>,
    Vec<f32>,
    Vec<f32>,
    Vec<u32>,
    u64,
    Vec<(u64, f64, Option<f64>)>,
);

fn run_state(dir: &Path) -> RunState {
    let ck = Checkpoint::load(dir).unwrap();
    let log = metrics::read(dir).unwrap();
    let log = log.iter().map(|r| (r.step, r.loss, r.loss_sym)).collect();
    (ck.params, ck.adam_m, ck.adam_v, ck.masks, ck.step, log)
}

#[test]
fn resuming_a_symmetric_run_from_an_older_checkpoint_truncates_the_log_and_matches() {
    // A crash after the metrics of steps 11-20 were written but before their checkpoint: the
    // checkpoint says step 10, metrics.jsonl goes on to 20.
    let (a, b) = (fresh_dir("trunc-a"), fresh_dir("trunc-b"));
    let flags = [
        "--batch",
        "16",
        "--symmetric",
        "--log-every",
        "1",
        "--save-every",
        "10",
    ];
    let train_to = |dir: &Path, steps: &str, resume: bool| {
        let mut args = vec!["train"];
        if resume {
            args.extend(["--resume", dir.to_str().unwrap(), "--quiet"]);
        } else {
            args.extend(&TINY[..TINY.len() - 1]);
            args.extend(flags);
            args.extend(["--out", dir.to_str().unwrap()]);
        }
        args.extend(["--steps", steps]);
        run_ok(&args);
    };
    train_to(&b, "30", false);
    train_to(&a, "10", false);
    let ck = a.join("checkpoint.safetensors");
    let at_10 = std::fs::read(&ck).unwrap();
    train_to(&a, "20", true);
    std::fs::write(&ck, at_10).unwrap();
    assert_eq!(metrics::read(&a).unwrap().last().unwrap().step, 20);
    train_to(&a, "30", true);
    let (sa, sb) = (run_state(&a), run_state(&b));
    assert_eq!(sa.4, 30);
    assert!(
        sa.5.iter().all(|r| r.2.is_some()),
        "symmetric runs log loss_sym"
    );
    assert_eq!(sa, sb, "a resumed run differs from the uninterrupted one");
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// A NaN forced into the parameters before step 4 is rolled back: the run goes on at half the
/// learning rate, logs the rollback, records the new rate, and stays deterministic.
#[test]
fn a_nan_is_rolled_back_and_training_goes_on_at_half_the_rate() {
    let (a, b) = (fresh_dir("rollback-a"), fresh_dir("rollback-b"));
    let flags = ["--steps", "8", "--log-every", "1", "--inject-nan-at", "4"];
    for d in [&a, &b] {
        let mut args = vec!["train"];
        args.extend(&TINY[..TINY.len() - 1]);
        args.extend(flags);
        args.extend(["--out", d.to_str().unwrap()]);
        let out = neuralrg(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        // A NaN weight gives a NaN loss, or only a NaN gradient where max(NaN, 0) is 0.
        assert!(
            ["loss", "gradient"]
                .iter()
                .any(|w| err.contains(&format!("non-finite {w} at step 4: rolled back"))),
            "{err}"
        );
    }
    let lines = metrics::read_lines(&a).unwrap();
    let rollbacks: Vec<_> = lines
        .iter()
        .filter_map(|l| match l {
            MetricsLine::Rollback(r) => Some(r.clone()),
            MetricsLine::Step(_) => None,
        })
        .collect();
    assert_eq!(rollbacks.len(), 1);
    let RollbackRecord { step, rollback, lr } = &rollbacks[0];
    assert_eq!((*step, *lr), (4, 0.005));
    assert!(rollback == "loss" || rollback == "gradient", "{rollback}");
    let steps = metrics::read(&a).unwrap();
    assert_eq!(
        steps.iter().map(|r| (r.step, r.lr)).collect::<Vec<_>>(),
        (1..=8)
            .map(|s| (s, if s < 4 { 0.01 } else { 0.005 }))
            .collect::<Vec<_>>()
    );
    assert!(steps.iter().all(|r| r.loss.is_finite()));
    let ck = Checkpoint::load(&a).unwrap();
    assert_eq!((ck.step, ck.config.train.adam.lr), (8, 0.005));
    assert!(std::fs::read_to_string(a.join("config.toml"))
        .unwrap()
        .contains("lr = 0.005"));
    assert_eq!(run_state(&a), run_state(&b), "rollbacks are deterministic");
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Past --max-rollbacks training stops in one line with the last good state checkpointed. At an
/// absurd learning rate every update after step 20 blows up, so each rollback returns to the
/// state of step 20 and skips an update: the checkpoint ends a few steps on, holding exactly the
/// state of step 20.
#[test]
fn past_the_rollback_limit_training_stops_with_the_last_good_state() {
    let dir = fresh_dir("nan");
    train(&dir, &["--steps", "20"]);
    let at_20 = Checkpoint::load(&dir).unwrap();
    let out = neuralrg(&[
        "train",
        "--resume",
        dir.to_str().unwrap(),
        "--steps",
        "50",
        "--lr",
        "1e30",
        "--max-rollbacks",
        "2",
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("non-finite loss at step 24 after 2 rollbacks")
            && errors[0].contains("The checkpoint holds the last good state, at step 23"),
        "{err}"
    );
    let ck = Checkpoint::load(&dir).unwrap();
    assert_eq!(ck.step, 23);
    assert_eq!(
        (ck.params, ck.adam_m, ck.adam_v),
        (at_20.params, at_20.adam_m, at_20.adam_v)
    );
    let rollbacks = metrics::read_lines(&dir)
        .unwrap()
        .into_iter()
        .filter(|l| matches!(l, MetricsLine::Rollback(_)))
        .count();
    assert_eq!(rollbacks, 2);
    std::fs::remove_dir_all(&dir).unwrap();

    let fresh = fresh_dir("nan-fresh");
    let mut args = vec!["train"];
    args.extend(&TINY[..TINY.len() - 1]);
    args.extend([
        "--steps",
        "8",
        "--inject-nan-at",
        "6",
        "--max-rollbacks",
        "0",
    ]);
    args.extend(["--out", fresh.to_str().unwrap()]);
    let out = neuralrg(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("at step 6 after 0 rollbacks") && err.contains("last good state, at step 5"),
        "{err}"
    );
    let ck = Checkpoint::load(&fresh).unwrap();
    assert_eq!(ck.step, 5);
    assert!(ck.params.iter().all(|p| p.is_finite()));
    std::fs::remove_dir_all(&fresh).unwrap();
}

/// A fresh run that ends before its first checkpoint (a NaN at the first step with no rollback
/// allowed; a stop requested before the first step) keeps nothing: the directory it made goes,
/// so the same command can start again there.
#[test]
fn a_fresh_run_that_ends_before_its_first_checkpoint_leaves_no_directory() {
    let dir = fresh_dir("first-step");
    let mut args = vec!["train"];
    args.extend(&TINY[..TINY.len() - 1]);
    args.extend(["--steps", "4", "--out", dir.to_str().unwrap()]);
    let mut faulty = args.clone();
    faulty.extend(["--inject-nan-at", "1", "--max-rollbacks", "0"]);
    let out = neuralrg(&faulty);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("No checkpoint was written"), "{err}");
    assert!(!dir.exists(), "the failed run left {}", dir.display());
    run_ok(&args);
    assert_eq!(Checkpoint::load(&dir).unwrap().step, 4);
    std::fs::remove_dir_all(&dir).unwrap();

    use neuralrg_gpu::config::{PartialRunConfig, PartialTrain};
    use neuralrg_gpu::train::{run, RunOptions, RunStart};
    let stopped = fresh_dir("stopped");
    let flags = PartialRunConfig {
        lattice: Some(4),
        train: PartialTrain {
            steps: Some(4),
            ..Default::default()
        },
        ..Default::default()
    };
    let RunStart::Train(prepared) = run::start(None, Some(&stopped), flags, true).unwrap() else {
        panic!("a fresh run is not complete");
    };
    let ctx = common::gpu();
    let stop = std::sync::atomic::AtomicBool::new(true);
    let summary = neuralrg_gpu::train::train(
        &ctx,
        &prepared.config,
        None,
        RunOptions {
            dir: prepared.dir.clone(),
            lock: prepared.lock,
            steps: 4,
            quiet: true,
            stop: &stop,
            max_rollbacks: 0,
            inject_nan_at: None,
            inject_stop_at: None,
        },
    )
    .unwrap();
    assert!(summary.interrupted && summary.completed_steps == 0);
    assert!(
        !stopped.exists(),
        "the stopped run left {}",
        stopped.display()
    );
}

#[test]
fn bad_resumes_are_refused_without_damage() {
    let dir = fresh_dir("bad");
    train(&dir, &["--steps", "10"]);
    let ck = dir.join("checkpoint.safetensors");
    let before = std::fs::read(&ck).unwrap();
    let metrics_before = std::fs::read(dir.join("metrics.jsonl")).unwrap();
    let d = dir.to_str().unwrap();
    let corrupt = fresh_dir("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(
        corrupt.join("checkpoint.safetensors"),
        &before[..before.len() / 2],
    )
    .unwrap();
    // A file that is not a checkpoint, named as the one to resume from.
    let notes = corrupt.join("notes.txt");
    std::fs::write(&notes, b"not a checkpoint").unwrap();
    let missing = fresh_dir("missing");
    let m = missing.to_str().unwrap();
    let c = corrupt.to_str().unwrap();
    let n = notes.to_str().unwrap();
    // A good checkpoint under another name, in a directory that holds a run of its own.
    let other = dir.join("other.safetensors");
    std::fs::copy(&ck, &other).unwrap();
    let o = other.to_str().unwrap();
    // Every flag that would change the model or the target is refused on resume, by name.
    for (flag, value) in [
        ("--lattice", "8"),
        ("--hidden", "16"),
        ("--temperature", "3"),
        ("--seed", "3"),
        ("--arch", "tree"),
        ("--depth", "1"),
        ("--couplings", "2"),
        ("--mlp-layers", "2"),
    ] {
        let out = neuralrg(&["train", "--resume", d, flag, value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{flag}: {err}");
        assert!(
            err.contains(flag) && err.contains("would change the checkpoint's model"),
            "{flag}: {err:?}"
        );
    }
    for (args, names) in [
        (vec!["train", "--resume", m], vec![m]),
        (vec!["train", "--resume", c], vec![c]),
        (
            vec!["train", "--resume", n],
            vec![n, "not a neuralrg-gpu checkpoint"],
        ),
        (
            vec!["train", "--resume", o, "--steps", "12"],
            vec![o, "holds a run"],
        ),
        (vec!["train", "--lattice", "4", "--out", d], vec![d]),
        (
            vec!["train", "--lattice", "6", "--out", m],
            vec!["--lattice", "power of two"],
        ),
        (
            vec!["train", "-L", "4", "--lr", "-1", "--out", m],
            vec!["--lr", "positive"],
        ),
        (
            vec!["train", "-L", "4", "--batch", "1", "--out", m],
            vec!["--batch", "at least 2"],
        ),
        (vec!["eval", "--checkpoint", c], vec![c]),
    ] {
        let out = neuralrg(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        for name in names {
            assert!(
                err.contains(name),
                "{args:?}: {err:?} does not name {name:?}"
            );
        }
    }
    assert_eq!(std::fs::read(&ck).unwrap(), before);
    assert_eq!(
        std::fs::read(dir.join("metrics.jsonl")).unwrap(),
        metrics_before
    );
    assert!(!missing.exists(), "a refused run created its directory");
    for d in [dir, corrupt] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_config_file_is_read_and_flags_win() {
    let dir = fresh_dir("config");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("my.toml");
    std::fs::write(&file, "lattice = 4\ntemperature = 2.5\n[flow]\nhidden = 8\ncouplings = 2\n[train]\nbatch = 8\nlr = 0.02\n").unwrap();
    let run = dir.join("run");
    run_ok(&[
        "train",
        "--config",
        file.to_str().unwrap(),
        "--lr",
        "0.03",
        "--steps",
        "3",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]);
    let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let lines: Vec<&str> = resolved.lines().map(str::trim).collect();
    for line in [
        "beta = 0.4",
        "hidden = 8",
        "couplings = 2",
        "batch = 8",
        "lr = 0.03",
        "steps = 3",
    ] {
        assert!(lines.contains(&line), "{line:?} missing from\n{resolved}");
    }
    std::fs::write(&file, "lattice = 4\nhiden = 8\n").unwrap();
    let out = neuralrg(&[
        "train",
        "--config",
        file.to_str().unwrap(),
        "--out",
        dir.join("other").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hiden"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The flags of the long runs the signal and lock tests interrupt: TINY's flow at the default
/// learning rate.
fn long_flow() -> Vec<&'static str> {
    let mut flags = vec!["train"];
    flags.extend(&TINY[..6]);
    flags.push("--quiet");
    flags
}
const LONG_LOGGING: [&str; 4] = ["--log-every", "1", "--save-every", "100000"];

/// Starts a 100,000-step run into `dir` and waits until it has logged 5 steps.
#[cfg(unix)]
fn start_long_run(dir: &Path) -> std::process::Child {
    let mut args = long_flow();
    args.extend(LONG_LOGGING);
    args.extend(["--steps", "100000", "--out", dir.to_str().unwrap()]);
    start_run(&args, dir, 5)
}

/// Starts `neuralrg-gpu ARGS` and waits until `dir`'s metrics.jsonl has `lines` lines.
#[cfg(unix)]
fn start_run(args: &[&str], dir: &Path, lines: usize) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_neuralrg-gpu"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    let metrics_file = dir.join("metrics.jsonl");
    // A watchdog against a hang, not a speed check: far beyond any start on lavapipe.
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&metrics_file).map_or(0, |t| t.lines().count()) < lines {
        if started.elapsed().as_secs() > 900 {
            let _ = child.kill();
            panic!("no {lines} logged lines after 15 minutes: training hangs");
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("training ended ({status}) before logging {lines} lines: {err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child
}

#[cfg(unix)]
fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn sigint_sigterm_and_sighup_save_a_checkpoint_print_the_resume_command_and_exit_130() {
    for name in ["INT", "TERM", "HUP"] {
        let dir = fresh_dir(&format!("sig{name}"));
        let child = start_long_run(&dir);
        signal(&child, name);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "SIG{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("neuralrg-gpu train --resume {}", dir.display())),
            "SIG{name}: {err}"
        );
        let ck = Checkpoint::load(&dir).unwrap();
        let last = metrics::read(&dir).unwrap().last().unwrap().step;
        assert!(
            ck.step >= 5 && ck.step >= last,
            "SIG{name}: checkpoint at step {} after {last} logged steps",
            ck.step
        );
        if name == "INT" {
            // Resuming after the interruption gives what an uninterrupted run of the same length
            // does (--steps is the run's total).
            let total = (ck.step + 7).to_string();
            let d = dir.to_str().unwrap();
            run_ok(&["train", "--resume", d, "--steps", &total, "--quiet"]);
            let whole = fresh_dir("sigint-whole");
            let mut args = long_flow();
            args.extend(LONG_LOGGING);
            args.extend(["--steps", &total, "--out", whole.to_str().unwrap()]);
            run_ok(&args);
            assert_eq!(run_state(&dir), run_state(&whole));
            std::fs::remove_dir_all(whole).unwrap();
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[cfg(unix)]
#[test]
fn a_second_process_is_refused_a_run_directory_in_use_and_the_first_runs_on() {
    // A finished 5-step run, resumed towards 100,000 steps: the run that holds the directory.
    let dir = fresh_dir("locked");
    let d = dir.to_str().unwrap();
    let mut first = long_flow();
    first.extend(LONG_LOGGING);
    first.extend(["--steps", "5", "--out", d]);
    run_ok(&first);
    let child = start_run(
        &["train", "--resume", d, "--steps", "100000", "--quiet"],
        &dir,
        10,
    );
    let config = std::fs::read(dir.join("config.toml")).unwrap();
    let mut fresh = long_flow();
    fresh.extend(["--steps", "10", "--out", d]);
    for args in [fresh, vec!["train", "--resume", d, "--quiet"]] {
        let out = neuralrg(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "in use by another neuralrg-gpu process (PID {})",
                child.id()
            )),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read(dir.join("config.toml")).unwrap(), config);
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // The first run's files are whole: the checkpoint loads and every metrics line parses.
    let ck = Checkpoint::load(&dir).unwrap();
    assert_eq!(metrics::read(&dir).unwrap().last().unwrap().step, ck.step);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn steps_is_the_runs_total_and_a_fresh_run_needs_an_empty_directory() {
    let dir = fresh_dir("total");
    let d = dir.to_str().unwrap();
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend(["5", "--steps", "10", "--out", d]);
    run_ok(&args);
    assert_eq!(metrics::read(&dir).unwrap().last().unwrap().step, 10);
    let ck = dir.join("checkpoint.safetensors");
    let at_10 = std::fs::read(&ck).unwrap();
    // Below or at the run's own step: refused, or reported complete; nothing written.
    let out = neuralrg(&["train", "--resume", d, "--steps", "5"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--steps is the run's total"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = run_ok(&["train", "--resume", d, "--quiet"]);
    assert!(done.contains("is complete at step 10"), "{done}");
    assert_eq!(std::fs::read(&ck).unwrap(), at_10);
    // Extending to a total of 20 (the checkpoint file names its run directory too); config.toml
    // records the total, and the elapsed time goes on.
    let file = ck.to_str().unwrap();
    run_ok(&["train", "--resume", file, "--steps", "20", "--quiet"]);
    let ck20 = Checkpoint::load(&dir).unwrap();
    assert_eq!(ck20.step, 20);
    assert_eq!(ck20.config.train.steps, 20);
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("steps = 20"), "{config}");
    let log = metrics::read(&dir).unwrap();
    let (at10, at20) = (&log[1], &log[3]);
    assert_eq!((at10.step, at20.step), (10, 20));
    assert!(at20.elapsed_s > at10.elapsed_s, "{log:?}");
    assert!(ck20.elapsed_s >= at20.elapsed_s, "{log:?}");
    // A fresh run into a directory with anything in it is refused, and the files stay.
    let other = fresh_dir("occupied");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend(["5", "--steps", "10", "--out", other.to_str().unwrap()]);
    let out = neuralrg(&args);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
    assert_eq!(std::fs::read(other.join("notes.txt")).unwrap(), b"mine");
    for d in [dir, other] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_damaged_checkpoint_is_refused_by_eval_sample_and_resume() {
    let dir = fresh_dir("damaged");
    train(&dir, &["--steps", "3"]);
    let ck = dir.join("checkpoint.safetensors");
    let good = std::fs::read(&ck).unwrap();
    let head_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let d = dir.to_str().unwrap();
    let npz = dir.join("s.npz");
    // A byte in the header's metadata, one in the first tensor's data, and the last byte.
    for at in [8 + head_len / 2, 8 + head_len + 5, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&ck, &bad).unwrap();
        for args in [
            vec!["eval", "--checkpoint", d, "--samples", "8"],
            vec![
                "sample",
                "--checkpoint",
                d,
                "--batch",
                "4",
                "--out",
                npz.to_str().unwrap(),
            ],
            vec!["train", "--resume", d, "--steps", "6", "--quiet"],
        ] {
            let out = neuralrg(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "byte {at}: {args:?} accepted it");
            assert!(
                err.contains("checkpoint.safetensors") && err.contains("corrupt"),
                "byte {at}: {args:?}: {err}"
            );
            assert_eq!(
                std::fs::read(&ck).unwrap(),
                bad,
                "{args:?} changed the file"
            );
        }
        assert!(!npz.exists());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A cosine schedule with warm-up and a batch ramp is followed step by step, recorded in the
/// config, continued exactly by a resume after an interruption in the ramp's second stage
/// (parameters, learning rates and moving averages), and --eval-samples leaves the final
/// estimate in eval.json.
#[test]
fn schedules_and_moving_averages_resume_bit_for_bit() {
    let (a, b) = (fresh_dir("sched-a"), fresh_dir("sched-b"));
    let args = |dir: &Path| {
        let mut v = long_flow();
        v.extend([
            "--lr-schedule",
            "cosine",
            "--warmup-steps",
            "10",
            "--batch",
            "16",
            "--batch-final",
            "64",
            "--log-every",
            "1",
            "--steps",
            "400",
        ]);
        v.extend(["--out", dir.to_str().unwrap()]);
        v.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    // Stopped as by a signal, but at a fixed step (a signal would race a fast adapter), in
    // the ramp's second stage.
    let mut args_a = args(&a);
    args_a.extend(["--inject-stop-at".to_string(), "151".to_string()]);
    let out = neuralrg(&args_a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(130));
    let stopped = Checkpoint::load(&a).unwrap().step;
    assert_eq!(stopped, 150);
    let out = run_ok(&[
        "train",
        "--resume",
        a.to_str().unwrap(),
        "--quiet",
        "--eval-samples",
        "512",
    ]);
    run_ok(&args(&b).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("final model, 512 fresh samples"), "{out}");
    let eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("eval.json")).unwrap()).unwrap();
    assert_eq!(eval["samples"], 512);
    assert!(eval["free_energy_is"].is_number());
    let log = |d: &Path| {
        metrics::read(d)
            .unwrap()
            .iter()
            .map(|r| (r.step, r.loss, r.lr, r.loss_ema, r.loss_sym_ema))
            .collect::<Vec<_>>()
    };
    let (la, lb) = (log(&a), log(&b));
    assert_eq!(la, lb, "a resumed schedule differs (stopped at {stopped})");
    let (ca, cb) = (Checkpoint::load(&a).unwrap(), Checkpoint::load(&b).unwrap());
    assert_eq!((ca.params, ca.adam_m), (cb.params, cb.adam_m));
    // Warm-up from lr / 10, the peak (the default lr) at step 10, then the cosine to zero.
    let lr: Vec<f64> = la.iter().map(|r| r.2).collect();
    let peak = neuralrg_gpu::config::defaults::LR;
    assert!((lr[0] - peak / 10.0).abs() < 1e-15 && (lr[9] - peak).abs() < 1e-15);
    assert!(lr[399] < 1e-4 * peak && lr[200] < lr[100]);
    assert!(la.iter().all(|r| r.3.is_some()));
    // The moving average of the loss, weight 0.9 on the past (README), recomputed from the log.
    let mut ema = la[0].1;
    for r in &la {
        if r.0 > la[0].0 {
            ema = 0.9 * ema + 0.1 * r.1;
        }
        assert!(
            (r.3.unwrap() - ema).abs() <= 1e-12 * ema.abs(),
            "step {}: loss_ema {} vs {ema}",
            r.0,
            r.3.unwrap()
        );
    }
    let toml = std::fs::read_to_string(a.join("config.toml")).unwrap();
    assert!(toml.contains("lr_schedule = \"cosine\"") && toml.contains("batch_final = 64"));
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
