// Shared by the flow stages: the weights of the coupling steps a dispatch applies (a group of
// consecutive steps of one layer), as `wt(i)` with i counted from the group's first parameter;
// step k of the group starts SS floats after step k - 1 (`step_base` in layer.wgsl), and within
// a step the layout is [s-MLP | scale | t-MLP] (src/flow/params.rs). flow_pack.wgsl copies each
// step to an offset the adapter can bind, and every dispatch binds its group at binding 2: as a
// uniform, a window of UB vec4s from the group's first step (a size fixed per adapter, so that
// flows differing only in their number of couplings share pipelines). A step that fits the adapter's uniform binding limit is bound as a
// uniform (UW = 1): on lavapipe a uniform load at the same address in every invocation is one
// load broadcast to all of them, where a storage load inside any branch or loop is a gather per
// invocation (1.6-2.6x slower MLPs, docs/BENCHMARKS.md); on GPUs uniforms are the broadcast path
// too. Larger steps are bound as storage (UW = 0). src/flow/weights.rs chooses.

// Floats of one coupling step: two MLPs (mlp_size in mlp_layout.wgsl) and the s-MLP's scale.
const STEP_FLOATS: u32 = 2u * (5u * H + 2u + (M - 1u) * (H * H + H)) + 2u;

#if UW
@group(0) @binding(2) var<uniform> wts: array<vec4<f32>, UB>;

fn wt(i: u32) -> f32 {
    return wts[i / 4u][i % 4u];
}
#else
@group(0) @binding(2) var<storage, read> wts: array<f32>;

fn wt(i: u32) -> f32 {
    return wts[i];
}
#endif
