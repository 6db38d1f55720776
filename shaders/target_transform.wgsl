// One separable Hartley pass (cas = cos + sin) over each sample's L x L field, along x (axis 0)
// or y (axis 1), optionally scaled by 1 / (N lambda) of A. Three passes and the row pass fused
// into target_log_prob give A^{-1} x in O(N L) per sample. CPU twin: src/reference/target.rs.

override WG: u32 = 64u;

struct Params {
    batch: u32,
    l: u32,
    axis: u32,
    scaled: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> cas: array<f32>;
@group(0) @binding(3) var<storage, read> inv_eig: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG)
fn hartley(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let l = p.l;
    let n = l * l;
    if i >= p.batch * n {
        return;
    }
    let s = i / n;
    let rc = i % n;
    let r = rc / l;
    let c = rc % l;
    var acc = 0.0;
    if p.axis == 0u {
        let base = s * n + r * l;
        for (var j = 0u; j < l; j++) {
            acc += src[base + j] * cas[c * l + j];
        }
    } else {
        let base = s * n + c;
        for (var j = 0u; j < l; j++) {
            acc += src[base + j * l] * cas[r * l + j];
        }
    }
    if p.scaled == 1u {
        acc *= inv_eig[rc];
    }
    dst[i] = acc;
}
