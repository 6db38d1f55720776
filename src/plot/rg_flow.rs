//! The renormalisation group flow of a trained model as pictures: one configuration and the
//! variables that continue to each coarser level (the renormalised configurations, from the f64
//! twin's inference pass), and a grid of directly generated samples as spins and as tanh x.

use std::path::{Path, PathBuf};

use super::lattice::{LatticeFigure, Palette, Panel};
use super::{Figure, PlotError};
use crate::flow::{Arch, FlowPlan};
use crate::gpu::GpuContext;
use crate::io::checkpoint::Checkpoint;
use crate::reference::flow::rg_levels;
use crate::sample::{draw, Model};

/// Samples drawn for the grid of generated samples.
const GRID_SAMPLES: usize = 16;

/// `analyze --rg-flow`: draws 16 samples of the checkpoint's flow (seed `seed`) and writes, under
/// `out` (created if missing), the RG flow of the first (`rg_flow`) and the samples as spins
/// (`samples_spins`) and as tanh x (`samples_tanh`), each as .png, .svg and .csv. Returns the
/// files written.
pub fn write_rg_flow(
    ctx: &GpuContext,
    ck: &Checkpoint,
    out: &Path,
    seed: u64,
) -> Result<Vec<PathBuf>, PlotError> {
    if ck.config.flow.arch == Arch::Tebd {
        return Err(PlotError::Input(
            "--rg-flow needs a flow with coarse levels (--arch mera or tree); this one is tebd"
                .into(),
        ));
    }
    let model = Model::from_checkpoint(ctx, ck)?;
    let samples = draw(ctx, &model, GRID_SAMPLES, seed, 0)?;
    let broken = samples.non_finite();
    if broken > 0 {
        return Err(PlotError::Input(format!(
            "the flow gave non-finite samples or densities for {broken} of {GRID_SAMPLES} \
             draws (the checkpoint is damaged or the flow is broken); no RG flow"
        )));
    }
    let l = ck.config.lattice;
    let plan = &model.flow.plan;
    let params: Vec<f64> = ck.params.iter().map(|v| *v as f64).collect();
    let x0: Vec<f64> = samples.x[..l * l].iter().map(|v| *v as f64).collect();
    let figures = [
        ("rg_flow", rg_flow_figure(plan, &params, &ck.masks, &x0)),
        ("samples_spins", sample_grid(&samples.x, l, false)),
        ("samples_tanh", sample_grid(&samples.x, l, true)),
    ];
    let mut written = Vec::new();
    for (name, figure) in figures {
        written.extend(figure.save_into(out, name)?);
    }
    Ok(written)
}

/// The configuration `x` (L x L) and its renormalised configurations at L/2, L/4, ...
pub fn rg_flow_figure(plan: &FlowPlan, params: &[f64], masks: &[u32], x: &[f64]) -> LatticeFigure {
    let levels = rg_levels(plan, params, masks, x);
    let panels: Vec<Panel> = levels
        .into_iter()
        .enumerate()
        .map(|(d, values)| {
            let side = (values.len() as f64).sqrt().round() as usize;
            Panel {
                title: if d == 0 {
                    format!("x, L = {side}")
                } else {
                    format!("level {d}, {side} x {side}")
                },
                side,
                values,
            }
        })
        .collect();
    LatticeFigure {
        title: "Renormalised configurations".into(),
        columns: panels.len(),
        palette: Palette::Diverging,
        panels,
    }
}

/// Samples `xs` ([count, L x L]) as spins sign(x) or, with `tanh`, as tanh x, four per row.
pub fn sample_grid(xs: &[f32], lattice: usize, tanh: bool) -> LatticeFigure {
    let n = lattice * lattice;
    let panels = xs
        .chunks_exact(n)
        .enumerate()
        .map(|(i, x)| Panel::sample(format!("sample {i}"), x, lattice, tanh))
        .collect();
    LatticeFigure {
        title: if tanh {
            "Generated samples, tanh x".into()
        } else {
            "Generated samples, spins sign(x)".into()
        },
        columns: 4,
        palette: Palette::Grey,
        panels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{params, Arch, FlowConfig};

    /// Every level has the right shape: L, L/2, ..., down to the flow's depth; the identity
    /// flow passes the corner sites through unchanged.
    #[test]
    fn levels_have_the_right_shape() {
        for (l, depth) in [(8, None), (16, Some(2))] {
            let plan = FlowPlan::new(FlowConfig::new(l, depth, Arch::Mera, 2, 4, 2).unwrap());
            let p: Vec<f64> = params::init(&plan, 1).iter().map(|v| *v as f64).collect();
            let masks = params::masks(&plan, 1);
            let x: Vec<f64> = (0..l * l).map(|i| (i as f64 * 0.37).sin()).collect();
            let fig = rg_flow_figure(&plan, &p, &masks, &x);
            let sides: Vec<usize> = fig.panels.iter().map(|p| p.side).collect();
            let levels = plan.config.depth;
            assert_eq!(sides, (0..=levels).map(|d| l >> d).collect::<Vec<_>>());
            for panel in &fig.panels {
                assert_eq!(panel.values.len(), panel.side * panel.side);
            }
            // The identity flow (fresh parameters) leaves every value where it was.
            let step = l / fig.panels[1].side;
            assert_eq!(fig.panels[1].values[1], x[step]);
        }
    }

    #[test]
    fn sample_grids_show_spins_or_tanh() {
        let xs = [0.5f32, -2.0, 3.0, -0.1];
        let spins = sample_grid(&xs, 2, false);
        assert_eq!(spins.panels[0].values, vec![1.0, -1.0, 1.0, -1.0]);
        let t = sample_grid(&xs, 2, true);
        assert!((t.panels[0].values[0] - 0.5f64.tanh()).abs() < 1e-7);
    }
}
