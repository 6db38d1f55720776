//! The WGSL of each kernel shape `mlp-shapes` times (main.rs says what each is). Also compiled
//! into neuralrg-gpu's tests/shaders.rs, which validates every shape with naga, since CI builds
//! neuralrg-gpu and not this program. `rows4` is the flow kernels' own MLP library
//! (shaders/lib), included here as the shader registry assembles it, so it cannot drift from
//! the kernels it stands for.

#[path = "../../../src/gpu/wgsl_if.rs"]
mod wgsl_if;

/// Rows per tile of the cooperative shapes.
pub const TILE_ROWS: usize = 16;
/// Tiles per workgroup of the cooperative shapes.
pub const TILES: usize = 4;
/// Invocations per workgroup of the per-row shapes.
pub const WG: usize = 64;

/// Parameters of one MLP: W0 [H x 2], b0 [H], (W [H x H], b [H]) x (M - 1), Wout [2 x H], bout [2].
pub fn n_params(h: usize, m: usize) -> usize {
    3 * h + (m - 1) * (h * h + h) + 2 * h + 2
}

/// Multiply-adds per row.
pub fn macs(h: usize, m: usize) -> usize {
    2 * h + (m - 1) * h * h + 2 * h
}

/// The weights binding and its accessor `w(i)`.
fn weights(h: usize, m: usize, uniform: bool) -> String {
    if uniform {
        let n = n_params(h, m).div_ceil(4);
        format!(
            "@group(0) @binding(2) var<uniform> W: array<vec4<f32>, {n}>;\n\
             fn w(i: u32) -> f32 {{ return W[i / 4u][i % 4u]; }}"
        )
    } else {
        "@group(0) @binding(2) var<storage, read> W: array<f32>;\n\
         fn w(i: u32) -> f32 { return W[i]; }"
            .to_string()
    }
}

// The bindings of every shape; the weights are binding 2, as in the flow kernels
// (lib/weights.wgsl), and `lay.hidden` is the uniform width lib/mlp.wgsl reads.
const COMMON: &str = "
struct Sizes { rows: u32, hidden: u32, m: u32, _p: u32 }
@group(0) @binding(0) var<uniform> lay: Sizes;
@group(0) @binding(1) var<storage, read> x: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec2<f32>>;
";

/// Hidden units per block of a wide layer, as neuralrg-gpu's `flow::cost::hidden_block` chooses
/// (tests/shaders.rs holds the two equal).
pub fn hidden_block(h: usize) -> usize {
    if h <= 16 {
        1
    } else {
        8
    }
}

/// The flow kernels' shape: their MLP library, specialised as the registry specialises the
/// coupling stage (weights as a uniform block, UW = 1), applied to four rows per invocation.
fn rows4(h: usize, m: usize) -> String {
    let lib = [
        include_str!("../../../shaders/lib/mlp_layout.wgsl"),
        include_str!("../../../shaders/lib/weights.wgsl"),
        include_str!("../../../shaders/lib/mlp.wgsl"),
    ]
    .join("\n");
    let sizes = [
        ("H", h),
        ("M", m),
        ("HB", hidden_block(h)),
        ("UW", 1),
        ("UB", n_params(h, m).div_ceil(4)),
    ];
    let preamble: String = sizes
        .iter()
        .map(|(name, v)| format!("const {name}: u32 = {v}u;\n"))
        .collect();
    let lib = wgsl_if::select_lines(&lib, &|name| {
        sizes.iter().find(|(n, _)| *n == name).map(|s| s.1 != 0)
    });
    format!(
        "{preamble}{COMMON}{lib}
@compute @workgroup_size({WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
  let r0 = (gid.x + gid.y * nwg.x * {WG}u) * 4u;
  if r0 >= lay.rows {{ return; }}
  var xa: vec4<f32>;
  var xb: vec4<f32>;
  for (var k = 0u; k < 4u; k++) {{ let v = x[min(r0 + k, lay.rows - 1u)]; xa[k] = v.x; xb[k] = v.y; }}
  let o = mlp_forward(0u, 0u, xa, xb);
  for (var k = 0u; k < 4u; k++) {{ if r0 + k < lay.rows {{ y[r0 + k] = vec2<f32>(o.x[k], o.y[k]); }} }}
}}
"
    )
}

/// One row per invocation: the flow kernels' loops (lib/mlp.wgsl) on scalars.
fn rows1(h: usize, m: usize) -> String {
    let hb = hidden_block(h);
    format!(
        "const H: u32 = {h}u;
const M: u32 = {m}u;
const HB: u32 = {hb}u;
{COMMON}
{weights}
var<private> a: array<array<f32, H>, M>;
fn elu(v: f32) -> f32 {{ return select(exp(v) - 1.0, v, v > 0.0); }}
// Narrow layers loop to the constant H (unrolled into registers); wide ones to the same number
// from the uniform, in blocks of HB units.
fn nh() -> u32 {{ if H <= 16u {{ return H; }} return min(lay.hidden, H); }}
fn units(off: u32, l: u32, j0: u32, n: u32) {{
  var acc: array<f32, HB>;
  for (var jj = 0u; jj < n; jj++) {{ acc[jj] = w(off + H * H + j0 + jj); }}
  for (var i = 0u; i < nh(); i++) {{
    let v = a[l - 1u][i];
    for (var jj = 0u; jj < n; jj++) {{ acc[jj] += w(off + (j0 + jj) * H + i) * v; }}
  }}
  for (var jj = 0u; jj < n; jj++) {{ a[l][j0 + jj] = elu(acc[jj]); }}
}}
fn layer(l: u32) {{
  let off = 3u * H + (l - 1u) * (H * H + H);
  let full = nh() / HB * HB;
  for (var jb = 0u; jb < full; jb += HB) {{ units(off, l, jb, HB); }}
  if H % HB != 0u {{ units(off, l, full, H % HB); }}
}}
@compute @workgroup_size({WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
  let r0 = gid.x + gid.y * nwg.x * {WG}u;
  if r0 >= lay.rows {{ return; }}
  let xa = x[r0].x;
  let xb = x[r0].y;
  for (var j = 0u; j < nh(); j++) {{ a[0][j] = elu(w(2u * j) * xa + w(2u * j + 1u) * xb + w(2u * H + j)); }}
  if M > 1u {{ layer(1u); }}
  if M > 2u {{ layer(2u); }}
  if M > 3u {{ layer(3u); }}
  let off = 3u * H + (M - 1u) * (H * H + H);
  var o0 = w(off + 2u * H);
  var o1 = w(off + 2u * H + 1u);
  for (var i = 0u; i < nh(); i++) {{ o0 += w(off + i) * a[M - 1u][i]; o1 += w(off + H + i) * a[M - 1u][i]; }}
  y[r0] = vec2<f32>(o0, o1);
}}
",
        weights = weights(h, m, true),
    )
}

/// The workgroup-cooperative shape; `four`: a hidden layer reads the activations four at a time
/// (H a multiple of 4).
fn cooperative(h: usize, m: usize, uniform: bool, four: bool) -> String {
    let (acts, hidden) = if four {
        (
            "var<workgroup> acts: array<array<vec4<f32>, H / 4u>, R>;
fn set_act(r: u32, j: u32, v: f32) { acts[r][j / 4u][j % 4u] = v; }
fn act(r: u32, i: u32) -> f32 { return acts[r][i / 4u][i % 4u]; }",
            "for (var i = 0u; i < H; i += 4u) {
        let c = off + j * H + i;
        let wv = vec4<f32>(w(c), w(c + 1u), w(c + 2u), w(c + 3u));
        for (var r = 0u; r < R; r++) {
          let a = acts[r][i / 4u];
          acc[r] += wv.x * a.x; acc[r] += wv.y * a.y; acc[r] += wv.z * a.z; acc[r] += wv.w * a.w;
        }
      }",
        )
    } else {
        (
            "var<workgroup> acts: array<array<f32, H>, R>;
fn set_act(r: u32, j: u32, v: f32) { acts[r][j] = v; }
fn act(r: u32, i: u32) -> f32 { return acts[r][i]; }",
            "for (var i = 0u; i < H; i++) {
        let wi = w(off + j * H + i);
        for (var r = 0u; r < R; r++) { acc[r] += wi * act(r, i); }
      }",
        )
    };
    format!(
        "const H: u32 = {h}u;
const M: u32 = {m}u;
const R: u32 = {TILE_ROWS}u;
const TILES: u32 = {TILES}u;
{COMMON}
{weights}
{acts}
var<workgroup> xin: array<vec2<f32>, R>;
fn elu(v: f32) -> f32 {{ return select(exp(v) - 1.0, v, v > 0.0); }}
@compute @workgroup_size(H)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {{
  let j = lid.x;
  let base = (wid.x + wid.y * nwg.x) * R * TILES;
  for (var tile = 0u; tile < TILES; tile++) {{
    let r0 = base + tile * R;
    for (var k = j; k < R; k += H) {{ xin[k] = x[min(r0 + k, lay.rows - 1u)]; }}
    workgroupBarrier();
    let w0 = w(2u * j); let w1 = w(2u * j + 1u); let b0 = w(2u * H + j);
    for (var r = 0u; r < R; r++) {{ set_act(r, j, elu(w0 * xin[r].x + w1 * xin[r].y + b0)); }}
    workgroupBarrier();
    for (var l = 1u; l < M; l++) {{
      let off = 3u * H + (l - 1u) * (H * H + H);
      var acc: array<f32, R>;
      let b = w(off + H * H + j);
      for (var r = 0u; r < R; r++) {{ acc[r] = b; }}
      {hidden}
      workgroupBarrier();
      for (var r = 0u; r < R; r++) {{ set_act(r, j, elu(acc[r])); }}
      workgroupBarrier();
    }}
    let off = 3u * H + (M - 1u) * (H * H + H);
    for (var k = j; k < R; k += H) {{
      var o = vec2<f32>(w(off + 2u * H), w(off + 2u * H + 1u));
      for (var i = 0u; i < H; i++) {{ o += vec2<f32>(w(off + i), w(off + H + i)) * act(k, i); }}
      if r0 + k < lay.rows {{ y[r0 + k] = o; }}
    }}
    workgroupBarrier();
  }}
}}
",
        weights = weights(h, m, uniform),
    )
}

/// A shape: its name, its WGSL (or why it does not apply to this MLP), whether it reads the
/// weights from the uniform block (else from storage), and the rows one workgroup carries.
pub struct Shape {
    pub name: &'static str,
    pub source: Result<String, &'static str>,
    pub uniform: bool,
    pub rows_per_group: usize,
}

/// Every shape for the MLP 2 -> `h` x `m` -> 2, the flow kernels' first.
pub fn shapes(h: usize, m: usize) -> Vec<Shape> {
    let coop = TILE_ROWS * TILES;
    let shape = |name, source, uniform, rows_per_group| Shape {
        name,
        source,
        uniform,
        rows_per_group,
    };
    let vec4 = if h.is_multiple_of(4) {
        Ok(cooperative(h, m, false, true))
    } else {
        Err("H is not a multiple of 4")
    };
    vec![
        shape("rows4", Ok(rows4(h, m)), true, 4 * WG),
        shape("rows1", Ok(rows1(h, m)), true, WG),
        shape(
            "coop-uniform",
            Ok(cooperative(h, m, true, false)),
            true,
            coop,
        ),
        shape(
            "coop-storage",
            Ok(cooperative(h, m, false, false)),
            false,
            coop,
        ),
        shape("coop-vec4", vec4, false, coop),
    ]
}
