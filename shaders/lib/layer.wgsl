// Shared by the per-layer flow stages (flow_coupling, flow_backward): the layer, the batch and,
// for the backward pass, the coupling step and row chunk. Mirrors `LayerUniform` in
// src/flow/pass.rs.

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
    // Backward: the coupling step, its direction (1: generation), and the row chunk.
    k: u32,
    forward: u32,
    chunk_start: u32,
    chunk_rows: u32,
    // Floats per row factor in the backward's factor buffer (0: no parameter gradients).
    row_stride: u32,
    // Backward with accumulated gradients: groups of four rows per invocation.
    quads: u32,
}

@group(0) @binding(0) var<uniform> lay: Layer;
