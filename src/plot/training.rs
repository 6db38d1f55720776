//! Fig. 3a: the relative error of the variational free energy against the training step, one
//! line per run (and per symmetrised objective), on a log scale.

use std::path::Path;

use super::{Line, LineChart, PlotError};
use crate::train::metrics;

/// The training curves of the run directories `runs` (at least one).
pub fn training_curves(runs: &[&Path]) -> Result<LineChart, PlotError> {
    let short = |d: &Path| {
        d.file_name()
            .map_or_else(|| d.display().to_string(), |n| n.to_string_lossy().into())
    };
    let mut lines = Vec::new();
    for (i, dir) in runs.iter().enumerate() {
        if runs[..i].contains(dir) {
            return Err(PlotError::Input(format!(
                "--run {} is given twice",
                dir.display()
            )));
        }
        let records = metrics::read(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => PlotError::Input(e.to_string()),
            _ => PlotError::Input(format!(
                "{} holds no readable metrics.jsonl ({e}): is it a run directory?",
                dir.display()
            )),
        })?;
        if records.is_empty() {
            return Err(PlotError::Input(format!(
                "{} has no logged steps yet",
                dir.display()
            )));
        }
        // Labelled by the directory's name, or by the path given where two runs share a name.
        let name = if runs.iter().filter(|d| short(d) == short(dir)).count() > 1 {
            dir.display().to_string()
        } else {
            short(dir)
        };
        lines.push(Line {
            label: format!("{name}: q"),
            points: records
                .iter()
                .map(|r| (r.step as f64, r.rel_error))
                .collect(),
            errors: Vec::new(),
        });
        let sym: Vec<(f64, f64)> = records
            .iter()
            .filter_map(|r| r.rel_error_sym.map(|e| (r.step as f64, e)))
            .collect();
        if !sym.is_empty() {
            lines.push(Line {
                label: format!("{name}: q_sym"),
                points: sym,
                errors: Vec::new(),
            });
        }
    }
    Ok(LineChart {
        title: super::REL_ERROR_TITLE.into(),
        x_label: "training step".into(),
        y_label: super::REL_ERROR_LABEL.into(),
        log_y: true,
        lines,
    })
}
