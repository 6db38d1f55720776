//! f64 twin of the HMC stage (shaders/hmc.wgsl): the potentials of both spaces, their
//! gradients, the leapfrog integrator and the Metropolis decision.

use super::backward::loss_and_grads;
use super::flow::generate;
use crate::flow::FlowPlan;
use crate::physics::Target;
use crate::train::Objective;

/// Physical space: U(x) = -ln pi(x) and dU/dx, for one sample.
pub fn physical(target: &dyn Target, x: &[f64]) -> (f64, Vec<f64>) {
    let (lp, grad) = target.log_prob_and_grad(x);
    (-lp, grad.iter().map(|g| -g).collect())
}

/// Latent space: U(z) = -ln pi(g(z)) - ln|det dg/dz| and dU/dz, for one sample.
pub fn latent(
    plan: &FlowPlan,
    p: &[f64],
    masks: &[u32],
    target: &dyn Target,
    z: &[f64],
) -> (f64, Vec<f64>) {
    let (x, log_det) = generate(plan, p, masks, z);
    let (lp, _) = target.log_prob_and_grad(&x);
    // One sample, plain objective: dz is d(ln q - ln pi)/dz at fixed ln N(z), which is dU/dz.
    let g = loss_and_grads(plan, p, masks, target, z, Objective::PLAIN);
    (-lp - log_det, g.dz)
}

/// `steps` leapfrog steps of size `eps` from (q, p) under the potential gradient `grad_u`:
/// half kick, (drift, kick) ..., drift, half kick.
pub fn leapfrog(
    q: &[f64],
    p: &[f64],
    eps: f64,
    steps: usize,
    grad_u: impl Fn(&[f64]) -> Vec<f64>,
) -> (Vec<f64>, Vec<f64>) {
    let (mut q, mut p) = (q.to_vec(), p.to_vec());
    let kick = |p: &mut Vec<f64>, q: &[f64], a: f64| {
        for (pi, g) in p.iter_mut().zip(grad_u(q)) {
            *pi -= a * g;
        }
    };
    kick(&mut p, &q, eps / 2.0);
    for step in 0..steps {
        for (qi, pi) in q.iter_mut().zip(&p) {
            *qi += eps * pi;
        }
        kick(&mut p, &q, if step + 1 == steps { eps / 2.0 } else { eps });
    }
    (q, p)
}

/// H = U + p.p / 2.
pub fn hamiltonian(u: f64, p: &[f64]) -> f64 {
    u + 0.5 * p.iter().map(|v| v * v).sum::<f64>()
}

/// The decision of `decide`: accept with probability min(1, exp(H_start - H_end)), drawing the
/// uniform from `bits` as the shader does; a NaN or +infinite difference rejects.
pub fn accept(h_start: f64, h_end: f64, bits: u32) -> bool {
    let dh = h_end - h_start;
    !dh.is_nan() && (dh <= 0.0 || (super::rng::uniform01(bits) as f64) < (-dh).exp())
}
