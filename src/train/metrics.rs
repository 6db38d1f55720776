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

/// Appends records, flushing each so that a crash loses at most the line being written. The one
/// file of a run that is appended rather than replaced atomically: an append never touches the
/// lines already written, and a line cut off by a crash is the only damage a reader can meet
/// (see [`parse`]).
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

    /// Continues a resumed run: records past `step` (logged after the checkpoint was saved) and
    /// a last line cut off by a crash are dropped, atomically, so the file again describes one
    /// history. A damaged line before the last is an error: the file is left as it is.
    pub fn resume(dir: &Path, step: u64) -> std::io::Result<Self> {
        let path: PathBuf = dir.join(FILE_NAME);
        if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            let kept: String = parse(&text)
                .map_err(|e| invalid(&path, e))?
                .into_iter()
                .filter(|(_, r)| r.step() <= step)
                .map(|(l, _)| format!("{l}\n"))
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

/// The records of a metrics file's text, each with its line. A last line without its newline
/// that does not parse was cut off (by a crash, or it is being written as this reads) and is
/// left out, and so are blank lines; any other line that does not parse is an error naming it.
fn parse(text: &str) -> Result<Vec<(&str, MetricsLine)>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let cut_off = !text.ends_with('\n');
    let mut records = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(l) {
            Ok(r) => records.push((*l, r)),
            Err(_) if cut_off && i + 1 == lines.len() => {}
            Err(e) => return Err(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(records)
}

fn invalid(path: &Path, message: String) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{} is damaged at {message}", path.display()),
    )
}

/// Whether a run's metrics file (if it has one) can be resumed: an error if a line before the
/// last is damaged.
pub fn check(dir: &Path) -> std::io::Result<()> {
    match read_lines(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.map(|_| ()),
    }
}

/// Every line of a metrics file (a last line cut off by a crash left out).
pub fn read_lines(dir: &Path) -> std::io::Result<Vec<MetricsLine>> {
    let path = dir.join(FILE_NAME);
    let text = std::fs::read_to_string(&path)?;
    Ok(parse(&text)
        .map_err(|e| invalid(&path, e))?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rollback(step: u64) -> String {
        serde_json::to_string(&MetricsLine::Rollback(RollbackRecord {
            step,
            rollback: "loss".into(),
            lr: 1e-3,
        }))
        .unwrap()
    }

    /// A resume continues the moving averages from the log, so the log must give back every
    /// f64 it wrote to the bit (serde_json's `float_roundtrip`; without it this value, seen in a
    /// resumed run, read back one ulp low).
    #[test]
    fn logged_floats_read_back_to_the_bit() {
        for v in [
            -107.29548896636963,
            0.1,
            1.0 / 3.0,
            f64::MIN_POSITIVE,
            -5e-324,
        ] {
            let line = serde_json::to_string(&MetricsLine::Rollback(RollbackRecord {
                step: 1,
                rollback: "loss".into(),
                lr: v,
            }))
            .unwrap();
            match parse(&line).unwrap().remove(0).1 {
                MetricsLine::Rollback(r) => assert_eq!(r.lr.to_bits(), v.to_bits(), "{v}"),
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn a_line_cut_off_at_the_end_is_left_out_and_damage_before_it_is_an_error() {
        let whole = format!("{}\n{}\n", rollback(1), rollback(2));
        assert_eq!(parse(&whole).unwrap().len(), 2);
        let cut = format!("{whole}{}", &rollback(3)[..10]);
        let steps: Vec<u64> = parse(&cut).unwrap().iter().map(|r| r.1.step()).collect();
        assert_eq!(steps, [1, 2]);
        // The same text with its newline was written whole: it is damage, not a cut.
        assert!(parse(&format!("{cut}\n"))
            .unwrap_err()
            .starts_with("line 3"));
        let middle = format!("{}\n{{\"step\n{}\n", rollback(1), rollback(2));
        assert!(parse(&middle).unwrap_err().starts_with("line 2"));
        // Blank lines and Windows line ends are not damage.
        let loose = format!("{}\r\n\n{}\r\n\n", rollback(1), rollback(2));
        assert_eq!(parse(&loose).unwrap().len(), 2);
    }

    #[test]
    fn resume_drops_a_cut_off_line_and_later_steps_and_keeps_a_damaged_file() {
        let dir = std::env::temp_dir().join(format!("metrics-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let text = format!("{}\n{}\n{}", rollback(1), rollback(5), &rollback(6)[..7]);
        std::fs::write(&path, &text).unwrap();
        MetricsWriter::resume(&dir, 4).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", rollback(1))
        );
        let damaged = format!("{{\n{}\n", rollback(1));
        std::fs::write(&path, &damaged).unwrap();
        let e = MetricsWriter::resume(&dir, 4).err().unwrap();
        assert!(e.to_string().contains("damaged at line 1"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), damaged);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
