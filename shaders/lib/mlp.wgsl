// Shared by the flow stages: the s and t MLPs of a Real NVP coupling step, for four rows at once,
// one per vec4 lane, so every weight load (the same address in every invocation of a dispatch: a
// broadcast) feeds four multiply-adds. Weights come from `wt` (lib/weights.wgsl), offsets
// counted from the coupling step's first parameter; the registry puts `const H` (hidden width)
// and `const M` (hidden layers) in front, so the loops have fixed trip counts and the
// activations their exact size. Layout helpers come from mlp_layout.wgsl.

// Loop bound over hidden units. Narrow MLPs loop to the constant H, which the compiler unrolls
// into straight-line code on registers; wide ones loop to the same number read from the
// uniform, since fully unrolled loops took lavapipe minutes to compile (hidden 128: 8 min).
const UNROLL_MAX: u32 = 16u;

fn n_hidden() -> u32 {
    if H <= UNROLL_MAX {
        return H;
    }
    // Never past the arrays' size H: this stage is compiled without index clamps
    // (`Shader::trusted_indices`); the host sets lay.hidden = H.
    return min(lay.hidden, H);
}

// Hidden activations, [slot][layer][unit]: mlp_forward fills the slot it is given, so the
// backward keeps the s-MLP's in one and the t-MLP's in the other rather than copying them
// aside (a wide MLP's activations are in scratch memory, where a copy is a gather and a scatter
// per element). Every index into it must be a constant after the compiler unrolls the H-loops
// (an exact-size inner array lets it see that they walk the whole array): one index it cannot
// resolve, and lavapipe keeps the whole array in scratch memory, where every access is a gather
// or scatter per invocation. A slot is a constant at every call.
var<private> acts: array<array<array<vec4<f32>, H>, M>, 2>;

struct Pair {
    x: vec4<f32>,
    y: vec4<f32>,
}

fn elu(x: vec4<f32>) -> vec4<f32> {
    return select(exp(x) - 1.0, x, x > vec4<f32>(0.0));
}

// ELU'(x) from the activation a = ELU(x): 1 for x > 0, exp(x) = a + 1 otherwise.
fn elu_grad(a: vec4<f32>) -> vec4<f32> {
    return select(a + 1.0, vec4<f32>(1.0), a > vec4<f32>(0.0));
}

// Hidden layer l >= 1 of the MLP at `base`, from layer l - 1's activations, in blocks of HB
// units (one when H <= UNROLL_MAX, where every loop unrolls and the activations stay in
// registers; else 8, and a last block of H % HB: flow::cost::hidden_block). A block's sums are
// accumulators indexed by constants (its loops are short and unroll), and each input activation
// is read once per block, where a wide layer's activations, indexed by loop variables, are a
// gather per invocation on lavapipe: once per block, not once per weight. Each unit's sum runs
// over the inputs in order, as one unit at a time would.
fn hidden_forward(slot: u32, base: u32, l: u32) {
    let off = base + 3u * H + (l - 1u) * (H * H + H);
    // Whole blocks: the host sets lay.hidden = H, so n_hidden() - full = H % HB.
    let full = n_hidden() / HB * HB;
    for (var jb = 0u; jb < full; jb += HB) {
        hidden_units(slot, off, l, jb, HB);
    }
    if H % HB != 0u {
        hidden_units(slot, off, l, full, H % HB);
    }
}

// Units j0 .. j0 + n - 1 (n <= HB, a constant at every call) of hidden layer l.
fn hidden_units(slot: u32, off: u32, l: u32, j0: u32, n: u32) {
    var acc: array<vec4<f32>, HB>;
    for (var jj = 0u; jj < n; jj++) {
        acc[jj] = vec4<f32>(wt(off + H * H + j0 + jj));
    }
    for (var i = 0u; i < n_hidden(); i++) {
        let a = acts[slot][l - 1u][i];
        for (var jj = 0u; jj < n; jj++) {
            acc[jj] += wt(off + (j0 + jj) * H + i) * a;
        }
    }
    for (var jj = 0u; jj < n; jj++) {
        acts[slot][l][j0 + jj] = elu(acc[jj]);
    }
}

// The MLP at `base` on (x0, x1), linear output; leaves the hidden activations in `acts[slot]`.
fn mlp_forward(slot: u32, base: u32, x0: vec4<f32>, x1: vec4<f32>) -> Pair {
    let nh = n_hidden();
    for (var j = 0u; j < nh; j++) {
        acts[slot][0][j] = elu(wt(base + 2u * j) * x0 + wt(base + 2u * j + 1u) * x1 + wt(base + 2u * H + j));
    }
    // One call per layer with a constant index rather than a loop over layers: such a loop is
    // too big for the compiler to unroll, and its index would reach `acts`. The conditions are
    // constants, so the calls past M vanish (up to MAX_MLP_LAYERS, mlp_layout.wgsl).
    if M > 1u {
        hidden_forward(slot, base, 1u);
    }
    if M > 2u {
        hidden_forward(slot, base, 2u);
    }
    if M > 3u {
        hidden_forward(slot, base, 3u);
    }
    let off = base + mlp_out_offset(H, M);
    var o = Pair(vec4<f32>(wt(off + 2u * H)), vec4<f32>(wt(off + 2u * H + 1u)));
    for (var i = 0u; i < nh; i++) {
        let a = acts[slot][M - 1u][i];
        o.x += wt(off + i) * a;
        o.y += wt(off + H + i) * a;
    }
    return o;
}

// tanh, clamped so every driver's tanh stays finite (safe_tanh in lib/float.wgsl, on vec4).
fn s_tanh(o: vec4<f32>) -> vec4<f32> {
    return tanh(clamp(o, vec4<f32>(-20.0), vec4<f32>(20.0)));
}

// The per-output scale of the s-MLP at `base`.
fn s_scale(base: u32) -> vec2<f32> {
    let off = base + mlp_size(H, M);
    return vec2<f32>(wt(off), wt(off + 1u));
}
