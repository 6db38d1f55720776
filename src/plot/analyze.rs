//! `analyze`: the figures of what a trained flow learned, from one checkpoint, with the
//! configurations of pi drawn once for every analysis that needs them.

use std::path::{Path, PathBuf};

use super::mutual_information::write_mutual_information;
use super::response::write_response;
use super::rg_flow::write_rg_flow;
use super::PlotError;
use crate::gpu::GpuContext;
use crate::io::checkpoint::Checkpoint;
use crate::sample::posterior::infer_latents;
use crate::sample::{exact, Model};

/// Which figures to draw.
#[derive(Debug, Clone, Copy)]
pub struct Analyses {
    pub rg_flow: bool,
    pub mi: bool,
    pub response: bool,
}

/// Draws the chosen figures of `ck` under `out`: the RG flow from generated samples (seed
/// `seed`), the mutual information and the latent response from `samples` configurations of pi
/// and their latents under the model's posterior (seed `seed`; a symmetrised model's flips
/// the configurations it infers, `sample::posterior`). Returns the files written.
pub fn analyze(
    ctx: &GpuContext,
    ck: &Checkpoint,
    out: &Path,
    which: Analyses,
    samples: usize,
    seed: u64,
) -> Result<Vec<PathBuf>, PlotError> {
    let mut written = Vec::new();
    // Everything that can refuse runs before the first figure is written.
    let of_pi = if which.mi || which.response {
        let model = Model::from_checkpoint(ctx, ck)?;
        let xs = exact::draw(&model.target, samples, seed);
        let latents = infer_latents(ctx, &model, &xs, seed)?;
        if latents.non_finite > 0 {
            return Err(PlotError::Input(format!(
                "the flow gave non-finite latents or densities for {} of {samples} \
                 configurations (the checkpoint is damaged or the flow is broken); no mutual \
                 information or response",
                latents.non_finite
            )));
        }
        Some((model, xs, latents))
    } else {
        None
    };
    if which.rg_flow {
        written.extend(write_rg_flow(ctx, ck, out, seed)?);
    }
    if let Some((model, xs, latents)) = of_pi {
        if which.mi {
            written.extend(write_mutual_information(&model, &xs, &latents.z, out)?);
        }
        if which.response {
            written.extend(write_response(ctx, &model, &latents.x, out)?);
        }
    }
    Ok(written)
}
