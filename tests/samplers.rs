//! The exact samplers at L = 4, beta_c, against exact enumeration of the 2^16 spin states: HMC
//! in latent and physical space, flow independence Metropolis and importance reweighting each
//! give the structure factor, the energy and |m| within 3 of their error bars (fixed seeds).
//! And the samplers' command lines: bad input is refused in one line, writing nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::TRAINED;
use neuralrg_gpu::io::checkpoint::Checkpoint;
use neuralrg_gpu::physics::exact::BETA_C;
use neuralrg_gpu::sample::chains::{
    run_flow_metropolis, run_hmc, run_reweight, SamplerReport, Schedule,
};
use neuralrg_gpu::sample::hmc::{Hmc, Space};
use neuralrg_gpu::sample::Model;

fn check(report: &SamplerReport) {
    let exact = common::enumeration::ising_observables(4, BETA_C);
    let got = [
        (report.structure_factor, report.structure_factor_err),
        (report.energy, report.energy_err),
        (report.abs_m, report.abs_m_err),
    ];
    for (k, ((v, e), x)) in got.iter().zip(exact).enumerate() {
        // A bound on the error too: an inflated one (a wrong tau_int, stuck chains) would pass
        // the first check whatever the value.
        assert!(
            (v - x).abs() < 3.0 * e && *e > 0.0 && *e < 0.03,
            "{}: observable {k} = {v} +/- {e}, exact {x}",
            report.sampler
        );
    }
    assert!((report.energy_exact - exact[1]).abs() < 1e-6);
}

#[test]
fn hmc_in_both_spaces_samples_the_exact_distribution() {
    let ctx = common::gpu();
    // Latent HMC is exact for any flow: a perturbed untrained one keeps the test quick.
    let config = common::small_config(4, 3, 2);
    let model = Model::init(&ctx, &config, 0.1).unwrap();
    let schedule = Schedule {
        thermalise: 50,
        measure: 300,
        target_acceptance: Some(0.8),
    };
    for space in [Space::Latent, Space::Physical] {
        let mut hmc = Hmc::new(&ctx, &model, space, 16, 0.2, 8, 3).unwrap();
        let run = run_hmc(&ctx, &mut hmc, &schedule, |_, _| {}).unwrap();
        let report = SamplerReport::from_chains(&format!("{space:?} HMC"), &model, &run);
        let acc = report.acceptance.unwrap();
        assert!((0.6..0.95).contains(&acc), "{space:?}: acceptance {acc}");
        check(&report);
    }
}

#[test]
fn flow_metropolis_and_reweighting_sample_the_exact_distribution() {
    let ctx = common::gpu();
    let ck = Checkpoint::load(Path::new(TRAINED)).unwrap();
    let model = Model::from_checkpoint(&ctx, &ck).unwrap();
    let schedule = Schedule {
        thermalise: 100,
        measure: 2000,
        target_acceptance: None,
    };
    let run = run_flow_metropolis(&ctx, &model, 64, &schedule, 1, |_, _| {}).unwrap();
    check(&SamplerReport::from_chains("flow Metropolis", &model, &run));
    check(&run_reweight(&ctx, &model, 131_072, 4096, 1, |_, _| {}).unwrap());
}

fn neuralrg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_neuralrg-gpu"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_sampler_input_is_refused_in_one_line_writing_nothing() {
    let csv = std::env::temp_dir().join(format!("neuralrg-samplers-{}.csv", std::process::id()));
    let csv = csv.to_str().unwrap();
    let hmc = |extra: &[&str]| {
        let mut a = vec!["hmc", "--checkpoint", TRAINED, "--series", csv];
        a.extend(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let cases: Vec<(Vec<String>, &[&str])> = vec![
        (hmc(&["--lattice", "8"]), &["--lattice 8", "L = 4"]),
        (
            hmc(&["--step-size", "0"]),
            &["--step-size", "from 1e-6 to 100"],
        ),
        // Lost in the f32 positions: the chains would stand still, every proposal accepted.
        (
            hmc(&["--step-size", "1e-50"]),
            &["--step-size", "from 1e-6"],
        ),
        // The trajectory's dispatches are recorded on the host (it aborted on the allocation).
        (
            hmc(&["--leapfrog", "100000000"]),
            &["--leapfrog", "at most 100000"],
        ),
        (hmc(&["--step-size", "-0.1"]), &["--step-size"]),
        (hmc(&["--step-size", "NaN"]), &["--step-size"]),
        (hmc(&["--chains", "0"]), &["--chains", "at least 1"]),
        (hmc(&["--chains", "99999999999"]), &["--chains", "at most"]),
        (hmc(&["--trajectories", "0"]), &["--trajectories"]),
        (
            hmc(&["--target-acceptance", "1.5"]),
            &["--target-acceptance"],
        ),
        (
            vec![
                "hmc",
                "--checkpoint",
                TRAINED,
                "--series",
                "/no/such/dir/s.csv",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            &["--series", "/no/such/dir"],
        ),
        (
            ["mcmc", "--checkpoint", TRAINED, "--iterations", "0"]
                .map(String::from)
                .to_vec(),
            &["--iterations"],
        ),
        (
            ["mcmc", "--checkpoint", "/no/such/run", "--chains", "8"]
                .map(String::from)
                .to_vec(),
            &["no checkpoint", "/no/such/run"],
        ),
        (
            ["reference", "-L", "4", "--beta", "-1"]
                .map(String::from)
                .to_vec(),
            &["--beta"],
        ),
        (
            [
                "mcmc",
                "--checkpoint",
                TRAINED,
                "--method",
                "reweight",
                "--series",
                csv,
            ]
            .map(String::from)
            .to_vec(),
            &["--series", "reweighting"],
        ),
    ];
    for (args, names) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = neuralrg(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        for n in names {
            assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
        }
        assert!(!Path::new(csv).exists(), "{args:?} wrote {csv}");
    }
}

/// The samplers' JSON has every key README lists, and HMC's says when its error bars cannot be
/// trusted (chains shorter than 50 autocorrelation times).
#[test]
fn sampler_reports_have_their_keys_and_hmc_warns_of_short_chains() {
    let keys = [
        "sampler",
        "lattice",
        "beta",
        "samples",
        "structure_factor",
        "structure_factor_err",
        "energy",
        "energy_err",
        "energy_exact",
        "abs_m",
        "abs_m_err",
        "acceptance",
        "tau_int",
        "ess",
        "ess_per_s",
        "seconds",
        "step_size",
        "force_evaluations",
        "warning",
    ];
    let runs: [&[&str]; 2] = [
        &[
            "hmc",
            "--checkpoint",
            TRAINED,
            "--chains",
            "2",
            "--trajectories",
            "4",
            "--thermalise",
            "0",
            "--json",
        ],
        &[
            "mcmc",
            "--checkpoint",
            TRAINED,
            "--method",
            "reweight",
            "--chains",
            "8",
            "--iterations",
            "32",
            "--json",
        ],
    ];
    for args in runs {
        let out = neuralrg(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let object = v.as_object().unwrap();
        let mut got: Vec<&str> = object.keys().map(String::as_str).collect();
        let mut want = keys.to_vec();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{args:?}");
        assert!(v["structure_factor"].is_number(), "{v}");
        if args[0] == "hmc" {
            let warning = v["warning"].as_str().unwrap_or_default();
            assert!(warning.contains("autocorrelation"), "{v}");
        } else {
            assert!(v["acceptance"].is_null() && v["samples"] == 256, "{v}");
        }
    }
    // Reweighting two samples warns that its error bars rest on too few (it said nothing).
    let out = neuralrg(&[
        "mcmc",
        "--checkpoint",
        TRAINED,
        "--method",
        "reweight",
        "--chains",
        "1",
        "--iterations",
        "2",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warning = v["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("too few samples"), "{v}");
}

#[test]
fn the_wolff_reference_prints_its_json_keys() {
    let out = neuralrg(&["reference", "-L", "8", "--sweeps", "2000", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "lattice",
        "beta",
        "m2",
        "m2_err",
        "abs_m",
        "abs_m_err",
        "energy",
        "energy_err",
        "energy_exact",
    ] {
        assert!(v[key].is_number(), "{key} missing: {v}");
    }
    let (e, err, exact) = (
        v["energy"].as_f64().unwrap(),
        v["energy_err"].as_f64().unwrap(),
        v["energy_exact"].as_f64().unwrap(),
    );
    assert!((e - exact).abs() < 4.0 * err && err < 0.03, "{v}");
}

/// With the trained flow at beta_c, the importance-sampled -ln Z agrees with the exact value
/// within 3 jackknife errors, and the variational bound lies above it.
#[test]
fn the_importance_sampled_free_energy_is_exact_at_beta_c() {
    let ctx = common::gpu();
    let ck = Checkpoint::load(Path::new(TRAINED)).unwrap();
    let model = Model::from_checkpoint(&ctx, &ck).unwrap();
    let e = neuralrg_gpu::sample::estimate(&ctx, &model, 65_536, 8192, 3, |_| {}).unwrap();
    let exact = e.neg_ln_z_exact;
    assert!(
        (e.free_energy_is - exact).abs() < 3.0 * e.free_energy_is_err,
        "{e:?}"
    );
    assert!(e.free_energy > exact + 10.0 * e.stderr, "{e:?}");
}

/// `hmc --compare` (Fig. 3b): one JSON object with a report per sampler, the chain-averaged
/// series of both spaces, and the figure with its numbers.
#[test]
fn hmc_compare_writes_its_reports_series_and_figure() {
    let dir = std::env::temp_dir().join(format!("neuralrg-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let series = dir.join("series.csv");
    let figure = dir.join("fig.png");
    let out = neuralrg(&[
        "hmc",
        "--checkpoint",
        TRAINED,
        "--compare",
        "--chains",
        "4",
        "--trajectories",
        "10",
        "--thermalise",
        "2",
        "--series",
        series.to_str().unwrap(),
        "--plot",
        figure.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for sampler in ["latent", "physical", "wolff"] {
        assert!(report[sampler]["energy"].is_number(), "{sampler}: {report}");
    }
    let text = std::fs::read_to_string(&series).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "t,latent_structure_factor,physical_structure_factor"
    );
    assert_eq!(lines.len(), 11, "{text}");
    for ext in ["png", "svg"] {
        assert!(figure.with_extension(ext).exists(), "{ext}");
    }
    let numbers = std::fs::read_to_string(figure.with_extension("csv")).unwrap();
    assert!(numbers.starts_with("label,x,y,err\n"), "{numbers}");
    // Both traces from the first measured trajectory (after the 2 thermalising ones), and the
    // Wolff line across them.
    assert!(numbers.contains("\nlatent HMC,2,") && numbers.contains("\nphysical HMC,11,"));
    assert_eq!(numbers.matches("\nWolff,").count(), 2, "{numbers}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sampling q_sym flips the sign of each sample with probability 1/2 (Appendix D): the same
/// latent draw with and without symmetrisation gives x or -x per sample, both occurring, and
/// ln q_sym(x) = ln [q(x) + q(-x)] / 2 is at least ln q(x) - ln 2.
#[test]
fn symmetrised_sampling_flips_signs_at_random() {
    let ctx = common::gpu();
    let ck = Checkpoint::load(Path::new(TRAINED)).unwrap();
    let mut model = Model::from_checkpoint(&ctx, &ck).unwrap();
    let batch = 256;
    model.symmetric = true;
    let sym = neuralrg_gpu::sample::draw(&ctx, &model, batch, 3, 0).unwrap();
    model.symmetric = false;
    let plain = neuralrg_gpu::sample::draw(&ctx, &model, batch, 3, 0).unwrap();
    let n = 16;
    let mut flipped = 0;
    for i in 0..batch {
        let (a, b) = (&sym.x[i * n..(i + 1) * n], &plain.x[i * n..(i + 1) * n]);
        if a == b {
            continue;
        }
        assert!(a.iter().zip(b).all(|(u, v)| *u == -*v), "sample {i}");
        flipped += 1;
    }
    // Binomial(256, 1/2): 128 +/- 8.
    assert!(
        (88..=168).contains(&flipped),
        "{flipped} of {batch} flipped"
    );
    for i in 0..batch {
        let d = sym.ln_q[i] as f64 - plain.ln_q[i] as f64;
        assert!(d >= -std::f64::consts::LN_2 - 1e-4, "sample {i}: {d}");
    }
}

/// A checkpoint of a fresh flow at L = 4 whose parameters carry N(0, sigma^2) noise, written
/// directly into a new directory.
fn perturbed_checkpoint(name: &str, sigma: f64) -> std::path::PathBuf {
    use neuralrg_gpu::config::{PartialFlow, PartialRunConfig};
    let dir = std::env::temp_dir().join(format!("neuralrg-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = PartialRunConfig {
        lattice: Some(4),
        flow: PartialFlow {
            hidden: Some(8),
            ..Default::default()
        },
        ..Default::default()
    }
    .resolve()
    .unwrap();
    Checkpoint::fresh(config, 1, sigma)
        .unwrap()
        .save(&dir)
        .unwrap();
    dir
}

/// `mcmc --method METHOD --json` on [`perturbed_checkpoint`].
fn mcmc_perturbed(name: &str, sigma: f64, method: &str) -> std::process::Output {
    let dir = perturbed_checkpoint(name, sigma);
    let out = neuralrg(&[
        "mcmc",
        "--checkpoint",
        dir.to_str().unwrap(),
        "--method",
        method,
        "--chains",
        "8",
        "--iterations",
        "32",
        "--json",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

/// Noise on a fresh flow's parameters that leaves its densities finite but far from pi.
const SIGMA_FAR: f64 = 0.3;

/// Reweighting with a flow far from pi rests on a few heavy weights, and its report says so;
/// with a flow so broken that some densities overflow, reweighting and flow Metropolis refuse
/// to estimate, in one line (reweighting reported NaN averages as null before, and flow
/// Metropolis the zero configuration its chains never left).
#[test]
fn flow_samplers_warn_of_heavy_weights_and_refuse_non_finite_densities() {
    let out = mcmc_perturbed("reweight-far", SIGMA_FAR, "reweight");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warning = v["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("effective sample size"), "{v}");
    for method in ["reweight", "flow-metropolis"] {
        let out = mcmc_perturbed("broken", 1.0, method);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(err.trim().lines().count(), 1, "{method}: {err}");
        assert!(err.contains("non-finite densities"), "{method}: {err}");
    }
    // So do the analyses, drawing nothing (they wrote figures of NaN before).
    let dir = perturbed_checkpoint("broken-analyze", 1.0);
    let figures = dir.join("figures");
    for analysis in ["--rg-flow", "--mi", "--response"] {
        let out = neuralrg(&[
            "analyze",
            "--checkpoint",
            dir.to_str().unwrap(),
            "--out",
            figures.to_str().unwrap(),
            analysis,
            "--samples",
            "64",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{analysis} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{analysis}: {err}");
        assert!(err.contains("non-finite"), "{analysis}: {err}");
        assert!(!figures.exists(), "{analysis} wrote figures");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
