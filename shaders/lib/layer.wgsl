// Shared by the per-layer flow stages (flow_coupling, flow_backward): the layer, the batch and,
// for the backward pass, the coupling step and row chunk. Mirrors `LayerUniform` in
// src/flow/pass.rs. Each stage binds the `blocks` and `masks` tables its helpers read.

struct Layer {
    batch: u32,
    n_sites: u32,
    n_blocks: u32,
    // First block of the layer in the concatenated block table.
    block_offset: u32,
    mask_offset: u32,
    couplings: u32,
    hidden: u32,
    mlp_layers: u32,
    // First row of the layer in the saved-steps buffer.
    row_offset: u32,
    // Forward: log-det partial stride, and whether to save the coupling steps' inputs.
    ld_stride: u32,
    save_steps: u32,
    // The group's first coupling step; backward: the pass's direction (1: generation) and the
    // row chunk.
    k: u32,
    forward: u32,
    chunk_start: u32,
    chunk_rows: u32,
    // Floats per row factor in the backward's factor buffer (0: no parameter gradients).
    row_stride: u32,
    // Backward with accumulated gradients: groups of four rows per invocation.
    quads: u32,
    // Coupling steps this dispatch applies, from step k (a group, src/flow/pass.rs).
    step_count: u32,
}

@group(0) @binding(0) var<uniform> lay: Layer;

// Step i of the dispatch's group, in the order the pass applies them (src/flow/pass.rs,
// `step_groups`): ascending or descending.
fn group_step(i: u32, ascending: bool) -> u32 {
    return select(lay.k + lay.step_count - 1u - i, lay.k + i, ascending);
}

// Site of element j of block row `row` (sample-major over the layer's blocks), from the stage's
// `blocks` table.
fn block_site(row: u32, j: u32) -> u32 {
    let sample = row / lay.n_blocks;
    let blk = row % lay.n_blocks;
    return sample * lay.n_sites + blocks[(lay.block_offset + blk) * 4u + j];
}

// Coupling step k's mask, from the stage's `masks`: the block elements it updates (u0, u1) and
// those it conditions on (k0, k1), packed as u0 | u1 << 2 | k0 << 4 | k1 << 6
// (src/flow/params.rs).
struct Mask {
    u0: u32,
    u1: u32,
    k0: u32,
    k1: u32,
}

fn step_mask(k: u32) -> Mask {
    let m = masks[lay.mask_offset + k];
    return Mask(m & 3u, (m >> 2u) & 3u, (m >> 4u) & 3u, (m >> 6u) & 3u);
}

// Offset of step k's weights within the group's binding (lib/weights.wgsl).
fn step_base(k: u32) -> u32 {
    return (k - lay.k) * SS;
}

// Element i of a block's four values (four rows each), by selects: an array indexed by a value
// the compiler cannot see lives in scratch memory on lavapipe (see lib/mlp.wgsl).
fn pick(v: array<vec4<f32>, 4>, i: u32) -> vec4<f32> {
    return select(select(v[0], v[1], i == 1u), select(v[2], v[3], i == 3u), i >= 2u);
}

// The four values with element i replaced by x.
fn place(v: array<vec4<f32>, 4>, i: u32, x: vec4<f32>) -> array<vec4<f32>, 4> {
    var w = v;
    for (var j = 0u; j < 4u; j++) {
        w[j] = select(w[j], x, j == i);
    }
    return w;
}
