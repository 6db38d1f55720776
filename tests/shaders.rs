//! Every shader parses and validates with naga, is registered, stays within the portable limit
//! of 8 storage buffers per stage and translates for the other backends; so do the kernel shapes
//! of bench/mlp_shapes. No GPU needed.

use neuralrg_gpu::gpu::kernels::validate_source;
use neuralrg_gpu::gpu::kernels::{entry_bindings, validate_shader, validate_variants, BindingKind};
use neuralrg_gpu::gpu::{Shader, STORAGE_BUFFERS_PER_STAGE};

// The kernel shapes of bench/mlp_shapes, a program CI does not build: their WGSL is checked here.
#[allow(dead_code)]
#[path = "../bench/mlp_shapes/src/shapes.rs"]
mod mlp_shapes;

#[test]
fn every_shader_validates_with_naga() {
    for &shader in Shader::ALL {
        if let Err(e) = validate_shader(shader) {
            panic!("shaders/{}.wgsl does not validate:\n{e}", shader.name());
        }
    }
}

#[test]
fn every_wgsl_file_is_registered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                Shader::ALL.iter().any(|s| s.name() == stem),
                "shaders/{stem}.wgsl is not in the registry (src/gpu/shaders.rs)"
            );
        }
    }
}

#[test]
fn every_entry_point_uses_at_most_8_storage_buffers() {
    // In every variant: a switch can turn a uniform binding into a storage one (UW = 0).
    for &shader in Shader::ALL {
        for (variant, module, info) in validate_variants(shader).unwrap() {
            for ep in &module.entry_points {
                let b = entry_bindings(&module, &info, &ep.name).unwrap();
                let storage = b.iter().filter(|(_, k)| *k != BindingKind::Uniform).count();
                assert!(
                    storage <= STORAGE_BUFFERS_PER_STAGE as usize,
                    "{}::{} ({variant}) uses {storage} storage buffers",
                    shader.name(),
                    ep.name
                );
            }
        }
    }
}

/// Every entry point of every shader variant, with its `override` constants at their defaults,
/// as the other backends' shader compilers would receive it from wgpu: Metal (MSL 2.0), DX12
/// (HLSL shader model 5.1, what FXC takes) and GL (GLSL ES 3.10), without zeroing workgroup
/// memory (as `gpu::kernels` asks), with the bounds checks wgpu-hal asks of each backend for
/// checked and for trusted stages (Metal: `Restrict`; DX12: restricted indexing; GL: none).
/// Lavapipe runs only the SPIR-V path, so this is what keeps a shader edit from breaking the Metal
/// and DX12 backends unseen (tests/backends.rs runs the GL one). Bindings are not resolved:
/// wgpu maps them from the pipeline layout. No GPU needed.
#[test]
fn every_entry_point_translates_for_metal_dx12_and_gl() {
    use naga::back::{glsl, hlsl, msl, pipeline_constants::process_overrides};
    use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
    let mut failures = Vec::new();
    for &shader in Shader::ALL {
        for (variant, module, info) in validate_variants(shader).unwrap() {
            for ep in &module.entry_points {
                let at = format!("{}::{} ({variant})", shader.name(), ep.name);
                let stage_ep = Some((naga::ShaderStage::Compute, ep.name.as_str()));
                let (module, info) =
                    match process_overrides(&module, &info, stage_ep, &Default::default()) {
                        Ok(m) => m,
                        Err(e) => {
                            failures.push(format!("{at}: overrides: {e}"));
                            continue;
                        }
                    };
                let entry = Some((naga::ShaderStage::Compute, ep.name.clone()));
                for checked in [true, false] {
                    let policy = if checked {
                        BoundsCheckPolicy::Restrict
                    } else {
                        BoundsCheckPolicy::Unchecked
                    };
                    let msl_options = msl::Options {
                        lang_version: (2, 0),
                        bounds_check_policies: BoundsCheckPolicies {
                            index: policy,
                            buffer: policy,
                            image_load: policy,
                            binding_array: BoundsCheckPolicy::Unchecked,
                        },
                        zero_initialize_workgroup_memory: false,
                        ..Default::default()
                    };
                    let msl_pipeline = msl::PipelineOptions {
                        entry_point: entry.clone(),
                        ..Default::default()
                    };
                    if let Err(e) = msl::write_string(&module, &info, &msl_options, &msl_pipeline) {
                        failures.push(format!("{at}, checked {checked}: MSL: {e}"));
                    }
                    let hlsl_options = hlsl::Options {
                        restrict_indexing: checked,
                        zero_initialize_workgroup_memory: false,
                        ..Default::default()
                    };
                    let hlsl_pipeline = hlsl::PipelineOptions {
                        entry_point: entry.clone(),
                    };
                    let mut out = String::new();
                    if let Err(e) = hlsl::Writer::new(&mut out, &hlsl_options, &hlsl_pipeline)
                        .write(&module, &info, None)
                    {
                        failures.push(format!("{at}, checked {checked}: HLSL: {e}"));
                    }
                }
                let glsl_options = glsl::Options {
                    zero_initialize_workgroup_memory: false,
                    ..Default::default()
                };
                let glsl_pipeline = glsl::PipelineOptions {
                    shader_stage: naga::ShaderStage::Compute,
                    entry_point: ep.name.clone(),
                    multiview: None,
                };
                let mut out = String::new();
                let written = glsl::Writer::new(
                    &mut out,
                    &module,
                    &info,
                    &glsl_options,
                    &glsl_pipeline,
                    BoundsCheckPolicies::default(),
                )
                .and_then(|mut w| w.write().map(|_| ()));
                if let Err(e) = written {
                    failures.push(format!("{at}: GLSL: {e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_bench_probe_blocks_hidden_units_as_the_flow_kernels_do() {
    for h in 1..=128 {
        assert_eq!(
            mlp_shapes::hidden_block(h),
            neuralrg_gpu::flow::cost::hidden_block(h),
            "hidden {h}"
        );
    }
}

#[test]
fn every_mlp_shape_of_the_bench_probe_validates_with_naga() {
    // Narrow, wide, the widest and deepest, and a width the vec4 shape does not take.
    for (h, m) in [(10, 3), (64, 2), (128, 4), (13, 1)] {
        let shapes = mlp_shapes::shapes(h, m);
        assert_eq!(shapes.len(), 5);
        for shape in shapes {
            match shape.source {
                Ok(source) => {
                    if let Err(e) = validate_source(&source) {
                        panic!("mlp-shapes {} at {h} x {m}:\n{e}", shape.name);
                    }
                }
                Err(why) => assert!(shape.name == "coop-vec4" && !h.is_multiple_of(4), "{why}"),
            }
        }
    }
}
