// One separable Hartley pass (cas = cos + sin) over each sample's L x L field, along x (axis 0:
// within each row) or y (axis 1: within each column), optionally scaled by 1 / (N lambda) of A.
// Four passes give A^{-1} x in O(N L) per sample (target_log_prob reads the result).
//
// Each invocation transforms one line (a row or a column) of four samples, one per vec4 lane,
// into T consecutive outputs of that line: it walks the line's L inputs once, and every cas
// value it loads feeds four multiply-adds per output, where one output per invocation loaded an
// input and a cas value for each multiply-add (on lavapipe each such load is a per-lane gather;
// docs/BENCHMARKS.md). Every output is the same sum in the same order (inputs ascending), so
// the bits do not depend on the shape. The registry puts `const T` (min(L, 16)) in front, so the
// accumulators are registers. CPU twin: src/reference/target.rs.

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
    let id = linear_id(gid, nwg);
    let l = p.l;
    let n = l * l;
    let tiles = (l + T - 1u) / T;
    let quads = (p.batch + 3u) / 4u;
    if id >= quads * l * tiles {
        return;
    }
    let first = (id % tiles) * T;
    let line = (id / tiles) % l;
    let quad = id / (tiles * l);
    // Site of element k of the line: line * l + k along a row, k * l + line along a column.
    let line_base = select(line, line * l, p.axis == 0u);
    let along = select(l, 1u, p.axis == 0u);
    // Lanes past the batch repeat its last sample and store nothing.
    var base: array<u32, 4>;
    for (var r = 0u; r < 4u; r++) {
        base[r] = min(4u * quad + r, p.batch - 1u) * n + line_base;
    }
    var acc: array<vec4<f32>, T>;
    for (var k = 0u; k < l; k++) {
        let at = k * along;
        let v = vec4<f32>(src[base[0] + at], src[base[1] + at], src[base[2] + at], src[base[3] + at]);
        for (var t = 0u; t < T; t++) {
            // Outputs past the line's end (a last tile when T does not divide L) compute a
            // repeat of its last one and store nothing.
            acc[t] += v * cas[min(first + t, l - 1u) * l + k];
        }
    }
    for (var t = 0u; t < T; t++) {
        let o = first + t;
        if o < l {
            var y = acc[t];
            if p.scaled == 1u {
                y *= inv_eig[line_base + o * along];
            }
            for (var r = 0u; r < 4u; r++) {
                if 4u * quad + r < p.batch {
                    dst[base[r] + o * along] = y[r];
                }
            }
        }
    }
}
