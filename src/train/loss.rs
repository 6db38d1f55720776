//! The loss stage (`shaders/loss.wgsl`): per-sample PDD terms (plain, symmetrised, regularised),
//! the coefficients and adjoints that seed the backward passes, and the batch statistics.

use bytemuck::{Pod, Zeroable};

use super::Objective;
use crate::gpu::WG;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError, Shader};

/// `LossUniform::flags` bits, as shaders/loss.wgsl names them: an inference pass on -x feeds
/// the loss, and the objective is the symmetrised one.
const HAS_NEG: u32 = 1;
const SYMMETRIC: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossUniform {
    batch: u32,
    n_sites: u32,
    flags: u32,
    _pad: u32,
    c: f32,
    sym_reg: f32,
    _pad1: [f32; 2],
}

/// What the loss stage reads.
pub struct LossInputs<'a> {
    /// [batch, N]: x = g(z).
    pub x: &'a GpuBuffer<f32>,
    /// ln q(x) of the generation pass.
    pub ln_q: &'a GpuBuffer<f32>,
    /// ln pi(x) and its gradient.
    pub ln_pi: &'a GpuBuffer<f32>,
    pub grad_ln_pi: &'a GpuBuffer<f32>,
    /// For objectives that need ln q(-x): the state of the inference pass on -x (-x, written by
    /// [`LossStage::negate`], then z' in place) and its ln q.
    pub negated: Option<(&'a GpuBuffer<f32>, &'a GpuBuffer<f32>)>,
}

/// The loss's buffers and dispatches. Order within a step: `negate` (before the inference pass
/// on -x), `head` (after the forward passes and the target), then the inference backward,
/// `combine`, and the generation backward.
pub struct LossStage {
    /// Per sample d objective / d log|det| of the generation and inference passes.
    pub gamma_gen: GpuBuffer<f32>,
    pub gamma_inf: GpuBuffer<f32>,
    /// [batch, N]: the adjoint of x (then of z, after the generation backward) and of z'.
    pub adj_gen: GpuBuffer<f32>,
    pub adj_inf: GpuBuffer<f32>,
    /// [loss, loss stderr, objective, objective stderr, |grad|^2 (written by Adam), ...]
    pub stats: GpuBuffer<f32>,
    pub negate: Option<Dispatch>,
    pub head: Vec<Dispatch>,
    pub combine: Option<Dispatch>,
    _buffers: [GpuBuffer<f32>; 2],
    _uniform: wgpu::Buffer,
}

impl LossStage {
    pub fn new(
        ctx: &GpuContext,
        objective: Objective,
        batch: usize,
        n: usize,
        input: LossInputs,
    ) -> Result<Self, GpuError> {
        let neg = objective.needs_negated_pass();
        assert_eq!(
            neg,
            input.negated.is_some(),
            "ln q(-x) iff the objective needs it"
        );
        // batch_stats: one workgroup, two columns, two strided passes over the batch each.
        let loops = 4 * ((batch as u64).div_ceil(WG as u64) + WG.ilog2() as u64) + 2;
        ctx.check_loops("loss::batch_stats", loops, "use a smaller --batch")?;
        let consts = [("WG", WG as f64)];
        let sites = ctx.grid((batch * n) as u64, WG);
        let per_sample = ctx.grid(batch as u64, WG);
        let side = if neg { batch * n } else { 1 };
        let gamma_gen = ctx.storage::<f32>("gamma (generation)", batch)?;
        let gamma_inf = ctx.storage::<f32>("gamma (inference)", batch)?;
        let terms = ctx.storage::<f32>("loss terms", 2 * batch)?;
        let stats = ctx.storage::<f32>("train stats", 8)?;
        let adj_gen = ctx.storage::<f32>("adjoint (generation)", batch * n)?;
        let adj_inf = ctx.storage::<f32>("adjoint (inference)", side)?;
        let uniform = ctx.uniform(
            "loss",
            &LossUniform {
                batch: batch as u32,
                n_sites: n as u32,
                flags: if neg { HAS_NEG } else { 0 }
                    | if objective.symmetric { SYMMETRIC } else { 0 },
                _pad: 0,
                c: 1.0 / batch as f32,
                sym_reg: objective.sym_reg as f32,
                _pad1: [0.0; 2],
            },
        )?;
        let k = |entry| ctx.kernel(Shader::Loss, entry, &consts);
        // Without the inference pass the -x and ln q(-x) slots are bound to unread stand-ins.
        let placeholder = ctx.storage::<f32>("loss: no -x", 1)?;
        let (neg_x, ln_q_neg) = input.negated.unwrap_or((&placeholder, input.ln_q));
        let negate = match input.negated {
            Some(_) => Some(ctx.dispatch(
                &k("negate")?,
                &[(0, &uniform), (11, &input.x.buffer), (12, &neg_x.buffer)],
                sites,
            )?),
            None => None,
        };
        let head = vec![
            ctx.dispatch(
                &k("coefficients")?,
                &[
                    (0, &uniform),
                    (1, &input.ln_q.buffer),
                    (2, &ln_q_neg.buffer),
                    (3, &input.ln_pi.buffer),
                    (4, &gamma_gen.buffer),
                    (5, &gamma_inf.buffer),
                    (6, &terms.buffer),
                ],
                per_sample,
            )?,
            ctx.dispatch(
                &k("seed")?,
                &[
                    (0, &uniform),
                    (5, &gamma_inf.buffer),
                    (7, &input.grad_ln_pi.buffer),
                    (8, &neg_x.buffer),
                    (9, &adj_gen.buffer),
                    (10, &adj_inf.buffer),
                ],
                sites,
            )?,
            ctx.dispatch(
                &k("batch_stats")?,
                &[(0, &uniform), (6, &terms.buffer), (13, &stats.buffer)],
                [1, 1, 1],
            )?,
        ];
        let combine = match input.negated {
            Some(_) => Some(ctx.dispatch(
                &k("combine")?,
                &[(0, &uniform), (9, &adj_gen.buffer), (10, &adj_inf.buffer)],
                sites,
            )?),
            None => None,
        };
        Ok(Self {
            gamma_gen,
            gamma_inf,
            adj_gen,
            adj_inf,
            stats,
            negate,
            head,
            combine,
            _buffers: [terms, placeholder],
            _uniform: uniform,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::Shader;

    #[test]
    fn flags_match_the_shader() {
        assert_eq!(Shader::Loss.constant("HAS_NEG"), Some(super::HAS_NEG));
        assert_eq!(Shader::Loss.constant("SYMMETRIC"), Some(super::SYMMETRIC));
    }
}
