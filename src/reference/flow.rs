//! f64 twin of the flow kernels (`shaders/flow_coupling.wgsl`, `shaders/flow_log_q.wgsl`):
//! the hierarchical Real NVP bijector in both directions, one sample at a time.

use crate::flow::params::unpack_mask;
use crate::flow::{Direction, FlowPlan, ParamLayout};

pub fn elu(x: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        x.exp_m1()
    }
}

/// The MLP at `base` on input `x`; for the s-MLP (`is_s`) the output is scale * tanh(.).
pub fn mlp(p: &[f64], base: usize, lay: &ParamLayout, x: [f64; 2], is_s: bool) -> [f64; 2] {
    let h = lay.hidden;
    let mut act: Vec<f64> = (0..h)
        .map(|j| elu(p[base + 2 * j] * x[0] + p[base + 2 * j + 1] * x[1] + p[base + 2 * h + j]))
        .collect();
    let mut off = base + 3 * h;
    for _ in 1..lay.mlp_layers {
        act = (0..h)
            .map(|j| {
                let z: f64 = (0..h).map(|i| p[off + j * h + i] * act[i]).sum();
                elu(z + p[off + h * h + j])
            })
            .collect();
        off += h * h + h;
    }
    let mut out = [0.0; 2];
    for (o, v) in out.iter_mut().enumerate() {
        *v = (0..h).map(|i| p[off + o * h + i] * act[i]).sum::<f64>() + p[off + 2 * h + o];
        if is_s {
            *v = p[off + 2 * h + 2 + o] * v.tanh();
        }
    }
    out
}

/// The (s, t) outputs of coupling step `k` of the bijector at `layer_offset` given the kept pair.
pub fn coupling_st(
    p: &[f64],
    lay: &ParamLayout,
    layer_offset: usize,
    k: usize,
    keep: [f64; 2],
) -> ([f64; 2], [f64; 2]) {
    let base = layer_offset + k * lay.coupling_size();
    (
        mlp(p, base, lay, keep, true),
        mlp(p, base + lay.t_offset(), lay, keep, false),
    )
}

/// One bijector on a block's four values, generation direction; returns its log|det|.
pub fn block_generate(
    p: &[f64],
    lay: &ParamLayout,
    layer_offset: usize,
    masks: &[u32],
    v: &mut [f64; 4],
) -> f64 {
    let mut ld = 0.0;
    for (k, &m) in masks.iter().enumerate() {
        let (upd, keep) = unpack_mask(m);
        let (s, t) = coupling_st(p, lay, layer_offset, k, [v[keep[0]], v[keep[1]]]);
        for j in 0..2 {
            v[upd[j]] = v[upd[j]] * s[j].exp() + t[j];
        }
        ld += s[0] + s[1];
    }
    ld
}

/// One bijector, inference direction; returns its log|det| (the negative of generation's).
pub fn block_infer(
    p: &[f64],
    lay: &ParamLayout,
    layer_offset: usize,
    masks: &[u32],
    v: &mut [f64; 4],
) -> f64 {
    let mut ld = 0.0;
    for (k, &m) in masks.iter().enumerate().rev() {
        let (upd, keep) = unpack_mask(m);
        let (s, t) = coupling_st(p, lay, layer_offset, k, [v[keep[0]], v[keep[1]]]);
        for j in 0..2 {
            v[upd[j]] = (v[upd[j]] - t[j]) * (-s[j]).exp();
        }
        ld -= s[0] + s[1];
    }
    ld
}

fn apply_layer(
    plan: &FlowPlan,
    p: &[f64],
    masks: &[u32],
    li: usize,
    state: &mut [f64],
    dir: Direction,
) -> f64 {
    let layer = &plan.layers[li];
    let k = plan.layout.couplings;
    let lm = &masks[li * k..(li + 1) * k];
    let mut ld = 0.0;
    for b in &layer.blocks {
        let mut v = b.map(|s| state[s as usize]);
        ld += match dir {
            Direction::Generate => block_generate(p, &plan.layout, layer.param_offset, lm, &mut v),
            Direction::Infer => block_infer(p, &plan.layout, layer.param_offset, lm, &mut v),
        };
        for (j, &s) in b.iter().enumerate() {
            state[s as usize] = v[j];
        }
    }
    ld
}

/// x = g(z) for one sample and log|det dg/dz|.
pub fn generate(plan: &FlowPlan, p: &[f64], masks: &[u32], z: &[f64]) -> (Vec<f64>, f64) {
    let mut x = z.to_vec();
    let ld = (0..plan.layers.len())
        .rev()
        .map(|li| apply_layer(plan, p, masks, li, &mut x, Direction::Generate))
        .sum();
    (x, ld)
}

/// z = g^{-1}(x) for one sample and log|det dg^{-1}/dx|.
pub fn infer(plan: &FlowPlan, p: &[f64], masks: &[u32], x: &[f64]) -> (Vec<f64>, f64) {
    let mut z = x.to_vec();
    let ld = (0..plan.layers.len())
        .map(|li| apply_layer(plan, p, masks, li, &mut z, Direction::Infer))
        .sum();
    (z, ld)
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
