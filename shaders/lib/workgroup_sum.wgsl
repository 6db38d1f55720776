// Shared by the stages that sum over a workgroup: a fixed-order tree over the invocations (no
// float atomics), so a sum's bits never depend on timing. Four lanes, so a stage can sum up to
// four values at once in one tree; lanes are independent, so summing one value in lane x gives
// the same bits as a scalar tree. Needs the stage's `override WG`, a power of two; call it in
// uniform control flow (every invocation of the workgroup).
var<workgroup> red: array<vec4<f32>, WG>;

// The workgroup's sum of `v`, returned to every invocation.
fn workgroup_sum(lid: u32, v: vec4<f32>) -> vec4<f32> {
    red[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            red[lid] += red[lid + stride];
        }
        workgroupBarrier();
    }
    let total = red[0];
    // Before `red` is written again (a stage that sums twice).
    workgroupBarrier();
    return total;
}
