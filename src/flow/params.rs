//! The flat parameter layout and its seeded initialisation.
//!
//! One bijector = `couplings` Real NVP steps; one step = the s-MLP then the t-MLP. An MLP
//! 2 -> H (-> H)^(m-1) -> 2 is stored as W0 [H x 2], b0 [H], then per further hidden layer
//! W [H x H], b [H], then W_out [2 x H], b_out [2] (weights row-major, [out x in]); the s-MLP
//! appends its per-output tanh scale [2]. The shaders and the CPU twin read this same layout.

use rand::Rng;

use crate::streams;
use rand_distr::StandardNormal;

use super::plan::FlowPlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ParamLayout {
    pub couplings: usize,
    pub hidden: usize,
    pub mlp_layers: usize,
}

impl ParamLayout {
    pub fn new(couplings: usize, hidden: usize, mlp_layers: usize) -> Self {
        Self {
            couplings,
            hidden,
            mlp_layers,
        }
    }

    /// Parameters of one MLP without the tanh scale.
    pub fn mlp_size(&self) -> usize {
        let h = self.hidden;
        3 * h + (self.mlp_layers - 1) * (h * h + h) + 2 * h + 2
    }

    /// Offset of the s-MLP's scale within the s-MLP.
    pub fn scale_offset(&self) -> usize {
        self.mlp_size()
    }

    /// s-MLP (with its scale) followed by the t-MLP.
    pub fn coupling_size(&self) -> usize {
        2 * self.mlp_size() + 2
    }

    /// Offset of the t-MLP within a coupling step.
    pub fn t_offset(&self) -> usize {
        self.mlp_size() + 2
    }

    pub fn layer_size(&self) -> usize {
        self.couplings * self.coupling_size()
    }

    /// Offset of the output layer (W_out) within an MLP.
    pub fn out_offset(&self) -> usize {
        let h = self.hidden;
        3 * h + (self.mlp_layers - 1) * (h * h + h)
    }
}

/// The six ways to pick 2 of the 4 block variables.
const PAIRS: [[u32; 2]; 6] = [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]];

/// Coupling masks, `[layer][step]` packed as upd0 | upd1 << 2 | keep0 << 4 | keep1 << 6: step k
/// updates the pair `upd` conditioned on `keep`. Even steps draw a random pair from the seed,
/// odd steps update its complement, so every two steps touch all four variables.
pub fn masks(plan: &FlowPlan, seed: u64) -> Vec<u32> {
    let mut rng = streams::host(seed, streams::Host::Masks);
    let k = plan.layout.couplings;
    let mut out = Vec::with_capacity(plan.layers.len() * k);
    for _ in &plan.layers {
        let mut pair = PAIRS[0];
        for step in 0..k {
            let upd = if step % 2 == 0 {
                pair = PAIRS[rng.random_range(0..PAIRS.len())];
                pair
            } else {
                complement(pair)
            };
            let keep = complement(upd);
            out.push(upd[0] | upd[1] << 2 | keep[0] << 4 | keep[1] << 6);
        }
    }
    out
}

fn complement(pair: [u32; 2]) -> [u32; 2] {
    let mut c = (0..4).filter(|i| !pair.contains(i));
    [c.next().unwrap(), c.next().unwrap()]
}

/// Whether `m` is a mask [`masks`] can produce: four 2-bit block positions that are a
/// permutation of 0..4, nothing above them.
pub fn is_valid_mask(m: u32) -> bool {
    let (u, k) = unpack_mask(m);
    let mut seen = [false; 4];
    for i in u.into_iter().chain(k) {
        seen[i] = true;
    }
    m >> 8 == 0 && seen.iter().all(|s| *s)
}

/// Unpacks a mask into (update pair, keep pair).
pub fn unpack_mask(m: u32) -> ([usize; 2], [usize; 2]) {
    let f = |shift: u32| ((m >> shift) & 3) as usize;
    ([f(0), f(2)], [f(4), f(6)])
}

/// Fresh parameters: He-normal weights for the ELU layers, zero biases, the s-MLP's tanh scale
/// at 0 and the t-MLP's output layer at 0, so a new flow is exactly the identity.
pub fn init(plan: &FlowPlan, seed: u64) -> Vec<f32> {
    let lay = plan.layout;
    let h = lay.hidden;
    let mut rng = streams::host(seed, streams::Host::Init);
    let mut p = vec![0f32; plan.n_params()];
    let mut fill = |p: &mut [f32], fan_in: usize| {
        let std = (2.0 / fan_in as f64).sqrt();
        for w in p.iter_mut() {
            *w = (std * rng.sample::<f64, _>(StandardNormal)) as f32;
        }
    };
    for layer in &plan.layers {
        for k in 0..lay.couplings {
            let step = layer.param_offset + k * lay.coupling_size();
            for (mlp, is_s) in [(step, true), (step + lay.t_offset(), false)] {
                fill(&mut p[mlp..mlp + 2 * h], 2);
                let mut off = mlp + 3 * h;
                for _ in 1..lay.mlp_layers {
                    fill(&mut p[off..off + h * h], h);
                    off += h * h + h;
                }
                if is_s {
                    // Nonzero, so the scale's gradient is nonzero at the identity.
                    fill(&mut p[off..off + 2 * h], h);
                }
            }
        }
    }
    p
}

/// A fresh flow's parameters ([`init`], plus N(0, `perturb`^2) noise where `perturb` > 0) and
/// masks, all from `seed`.
pub fn fresh(plan: &FlowPlan, seed: u64, perturb_sigma: f64) -> (Vec<f32>, Vec<u32>) {
    let mut p = init(plan, seed);
    if perturb_sigma > 0.0 {
        perturb(&mut p, perturb_sigma, seed);
    }
    (p, masks(plan, seed))
}

/// Adds N(0, sigma^2) noise to every parameter (tests and demonstrations of non-trivial flows).
pub fn perturb(params: &mut [f32], sigma: f64, seed: u64) {
    let mut rng = streams::host(seed, streams::Host::Perturb);
    for w in params.iter_mut() {
        *w += (sigma * rng.sample::<f64, _>(StandardNormal)) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::plan::{Arch, FlowConfig};

    #[test]
    fn masks_pair_each_step_with_its_complement() {
        let plan = FlowPlan::new(FlowConfig::new(8, None, Arch::Mera, 10, 4, 2).unwrap());
        let m = masks(&plan, 1);
        assert_eq!(m.len(), plan.layers.len() * 10);
        for pair in m.chunks(2) {
            let (u0, k0) = unpack_mask(pair[0]);
            let (u1, k1) = unpack_mask(pair[1]);
            assert_eq!(u1, k0);
            assert_eq!(k1, u0);
        }
        assert_ne!(masks(&plan, 1), masks(&plan, 2));
    }

    #[test]
    fn layout_sizes_add_up() {
        let lay = ParamLayout::new(10, 64, 2);
        assert_eq!(lay.mlp_size(), 2 * 64 + 64 + 64 * 64 + 64 + 2 * 64 + 2);
        assert_eq!(lay.out_offset() + 2 * 64 + 2, lay.mlp_size());
    }
}
