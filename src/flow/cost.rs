//! What the flow's kernels cost: per invocation, counted from their loops (the number that
//! llvmpipe caps, see [`crate::gpu::context::LLVMPIPE_LOOP_LIMIT`]; each count follows the loop
//! structure of its WGSL function, every iteration of every loop counted once), and in flops
//! (the model `bench` reports achieved GFLOP/s against).

/// `mlp_forward` (shaders/lib/mlp.wgsl): the first layer, the hidden layers, the output.
pub fn mlp_forward_loops(h: u64, m: u64) -> u64 {
    2 * h + (m - 1) * (1 + h + h * h)
}

/// `mlp_backward` (shaders/flow_backward.wgsl).
pub fn mlp_backward_loops(h: u64, m: u64) -> u64 {
    2 * h + (m - 1) * (1 + 3 * h + h * h)
}

/// Widest MLP whose loops the flow kernels run to the constant width, which the compiler
/// unrolls (`UNROLL_MAX` in shaders/lib/mlp.wgsl); wider ones loop to a uniform.
pub const UNROLL_MAX: usize = 16;

/// Loops over an invocation's four rows and their four values (loads, saves, stores).
const ROW_LOOPS: u64 = 64;

/// One invocation of `flow_coupling`: the s and t MLPs, and the rows' load and save loops.
pub fn coupling_step_loops(h: u64, m: u64) -> u64 {
    2 * mlp_forward_loops(h, m) + ROW_LOOPS
}

/// One invocation of `coupling_backward`: s and t forward, t and s backward, setting the s
/// activations aside and back, the rows' load and store loops.
pub fn coupling_backward_loops(h: u64, m: u64) -> u64 {
    2 * mlp_forward_loops(h, m) + 2 * mlp_backward_loops(h, m) + 2 * h * m + ROW_LOOPS
}

/// One group of four rows of `coupling_backward` with accumulated gradients (GA = 1): the plain
/// backward, plus the accumulation loops over every hidden-to-hidden weight.
pub fn accumulating_backward_loops(h: u64, m: u64) -> u64 {
    coupling_backward_loops(h, m) + 2 * (m - 1) * (h + h * h)
}

/// `write_mlp` for both MLPs, once per invocation of the accumulating backward.
pub fn write_partials_loops(h: u64, m: u64) -> u64 {
    2 * (2 * h + (m - 1) * (h + h * h) + 4)
}

/// The most rows one weight reduction may sum within a loop budget: `grad_reduce` runs one
/// iteration per four rows, after at most 48 for its tile's set-up.
pub fn reduce_rows_within(budget: u64) -> u64 {
    (4 * budget.saturating_sub(48)).max(4)
}

/// Multiply-adds of one MLP evaluation, 2 -> H (-> H)^(m-1) -> 2.
pub fn mlp_macs(h: u64, m: u64) -> u64 {
    2 * h + (m - 1) * h * h + 2 * h
}

/// The flop model of a plan: the useful arithmetic of the flow, counted as 2 flops per
/// multiply-add of its MLPs (what PyTorch's FLOP counter counts for the same network; the
/// elementwise work of couplings, activations and the target is not counted). A pass applies
/// every coupling step (an s-MLP and a t-MLP) to every block of every layer.
pub fn pass_flops(plan: &crate::flow::FlowPlan, batch: usize) -> u64 {
    let lay = &plan.layout;
    let per_step = 2 * 2 * mlp_macs(lay.hidden as u64, lay.mlp_layers as u64);
    plan.n_rows(batch) as u64 * lay.couplings as u64 * per_step
}

/// A training step's model flops: each pass's forward and its backward (input and weight
/// gradients, twice the forward); the symmetric or regularised objectives add an inference
/// pass on -x and its backward.
pub fn train_step_flops(plan: &crate::flow::FlowPlan, batch: usize, negated_pass: bool) -> u64 {
    3 * pass_flops(plan, batch) * if negated_pass { 2 } else { 1 }
}

/// A latent-HMC leapfrog step's model flops: the force is a generation pass and its backward
/// for the input gradient alone (as many multiply-adds as the pass).
pub fn leapfrog_flops(plan: &crate::flow::FlowPlan, batch: usize) -> u64 {
    2 * pass_flops(plan, batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_boundary_measured_on_llvmpipe() {
        // Two MLP forwards of hidden 126 (3 layers) ran exactly; of hidden 127 they did not.
        assert!(2 * mlp_forward_loops(126, 3) <= 65_535);
        assert!(2 * mlp_forward_loops(127, 3) > 65_535);
    }

    #[test]
    fn unroll_width_matches_the_shader() {
        let src = include_str!("../../shaders/lib/mlp.wgsl");
        assert!(src.contains(&format!("const UNROLL_MAX: u32 = {UNROLL_MAX}u;")));
    }
}
