//! Every shader parses and validates with naga, is registered, and stays within the portable
//! limit of 8 storage buffers per stage. No GPU needed.

use neuralrg_gpu::gpu::kernels::{entry_bindings, validate_shader, validate_variants, BindingKind};
use neuralrg_gpu::gpu::Shader;

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
                    storage <= 8,
                    "{}::{} ({variant}) uses {storage} storage buffers",
                    shader.name(),
                    ep.name
                );
            }
        }
    }
}
