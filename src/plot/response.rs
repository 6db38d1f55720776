//! Fig. 4(a): the latent response E_{x~pi}[dz_i / dx] of the top-level collective variables:
//! the gradient of a latent z_i = [g^{-1}(x)]_i with respect to every physical variable,
//! averaged over configurations of pi (for a symmetrised model flipped as its sign posterior
//! chose, `sample::posterior`, as in the paper). It comes from the flow's backward stage run
//! through the inference pass on the device, seeded with the unit vector of z_i and without
//! the log-det term or parameter gradients.

use std::path::{Path, PathBuf};

use super::lattice::{LatticeFigure, Palette, Panel};
use super::mutual_information::top_sites;
use super::{Figure, PlotError};
use crate::flow::{padded_chunks, AdjointPass, Direction, FlowPass};
use crate::gpu::{fitting_batch, GpuContext, GpuError};
use crate::sample::{Model, EVAL_BATCH};

/// Collective variables drawn.
const VARIABLES: usize = 4;

/// For each site in `sites`, the mean over the configurations `xs` ([count, N]) of
/// d z_site / dx (N values), up to `batch` configurations per submission (fewer where the adapter
/// cannot hold that many; the last one padded with zeros, which are left out of the means).
pub fn latent_response(
    ctx: &GpuContext,
    model: &Model,
    xs: &[f32],
    sites: &[usize],
    batch: usize,
) -> Result<Vec<Vec<f64>>, GpuError> {
    let flow = &model.flow;
    let plan = &flow.plan;
    let n = plan.config.n_sites();
    let count = xs.len() / n;
    let (batch, (state, pass, adjoint, _gamma, backward)) =
        fitting_batch(batch.clamp(1, count.max(1)), |b| {
            let state = ctx.storage::<f32>("response x", b * n)?;
            let pass = FlowPass::new(ctx, flow, &state, b, Direction::Infer, true)?;
            let adjoint = ctx.storage::<f32>("response adjoint", b * n)?;
            // z_i alone is differentiated: no log-det term.
            let gamma = ctx.storage::<f32>("response log-det coefficients", b)?;
            let backward = AdjointPass::new(ctx, flow, &pass, &gamma, &adjoint)?;
            Ok((state, pass, adjoint, gamma, backward))
        })?;
    let mut means = vec![vec![0.0f64; n]; sites.len()];
    for (padded, rows) in padded_chunks(xs, n, batch) {
        ctx.write(&state, &padded);
        ctx.submit("response inference", &pass.dispatches().collect::<Vec<_>>())?;
        for (&s, mean) in sites.iter().zip(&mut means) {
            let mut seed = vec![0.0f32; batch * n];
            for b in 0..rows {
                seed[b * n + s] = 1.0;
            }
            ctx.write(&adjoint, &seed);
            ctx.submit(
                "response backward",
                &backward.dispatches().collect::<Vec<_>>(),
            )?;
            let d = ctx.read(&adjoint)?;
            for row in d[..rows * n].chunks_exact(n) {
                for (m, v) in mean.iter_mut().zip(row) {
                    *m += *v as f64 / count as f64;
                }
            }
        }
    }
    Ok(means)
}

/// `analyze --response`: the response of the 4 coarsest latents, averaged over the
/// configurations `xs` of pi (as the posterior oriented them), one lattice per variable,
/// written under `out` as `response`.
pub fn write_response(
    ctx: &GpuContext,
    model: &Model,
    xs: &[f32],
    out: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let config = &model.flow.plan.config;
    let (l, samples) = (config.lattice, xs.len() / config.n_sites());
    let sites = top_sites(l, config.depth, VARIABLES);
    let response = latent_response(ctx, model, xs, &sites, EVAL_BATCH)?;
    let figure = LatticeFigure {
        title: format!("Latent response E[dz_i/dx], {samples} samples of pi"),
        columns: sites.len(),
        palette: Palette::Diverging,
        panels: sites
            .iter()
            .zip(response)
            .map(|(s, values)| Panel {
                title: format!("z at ({}, {})", s % l, s / l),
                side: l,
                values,
            })
            .collect(),
    };
    figure.save_into(out, "response")
}
