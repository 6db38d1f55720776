//! Resolving and validating user input before anything touches the GPU.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::flow::plan::{Arch, FlowConfig, FlowPlan, PlanError};
use crate::physics::exact::BETA_C;
use crate::physics::ising::{IsingTarget, TargetError, MAX_BETA, MIN_BETA};
use crate::train::{AdamConfig, LrSchedule, Objective};

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("give either --beta or --temperature, not both")]
    BetaAndTemperature,
    #[error("--beta must be a positive finite number from {MIN_BETA:e} to {MAX_BETA:e} (got {0})")]
    BadBeta(f64),
    #[error(
        "--temperature must be a positive finite number from {lo:e} to {hi:e} (got {0})",
        lo = 1.0 / MAX_BETA,
        hi = 1.0 / MIN_BETA
    )]
    BadTemperature(f64),
    #[error("{flag} must be at least {min} (got {batch})")]
    BatchTooSmall {
        flag: &'static str,
        batch: usize,
        min: usize,
    },
    #[error(
        "{flag} must be at most {max} at L = {lattice} (got {batch}): a batch of more than \
         2^36 values fits no adapter"
    )]
    BatchTooLarge {
        flag: &'static str,
        batch: usize,
        max: u64,
        lattice: usize,
    },
}

/// The range of beta (and of T = 1/beta) any command accepts, as the errors state it.
const BETA_RANGE: &str = "from 1e-6 to 1e6";

/// beta from `--beta` or `--temperature` (beta = 1/T); the critical beta_c when neither is given.
pub fn resolve_beta(beta: Option<f64>, temperature: Option<f64>) -> Result<f64, ConfigError> {
    match (beta, temperature) {
        (Some(_), Some(_)) => Err(ConfigError::BetaAndTemperature),
        (Some(b), None) if (MIN_BETA..=MAX_BETA).contains(&b) => Ok(b),
        (Some(b), None) => Err(ConfigError::BadBeta(b)),
        (None, Some(t)) if (1.0 / MAX_BETA..=1.0 / MIN_BETA).contains(&t) => Ok(1.0 / t),
        (None, Some(t)) => Err(ConfigError::BadTemperature(t)),
        (None, None) => Ok(BETA_C),
    }
}

/// The most values (batch x L^2) a batch may hold: 2^36, 256 GiB as f32, beyond any adapter's
/// memory; it keeps every size product far from overflowing.
pub const MAX_BATCH_VALUES: u128 = 1 << 36;

/// A batch of `batch` lattices of L x L (given by `flag`: --batch, --chains): at least `min`,
/// and at most [`MAX_BATCH_VALUES`] values.
pub fn check_batch(
    batch: usize,
    lattice: usize,
    min: usize,
    flag: &'static str,
) -> Result<(), ConfigError> {
    let sites = (lattice as u128).pow(2).max(1);
    if batch < min {
        Err(ConfigError::BatchTooSmall { flag, batch, min })
    } else if batch as u128 * sites > MAX_BATCH_VALUES {
        Err(ConfigError::BatchTooLarge {
            flag,
            batch,
            max: (MAX_BATCH_VALUES / sites) as u64,
            lattice,
        })
    } else {
        Ok(())
    }
}

pub use crate::physics::lattice::check_lattice;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stated_beta_range_is_the_checked_one() {
        assert_eq!(BETA_RANGE, format!("from {MIN_BETA:e} to {MAX_BETA:e}"));
    }

    #[test]
    fn beta_resolution() {
        assert_eq!(resolve_beta(None, None), Ok(BETA_C));
        assert_eq!(resolve_beta(Some(0.3), None), Ok(0.3));
        assert_eq!(resolve_beta(None, Some(2.0)), Ok(0.5));
        assert_eq!(
            resolve_beta(Some(0.3), Some(2.0)),
            Err(ConfigError::BetaAndTemperature)
        );
        assert_eq!(
            resolve_beta(Some(0.0), None),
            Err(ConfigError::BadBeta(0.0))
        );
        assert_eq!(
            resolve_beta(None, Some(-1.0)),
            Err(ConfigError::BadTemperature(-1.0))
        );
        assert!(resolve_beta(Some(f64::NAN), None).is_err());
        assert!(resolve_beta(None, Some(f64::INFINITY)).is_err());
    }
}

/// The fully resolved configuration of a training run, as `config.toml` and checkpoints store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub lattice: usize,
    pub beta: f64,
    pub flow: FlowSection,
    pub train: TrainSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSection {
    pub arch: Arch,
    pub depth: usize,
    pub couplings: usize,
    pub hidden: usize,
    pub mlp_layers: usize,
}

// No deny_unknown_fields here: serde does not support it with `flatten`; files users write are
// read as `PartialRunConfig`, which has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSection {
    /// Steps of a fresh run (a resumed run takes its own count from the command line).
    pub steps: u64,
    pub batch: usize,
    pub seed: u64,
    pub symmetric: bool,
    pub sym_reg: f64,
    #[serde(flatten)]
    pub adam: AdamConfig,
    /// The learning-rate schedule over the run's steps, after `warmup_steps` of linear warm-up
    /// (both absent, so constant and none, in runs written before they existed).
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    #[serde(default)]
    pub warmup_steps: u64,
    /// The batch the run ramps up to (`batch` times a power of two), doubling at evenly spaced
    /// steps; none for a fixed batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_final: Option<usize>,
    pub save_every: u64,
    pub log_every: u64,
}

/// Any subset of the configuration: from the command line or a TOML file. Command-line values
/// override the file's, which override the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialRunConfig {
    pub lattice: Option<usize>,
    pub beta: Option<f64>,
    pub temperature: Option<f64>,
    #[serde(default)]
    pub flow: PartialFlow,
    #[serde(default)]
    pub train: PartialTrain,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialFlow {
    pub arch: Option<Arch>,
    pub depth: Option<usize>,
    pub couplings: Option<usize>,
    pub hidden: Option<usize>,
    pub mlp_layers: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialTrain {
    pub steps: Option<u64>,
    pub batch: Option<usize>,
    pub seed: Option<u64>,
    pub symmetric: Option<bool>,
    pub sym_reg: Option<f64>,
    pub lr: Option<f64>,
    pub beta1: Option<f64>,
    pub beta2: Option<f64>,
    pub eps: Option<f64>,
    pub weight_decay: Option<f64>,
    pub clip_grad: Option<f64>,
    pub lr_schedule: Option<LrSchedule>,
    pub warmup_steps: Option<u64>,
    pub batch_final: Option<usize>,
    pub save_every: Option<u64>,
    pub log_every: Option<u64>,
}

/// The largest weight of the symmetry regulariser (`--sym-reg`) a run may be given: the
/// regulariser is summed in f32 on the device, and a weight far above any loss overflows it,
/// which reads as a divergence that --lr cannot cure. Checked where a weight is chosen, not when
/// a checkpoint is read, so one trained with a larger weight stays readable.
pub const MAX_SYM_REG: f64 = 1e6;

/// Defaults, chosen by measurement (docs/BENCHMARKS.md, "Defaults" and "Accuracy against
/// training time"): the authors' network (10 couplings of 3-layer MLPs 10 wide) trained
/// symmetrised on batches of 64 with Adam at 1e-2, warmed up over 100 steps and decayed by a
/// cosine over 4,000 steps, takes `train --lattice 16` below 5e-3 in the relative error of F_sym
/// within 30 minutes on a 2-core CPU. In the frontier at L = 16 the learning rate was the knob
/// that mattered most in a fixed time; wider or shallower MLPs, fewer couplings and larger batches
/// all did worse. From L = 32 the run is 12,000 steps, the best measured for a 1-hour budget
/// there (3.3e-3 in 46 minutes, against 3.8e-3 from 4,000 steps in 14).
pub mod defaults {
    use crate::train::LrSchedule;

    /// Training steps for an L x L lattice.
    pub fn steps(lattice: usize) -> u64 {
        if lattice >= 32 {
            12_000
        } else {
            4_000
        }
    }
    pub const BATCH: usize = 64;
    pub const COUPLINGS: usize = 10;
    pub const HIDDEN: usize = 10;
    pub const MLP_LAYERS: usize = 3;
    pub const SYMMETRIC: bool = true;
    pub const LR: f64 = 1e-2;
    pub const LR_SCHEDULE: LrSchedule = LrSchedule::Cosine;
    pub const WARMUP_STEPS: u64 = 100;
    pub const SAVE_EVERY: u64 = 100;
    pub const LOG_EVERY: u64 = 10;
}

#[derive(Debug, Error)]
pub enum RunConfigError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("--lattice is required (on the command line or as `lattice` in --config)")]
    MissingLattice,
    #[error("{0} must be {1}")]
    Invalid(&'static str, &'static str),
    #[error(
        "{0} would change the checkpoint's model or target; drop the flag, or train a new run"
    )]
    ModelChange(String),
    #[error("cannot read the config file {path}: {message}")]
    File { path: String, message: String },
}

impl PartialRunConfig {
    /// Field by field, `self` where set, else `lower`.
    pub fn or(self, lower: PartialRunConfig) -> PartialRunConfig {
        let (f, lf) = (self.flow, lower.flow);
        let (t, lt) = (self.train, lower.train);
        // --beta and --temperature on one level replace both on the lower level.
        let (beta, temperature) = if self.beta.is_some() || self.temperature.is_some() {
            (self.beta, self.temperature)
        } else {
            (lower.beta, lower.temperature)
        };
        PartialRunConfig {
            lattice: self.lattice.or(lower.lattice),
            beta,
            temperature,
            flow: PartialFlow {
                arch: f.arch.or(lf.arch),
                depth: f.depth.or(lf.depth),
                couplings: f.couplings.or(lf.couplings),
                hidden: f.hidden.or(lf.hidden),
                mlp_layers: f.mlp_layers.or(lf.mlp_layers),
            },
            train: PartialTrain {
                steps: t.steps.or(lt.steps),
                batch: t.batch.or(lt.batch),
                seed: t.seed.or(lt.seed),
                symmetric: t.symmetric.or(lt.symmetric),
                sym_reg: t.sym_reg.or(lt.sym_reg),
                lr: t.lr.or(lt.lr),
                beta1: t.beta1.or(lt.beta1),
                beta2: t.beta2.or(lt.beta2),
                eps: t.eps.or(lt.eps),
                weight_decay: t.weight_decay.or(lt.weight_decay),
                clip_grad: t.clip_grad.or(lt.clip_grad),
                lr_schedule: t.lr_schedule.or(lt.lr_schedule),
                warmup_steps: t.warmup_steps.or(lt.warmup_steps),
                batch_final: t.batch_final.or(lt.batch_final),
                save_every: t.save_every.or(lt.save_every),
                log_every: t.log_every.or(lt.log_every),
            },
        }
    }

    /// Reads a TOML config file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, RunConfigError> {
        let err = |message: String| RunConfigError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| {
            // One line: where, then what (toml's own message spans several lines).
            let what = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            err(match e.span() {
                Some(span) => {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {column}: {what}")
                }
                None => what,
            })
        })
    }

    /// Fills the gaps with defaults and validates everything.
    pub fn resolve(self) -> Result<RunConfig, RunConfigError> {
        let lattice = self.lattice.ok_or(RunConfigError::MissingLattice)?;
        let beta = resolve_beta(self.beta, self.temperature)?;
        let (f, t) = (self.flow, self.train);
        let flow = FlowConfig::new(
            lattice,
            f.depth,
            f.arch.unwrap_or(Arch::Mera),
            f.couplings.unwrap_or(defaults::COUPLINGS),
            f.hidden.unwrap_or(defaults::HIDDEN),
            f.mlp_layers.unwrap_or(defaults::MLP_LAYERS),
        )?;
        let d = AdamConfig::default();
        let train = TrainSection {
            steps: t.steps.unwrap_or(defaults::steps(lattice)),
            batch: t.batch.unwrap_or(defaults::BATCH),
            seed: t.seed.unwrap_or(0),
            symmetric: t.symmetric.unwrap_or(defaults::SYMMETRIC),
            sym_reg: t.sym_reg.unwrap_or(0.0),
            adam: AdamConfig {
                lr: t.lr.unwrap_or(d.lr),
                beta1: t.beta1.unwrap_or(d.beta1),
                beta2: t.beta2.unwrap_or(d.beta2),
                eps: t.eps.unwrap_or(d.eps),
                weight_decay: t.weight_decay.unwrap_or(d.weight_decay),
                clip_grad: t.clip_grad.unwrap_or(d.clip_grad),
            },
            lr_schedule: t.lr_schedule.unwrap_or(defaults::LR_SCHEDULE),
            warmup_steps: t.warmup_steps.unwrap_or(defaults::WARMUP_STEPS),
            batch_final: t.batch_final,
            save_every: t.save_every.unwrap_or(defaults::SAVE_EVERY),
            log_every: t.log_every.unwrap_or(defaults::LOG_EVERY),
        };
        let config = RunConfig {
            lattice,
            beta,
            flow: FlowSection {
                arch: flow.arch,
                depth: flow.depth,
                couplings: flow.couplings,
                hidden: flow.hidden,
                mlp_layers: flow.mlp_layers,
            },
            train,
        };
        config.validate()?;
        if config.train.sym_reg > MAX_SYM_REG {
            return Err(RunConfigError::Invalid("--sym-reg", "at most 1e6"));
        }
        Ok(config)
    }
}

impl RunConfig {
    /// Checks what the types do not: positive sizes and rates, finite numbers.
    pub fn validate(&self) -> Result<(), RunConfigError> {
        let t = &self.train;
        let a = &t.adam;
        // TOML integers (config.toml, checkpoints) stop at 2^63 - 1.
        let toml_max = i64::MAX as u64;
        let checks: [(bool, &'static str, &'static str); 17] = [
            (t.steps >= 1, "--steps", "at least 1"),
            (t.steps <= toml_max, "--steps", "at most 2^63 - 1"),
            (
                t.warmup_steps <= toml_max,
                "--warmup-steps",
                "at most 2^63 - 1",
            ),
            (t.seed <= toml_max, "--seed", "at most 2^63 - 1"),
            (t.save_every <= toml_max, "--save-every", "at most 2^63 - 1"),
            (t.log_every <= toml_max, "--log-every", "at most 2^63 - 1"),
            (
                t.batch >= 2,
                "--batch",
                "at least 2 (the loss needs a standard error)",
            ),
            (t.save_every >= 1, "--save-every", "at least 1"),
            (t.log_every >= 1, "--log-every", "at least 1"),
            (a.lr.is_finite() && a.lr > 0.0, "--lr", "a positive number"),
            ((0.0..1.0).contains(&a.beta1), "--beta1", "in [0, 1)"),
            ((0.0..1.0).contains(&a.beta2), "--beta2", "in [0, 1)"),
            (
                a.eps.is_finite() && a.eps > 0.0,
                "--eps",
                "a positive number",
            ),
            (
                a.weight_decay.is_finite() && a.weight_decay >= 0.0,
                "--weight-decay",
                "non-negative",
            ),
            (
                a.clip_grad.is_finite() && a.clip_grad >= 0.0,
                "--clip-grad",
                "non-negative (0 = off)",
            ),
            (
                t.sym_reg.is_finite() && t.sym_reg >= 0.0,
                "--sym-reg",
                "non-negative",
            ),
            (
                (MIN_BETA..=MAX_BETA).contains(&self.beta),
                "beta",
                BETA_RANGE,
            ),
        ];
        for (ok, what, rule) in checks {
            if !ok {
                return Err(RunConfigError::Invalid(what, rule));
            }
        }
        check_batch(t.batch, self.lattice, 2, "--batch")?;
        if let Some(last) = t.batch_final {
            if last < t.batch || last % t.batch != 0 || !(last / t.batch).is_power_of_two() {
                return Err(RunConfigError::Invalid(
                    "--batch-final",
                    "--batch times a power of two (it doubles from --batch)",
                ));
            }
            check_batch(last, self.lattice, 2, "--batch-final")?;
        }
        self.flow_config()?;
        Ok(())
    }

    /// The target model of the run: the one place that says which model a configuration
    /// describes (today the Ising model's continuous relaxation, eq. 7).
    pub fn target(&self) -> Result<IsingTarget, TargetError> {
        IsingTarget::new(self.lattice, self.beta)
    }

    /// The flow's layer plan.
    pub fn plan(&self) -> Result<FlowPlan, PlanError> {
        self.flow_config().map(FlowPlan::new)
    }

    pub fn flow_config(&self) -> Result<FlowConfig, PlanError> {
        let f = &self.flow;
        FlowConfig::new(
            self.lattice,
            Some(f.depth),
            f.arch,
            f.couplings,
            f.hidden,
            f.mlp_layers,
        )
    }

    pub fn objective(&self) -> Objective {
        Objective {
            symmetric: self.train.symmetric,
            sym_reg: self.train.sym_reg,
        }
    }

    /// What defines the model and its target: a resumed run may not change these.
    pub fn model_differences(&self, other: &RunConfig) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.lattice != other.lattice {
            out.push("--lattice");
        }
        if self.beta != other.beta {
            out.push("--beta/--temperature");
        }
        let (a, b) = (&self.flow, &other.flow);
        for (differs, name) in [
            (a.arch != b.arch, "--arch"),
            (a.depth != b.depth, "--depth"),
            (a.couplings != b.couplings, "--couplings"),
            (a.hidden != b.hidden, "--hidden"),
            (a.mlp_layers != b.mlp_layers, "--mlp-layers"),
            (self.train.seed != other.train.seed, "--seed"),
        ] {
            if differs {
                out.push(name);
            }
        }
        out
    }

    /// Every field set: the lowest layer under command-line overrides on resume.
    pub fn to_partial(&self) -> PartialRunConfig {
        let (f, t, a) = (&self.flow, &self.train, &self.train.adam);
        PartialRunConfig {
            lattice: Some(self.lattice),
            beta: Some(self.beta),
            temperature: None,
            flow: PartialFlow {
                arch: Some(f.arch),
                depth: Some(f.depth),
                couplings: Some(f.couplings),
                hidden: Some(f.hidden),
                mlp_layers: Some(f.mlp_layers),
            },
            train: PartialTrain {
                steps: Some(t.steps),
                batch: Some(t.batch),
                seed: Some(t.seed),
                symmetric: Some(t.symmetric),
                sym_reg: Some(t.sym_reg),
                lr: Some(a.lr),
                beta1: Some(a.beta1),
                beta2: Some(a.beta2),
                eps: Some(a.eps),
                weight_decay: Some(a.weight_decay),
                clip_grad: Some(a.clip_grad),
                lr_schedule: Some(t.lr_schedule),
                warmup_steps: Some(t.warmup_steps),
                batch_final: t.batch_final,
                save_every: Some(t.save_every),
                log_every: Some(t.log_every),
            },
        }
    }

    /// `overrides` applied on top of this (a checkpoint's) configuration; refused when they would
    /// change the model or its target.
    pub fn with_overrides(&self, overrides: PartialRunConfig) -> Result<RunConfig, RunConfigError> {
        // Before resolving: another lattice would first fail a check of the recorded depth.
        if overrides.lattice.is_some_and(|l| l != self.lattice) {
            return Err(RunConfigError::ModelChange("--lattice".into()));
        }
        let merged = overrides.or(self.to_partial()).resolve()?;
        let changed = merged.model_differences(self);
        if changed.is_empty() {
            Ok(merged)
        } else {
            Err(RunConfigError::ModelChange(changed.join(", ")))
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a RunConfig always serialises")
    }
}

#[cfg(test)]
mod run_config_tests {
    use super::*;

    /// Another lattice is refused as a change of the model, not by the recorded depth it no
    /// longer fits (L = 32 records depth 5, beyond log2 16).
    #[test]
    fn another_lattice_is_a_change_of_the_model() {
        let at_32 = PartialRunConfig {
            lattice: Some(32),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let err = at_32
            .with_overrides(PartialRunConfig {
                lattice: Some(16),
                ..Default::default()
            })
            .unwrap_err();
        assert!(
            matches!(&err, RunConfigError::ModelChange(f) if f == "--lattice"),
            "{err}"
        );
    }

    #[test]
    fn command_line_overrides_file_overrides_defaults() {
        let file: PartialRunConfig = toml::from_str(
            "lattice = 8\ntemperature = 2.0\n[flow]\nhidden = 16\n[train]\nlr = 0.01\nbatch = 32\n",
        )
        .unwrap();
        let cli = PartialRunConfig {
            beta: Some(0.3),
            train: PartialTrain {
                batch: Some(128),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = cli.or(file).resolve().unwrap();
        assert_eq!((c.lattice, c.beta, c.flow.hidden), (8, 0.3, 16));
        assert_eq!(
            (c.train.batch, c.train.adam.lr, c.train.steps),
            (128, 0.01, defaults::steps(8))
        );
        assert_eq!(c.flow.depth, 3);
        let back: RunConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn default_steps_follow_the_lattice_and_yield_to_the_flag() {
        let steps = |lattice: usize, given: Option<u64>| {
            PartialRunConfig {
                lattice: Some(lattice),
                train: PartialTrain {
                    steps: given,
                    ..Default::default()
                },
                ..Default::default()
            }
            .resolve()
            .unwrap()
            .train
            .steps
        };
        assert_eq!(
            [
                steps(8, None),
                steps(16, None),
                steps(32, None),
                steps(64, None)
            ],
            [4000, 4000, 12_000, 12_000]
        );
        assert_eq!(steps(32, Some(500)), 500);
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused() {
        assert!(toml::from_str::<PartialRunConfig>("latice = 8").is_err());
        let base = PartialRunConfig {
            lattice: Some(8),
            ..Default::default()
        };
        assert!(base.clone().resolve().is_ok());
        let mut p = base.clone();
        p.train.lr = Some(-1.0);
        assert!(p.resolve().is_err());
        let mut p = base.clone();
        p.train.batch = Some(1);
        assert!(p.resolve().is_err());
        // The ramp doubles from --batch: 64 -> 256 is fine, 64 -> 100 and 64 -> 32 are not.
        for (last, ok) in [(256, true), (100, false), (32, false)] {
            let mut p = base.clone();
            p.train.batch = Some(64);
            p.train.batch_final = Some(last);
            let r = p.resolve();
            assert_eq!(r.is_ok(), ok, "{last}: {r:?}");
        }
        assert!(PartialRunConfig::default().resolve().is_err());
    }
}
