//! `metrics.jsonl`: one JSON object per logged step, appended as training goes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::write_atomic;

pub const FILE_NAME: &str = "metrics.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Completed training steps.
    pub step: u64,
    /// Variational free energy mean(ln q - ln pi) of this step's batch, and its standard error.
    pub loss: f64,
    pub loss_stderr: f64,
    pub neg_ln_z_exact: f64,
    /// (loss - (-ln Z)) / |-ln Z|.
    pub rel_error: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub elapsed_s: f64,
    pub samples_per_s: f64,
    /// With --symmetric: the symmetrised loss mean(ln q_sym - ln pi), its error, its relative error.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub loss_sym: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub loss_sym_stderr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rel_error_sym: Option<f64>,
    /// Exponential moving averages over the logged steps (weight 0.9 on the past) of `loss` and,
    /// with --symmetric, of `loss_sym`: the smoothed progress signal.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub loss_ema: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub loss_sym_ema: Option<f64>,
}

/// A rollback after a non-finite step, logged among the step records: the step that was
/// non-finite (counted like `step` above, so `step - 1` steps had completed), what was
/// non-finite, and the learning rate from then on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackRecord {
    pub step: u64,
    /// "loss" or "gradient".
    pub rollback: String,
    pub lr: f64,
}

/// One line of metrics.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricsLine {
    Step(MetricsRecord),
    Rollback(RollbackRecord),
}

impl MetricsLine {
    pub fn step(&self) -> u64 {
        match self {
            Self::Step(r) => r.step,
            Self::Rollback(r) => r.step,
        }
    }
}

/// Appends records, flushing each so that a crash loses at most the line being written.
pub struct MetricsWriter {
    file: File,
}

impl MetricsWriter {
    /// A fresh file (a new run).
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: File::create(dir.join(FILE_NAME))?,
        })
    }

    /// Continues a resumed run: records past `step` (logged after the checkpoint was saved) are
    /// dropped, atomically, so the file again describes one history.
    pub fn resume(dir: &Path, step: u64) -> std::io::Result<Self> {
        let path: PathBuf = dir.join(FILE_NAME);
        if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            let kept: String = text
                .lines()
                .filter(|l| serde_json::from_str::<MetricsLine>(l).is_ok_and(|r| r.step() <= step))
                .map(|l| format!("{l}\n"))
                .collect();
            write_atomic(&path, kept.as_bytes())?;
        }
        Ok(Self {
            file: OpenOptions::new().create(true).append(true).open(&path)?,
        })
    }

    pub fn write(&mut self, r: &MetricsLine) -> std::io::Result<()> {
        let line = serde_json::to_string(r).expect("records serialise");
        writeln!(self.file, "{line}")?;
        self.file.flush()
    }
}

/// Every line of a metrics file.
pub fn read_lines(dir: &Path) -> std::io::Result<Vec<MetricsLine>> {
    std::fs::read_to_string(dir.join(FILE_NAME))?
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
        .collect()
}

/// The step records of a metrics file (rollbacks left out).
pub fn read(dir: &Path) -> std::io::Result<Vec<MetricsRecord>> {
    Ok(read_lines(dir)?
        .into_iter()
        .filter_map(|l| match l {
            MetricsLine::Step(r) => Some(r),
            MetricsLine::Rollback(_) => None,
        })
        .collect())
}
