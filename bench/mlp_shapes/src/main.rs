//! One coupling step's MLP (2 -> H x M -> 2, ELU, the parameter layout of neuralrg-gpu) applied
//! to ROWS independent rows in several GPU kernel shapes, timed side by side on one adapter, each
//! shape's output compared with the first's. It answers, in seconds, which shape an adapter
//! favours before a shape is built into the flow kernels (bench/README.md):
//!
//! - `rows4`: the flow kernels' shape (shaders/lib/mlp.wgsl): four rows per invocation in vec4
//!   lanes, weights from a uniform block read at the same address by every invocation, hidden
//!   layers unrolled up to H = 16 and in blocks of 8 units beyond;
//! - `rows1`: the same with one row per invocation (four times the invocations);
//! - `coop-uniform`, `coop-storage`: workgroup-cooperative, in the manner of tiny-cuda-nn's fully
//!   fused MLP: a workgroup of H invocations, one per hidden unit, carries tiles of R rows whose
//!   activations stay in workgroup memory between layers; each invocation reads its own unit's
//!   weights (from the uniform block, or from storage, where GPUs serve per-invocation addresses
//!   without serialising them);
//! - `coop-vec4`: the cooperative shape with storage weights, reading the activations four at a
//!   time (H a multiple of 4).
//!
//! Every shape sums each unit's inputs in the same order, so the outputs agree to the bit where
//! the compiler contracts the same multiply-adds.
//!
//! Usage: [ADAPTER=NAME] mlp-shapes [ROWS [H [M]]]   (defaults 262144 64 2)

use std::time::Instant;
use wgpu::util::DeviceExt;

/// Rows per tile of the cooperative shapes.
const TILE_ROWS: usize = 16;
/// Tiles per workgroup of the cooperative shapes.
const TILES: usize = 4;
/// Invocations per workgroup of the per-row shapes.
const WG: usize = 64;

/// Parameters of one MLP: W0 [H x 2], b0 [H], (W [H x H], b [H]) x (M - 1), Wout [2 x H], bout [2].
fn n_params(h: usize, m: usize) -> usize {
    3 * h + (m - 1) * (h * h + h) + 2 * h + 2
}

/// Multiply-adds per row.
fn macs(h: usize, m: usize) -> usize {
    2 * h + (m - 1) * h * h + 2 * h
}

/// The weights binding and its accessor `w(i)`.
fn weights(h: usize, m: usize, uniform: bool) -> String {
    if uniform {
        let n = n_params(h, m).div_ceil(4);
        format!(
            "@group(0) @binding(1) var<uniform> W: array<vec4<f32>, {n}>;\n\
             fn w(i: u32) -> f32 {{ return W[i / 4u][i % 4u]; }}"
        )
    } else {
        "@group(0) @binding(1) var<storage, read> W: array<f32>;\n\
         fn w(i: u32) -> f32 { return W[i]; }"
            .to_string()
    }
}

const COMMON: &str = "
struct P { rows: u32, h: u32, m: u32, _p: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(2) var<storage, read> x: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec2<f32>>;
";

/// The per-row shapes; `four`: four rows per invocation in vec4 lanes.
fn per_row(h: usize, m: usize, four: bool) -> String {
    let (t, n, load, store) = if four {
        (
            "vec4<f32>",
            4,
            "var xa: vec4<f32>; var xb: vec4<f32>;
  for (var k = 0u; k < 4u; k++) { let v = x[min(r0 + k, p.rows - 1u)]; xa[k] = v.x; xb[k] = v.y; }",
            "for (var k = 0u; k < 4u; k++) { if r0 + k < p.rows { y[r0 + k] = vec2<f32>(o0[k], o1[k]); } }",
        )
    } else {
        (
            "f32",
            1,
            "let xa = x[r0].x; let xb = x[r0].y;",
            "y[r0] = vec2<f32>(o0, o1);",
        )
    };
    let hb = if h <= 16 { 1 } else { 8 };
    format!(
        "const H: u32 = {h}u;
const M: u32 = {m}u;
const HB: u32 = {hb}u;
{COMMON}
{weights}
var<private> a: array<array<{t}, H>, M>;
fn elu(v: {t}) -> {t} {{ return select(exp(v) - 1.0, v, v > {t}(0.0)); }}
// Narrow layers loop to the constant H (unrolled into registers); wide ones to the same number
// from the uniform, in blocks of HB units.
fn nh() -> u32 {{ if H <= 16u {{ return H; }} return min(p.h, H); }}
fn units(off: u32, l: u32, j0: u32, n: u32) {{
  var acc: array<{t}, HB>;
  for (var jj = 0u; jj < n; jj++) {{ acc[jj] = {t}(w(off + H * H + j0 + jj)); }}
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
  let r0 = (gid.x + gid.y * nwg.x * {WG}u) * {n}u;
  if r0 >= p.rows {{ return; }}
  {load}
  for (var j = 0u; j < nh(); j++) {{ a[0][j] = elu(w(2u * j) * xa + w(2u * j + 1u) * xb + w(2u * H + j)); }}
  if M > 1u {{ layer(1u); }}
  if M > 2u {{ layer(2u); }}
  if M > 3u {{ layer(3u); }}
  let off = 3u * H + (M - 1u) * (H * H + H);
  var o0 = {t}(w(off + 2u * H));
  var o1 = {t}(w(off + 2u * H + 1u));
  for (var i = 0u; i < nh(); i++) {{ o0 += w(off + i) * a[M - 1u][i]; o1 += w(off + H + i) * a[M - 1u][i]; }}
  {store}
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
    for (var k = j; k < R; k += H) {{ xin[k] = x[min(r0 + k, p.rows - 1u)]; }}
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
      if r0 + k < p.rows {{ y[r0 + k] = o; }}
    }}
    workgroupBarrier();
  }}
}}
",
        weights = weights(h, m, uniform),
    )
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| {
            s.parse()
                .expect("usage: mlp-shapes [ROWS [H [M]]], all integers")
        })
        .collect();
    let rows = *args.first().unwrap_or(&262_144);
    let h = *args.get(1).unwrap_or(&64);
    let m = *args.get(2).unwrap_or(&2);
    assert!(
        rows >= 1 && (1..=128).contains(&h) && (1..=4).contains(&m),
        "ROWS >= 1, H in 1..=128, M in 1..=4"
    );

    // The adapter neuralrg-gpu would choose: the one whose name contains $ADAPTER, else a real
    // GPU before a CPU one, and Vulkan/Metal/DX12 before GL (WGPU_BACKEND restricts them).
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
    let adapters =
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all().with_env()));
    let wanted = std::env::var("ADAPTER").unwrap_or_default().to_lowercase();
    let adapter = adapters
        .into_iter()
        .filter(|a| a.get_info().name.to_lowercase().contains(&wanted))
        .min_by_key(|a| {
            let i = a.get_info();
            let rank = match i.device_type {
                wgpu::DeviceType::DiscreteGpu => 0,
                wgpu::DeviceType::IntegratedGpu => 1,
                wgpu::DeviceType::VirtualGpu => 2,
                wgpu::DeviceType::Cpu => 3,
                wgpu::DeviceType::Other => 4,
            };
            (rank, i.backend == wgpu::Backend::Gl)
        })
        .expect("no adapter (whose name contains $ADAPTER): see neuralrg-gpu info");
    let info = adapter.get_info();
    println!(
        "{} ({:?}) | {rows} rows, MLP 2 -> {h} x {m} -> 2",
        info.name, info.backend
    );
    let desc = wgpu::DeviceDescriptor {
        required_limits: adapter.limits(),
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).expect("no device");

    let weights: Vec<f32> = (0..n_params(h, m).next_multiple_of(4))
        .map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 0.3)
        .collect();
    let xs: Vec<f32> = (0..rows * 2)
        .map(|i| (i * 13 % 97) as f32 / 97.0 - 0.5)
        .collect();
    let init = |bytes: &[u8], usage| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytes,
            usage,
        })
    };
    let sizes = init(
        bytemuck::cast_slice(&[rows as u32, h as u32, m as u32, 0]),
        wgpu::BufferUsages::UNIFORM,
    );
    let w_storage = init(bytemuck::cast_slice(&weights), wgpu::BufferUsages::STORAGE);
    let w_uniform = init(bytemuck::cast_slice(&weights), wgpu::BufferUsages::UNIFORM);
    let x = init(bytemuck::cast_slice(&xs), wgpu::BufferUsages::STORAGE);
    let bytes = rows as u64 * 8;
    let y = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let flops = (rows * 2 * macs(h, m)) as f64;

    // (name, source, weights, rows per workgroup)
    let shapes = [
        ("rows4", per_row(h, m, true), &w_uniform, 4 * WG),
        ("rows1", per_row(h, m, false), &w_uniform, WG),
        (
            "coop-uniform",
            cooperative(h, m, true, false),
            &w_uniform,
            TILE_ROWS * TILES,
        ),
        (
            "coop-storage",
            cooperative(h, m, false, false),
            &w_storage,
            TILE_ROWS * TILES,
        ),
        (
            "coop-vec4",
            cooperative(h, m, false, true),
            &w_storage,
            TILE_ROWS * TILES,
        ),
    ];
    let uniform_fits = (n_params(h, m).next_multiple_of(4) * 4) as u64
        <= device.limits().max_uniform_buffer_binding_size;
    let mut reference: Option<Vec<f32>> = None;
    for (name, source, w, rows_per_group) in shapes {
        if name == "coop-vec4" && !h.is_multiple_of(4) {
            println!("{name:13} skipped: H is not a multiple of 4");
            continue;
        }
        if std::ptr::eq(w, &w_uniform) && !uniform_fits {
            println!("{name:13} skipped: the weights exceed the adapter's uniform binding");
            continue;
        }
        // A shape that wrote nothing must not pass on the last one's output.
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.clear_buffer(&y, 0, None);
        queue.submit([encoder.finish()]);
        let start = Instant::now();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            // As the flow kernels: workgroup memory is written before it is read.
            compilation_options: wgpu::PipelineCompilationOptions {
                zero_initialize_workgroup_memory: false,
                ..Default::default()
            },
            cache: None,
        });
        let entries = [
            sizes.as_entire_binding(),
            w.as_entire_binding(),
            x.as_entire_binding(),
            y.as_entire_binding(),
        ];
        let entries: Vec<_> = entries
            .into_iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let groups = rows.div_ceil(rows_per_group) as u32;
        let (gx, gy) = if groups > 65_535 {
            (65_535, groups.div_ceil(65_535))
        } else {
            (groups, 1)
        };
        let run = |passes: usize| {
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind, &[]);
                for _ in 0..passes {
                    pass.dispatch_workgroups(gx, gy, 1);
                }
            }
            queue.submit([encoder.finish()]);
            device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("poll");
        };
        run(1);
        let first = start.elapsed().as_secs_f64();
        // Passes doubled until a submission takes a quarter of a second: GPUs run a pass in
        // microseconds.
        let mut passes = 1;
        let per_pass = loop {
            let t = Instant::now();
            run(passes);
            let s = t.elapsed().as_secs_f64();
            if s >= 0.25 || passes >= 1 << 16 {
                break s / passes as f64;
            }
            passes *= 2;
        };
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&y, 0, &staging, 0, bytes);
        queue.submit([encoder.finish()]);
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, |r| r.expect("map"));
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll");
        let out: Vec<f32> =
            bytemuck::cast_slice(&staging.slice(..).get_mapped_range().expect("mapped")).to_vec();
        staging.unmap();
        assert!(
            out.iter().any(|v| *v != 0.0),
            "{name}: the MLP produced only zeros"
        );
        let diff = reference
            .get_or_insert_with(|| out.clone())
            .iter()
            .zip(&out)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "{name:13} compile + first pass {first:6.2} s  {:9.4} ms/pass ({passes} passes)  {:8.2} GFLOP/s  max |diff| {diff:.1e}",
            per_pass * 1e3,
            flops / per_pass / 1e9
        );
    }
}
