//! One coupling step's MLP (2 -> H x M -> 2, ELU, the parameter layout of neuralrg-gpu) applied
//! to ROWS independent rows in several GPU kernel shapes, timed side by side on one adapter, each
//! shape's output compared with the first's. It answers, in seconds, which shape an adapter
//! favours before a shape is built into the flow kernels (bench/README.md):
//!
//! - `rows4`: the flow kernels' shape, built from their own MLP library (shaders/lib/mlp.wgsl):
//!   four rows per invocation in vec4 lanes, weights from a uniform block read at the same
//!   address by every invocation, hidden layers unrolled up to H = 16 and in blocks of 8 units
//!   beyond;
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

mod shapes;

use shapes::{macs, n_params, shapes};
use std::time::Instant;
use wgpu::util::DeviceExt;

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
    let uniform_fits = (n_params(h, m).next_multiple_of(4) * 4) as u64
        <= device.limits().max_uniform_buffer_binding_size;
    let mut reference: Option<Vec<f32>> = None;
    for shape in shapes(h, m) {
        let name = shape.name;
        let source = match shape.source {
            Ok(source) => source,
            Err(why) => {
                println!("{name:13} skipped: {why}");
                continue;
            }
        };
        if shape.uniform && !uniform_fits {
            println!("{name:13} skipped: the weights exceed the adapter's uniform binding");
            continue;
        }
        let w = if shape.uniform {
            &w_uniform
        } else {
            &w_storage
        };
        let rows_per_group = shape.rows_per_group;
        // A shape that wrote nothing must not pass on the last one's output.
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.clear_buffer(&y, 0, None);
        queue.submit([encoder.finish()]);
        let start = Instant::now();
        // SAFETY: as the flow kernels' MLP stages (neuralrg-gpu's `Shader::trusted_indices`),
        // every shape is compiled without index clamps: each indexes its arrays by constants or
        // by loops bounded by their sizes, reads x at clamped rows and writes y behind a check.
        let module = unsafe {
            device.create_shader_module_trusted(
                wgpu::ShaderModuleDescriptor {
                    label: Some(name),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                },
                wgpu::ShaderRuntimeChecks {
                    bounds_checks: false,
                    ..wgpu::ShaderRuntimeChecks::checked()
                },
            )
        };
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
            x.as_entire_binding(),
            w.as_entire_binding(),
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
