//! Sweeps over temperatures and depths (Fig. S1, S2 of the paper): the grid of points, one run
//! directory per point, their state (new, partly trained, done), a Slurm job-array script for
//! sweeps that outgrow one machine, and the figures of the results.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::RunConfig;
use crate::io::checkpoint::{Checkpoint, CheckpointError};
use crate::io::shell_word;
use crate::plot::lattice::{LatticeFigure, Palette, Panel};
use crate::plot::{Line, LineChart, REL_ERROR_LABEL, REL_ERROR_TITLE};

#[derive(Debug, Error, PartialEq)]
pub enum SweepError {
    #[error("--temperatures {0:?}: {1}")]
    Temperatures(String, &'static str),
    #[error("--depths {0:?}: {1}")]
    Depths(String, &'static str),
    #[error(
        "sweep point T = {temperature}, depth {depth}: {message}; move {dir} away to train the \
         point afresh"
    )]
    Unreadable {
        temperature: f64,
        depth: usize,
        dir: String,
        message: String,
    },
    #[error(
        "{dir} holds a run with another {flags} than this sweep's point (T = {temperature}, \
         depth {depth}): choose another --out"
    )]
    Foreign {
        dir: String,
        flags: String,
        temperature: f64,
        depth: usize,
    },
}

/// The most points a sweep may have (and temperatures or depths in one range).
pub const MAX_POINTS: usize = 10_000;

/// "2.0:2.7:0.1" (from, to inclusive, step) or "2.0,2.27,2.5": positive temperatures.
pub fn parse_temperatures(text: &str) -> Result<Vec<f64>, SweepError> {
    let bad = |why| SweepError::Temperatures(text.to_string(), why);
    let values: Vec<f64> = if text.contains(':') {
        let parts: Vec<f64> = text
            .split(':')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("expected FROM:TO:STEP, e.g. 2.0:2.7:0.1"))?;
        let [from, to, step] = parts[..] else {
            return Err(bad("expected FROM:TO:STEP, e.g. 2.0:2.7:0.1"));
        };
        if !(step > 0.0 && step.is_finite() && to >= from) {
            return Err(bad("needs FROM <= TO and a positive STEP"));
        }
        let count = ((to - from) / step + 1e-9).floor() + 1.0;
        if count > MAX_POINTS as f64 {
            return Err(bad("too many temperatures"));
        }
        (0..count as usize)
            .map(|i| from + i as f64 * step)
            .collect()
    } else {
        text.split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("expected FROM:TO:STEP or a comma-separated list"))?
    };
    if values.is_empty() || values.iter().any(|t| !(t.is_finite() && *t > 0.0)) {
        return Err(bad("temperatures must be positive numbers"));
    }
    // Checked here, not as each point's train --temperature, so the message names this flag.
    let beta_range = crate::physics::ising::MIN_BETA..=crate::physics::ising::MAX_BETA;
    if values.iter().any(|t| !beta_range.contains(&(1.0 / t))) {
        return Err(bad(
            "temperatures must be from 1e-6 to 1e6 (beta = 1/T in that range)",
        ));
    }
    // Each point's directory names its temperature to 4 decimals (`points`).
    let mut names: Vec<String> = values.iter().map(|t| format!("{t:.4}")).collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad(
            "two temperatures are the same to 4 decimals, which would share a run directory",
        ));
    }
    Ok(values)
}

/// "1..5" (inclusive) or "1,2,4": depths from 1.
pub fn parse_depths(text: &str) -> Result<Vec<usize>, SweepError> {
    let bad = |why| SweepError::Depths(text.to_string(), why);
    let values: Vec<usize> = if let Some((a, b)) = text.split_once("..") {
        let (a, b) = (a.trim().parse::<usize>(), b.trim().parse::<usize>());
        let (Ok(a), Ok(b)) = (a, b) else {
            return Err(bad("expected FROM..TO, e.g. 1..5"));
        };
        if a > b || b - a >= MAX_POINTS {
            return Err(bad("needs FROM <= TO"));
        }
        (a..=b).collect()
    } else {
        text.split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("expected FROM..TO or a comma-separated list"))?
    };
    if values.is_empty() || values.contains(&0) {
        return Err(bad("depths must be whole numbers from 1"));
    }
    let mut sorted = values.clone();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad("a depth is listed twice"));
    }
    Ok(values)
}

/// One point of the grid and its run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub temperature: f64,
    pub depth: usize,
    pub dir: PathBuf,
}

/// Every (temperature, depth), temperatures outermost, each in `out/T{T}-depth{d}`.
pub fn points(temperatures: &[f64], depths: &[usize], out: &Path) -> Vec<Point> {
    temperatures
        .iter()
        .flat_map(|&t| {
            depths.iter().map(move |&d| Point {
                temperature: t,
                depth: d,
                dir: out.join(format!("T{t:.4}-depth{d}")),
            })
        })
        .collect()
}

/// Where a point's training stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    New,
    /// Trained to this step of the sweep's --steps.
    Partial(u64, u64),
    Done,
}

impl Point {
    /// The point's checkpoint: none where its directory holds none yet, an error where one
    /// cannot be read.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        match Checkpoint::load(&self.dir) {
            Ok(ck) => Ok(Some(ck)),
            Err(CheckpointError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Refuses a run in the point's directory that is not this point's (`want`: the point's
    /// configuration), or that cannot be read; a point with no run yet is new.
    pub fn check_existing(&self, want: &RunConfig) -> Result<(), SweepError> {
        let have = match self.checkpoint() {
            Ok(Some(ck)) => ck.config,
            Ok(None) => return Ok(()),
            Err(e) => {
                return Err(SweepError::Unreadable {
                    temperature: self.temperature,
                    depth: self.depth,
                    dir: self.dir.display().to_string(),
                    message: e.to_string(),
                })
            }
        };
        // Temperatures name directories to 4 decimals: 2.3 and 2.1 + 2 x 0.1 are one point.
        let close_beta = (have.beta - want.beta).abs() <= 1e-9 * want.beta;
        let differs: Vec<&str> = want
            .model_differences(&have)
            .into_iter()
            .filter(|f| !(close_beta && *f == "--beta/--temperature"))
            .collect();
        if differs.is_empty() {
            Ok(())
        } else {
            Err(SweepError::Foreign {
                dir: self.dir.display().to_string(),
                flags: differs.join(", "),
                temperature: self.temperature,
                depth: self.depth,
            })
        }
    }

    /// How far the point is trained towards the sweep's `steps` (a run trained to fewer, even
    /// if that was its own total then, is partly trained: a sweep run again with more steps
    /// extends its points; one trained further is done, and collected as it is).
    pub fn state(&self, steps: u64) -> Result<State, CheckpointError> {
        Ok(match self.checkpoint()? {
            Some(ck) if ck.step >= steps => State::Done,
            Some(ck) => State::Partial(ck.step, steps),
            None => State::New,
        })
    }

    /// The `train` arguments of this point towards `steps`, after the sweep's own
    /// `train_args`: a fresh run, or for a partly trained point `--resume` to `steps` with the
    /// sweep's training flags (those of the model must equal the recorded ones, as
    /// `check_existing` ensured; the others replace them, as on any resume).
    pub fn train_args(
        &self,
        train_args: &[String],
        steps: u64,
    ) -> Result<Vec<String>, CheckpointError> {
        Ok(match self.state(steps)? {
            State::Partial(..) => {
                let mut a = vec![
                    "train".into(),
                    "--resume".into(),
                    self.dir.display().to_string(),
                ];
                a.extend(train_args.iter().cloned());
                // `steps` is the flags' own --steps where they have one.
                if !train_args
                    .iter()
                    .any(|f| f == "--steps" || f.starts_with("--steps="))
                {
                    a.extend(["--steps".into(), steps.to_string()]);
                }
                a
            }
            _ => self.fresh_args(train_args),
        })
    }

    /// The `train` arguments of a fresh run of this point.
    pub fn fresh_args(&self, train_args: &[String]) -> Vec<String> {
        let mut a = vec!["train".to_string()];
        a.extend(train_args.iter().cloned());
        a.extend([
            "--temperature".into(),
            self.temperature.to_string(),
            "--depth".into(),
            self.depth.to_string(),
            "--out".into(),
            self.dir.display().to_string(),
        ]);
        a
    }
}

/// A Slurm job-array script with one task per point, each `binary train ...` for its point
/// (fresh, or resumed where partly trained). Points already done are left out.
pub fn slurm_script(
    points: &[Point],
    train_args: &[String],
    steps: u64,
    binary: &str,
) -> Result<String, CheckpointError> {
    let mut todo = Vec::new();
    for p in points {
        if p.state(steps)? != State::Done {
            todo.push(p);
        }
    }
    let mut out = format!(
        "#!/bin/bash\n# neuralrg-gpu sweep: {} points to train, one per array task.\n\
         # Submit with `sbatch FILE`; afterwards run the same `neuralrg-gpu sweep` command \
         (without --emit) to collect and plot.\n#SBATCH --job-name=neuralrg-sweep\n\
         #SBATCH --array=0-{}\n#SBATCH --gpus=1\nset -euo pipefail\ncase \"$SLURM_ARRAY_TASK_ID\" in\n",
        todo.len(),
        todo.len().saturating_sub(1)
    );
    for (i, p) in todo.iter().enumerate() {
        let args: Vec<String> = p
            .train_args(train_args, steps)?
            .iter()
            .map(|a| shell_word(a))
            .collect();
        out.push_str(&format!(
            "  {i}) exec {} {} --quiet ;;\n",
            shell_word(binary),
            args.join(" ")
        ));
    }
    out.push_str("  *) echo \"no point for task $SLURM_ARRAY_TASK_ID\" >&2; exit 1 ;;\nesac\n");
    Ok(out)
}

/// A point's evaluated result.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub point: Point,
    pub rel_error: f64,
    pub rel_error_err: f64,
}

/// Fig. S1: the relative error of the variational free energy against the temperature, one
/// line per depth, with error bars.
pub fn error_figure(results: &[Evaluated]) -> LineChart {
    let mut depths: Vec<usize> = results.iter().map(|r| r.point.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    LineChart {
        title: REL_ERROR_TITLE.into(),
        x_label: "temperature T".into(),
        y_label: REL_ERROR_LABEL.into(),
        log_y: true,
        lines: depths
            .into_iter()
            .map(|d| {
                let at: Vec<&Evaluated> = results.iter().filter(|r| r.point.depth == d).collect();
                Line {
                    label: format!("depth {d}"),
                    points: at
                        .iter()
                        .map(|r| (r.point.temperature, r.rel_error))
                        .collect(),
                    errors: at.iter().map(|r| r.rel_error_err).collect(),
                }
            })
            .collect(),
    }
}

/// Fig. S2: one generated sample per temperature (as spins), in temperature order.
pub fn sample_figure(samples: &[(f64, Vec<f32>)], lattice: usize) -> LatticeFigure {
    LatticeFigure {
        title: "Generated samples across temperatures (spins)".into(),
        columns: samples.len().min(6),
        palette: Palette::Grey,
        panels: samples
            .iter()
            .map(|(t, x)| Panel::sample(format!("T = {t:.3}"), x, lattice, false))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_bad_ones_are_refused() {
        let t = parse_temperatures("2.0:2.7:0.1").unwrap();
        assert_eq!(t.len(), 8);
        assert!((t[7] - 2.7).abs() < 1e-12);
        assert_eq!(parse_temperatures("2.0, 2.5").unwrap(), vec![2.0, 2.5]);
        assert_eq!(parse_depths("1..5").unwrap(), vec![1, 2, 3, 4, 5]);
        assert_eq!(parse_depths("1,3").unwrap(), vec![1, 3]);
        for bad in [
            "2.7:2.0:0.1",
            "2:3:0",
            "2:3",
            "a,b",
            "-1",
            "0:1:1e-9",
            "",
            "2,2",
            "2.00001,2.00002",
        ] {
            assert!(parse_temperatures(bad).is_err(), "{bad}");
        }
        for bad in ["5..1", "0..2", "x", "1,-2", "", "1,2,1"] {
            assert!(parse_depths(bad).is_err(), "{bad}");
        }
    }

    /// A run in a point's directory is that point's if it differs at most in the last bits of
    /// beta (2.3 and 2.1 + 2 x 0.1 name one directory); another network is refused by name.
    #[test]
    fn existing_runs_are_checked_against_the_point() {
        use crate::config::{PartialFlow, PartialRunConfig};
        let config = |t: f64, hidden: usize| {
            PartialRunConfig {
                lattice: Some(4),
                temperature: Some(t),
                flow: PartialFlow {
                    hidden: Some(hidden),
                    ..Default::default()
                },
                ..Default::default()
            }
            .resolve()
            .unwrap()
        };
        let out = std::env::temp_dir().join(format!("neuralrg-sweep-{}", std::process::id()));
        let ranged = parse_temperatures("2.1:2.3:0.1").unwrap()[2];
        assert_ne!(ranged, 2.3);
        let point = &points(&[ranged], &[3], &out)[0];
        assert_eq!(
            point.check_existing(&config(ranged, 8)),
            Ok(()),
            "no run yet"
        );
        std::fs::create_dir_all(&point.dir).unwrap();
        Checkpoint::fresh(config(2.3, 8), 1, 0.0)
            .unwrap()
            .save(&point.dir)
            .unwrap();
        assert_eq!(point.check_existing(&config(ranged, 8)), Ok(()));
        let err = point.check_existing(&config(ranged, 16)).unwrap_err();
        assert!(err.to_string().contains("--hidden"), "{err}");
        assert!(point.check_existing(&config(2.5, 8)).is_err());
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn points_and_their_commands() {
        let out = Path::new("/nonexistent/sweep");
        let p = points(&[2.0, 2.5], &[1, 2], out);
        assert_eq!(p.len(), 4);
        assert_eq!(p[1].dir, out.join("T2.0000-depth2"));
        assert_eq!(p[0].state(10).unwrap(), State::New);
        let args = p[0].train_args(&["-L".into(), "8".into()], 10).unwrap();
        assert_eq!(
            args.join(" "),
            "train -L 8 --temperature 2 --depth 1 --out /nonexistent/sweep/T2.0000-depth1"
        );
        let script = slurm_script(&p, &["-L".into(), "8".into()], 10, "neuralrg-gpu").unwrap();
        assert!(script.contains("#SBATCH --array=0-3"));
        assert_eq!(script.matches("--temperature").count(), 4);
    }
}
