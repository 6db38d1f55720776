//! Fig. 4(b, c): the mutual information between latent variables and between the physical
//! variables at the same sites, for independent configurations x drawn from pi itself
//! (`sample::exact`) and their latents (the flow's inference pass on the device, under a
//! symmetrised model's sign posterior: `sample::posterior`). A flow that factorised pi
//! perfectly would leave no information shared between latents.

use std::path::{Path, PathBuf};

use super::lattice::{LatticeFigure, Palette, Panel};
use super::{Figure, PlotError};
use crate::analysis::mutual_information::matrix;
use crate::sample::Model;

/// Variables in each matrix.
const VARIABLES: usize = 16;
/// Neighbours of the KSG estimator.
const K: usize = 3;

/// Up to `count` sites, coarsest first: the sites that continue through most levels of the
/// flow (multiples of 2^d for the largest d first), row-major within a level.
pub fn top_sites(lattice: usize, depth: usize, count: usize) -> Vec<usize> {
    let mut sites = Vec::new();
    // A tebd flow's depth counts layer pairs, not levels: no level is coarser than L / L.
    let levels = depth.min(lattice.ilog2() as usize);
    for d in (0..=levels).rev() {
        let step = 1usize << d;
        for y in (0..lattice).step_by(step) {
            for x in (0..lattice).step_by(step) {
                let s = y * lattice + x;
                if sites.len() < count && !sites.contains(&s) {
                    sites.push(s);
                }
            }
        }
    }
    sites
}

/// `analyze --mi`: for the configurations `xs` of pi and their latents `zs` (both [count, N]),
/// the mutual information among the 16 coarsest latents and among the physical variables at the
/// same sites, written under `out` as `mi` (.png, .svg, .csv). The physical panel is of `xs` as
/// pi gives them, not as a posterior oriented them: it describes the physical distribution,
/// which holds its sign symmetry.
pub fn write_mutual_information(
    model: &Model,
    xs: &[f32],
    zs: &[f32],
    out: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let config = &model.flow.plan.config;
    let (n, samples) = (config.n_sites(), xs.len() / config.n_sites());
    let sites = top_sites(config.lattice, config.depth, VARIABLES);
    let column = |values: &[f32], s: usize| -> Vec<f64> {
        values.chunks_exact(n).map(|row| row[s] as f64).collect()
    };
    let latent: Vec<Vec<f64>> = sites.iter().map(|&s| column(zs, s)).collect();
    let physical: Vec<Vec<f64>> = sites.iter().map(|&s| column(xs, s)).collect();
    let panel = |title: &str, columns: &[Vec<f64>]| Panel {
        title: title.to_string(),
        side: sites.len(),
        values: matrix(columns, K),
    };
    let figure = LatticeFigure {
        title: format!(
            "Mutual information (nats), {} variables, {samples} samples of pi",
            sites.len()
        ),
        columns: 2,
        palette: Palette::Sequential,
        panels: vec![panel("latent z", &latent), panel("physical x", &physical)],
    };
    figure.save_into(out, "mi")
}

#[cfg(test)]
mod tests {
    #[test]
    fn top_sites_go_from_coarse_to_fine() {
        // L = 8, depth 3: the origin, then the corners at step 4, then at step 2.
        let s = super::top_sites(8, 3, 6);
        assert_eq!(s, vec![0, 4, 32, 36, 2, 6]);
        assert_eq!(super::top_sites(4, 2, 100).len(), 16);
        // A tebd depth beyond log2 L stays on the lattice.
        assert_eq!(super::top_sites(4, 9, 3), vec![0, 2, 8]);
    }
}
