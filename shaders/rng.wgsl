// Device random numbers: Philox4x32-10 (Salmon et al., SC'11) and Box-Muller normals.
// Counter = (block, stream, step_lo, step_hi), key = seed: every value is a pure function of
// (seed, stream, step, index), independent of the dispatch shape. CPU twin: src/reference/rng.rs.

override WG: u32 = 64u;

struct Params {
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    step_lo: u32,
    step_hi: u32,
    n: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> bits: array<u32>;
@group(0) @binding(2) var<storage, read_write> normals: array<f32>;

// (hi, lo) of the 64-bit product a * b, from 16-bit halves (WGSL has no 64-bit integers).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let ll = a0 * b0;
    let lh = a0 * b1;
    let hl = a1 * b0;
    let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
    let hi = a1 * b1 + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox(block: u32) -> vec4<u32> {
    var c = vec4<u32>(block, p.stream, p.step_lo, p.step_hi);
    var k = vec2<u32>(p.seed_lo, p.seed_hi);
    for (var r = 0u; r < 10u; r++) {
        let m0 = mulhilo(0xD2511F53u, c.x);
        let m1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(m1.x ^ c.y ^ k.x, m1.y, m0.x ^ c.w ^ k.y, m0.y);
        k += vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

fn box_muller(a: u32, b: u32) -> vec2<f32> {
    let r = sqrt(-2.0 * log(uniform01(a)));
    let theta = 6.283185307179586 * uniform01(b);
    return vec2<f32>(r * cos(theta), r * sin(theta));
}

// Raw 32-bit outputs, four per counter block (for bitwise tests against the twin).
@compute @workgroup_size(WG)
fn fill_bits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let block = linear_id(gid, nwg);
    if block * 4u >= p.n {
        return;
    }
    let r = philox(block);
    for (var j = 0u; j < 4u; j++) {
        if block * 4u + j < p.n {
            bits[block * 4u + j] = r[j];
        }
    }
}

// Standard normals, four per counter block.
@compute @workgroup_size(WG)
fn fill_normal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let block = linear_id(gid, nwg);
    if block * 4u >= p.n {
        return;
    }
    let r = philox(block);
    let z = vec4<f32>(box_muller(r.x, r.y), box_muller(r.z, r.w));
    for (var j = 0u; j < 4u; j++) {
        if block * 4u + j < p.n {
            normals[block * 4u + j] = z[j];
        }
    }
}
