//! What the flow's kernels cost per invocation, counted from their loops: the number that
//! llvmpipe caps (see [`crate::gpu::context::LLVMPIPE_LOOP_LIMIT`]). Each count follows the loop
//! structure of its WGSL function, every iteration of every loop counted once.

/// `mlp_forward` (shaders/lib/mlp.wgsl): the first layer, the hidden layers, the output.
pub fn mlp_forward_loops(h: u64, m: u64) -> u64 {
    2 * h + (m - 1) * (1 + h + h * h)
}

/// `mlp_backward` (shaders/flow_backward.wgsl).
pub fn mlp_backward_loops(h: u64, m: u64) -> u64 {
    2 * h + (m - 1) * (1 + 3 * h + h * h)
}

/// One invocation of `flow_coupling`: the s and t MLPs, and the block's load and save loops.
pub fn coupling_step_loops(h: u64, m: u64) -> u64 {
    2 * mlp_forward_loops(h, m) + 8
}

/// One invocation of `coupling_backward`: s, t and s again forward, t and s backward, the
/// block's load and store loops.
pub fn coupling_backward_loops(h: u64, m: u64) -> u64 {
    3 * mlp_forward_loops(h, m) + 2 * mlp_backward_loops(h, m) + 8
}

/// One invocation of `grad_reduce::reduce_hidden` over `rows` rows (its tile's load and store
/// loops, and four per row for the tile's deltas and activations); `reduce` runs one per row.
pub fn reduce_loops(rows: u64) -> u64 {
    40 + 5 * rows
}

/// The most rows one weight reduction may sum within a loop budget.
pub fn reduce_rows_within(budget: u64) -> u64 {
    (budget.saturating_sub(40) / 5).max(1)
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
}
