// Shared by the flow stages: the s and t MLPs of a Real NVP coupling step. The including stage
// declares `params`, the flat parameter buffer; layout helpers come from mlp_layout.wgsl.

// Hidden activations of the last mlp_forward, hidden layer l at [l * h, (l + 1) * h).
var<private> acts: array<f32, MAX_HIDDEN * MAX_MLP_LAYERS>;

fn elu(x: f32) -> f32 {
    return select(exp(x) - 1.0, x, x > 0.0);
}

// ELU'(x) from the activation a = ELU(x): 1 for x > 0, exp(x) = a + 1 otherwise.
fn elu_grad(a: f32) -> f32 {
    return select(a + 1.0, 1.0, a > 0.0);
}

// The MLP at `base` on (x0, x1), linear output; leaves the hidden activations in `acts`.
fn mlp_forward(base: u32, h: u32, m: u32, x0: f32, x1: f32) -> vec2<f32> {
    for (var j = 0u; j < h; j++) {
        acts[j] = elu(params[base + 2u * j] * x0 + params[base + 2u * j + 1u] * x1 + params[base + 2u * h + j]);
    }
    var off = base + 3u * h;
    for (var l = 1u; l < m; l++) {
        for (var j = 0u; j < h; j++) {
            var acc = params[off + h * h + j];
            for (var i = 0u; i < h; i++) {
                acc += params[off + j * h + i] * acts[(l - 1u) * h + i];
            }
            acts[l * h + j] = elu(acc);
        }
        off += h * h + h;
    }
    let last = (m - 1u) * h;
    var o = vec2<f32>(params[off + 2u * h], params[off + 2u * h + 1u]);
    for (var i = 0u; i < h; i++) {
        o += vec2<f32>(params[off + i], params[off + h + i]) * acts[last + i];
    }
    return o;
}

// tanh of the s-MLP's output, clamped so every driver's tanh stays finite.
fn s_tanh(o: vec2<f32>) -> vec2<f32> {
    return tanh(clamp(o, vec2<f32>(-20.0), vec2<f32>(20.0)));
}

// The per-output scale of the s-MLP at `base`.
fn s_scale(base: u32, h: u32, m: u32) -> vec2<f32> {
    let off = base + mlp_size(h, m);
    return vec2<f32>(params[off], params[off + 1u]);
}
