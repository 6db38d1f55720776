//! The Ising target's device stage: A^{-1} x by four separable Hartley passes
//! (shaders/target_transform.wgsl), then ln pi and its gradient (shaders/target_log_prob.wgsl).

use bytemuck::{Pod, Zeroable};

use super::ising::{cas_table, IsingTarget};
use super::target::Target;
use super::target_stage::TargetStage;
use crate::gpu::WG;
use crate::gpu::{GpuBuffer, GpuContext, GpuError, Shader};

/// Most outputs one invocation of a Hartley pass forms (`T` in shaders/target_transform.wgsl):
/// its accumulators stay in registers.
const HARTLEY_TILE: usize = 16;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    l: u32,
    axis: u32,
    scaled: u32,
}

/// The stage evaluating `target` for `batch` samples held in `x`.
pub(super) fn build(
    ctx: &GpuContext,
    target: &IsingTarget,
    x: &GpuBuffer<f32>,
    batch: usize,
) -> Result<TargetStage, GpuError> {
    let l = target.lattice.l;
    let n = target.n_sites();
    assert_eq!(x.len, batch * n, "x must hold batch x N values");
    // Outputs per invocation of a Hartley pass (shaders/target_transform.wgsl).
    let tile = l.min(HARTLEY_TILE) as u32;
    // hartley: the four samples' bases, a line's L inputs each feeding `tile` outputs, and
    // the stores (four lanes per output); log_prob: N / WG sites per invocation, then the
    // tree reduction.
    let loops = (4 + l as u64 * (1 + tile as u64) + 5 * tile as u64)
        .max((n as u64).div_ceil(WG as u64) + WG.ilog2() as u64);
    ctx.check_loops("target", loops, "use a smaller --lattice")?;
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect::<Vec<f32>>();
    let cas = ctx.storage_from("target cas", &to_f32(cas_table(l)))?;
    let inv = ctx.storage_from("target 1/eig", &to_f32(target.inverse_eigenvalues_scaled()))?;
    let tmp_a = ctx.storage::<f32>("target tmp a", batch * n)?;
    let tmp_b = ctx.storage::<f32>("target tmp b", batch * n)?;
    let log_pi = ctx.storage::<f32>("log pi", batch)?;
    let grad = ctx.storage::<f32>("grad log pi", batch * n)?;

    let constants = [("WG", WG as f64)];
    let hartley = ctx.specialised_kernel(
        Shader::TargetTransform,
        &[("T", tile)],
        "hartley",
        &constants,
    )?;
    let finish = ctx.kernel(Shader::TargetLogProb, "log_prob", &constants)?;
    let params = |axis, scaled| Params {
        batch: batch as u32,
        l: l as u32,
        axis,
        scaled,
    };
    let uniforms = vec![
        ctx.uniform("target rows", &params(0, 0))?,
        ctx.uniform("target cols scaled", &params(1, 1))?,
        ctx.uniform("target cols", &params(1, 0))?,
    ];
    // One invocation per (four samples, line, tile of outputs).
    let lines = ctx.grid(
        (batch.div_ceil(4) * l * l.div_ceil(tile as usize)) as u64,
        WG,
    );
    let pass = |u: &wgpu::Buffer, src: &wgpu::Buffer, dst: &wgpu::Buffer| {
        ctx.dispatch(
            &hartley,
            &[
                (0, u),
                (1, src),
                (2, &cas.buffer),
                (3, &inv.buffer),
                (4, dst),
            ],
            lines,
        )
    };
    let dispatches = vec![
        pass(&uniforms[0], &x.buffer, &tmp_a.buffer)?,
        pass(&uniforms[1], &tmp_a.buffer, &tmp_b.buffer)?,
        pass(&uniforms[2], &tmp_b.buffer, &tmp_a.buffer)?,
        pass(&uniforms[0], &tmp_a.buffer, &tmp_b.buffer)?,
        ctx.dispatch(
            &finish,
            &[
                (0, &uniforms[0]),
                (1, &tmp_b.buffer),
                (2, &x.buffer),
                (3, &log_pi.buffer),
                (4, &grad.buffer),
            ],
            // One workgroup per sample.
            ctx.grid(batch as u64, 1),
        )?,
    ];
    Ok(TargetStage::new(
        log_pi,
        grad,
        dispatches,
        vec![cas, inv, tmp_a, tmp_b],
        uniforms,
    ))
}
