// The observables of the Ising spins from configurations x, one workgroup per sample: the
// improved uniform structure factor ((sum t)^2 - sum t^2) / N^2 + 1/N and energy per site
// -(1/N) sum over bonds t_i t_j with t = tanh x, and |m| of spins drawn given x (s_i = +1 where
// the site's uniform is below (1 + t_i) / 2). Sums over sites are fixed-order tree reductions.
// CPU twin: `measure` in src/sample/observables.rs.

override WG: u32 = 64u; // a power of two

struct Params {
    batch: u32,
    l: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// One raw Philox output per site, turned into a uniform as rng.wgsl does.
@group(0) @binding(2) var<storage, read> bits: array<u32>;
// [batch, 3]: structure factor, energy per site, |m|.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn t_at(i: u32) -> f32 {
    return safe_tanh(x[i]);
}

@compute @workgroup_size(WG)
fn measure(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let s = workgroup_index(wid, nwg);
    let l = p.l;
    let n = l * l;
    let base = s * n;
    var acc = vec4<f32>(0.0);
    if s < p.batch {
        for (var i = lid.x; i < n; i += WG) {
            let r = i / l;
            let c = i % l;
            let t = t_at(base + i);
            let bonds = t * (t_at(base + r * l + (c + 1u) % l) + t_at(base + ((r + 1u) % l) * l + c));
            let u = uniform01(bits[base + i]);
            let spin = select(-1.0, 1.0, u < 0.5 * (1.0 + t));
            acc += vec4<f32>(t, t * t, bonds, spin);
        }
    }
    let a = workgroup_sum(lid.x, acc);
    if lid.x == 0u && s < p.batch {
        let nf = f32(n);
        out[3u * s] = (a.x * a.x - a.y) / (nf * nf) + 1.0 / nf;
        out[3u * s + 1u] = -a.z / nf;
        out[3u * s + 2u] = abs(a.w) / nf;
    }
}
