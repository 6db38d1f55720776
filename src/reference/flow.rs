//! f64 twin of the flow kernels (`shaders/flow_coupling.wgsl`, `shaders/flow_log_q.wgsl`,
//! `shaders/lib/mlp.wgsl`): the hierarchical Real NVP bijector in both directions, one sample at
//! a time.

use crate::flow::params::unpack_mask;
use crate::flow::{Direction, FlowPlan, ParamLayout};

pub fn elu(x: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        x.exp_m1()
    }
}

/// The MLP at `base` on input `x`, keeping every hidden activation; returns them and the
/// linear output.
pub fn mlp_forward(
    p: &[f64],
    base: usize,
    lay: &ParamLayout,
    x: [f64; 2],
) -> (Vec<Vec<f64>>, [f64; 2]) {
    let h = lay.hidden;
    let mut acts = vec![(0..h)
        .map(|j| elu(p[base + 2 * j] * x[0] + p[base + 2 * j + 1] * x[1] + p[base + 2 * h + j]))
        .collect::<Vec<f64>>()];
    let mut off = base + 3 * h;
    for _ in 1..lay.mlp_layers {
        let prev = acts.last().expect("one hidden layer at least");
        let next = (0..h)
            .map(|j| {
                elu((0..h).map(|i| p[off + j * h + i] * prev[i]).sum::<f64>() + p[off + h * h + j])
            })
            .collect();
        acts.push(next);
        off += h * h + h;
    }
    let last = acts.last().expect("one hidden layer at least");
    let out = [0, 1]
        .map(|o| (0..h).map(|i| p[off + o * h + i] * last[i]).sum::<f64>() + p[off + 2 * h + o]);
    (acts, out)
}

/// (s, t) of coupling step `k` of the bijector at `layer_offset` given the kept pair `x`:
/// s = scale * tanh(s-MLP(x)), t = t-MLP(x).
pub fn coupling_st(
    p: &[f64],
    lay: &ParamLayout,
    layer_offset: usize,
    k: usize,
    x: [f64; 2],
) -> ([f64; 2], [f64; 2]) {
    let base = layer_offset + k * lay.coupling_size();
    let os = mlp_forward(p, base, lay, x).1;
    let scale = base + lay.scale_offset();
    let s = [0, 1].map(|j| p[scale + j] * os[j].tanh());
    (s, mlp_forward(p, base + lay.t_offset(), lay, x).1)
}

/// One bijector on a block's four values in direction `dir`; returns its log|det|. If `seen` is
/// given, `seen[k]` receives the values coupling step k was applied to.
pub fn block_apply(
    p: &[f64],
    lay: &ParamLayout,
    layer_offset: usize,
    masks: &[u32],
    v: &mut [f64; 4],
    dir: Direction,
    mut seen: Option<&mut [[f64; 4]]>,
) -> f64 {
    let kk = masks.len();
    let mut ld = 0.0;
    for i in 0..kk {
        let k = match dir {
            Direction::Generate => i,
            Direction::Infer => kk - 1 - i,
        };
        if let Some(seen) = seen.as_deref_mut() {
            seen[k] = *v;
        }
        let (upd, keep) = unpack_mask(masks[k]);
        let (s, t) = coupling_st(p, lay, layer_offset, k, [v[keep[0]], v[keep[1]]]);
        for j in 0..2 {
            match dir {
                Direction::Generate => {
                    v[upd[j]] = v[upd[j]] * s[j].exp() + t[j];
                    ld += s[j];
                }
                Direction::Infer => {
                    v[upd[j]] = (v[upd[j]] - t[j]) * (-s[j]).exp();
                    ld -= s[j];
                }
            }
        }
    }
    ld
}

/// What every coupling step of a pass saw: `[layer][block][step]`.
pub type PassRecord = Vec<Vec<Vec<[f64; 4]>>>;

/// The whole flow in direction `dir` for one sample: the output and log|det| of the map applied;
/// with `record`, also what every coupling step saw (for the backward twin).
pub fn pass(
    plan: &FlowPlan,
    p: &[f64],
    masks: &[u32],
    input: &[f64],
    dir: Direction,
    mut record: Option<&mut PassRecord>,
) -> (Vec<f64>, f64) {
    let kk = plan.layout.couplings;
    let mut state = input.to_vec();
    if let Some(r) = record.as_deref_mut() {
        *r = plan
            .layers
            .iter()
            .map(|l| vec![vec![[0.0; 4]; kk]; l.blocks.len()])
            .collect();
    }
    let order: Vec<usize> = match dir {
        Direction::Generate => (0..plan.layers.len()).rev().collect(),
        Direction::Infer => (0..plan.layers.len()).collect(),
    };
    let mut ld = 0.0;
    for li in order {
        let seen = record.as_deref_mut().map(|r| &mut r[li]);
        ld += apply_layer(plan, p, masks, li, &mut state, dir, seen);
    }
    (state, ld)
}

/// Layer `li`'s bijector on every block of `state`, in place; returns its log|det|.
fn apply_layer(
    plan: &FlowPlan,
    p: &[f64],
    masks: &[u32],
    li: usize,
    state: &mut [f64],
    dir: Direction,
    mut record: Option<&mut Vec<Vec<[f64; 4]>>>,
) -> f64 {
    let kk = plan.layout.couplings;
    let layer = &plan.layers[li];
    let lm = &masks[li * kk..(li + 1) * kk];
    let mut ld = 0.0;
    for (bi, b) in layer.blocks.iter().enumerate() {
        let mut v = b.map(|s| state[s as usize]);
        let seen = record.as_deref_mut().map(|r| r[bi].as_mut_slice());
        ld += block_apply(p, &plan.layout, layer.param_offset, lm, &mut v, dir, seen);
        for (j, &s) in b.iter().enumerate() {
            state[s as usize] = v[j];
        }
    }
    ld
}

/// The renormalisation group flow of one configuration `x`: the inference pass layer by layer,
/// and after the last layer of every level the variables that continue to the next one, as the
/// coarse lattice they live on. Entry 0 is x itself (L x L), entry d the lattice of side L / 2^d
/// (row-major), for as many levels as the flow has (mera and tree; tebd has no coarse levels).
pub fn rg_levels(plan: &FlowPlan, p: &[f64], masks: &[u32], x: &[f64]) -> Vec<Vec<f64>> {
    let l = plan.config.lattice;
    let mut state = x.to_vec();
    let mut levels = vec![state.clone()];
    for li in 0..plan.layers.len() {
        apply_layer(plan, p, masks, li, &mut state, Direction::Infer, None);
        let layer = &plan.layers[li];
        let last_of_level = plan
            .layers
            .get(li + 1)
            .is_none_or(|next| next.level != layer.level);
        if layer.shifted || !last_of_level {
            continue;
        }
        // The unshifted layer of level d keeps the block corners: sites at multiples of 2^(d+1).
        let step = 1usize << (layer.level + 1);
        let side = l / step;
        levels.push(
            (0..side * side)
                .map(|i| state[(i / side) * step * l + (i % side) * step])
                .collect(),
        );
    }
    levels
}

/// x = g(z) for one sample and log|det dg/dz|.
pub fn generate(plan: &FlowPlan, p: &[f64], masks: &[u32], z: &[f64]) -> (Vec<f64>, f64) {
    pass(plan, p, masks, z, Direction::Generate, None)
}

/// z = g^{-1}(x) for one sample and log|det dg^{-1}/dx|.
pub fn infer(plan: &FlowPlan, p: &[f64], masks: &[u32], x: &[f64]) -> (Vec<f64>, f64) {
    pass(plan, p, masks, x, Direction::Infer, None)
}

/// ln N(z; 0, 1).
pub fn ln_normal(z: &[f64]) -> f64 {
    -0.5 * z.iter().map(|v| v * v).sum::<f64>() - 0.5 * z.len() as f64 * std::f64::consts::TAU.ln()
}

/// ln q(x) = ln N(g^{-1}(x)) + log|det dg^{-1}/dx|.
pub fn ln_q(plan: &FlowPlan, p: &[f64], masks: &[u32], x: &[f64]) -> f64 {
    let (z, ld) = infer(plan, p, masks, x);
    ln_normal(&z) + ld
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{params, Arch, FlowConfig};

    /// With a non-trivial flow, the RG levels start at x and end at the latent variables the
    /// full inference leaves at the coarsest level's sites, and each level is the lattice
    /// halved.
    #[test]
    fn rg_levels_run_the_inference_layer_by_layer() {
        for arch in [Arch::Mera, Arch::Tree] {
            let plan = FlowPlan::new(FlowConfig::new(8, None, arch, 2, 4, 2).unwrap());
            let (p, masks) = params::fresh(&plan, 3, 0.3);
            let p: Vec<f64> = p.iter().map(|v| *v as f64).collect();
            let x: Vec<f64> = (0..64)
                .map(|i| ((i * 13 % 17) as f64 - 8.0) / 4.0)
                .collect();
            let levels = rg_levels(&plan, &p, &masks, &x);
            let (z, _) = infer(&plan, &p, &masks, &x);
            assert_eq!(levels[0], x);
            let depth = levels.len() - 1;
            assert_eq!(depth, plan.config.depth, "{arch:?}");
            for (d, level) in levels.iter().enumerate() {
                assert_eq!(level.len(), (8 >> d) * (8 >> d), "{arch:?} level {d}");
            }
            let (step, side) = (1 << depth, 8 >> depth);
            let corners: Vec<f64> = (0..side * side)
                .map(|i| z[(i / side) * step * 8 + (i % side) * step])
                .collect();
            assert_eq!(levels[depth], corners, "{arch:?}");
            // A non-trivial flow moved them.
            assert_ne!(
                levels[1],
                (0..16)
                    .map(|i| x[(i / 4) * 16 + (i % 4) * 2])
                    .collect::<Vec<_>>()
            );
        }
    }
}
