//! What the flow's kernels cost: per invocation, counted from their loops (the number that
//! llvmpipe caps, see [`crate::gpu::context::LLVMPIPE_LOOP_LIMIT`]; each count follows the loop
//! structure of its WGSL function, every iteration of every loop counted once), and in flops
//! (the model `bench` reports achieved GFLOP/s against).

/// `mlp_forward` (shaders/lib/mlp.wgsl): the first layer, the hidden layers, the output.
pub fn mlp_forward_loops(h: u64, m: u64) -> u64 {
    2 * h + (m - 1) * layer_product_loops(h)
}

/// `mlp_backward` (shaders/flow_backward.wgsl): as the forward, and per hidden layer the loop
/// over its units that writes the row factors (or adds the gradients) and the product that
/// carries the deltas back.
pub fn mlp_backward_loops(h: u64, m: u64) -> u64 {
    2 * h + (m - 1) * (h + 1 + layer_product_loops(h))
}

/// A hidden layer's h x h product (`hidden_forward`, and the deltas' in `hidden_backward`): the
/// loop over blocks and, per block, the loop over inputs, each counted with one more iteration
/// per entry; the loops over a block's units unroll (a constant trip count of at most
/// [`WIDE_BLOCK`]). Narrow widths unroll whole and are counted as written. Measured on llvmpipe
/// with the loop-budget checks off: two forwards of hidden 127 and 128 with 4 layers were exact;
/// with blocks of one unit, which run as many iterations as unblocked loops, hidden 127 with 3
/// layers was wrong, as counted.
fn layer_product_loops(h: u64) -> u64 {
    let b = hidden_block(h as usize) as u64;
    let blocks = h.div_ceil(b);
    (h / b + 1) + blocks * (h + 1)
}

/// Widest MLP whose loops the flow kernels run to the constant width, which the compiler
/// unrolls (`UNROLL_MAX` in shaders/lib/mlp.wgsl); wider ones loop to a uniform.
pub const UNROLL_MAX: usize = 16;

/// Hidden units per block of the MLP kernels' hidden layers (`HB` in shaders/lib/mlp.wgsl): one
/// up to [`UNROLL_MAX`], else [`WIDE_BLOCK`], with a last block of the rest. In blocks of one, a
/// narrow layer's loops unroll whole and its activations stay in registers; as one block of all
/// H units (a loop of one trip around the units' loops) lavapipe kept them in scratch memory,
/// and the authors' network ran 5-7x slower (docs/BENCHMARKS.md).
pub fn hidden_block(h: usize) -> usize {
    if h <= UNROLL_MAX {
        1
    } else {
        WIDE_BLOCK
    }
}

/// Hidden units per block of a wide layer: each block's sums live in registers, and each input
/// activation, a gather from scratch memory on lavapipe, is read once per block; 8 beat 4 and 16
/// at hidden 64 (docs/BENCHMARKS.md).
const WIDE_BLOCK: usize = 8;

/// Loops over an invocation's four rows and their four values (loads, saves, stores).
const ROW_LOOPS: u64 = 64;

/// One invocation of `flow_coupling`: the s and t MLPs, and the rows' load and save loops.
pub fn coupling_step_loops(h: u64, m: u64) -> u64 {
    2 * mlp_forward_loops(h, m) + ROW_LOOPS
}

/// One invocation of `coupling_backward`: s and t forward, t and s backward, the rows' load and
/// store loops.
pub fn coupling_backward_loops(h: u64, m: u64) -> u64 {
    2 * mlp_forward_loops(h, m) + 2 * mlp_backward_loops(h, m) + ROW_LOOPS
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
        // Two MLP forwards of hidden 128 with 4 layers ran exactly (in blocks of 8 units), as
        // did hidden 127 with 4 layers (15 blocks of 8 and one of 7).
        assert!(2 * mlp_forward_loops(128, 4) <= 65_535);
        assert!(2 * mlp_forward_loops(127, 4) <= 65_535);
        // The widest backward, as docs/ARCHITECTURE.md quotes it.
        assert_eq!(coupling_backward_loops(128, 4), 26_834);
    }

    #[test]
    fn narrow_layers_are_blocks_of_one_unit() {
        assert_eq!((hidden_block(10), hidden_block(16)), (1, 1));
        assert_eq!(
            (hidden_block(17), hidden_block(127)),
            (WIDE_BLOCK, WIDE_BLOCK)
        );
    }

    #[test]
    fn unroll_width_matches_the_shader() {
        let src = include_str!("../../shaders/lib/mlp.wgsl");
        assert!(src.contains(&format!("const UNROLL_MAX: u32 = {UNROLL_MAX}u;")));
    }
}
