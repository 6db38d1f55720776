// One layer of the flow: every (sample, block) invocation runs the layer's shared Real NVP
// bijector (Appendix B) on its block's four values, in place, in the generation direction
// (`generate`: x_upd = z_upd * exp(s(z_keep)) + t(z_keep)) or inverted (`infer`). Each
// invocation adds its log|det| to its own slot of `ld_partial`, which flow_log_q sums in a fixed
// order. Parameter layout: src/flow/params.rs. CPU twin: src/reference/flow.rs.

override WG: u32 = 64u;
// Hidden activations live in private arrays; the host refuses --hidden above this.
const MAX_HIDDEN: u32 = 128u;

struct Layer {
    batch: u32,
    n_sites: u32,
    n_blocks: u32,
    block_offset: u32,
    param_offset: u32,
    mask_offset: u32,
    couplings: u32,
    hidden: u32,
    mlp_layers: u32,
    ld_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> lay: Layer;
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read> blocks: array<u32>;
@group(0) @binding(4) var<storage, read> masks: array<u32>;
@group(0) @binding(5) var<storage, read_write> ld_partial: array<f32>;

fn elu(x: f32) -> f32 {
    return select(exp(x) - 1.0, x, x > 0.0);
}

fn mlp_size() -> u32 {
    let h = lay.hidden;
    return 5u * h + 2u + (lay.mlp_layers - 1u) * (h * h + h);
}

// The MLP at `base` on (x0, x1); the s-MLP's output is scale * tanh(.).
fn mlp(base: u32, x0: f32, x1: f32, is_s: bool) -> vec2<f32> {
    let h = lay.hidden;
    var a: array<f32, MAX_HIDDEN>;
    var b: array<f32, MAX_HIDDEN>;
    for (var j = 0u; j < h; j++) {
        a[j] = elu(params[base + 2u * j] * x0 + params[base + 2u * j + 1u] * x1 + params[base + 2u * h + j]);
    }
    var off = base + 3u * h;
    for (var m = 1u; m < lay.mlp_layers; m++) {
        for (var j = 0u; j < h; j++) {
            var acc = params[off + h * h + j];
            for (var i = 0u; i < h; i++) {
                acc += params[off + j * h + i] * a[i];
            }
            b[j] = elu(acc);
        }
        for (var j = 0u; j < h; j++) {
            a[j] = b[j];
        }
        off += h * h + h;
    }
    var o = vec2<f32>(params[off + 2u * h], params[off + 2u * h + 1u]);
    for (var i = 0u; i < h; i++) {
        o += vec2<f32>(params[off + i], params[off + h + i]) * a[i];
    }
    if is_s {
        let scale = vec2<f32>(params[off + 2u * h + 2u], params[off + 2u * h + 3u]);
        o = scale * tanh(clamp(o, vec2<f32>(-20.0), vec2<f32>(20.0)));
    }
    return o;
}

fn run(gid: vec3<u32>, nwg: vec3<u32>, forward: bool) {
    let idx = gid.x + gid.y * nwg.x * WG;
    let sample = idx / lay.n_blocks;
    let blk = idx % lay.n_blocks;
    if sample >= lay.batch {
        return;
    }
    var site: array<u32, 4>;
    var v: array<f32, 4>;
    for (var j = 0u; j < 4u; j++) {
        site[j] = sample * lay.n_sites + blocks[(lay.block_offset + blk) * 4u + j];
        v[j] = state[site[j]];
    }
    let ms = mlp_size();
    let kk = lay.couplings;
    var ld = 0.0;
    for (var i = 0u; i < kk; i++) {
        let k = select(kk - 1u - i, i, forward);
        let m = masks[lay.mask_offset + k];
        let u0 = m & 3u;
        let u1 = (m >> 2u) & 3u;
        let k0 = (m >> 4u) & 3u;
        let k1 = (m >> 6u) & 3u;
        let base = lay.param_offset + k * (2u * ms + 2u);
        let s = mlp(base, v[k0], v[k1], true);
        let t = mlp(base + ms + 2u, v[k0], v[k1], false);
        if forward {
            v[u0] = v[u0] * exp(s.x) + t.x;
            v[u1] = v[u1] * exp(s.y) + t.y;
            ld += s.x + s.y;
        } else {
            v[u0] = (v[u0] - t.x) * exp(-s.x);
            v[u1] = (v[u1] - t.y) * exp(-s.y);
            ld -= s.x + s.y;
        }
    }
    for (var j = 0u; j < 4u; j++) {
        state[site[j]] = v[j];
    }
    ld_partial[sample * lay.ld_stride + blk] += ld;
}

@compute @workgroup_size(WG)
fn generate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    run(gid, nwg, true);
}

@compute @workgroup_size(WG)
fn infer(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    run(gid, nwg, false);
}
