//! The layer plan. Every layer is a set of disjoint 2x2 blocks (4 site indices each) sharing one
//! Real NVP bijector. Level l acts on the sites whose coordinates are multiples of 2^l with an
//! unshifted layer (block corners at multiples of 2^(l+1)) and a diagonally shifted one (corners
//! offset by 2^l, periodic). Layers are listed in inference order (x -> z, the RG direction);
//! generation runs them in reverse.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::params::ParamLayout;

/// The widest MLP hidden layer and the deepest MLP whose activations the kernels hold in private
/// memory (shaders/lib/mlp_layout.wgsl).
pub const MAX_HIDDEN: usize = 128;
pub const MAX_MLP_LAYERS: usize = 4;

/// The most parameters a flow may have: 2^27 (512 MiB per f32 copy, of which training keeps
/// about a dozen between host and device). Far above any useful flow (the default at L = 16
/// has 43,680), it keeps a mistyped size from allocating without bound.
pub const MAX_PARAMS: usize = 1 << 27;

/// The most blocks (of four sites) all layers of a flow may have together: 2^26, a 1 GiB table
/// of site indices on the host and the device. A MERA flow at L = 4096 has about 2^23.4; a tebd
/// flow has L^2 / 2 per layer pair, so this allows depth 8 at L = 4096 and 128 at L = 1024.
pub const MAX_BLOCKS: usize = 1 << 26;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Per level a disentangler (shifted) and a decimator (unshifted) layer: Fig. 1.
    Mera,
    /// Decimators only: Fig. 2(b).
    Tree,
    /// Shifted/unshifted layers at the finest scale only, `depth` pairs: Fig. 2(a).
    Tebd,
}

/// What defines a flow's architecture (and so its parameter layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowConfig {
    pub lattice: usize,
    /// Levels for mera/tree (default log2 L), layer pairs for tebd (default log2 L).
    pub depth: usize,
    pub arch: Arch,
    /// Real NVP coupling steps per bijector.
    pub couplings: usize,
    /// Width of the hidden layers of the s and t MLPs.
    pub hidden: usize,
    /// Number of hidden layers of the s and t MLPs.
    pub mlp_layers: usize,
}

#[derive(Debug, Error, PartialEq)]
pub enum PlanError {
    #[error(
        "--lattice must be a power of two from 4 to {max} for the flow (got {0})",
        max = crate::physics::lattice::MAX_LATTICE
    )]
    Lattice(usize),
    #[error("--depth must be between 1 and {max} (log2 L) for --arch {arch} (got {depth})")]
    Depth {
        depth: usize,
        max: usize,
        arch: String,
    },
    #[error("--depth must be between 1 and {max} (L) for --arch tebd (got {depth})")]
    TebdDepth { depth: usize, max: usize },
    #[error("--couplings must be at least 1 (got 0)")]
    Couplings,
    #[error(
        "the flow would have {params} parameters, more than the {MAX_PARAMS} this program \
         allows: reduce --couplings, --hidden, --mlp-layers or --depth"
    )]
    TooManyParams { params: String },
    #[error(
        "the flow would have {0} blocks, more than the {MAX_BLOCKS} this program allows (their \
         table alone would take {size} MiB of memory): reduce --depth or --lattice",
        size = (*.0 as u64 * 16) >> 20
    )]
    TooManyBlocks(usize),
    #[error("--hidden must be between 1 and {MAX_HIDDEN} (got {0})")]
    Hidden(usize),
    #[error("--mlp-layers must be between 1 and {MAX_MLP_LAYERS} (got {0})")]
    MlpLayers(usize),
}

impl FlowConfig {
    /// A validated config; `depth: None` means log2 L.
    pub fn new(
        lattice: usize,
        depth: Option<usize>,
        arch: Arch,
        couplings: usize,
        hidden: usize,
        mlp_layers: usize,
    ) -> Result<Self, PlanError> {
        if lattice < 4
            || !lattice.is_power_of_two()
            || lattice > crate::physics::lattice::MAX_LATTICE
        {
            return Err(PlanError::Lattice(lattice));
        }
        let levels = lattice.trailing_zeros() as usize;
        let depth = depth.unwrap_or(levels);
        match arch {
            Arch::Tebd if depth == 0 || depth > lattice => {
                return Err(PlanError::TebdDepth {
                    depth,
                    max: lattice,
                })
            }
            Arch::Mera | Arch::Tree if depth == 0 || depth > levels => {
                return Err(PlanError::Depth {
                    depth,
                    max: levels,
                    arch: format!("{arch:?}").to_lowercase(),
                })
            }
            _ => {}
        }
        if couplings == 0 {
            return Err(PlanError::Couplings);
        }
        if hidden == 0 || hidden > MAX_HIDDEN {
            return Err(PlanError::Hidden(hidden));
        }
        if mlp_layers == 0 || mlp_layers > MAX_MLP_LAYERS {
            return Err(PlanError::MlpLayers(mlp_layers));
        }
        let config = Self {
            lattice,
            depth,
            arch,
            couplings,
            hidden,
            mlp_layers,
        };
        match config.checked_n_params() {
            Some(p) if p <= MAX_PARAMS => {}
            params => {
                return Err(PlanError::TooManyParams {
                    params: params.map_or("more than 2^64".into(), |p| p.to_string()),
                })
            }
        }
        // A deep tebd flow has a full lattice of blocks in every layer: checked before
        // FlowPlan::new builds their table.
        match config.n_blocks() {
            b if b > MAX_BLOCKS => Err(PlanError::TooManyBlocks(b)),
            _ => Ok(config),
        }
    }

    /// Blocks of all layers (each layer at level d has (L / 2^(d+1))^2), as FlowPlan::new lays
    /// them out.
    fn n_blocks(&self) -> usize {
        let per_layer = |level: usize| (self.lattice >> (level + 1)).pow(2);
        (0..self.depth)
            .map(|d| match self.arch {
                Arch::Mera => 2 * per_layer(d),
                Arch::Tree => per_layer(d),
                Arch::Tebd => 2 * per_layer(0),
            })
            .sum()
    }

    /// Parameters of the flow: one bijector per layer (saturating for a configuration that
    /// did not come through [`FlowConfig::new`]).
    pub fn n_params(&self) -> usize {
        self.checked_n_params().unwrap_or(usize::MAX)
    }

    fn checked_n_params(&self) -> Option<usize> {
        let layers = match self.arch {
            Arch::Tree => self.depth,
            Arch::Mera | Arch::Tebd => 2 * self.depth,
        };
        let coupling = ParamLayout::new(1, self.hidden, self.mlp_layers).layer_size();
        self.couplings
            .checked_mul(coupling)
            .and_then(|p| p.checked_mul(layers))
    }

    pub fn n_sites(&self) -> usize {
        self.lattice * self.lattice
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerPlan {
    pub level: usize,
    pub shifted: bool,
    /// Site indices of each block, in the order the bijector sees them.
    pub blocks: Vec<[u32; 4]>,
    /// Sites that continue to the next layer after this one (the rest are final latents).
    pub kept_after: usize,
    /// Offset of this layer's bijector in the flat parameter buffer.
    pub param_offset: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowPlan {
    pub config: FlowConfig,
    pub layout: ParamLayout,
    /// In inference order.
    pub layers: Vec<LayerPlan>,
}

/// The blocks of one layer at spacing s = 2^level, corners offset by `shift` (0 or s).
fn blocks(l: usize, level: usize, shifted: bool) -> Vec<[u32; 4]> {
    let s = 1usize << level;
    let o = if shifted { s } else { 0 };
    let per_side = l / (2 * s);
    let site = |x: usize, y: usize| ((y % l) * l + (x % l)) as u32;
    (0..per_side * per_side)
        .map(|b| {
            let (cx, cy) = (2 * s * (b % per_side) + o, 2 * s * (b / per_side) + o);
            [
                site(cx, cy),
                site(cx + s, cy),
                site(cx, cy + s),
                site(cx + s, cy + s),
            ]
        })
        .collect()
}

impl FlowPlan {
    pub fn new(config: FlowConfig) -> Self {
        let l = config.lattice;
        let alive = |level: usize| (l >> level) * (l >> level);
        // (level, shifted, sites alive after the layer)
        let mut spec: Vec<(usize, bool, usize)> = Vec::new();
        for d in 0..config.depth {
            match config.arch {
                Arch::Mera => {
                    spec.push((d, true, alive(d)));
                    spec.push((d, false, alive(d + 1)));
                }
                Arch::Tree => spec.push((d, false, alive(d + 1))),
                Arch::Tebd => {
                    spec.push((0, false, alive(0)));
                    spec.push((0, true, alive(0)));
                }
            }
        }
        let layout = ParamLayout::new(config.couplings, config.hidden, config.mlp_layers);
        let n_layers = spec.len();
        let layers = spec
            .into_iter()
            .enumerate()
            .map(|(i, (level, shifted, alive))| LayerPlan {
                level,
                shifted,
                blocks: blocks(l, level, shifted),
                kept_after: if i + 1 == n_layers { 0 } else { alive },
                param_offset: i * layout.layer_size(),
            })
            .collect();
        Self {
            config,
            layout,
            layers,
        }
    }

    pub fn n_params(&self) -> usize {
        debug_assert_eq!(
            self.config.n_params(),
            self.layers.len() * self.layout.layer_size()
        );
        self.config.n_params()
    }

    /// The largest number of blocks in any layer (the stride of the per-block log-det buffer).
    pub fn max_blocks(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.blocks.len())
            .max()
            .unwrap_or(0)
    }

    /// (sample, block) rows of all layers for a batch: the rows the backward pass works on.
    pub fn n_rows(&self, batch: usize) -> usize {
        batch * self.layers.iter().map(|l| l.blocks.len()).sum::<usize>()
    }

    /// The first block of layer `li` in the concatenated block table.
    pub fn block_offset(&self, li: usize) -> usize {
        self.layers[..li].iter().map(|l| l.blocks.len()).sum()
    }

    /// The first row of layer `li` in buffers laid out by layer, then sample, then block.
    pub fn row_offset(&self, li: usize, batch: usize) -> usize {
        batch * self.block_offset(li)
    }

    /// A readable table of the architecture.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "flow: arch {}, L = {} (N = {}), depth {}, {} layers, {} couplings per bijector, \
             MLPs 2 -> {} x{} -> 2, {} parameters\n",
            format!("{:?}", c.arch).to_lowercase(),
            c.lattice,
            c.n_sites(),
            c.depth,
            self.layers.len(),
            c.couplings,
            c.hidden,
            c.mlp_layers,
            self.n_params()
        );
        out.push_str("layer  level  spacing  shift  blocks  sites kept  parameters\n");
        for (i, layer) in self.layers.iter().enumerate() {
            out.push_str(&format!(
                "{:>5}  {:>5}  {:>7}  {:>5}  {:>6}  {:>10}  {:>10}\n",
                i,
                layer.level,
                1usize << layer.level,
                if layer.shifted { "yes" } else { "no" },
                layer.blocks.len(),
                layer.kept_after,
                self.layout.layer_size()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::Shader;

    fn plan(l: usize, arch: Arch, depth: Option<usize>) -> FlowPlan {
        FlowPlan::new(FlowConfig::new(l, depth, arch, 2, 4, 1).unwrap())
    }

    #[test]
    fn the_block_count_is_the_plans_and_bounds_deep_flows() {
        for (l, arch, depth) in [
            (16, Arch::Mera, None),
            (32, Arch::Mera, Some(3)),
            (16, Arch::Tree, None),
            (8, Arch::Tebd, Some(5)),
        ] {
            let p = plan(l, arch, depth);
            let blocks: usize = p.layers.iter().map(|layer| layer.blocks.len()).sum();
            assert_eq!(p.config.n_blocks(), blocks, "L={l} {arch:?}");
        }
        // The deepest MERA flow fits; a tebd flow of 2^27 blocks (8 GiB of table) is refused
        // before its table is built.
        assert!(FlowConfig::new(4096, None, Arch::Mera, 1, 1, 1).is_ok());
        assert!(FlowConfig::new(1024, Some(128), Arch::Tebd, 1, 1, 1).is_ok());
        assert_eq!(
            FlowConfig::new(1024, Some(1024), Arch::Tebd, 1, 1, 1).unwrap_err(),
            PlanError::TooManyBlocks(1 << 29)
        );
    }

    #[test]
    fn mera_at_16_has_4_levels_8_layers_and_nothing_left_over() {
        let p = plan(16, Arch::Mera, None);
        assert_eq!(p.layers.len(), 8);
        assert_eq!(p.layers.iter().map(|l| l.level).max(), Some(3));
        assert_eq!(p.layers.last().unwrap().kept_after, 0);
        let kept: Vec<usize> = p.layers.iter().map(|l| l.kept_after).collect();
        assert_eq!(kept, [256, 64, 64, 16, 16, 4, 4, 0]);
        let nblocks: Vec<usize> = p.layers.iter().map(|l| l.blocks.len()).collect();
        assert_eq!(nblocks, [64, 64, 16, 16, 4, 4, 1, 1]);
    }

    #[test]
    fn tree_and_tebd_follow_fig_2() {
        let tree = plan(16, Arch::Tree, None);
        assert_eq!(tree.layers.len(), 4);
        assert!(tree.layers.iter().all(|l| !l.shifted));
        let tebd = plan(16, Arch::Tebd, None);
        assert_eq!(tebd.layers.len(), 8);
        assert!(tebd
            .layers
            .iter()
            .all(|l| l.level == 0 && l.blocks.len() == 64));
        assert_eq!(plan(16, Arch::Tebd, Some(6)).layers.len(), 12);
        assert_eq!(plan(16, Arch::Mera, Some(2)).layers.len(), 4);
    }

    #[test]
    fn blocks_of_a_layer_are_disjoint_and_on_the_level_grid() {
        for l in [4, 8, 16] {
            let p = plan(l, Arch::Mera, None);
            for layer in &p.layers {
                let mut seen = std::collections::HashSet::new();
                let s = 1 << layer.level;
                for b in &layer.blocks {
                    for &site in b {
                        assert!(seen.insert(site), "site {site} twice in a layer");
                        let (x, y) = (site as usize % l, site as usize / l);
                        assert!(x % s == 0 && y % s == 0);
                    }
                }
                assert_eq!(
                    seen.len(),
                    (l / s) * (l / s),
                    "a layer covers its whole level grid"
                );
            }
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        assert_eq!(
            FlowConfig::new(12, None, Arch::Mera, 10, 64, 2),
            Err(PlanError::Lattice(12))
        );
        assert_eq!(
            FlowConfig::new(2, None, Arch::Mera, 10, 64, 2),
            Err(PlanError::Lattice(2))
        );
        assert!(FlowConfig::new(16, Some(5), Arch::Mera, 10, 64, 2).is_err());
        assert!(FlowConfig::new(16, Some(0), Arch::Tree, 10, 64, 2).is_err());
        assert_eq!(
            FlowConfig::new(16, None, Arch::Mera, 0, 64, 2),
            Err(PlanError::Couplings)
        );
        assert_eq!(
            FlowConfig::new(16, None, Arch::Mera, 10, 0, 2),
            Err(PlanError::Hidden(0))
        );
        assert_eq!(
            FlowConfig::new(16, None, Arch::Mera, 10, 64, 0),
            Err(PlanError::MlpLayers(0))
        );
        assert!(FlowConfig::new(16, None, Arch::Mera, 10, MAX_HIDDEN + 1, 2).is_err());
    }

    #[test]
    fn the_deepest_mlp_is_the_deepest_the_shaders_carry() {
        for stage in [Shader::FlowCoupling, Shader::FlowBackward] {
            assert_eq!(
                stage.constant("MAX_MLP_LAYERS"),
                Some(MAX_MLP_LAYERS as u32)
            );
        }
    }
}
