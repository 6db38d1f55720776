//! f64 twin of the training backward pass (`shaders/loss.wgsl`, `shaders/flow_backward.wgsl`,
//! `shaders/grad_reduce.wgsl`): the objective of eq. (5), symmetrised (Appendix D) and/or
//! regularised by W KL(q(x) || q(-x)) (Appendix E), and its gradients with respect to the flow
//! parameters and the latent variables, by plain reverse-mode differentiation one sample and one
//! block at a time.

use crate::flow::params::unpack_mask;
use crate::flow::{Direction, FlowPlan, ParamLayout};
use crate::physics::Target;
use crate::train::Objective;

use super::flow::{ln_normal, mlp_forward, pass, PassRecord};

pub struct TwinGradients {
    /// mean(ln q(x) - ln pi(x)) over the batch.
    pub loss: f64,
    /// The mean of the trained objective (equals `loss` for the plain objective).
    pub objective: f64,
    /// d objective / d parameters.
    pub grads: Vec<f64>,
    /// d objective / d z at fixed ln N(z) (for a = 1, b = 0 and one sample, the latent HMC force
    /// of eq. 6); the full derivative is `dz - a c z`, c = 1 / batch.
    pub dz: Vec<f64>,
    /// Per sample, the weight a of ln q(x) in the objective.
    pub a: Vec<f64>,
    /// Per sample, ln q(x) - ln pi(x) and the objective's term (their means are `loss` and
    /// `objective`).
    pub plain_terms: Vec<f64>,
    pub objective_terms: Vec<f64>,
}

fn elu_grad(act: f64) -> f64 {
    if act > 0.0 {
        1.0
    } else {
        act + 1.0
    }
}

/// Backward through an MLP from d_out, accumulating parameter gradients; returns d input.
fn mlp_backward(
    p: &[f64],
    base: usize,
    lay: &ParamLayout,
    x: [f64; 2],
    acts: &[Vec<f64>],
    d_out: [f64; 2],
    grads: &mut [f64],
) -> [f64; 2] {
    let (h, m) = (lay.hidden, lay.mlp_layers);
    let off_out = base + lay.out_offset();
    let last = &acts[m - 1];
    let mut g: Vec<f64> = (0..h)
        .map(|i| {
            for o in 0..2 {
                grads[off_out + o * h + i] += d_out[o] * last[i];
            }
            (p[off_out + i] * d_out[0] + p[off_out + h + i] * d_out[1]) * elu_grad(last[i])
        })
        .collect();
    grads[off_out + 2 * h] += d_out[0];
    grads[off_out + 2 * h + 1] += d_out[1];
    for l in (1..m).rev() {
        let w = base + 3 * h + (l - 1) * (h * h + h);
        let prev = &acts[l - 1];
        for j in 0..h {
            for i in 0..h {
                grads[w + j * h + i] += g[j] * prev[i];
            }
            grads[w + h * h + j] += g[j];
        }
        g = (0..h)
            .map(|i| (0..h).map(|j| p[w + j * h + i] * g[j]).sum::<f64>() * elu_grad(prev[i]))
            .collect();
    }
    let mut d_in = [0.0; 2];
    for j in 0..h {
        grads[base + 2 * j] += g[j] * x[0];
        grads[base + 2 * j + 1] += g[j] * x[1];
        grads[base + 2 * h + j] += g[j];
        d_in[0] += p[base + 2 * j] * g[j];
        d_in[1] += p[base + 2 * j + 1] * g[j];
    }
    d_in
}

/// Backward through coupling step `k` applied in direction `dir` to input `v`, given the adjoint
/// `a` of its output (updated in place to the adjoint of its input) and the log-det weight gamma.
#[allow(clippy::too_many_arguments)]
fn step_backward(
    p: &[f64],
    lay: &ParamLayout,
    layer_offset: usize,
    k: usize,
    mask: u32,
    v: [f64; 4],
    a: &mut [f64; 4],
    gamma: f64,
    dir: Direction,
    grads: &mut [f64],
) {
    let (upd, keep) = unpack_mask(mask);
    let base_s = layer_offset + k * lay.coupling_size();
    let base_t = base_s + lay.t_offset();
    let x = [v[keep[0]], v[keep[1]]];
    let (acts_s, os) = mlp_forward(p, base_s, lay, x);
    let (acts_t, t) = mlp_forward(p, base_t, lay, x);
    let scale_at = base_s + lay.scale_offset();
    let (mut d_os, mut dt) = ([0.0; 2], [0.0; 2]);
    for j in 0..2 {
        let th = os[j].tanh();
        let s = p[scale_at + j] * th;
        let (u, au) = (v[upd[j]], a[upd[j]]);
        let ds = match dir {
            Direction::Generate => {
                let e = s.exp();
                dt[j] = au;
                a[upd[j]] = au * e;
                au * u * e + gamma
            }
            Direction::Infer => {
                let e = (-s).exp();
                dt[j] = -au * e;
                a[upd[j]] = au * e;
                -au * (u - t[j]) * e - gamma
            }
        };
        grads[scale_at + j] += ds * th;
        d_os[j] = ds * p[scale_at + j] * (1.0 - th * th);
    }
    let dk_s = mlp_backward(p, base_s, lay, x, &acts_s, d_os, grads);
    let dk_t = mlp_backward(p, base_t, lay, x, &acts_t, dt, grads);
    for j in 0..2 {
        a[keep[j]] += dk_s[j] + dk_t[j];
    }
}

/// Backward through a recorded pass: `adj` holds the adjoint of the pass's output and becomes
/// the adjoint of its input; parameter gradients accumulate into `grads`.
#[allow(clippy::too_many_arguments)]
fn backward_pass(
    plan: &FlowPlan,
    p: &[f64],
    masks: &[u32],
    record: &PassRecord,
    adj: &mut [f64],
    gamma: f64,
    dir: Direction,
    grads: &mut [f64],
) {
    let kk = plan.layout.couplings;
    let order: Vec<usize> = match dir {
        Direction::Generate => (0..plan.layers.len()).collect(),
        Direction::Infer => (0..plan.layers.len()).rev().collect(),
    };
    for li in order {
        let layer = &plan.layers[li];
        for (bi, b) in layer.blocks.iter().enumerate() {
            let mut a = b.map(|s| adj[s as usize]);
            let steps: Vec<usize> = match dir {
                Direction::Generate => (0..kk).rev().collect(),
                Direction::Infer => (0..kk).collect(),
            };
            for k in steps {
                let v = record[li][bi][k];
                step_backward(
                    p,
                    &plan.layout,
                    layer.param_offset,
                    k,
                    masks[li * kk + k],
                    v,
                    &mut a,
                    gamma,
                    dir,
                    grads,
                );
            }
            for (j, &s) in b.iter().enumerate() {
                adj[s as usize] = a[j];
            }
        }
    }
}

/// The objective over a batch of latent draws `z` ([batch, N]) and its gradients.
pub fn loss_and_grads(
    plan: &FlowPlan,
    p: &[f64],
    masks: &[u32],
    target: &dyn Target,
    z: &[f64],
    obj: Objective,
) -> TwinGradients {
    let n = plan.config.n_sites();
    let batch = z.len() / n;
    let c = 1.0 / batch as f64;
    let mut grads = vec![0.0; p.len()];
    let mut dz = vec![0.0; z.len()];
    let (mut loss, mut objective) = (0.0, 0.0);
    let mut a_coef = Vec::with_capacity(batch);
    let (mut plain_terms, mut objective_terms) = (Vec::new(), Vec::new());
    for s in 0..batch {
        let zs = &z[s * n..(s + 1) * n];
        let mut rec = PassRecord::new();
        let (x, ld) = pass(plan, p, masks, zs, Direction::Generate, Some(&mut rec));
        let lq = ln_normal(zs) - ld;
        let (lp, grad_lp) = target.log_prob_and_grad(&x);
        let plain = lq - lp;
        let (mut term, mut a, mut b) = (plain, 1.0, 0.0);
        let mut adj_x: Vec<f64> = grad_lp.iter().map(|g| -c * g).collect();
        if obj.needs_negated_pass() {
            let y: Vec<f64> = x.iter().map(|v| -v).collect();
            let mut recn = PassRecord::new();
            let (zn, ldn) = pass(plan, p, masks, &y, Direction::Infer, Some(&mut recn));
            let lqn = ln_normal(&zn) + ldn;
            if obj.symmetric {
                let mx = lq.max(lqn);
                term = mx + ((lq - mx).exp() + (lqn - mx).exp()).ln() - std::f64::consts::LN_2 - lp;
                a = 1.0 / (1.0 + (lqn - lq).exp());
                b = 1.0 - a;
            }
            term += obj.sym_reg * (lq - lqn);
            a += obj.sym_reg;
            b -= obj.sym_reg;
            let mut adj_y: Vec<f64> = zn.iter().map(|v| -c * b * v).collect();
            backward_pass(
                plan,
                p,
                masks,
                &recn,
                &mut adj_y,
                c * b,
                Direction::Infer,
                &mut grads,
            );
            for (ax, ay) in adj_x.iter_mut().zip(&adj_y) {
                *ax -= ay;
            }
        }
        backward_pass(
            plan,
            p,
            masks,
            &rec,
            &mut adj_x,
            -c * a,
            Direction::Generate,
            &mut grads,
        );
        dz[s * n..(s + 1) * n].copy_from_slice(&adj_x);
        loss += c * plain;
        objective += c * term;
        a_coef.push(a);
        plain_terms.push(plain);
        objective_terms.push(term);
    }
    TwinGradients {
        loss,
        objective,
        grads,
        dz,
        a: a_coef,
        plain_terms,
        objective_terms,
    }
}
