// Shared by the stages whose dispatches may span a two-dimensional grid (over 65,535
// workgroups, `gpu::grid`): the invocation's flat index, row-major over the grid. Needs the
// stage's `override WG` (its workgroup size).
fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// The workgroup's flat index over such a grid, for the stages that give each sample (or chain)
// a workgroup.
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Uniform in (0, 1) from the top 23 bits of a random word, exactly representable in f32 and
// never 0 (so its logarithm is finite): every uniform the device draws (rng, hmc, observables).
fn uniform01(a: u32) -> f32 {
    return (f32(a >> 9u) + 0.5) * (1.0 / 8388608.0);
}
