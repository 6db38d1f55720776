//! Pipelines and their bind-group layouts, built once per (shader, entry point, override
//! constants) and cached. Layouts come from naga's reflection of the bindings each entry point
//! really uses, so a bind group names exactly those and a mismatch is a clear error, not a panic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::context::GpuContext;
use super::error::GpuError;
use super::shaders::Shader;

/// Largest workgroup count per dispatch dimension that every adapter accepts.
pub const MAX_WORKGROUPS_PER_DIM: u32 = 65_535;

/// Workgroup counts covering `invocations` with `wg`-wide workgroups, spread over x and y so
/// no dimension exceeds `max_per_dim`. Shaders recover the linear index as
/// `gid.x + gid.y * nwg.x * WG` (and skip the invocations past the end).
pub fn grid(invocations: u64, wg: u32, max_per_dim: u32) -> [u32; 3] {
    let groups = invocations.div_ceil(wg as u64).max(1);
    let max = max_per_dim.max(1) as u64;
    if groups <= max {
        [groups as u32, 1, 1]
    } else {
        let y = groups.div_ceil(max);
        let x = groups.div_ceil(y);
        [x as u32, y as u32, 1]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingKind {
    Uniform,
    StorageRead,
    StorageReadWrite,
}

/// A compiled entry point: its pipeline, its layout, and the bindings it uses.
pub struct Kernel {
    pub name: String,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    bindings: Vec<(u32, BindingKind)>,
}

/// A kernel bound to its buffers, with its workgroup counts: built once, recorded many times.
#[derive(Clone)]
pub struct Dispatch {
    kernel: Arc<Kernel>,
    bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
}

impl Dispatch {
    /// The kernel's name, `shader::entry`.
    pub fn name(&self) -> &str {
        &self.kernel.name
    }

    pub(crate) fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Sizes a stage is specialised for (see [`Shader::sizes`]).
pub type Sizes = Vec<(&'static str, u32)>;

type CacheKey = (Shader, Sizes, String, Vec<(String, u64)>);

/// A compiled shader module with naga's view of it (for binding reflection).
struct ModuleEntry {
    wgpu: wgpu::ShaderModule,
    naga: naga::Module,
    info: naga::valid::ModuleInfo,
}

#[derive(Default)]
pub(crate) struct KernelCache {
    modules: Mutex<HashMap<(Shader, Sizes), Arc<ModuleEntry>>>,
    kernels: Mutex<HashMap<CacheKey, Arc<Kernel>>>,
}

/// Parses and validates a shader with naga at its validation sizes and with each of its
/// `#if` switches flipped; returns the module at the validation sizes.
pub fn validate_shader(shader: Shader) -> Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let mut variants = validate_variants(shader)?;
    let (_, module, info) = variants.swap_remove(0);
    Ok((module, info))
}

/// Every variant of a shader, validated: first at its validation sizes, then with each of its
/// `#if` switches flipped, each named by the switch it flips ("" for the first).
pub fn validate_variants(
    shader: Shader,
) -> Result<Vec<(String, naga::Module, naga::valid::ModuleInfo)>, String> {
    let (module, info) = validate_source(&shader.source())?;
    let mut out = vec![(String::new(), module, info)];
    for (name, v) in shader.sizes() {
        if shader.raw().contains(&format!("#if {name}")) {
            let flipped = [(*name, u32::from(*v == 0))];
            let label = format!("{name} = {}", flipped[0].1);
            let (module, info) = validate_source(&shader.source_with(&flipped))
                .map_err(|e| format!("with {label}: {e}"))?;
            out.push((label, module, info));
        }
    }
    Ok(out)
}

/// Parses and validates WGSL source with naga; used at runtime and by the validation tests.
pub fn validate_source(source: &str) -> Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(source))?;
    Ok((module, info))
}

/// The bindings of group 0 that an entry point uses, sorted by binding index.
pub fn entry_bindings(
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    entry: &str,
) -> Option<Vec<(u32, BindingKind)>> {
    let index = module.entry_points.iter().position(|e| e.name == entry)?;
    let uses = info.get_entry_point(index);
    let mut out: Vec<(u32, BindingKind)> = module
        .global_variables
        .iter()
        .filter(|(h, _)| !uses[*h].is_empty())
        .filter_map(|(_, g)| {
            let b = g.binding.as_ref()?;
            let kind = match g.space {
                naga::AddressSpace::Uniform => BindingKind::Uniform,
                naga::AddressSpace::Storage { access } => {
                    if access.contains(naga::StorageAccess::STORE) {
                        BindingKind::StorageReadWrite
                    } else {
                        BindingKind::StorageRead
                    }
                }
                _ => return None,
            };
            debug_assert_eq!(b.group, 0, "all bindings live in group 0");
            Some((b.binding, kind))
        })
        .collect();
    out.sort_by_key(|b| b.0);
    Some(out)
}

impl GpuContext {
    /// The cached kernel for `entry` in `shader` with the given override constants.
    pub fn kernel(
        &self,
        shader: Shader,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<Kernel>, GpuError> {
        self.specialised_kernel(shader, &[], entry, constants)
    }

    /// As [`GpuContext::kernel`], for a stage specialised to `sizes` (see [`Shader::sizes`]).
    pub fn specialised_kernel(
        &self,
        shader: Shader,
        sizes: &[(&'static str, u32)],
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<Kernel>, GpuError> {
        let key: CacheKey = (
            shader,
            sizes.to_vec(),
            entry.to_string(),
            constants
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_bits()))
                .collect(),
        );
        if let Some(k) = self.kernels.kernels.lock().expect("kernel cache").get(&key) {
            return Ok(k.clone());
        }
        let module = self.shader_module(shader, sizes)?;
        self.note_slow_compile(sizes);
        let name = format!("{}::{}", shader.name(), entry);
        let bindings =
            entry_bindings(&module.naga, &module.info, entry).ok_or_else(|| GpuError::Binding {
                kernel: name.clone(),
                message: "no such entry point".into(),
            })?;
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .map(|&(binding, kind)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match kind {
                        BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                        BindingKind::StorageRead => {
                            wgpu::BufferBindingType::Storage { read_only: true }
                        }
                        BindingKind::StorageReadWrite => {
                            wgpu::BufferBindingType::Storage { read_only: false }
                        }
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let kernel = self.scoped(&name, || {
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&name),
                    entries: &entries,
                });
            let pipeline_layout =
                self.device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(&name),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&name),
                    layout: Some(&pipeline_layout),
                    module: &module.wgpu,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                });
            Arc::new(Kernel {
                name: name.clone(),
                pipeline,
                layout,
                bindings,
            })
        })?;
        self.kernels
            .kernels
            .lock()
            .expect("kernel cache")
            .insert(key, kernel.clone());
        Ok(kernel)
    }

    /// Says once per process, on stderr, that a wide MLP's kernels take long to compile on a CPU
    /// adapter, so that a first run that prints nothing for minutes is not taken for a hang.
    /// Measured on lavapipe, every kernel `bench` needs, first run: hidden 20 x 2, 10 s; 32 x 2,
    /// 9 s; 64 x 2, 18 s; 113 x 2, 43 s; 128 x 4, 112 s (docs/BENCHMARKS.md).
    fn note_slow_compile(&self, sizes: &[(&'static str, u32)]) {
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let wide = sizes
            .iter()
            .find(|&&(n, h)| n == "H" && h as usize > crate::flow::cost::UNROLL_MAX);
        if let Some((_, h)) = wide {
            if self.info.device_type == wgpu::DeviceType::Cpu
                && !SAID.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                eprintln!(
                    "note: the kernels of a {h}-wide MLP take a CPU adapter seconds to minutes \
                     to compile (hidden 64: about 20 s; 128 with 4 layers: 2 minutes) the first \
                     time; the driver caches them"
                );
            }
        }
    }

    fn shader_module(
        &self,
        shader: Shader,
        sizes: &[(&'static str, u32)],
    ) -> Result<Arc<ModuleEntry>, GpuError> {
        let key = (shader, sizes.to_vec());
        if let Some(m) = self.kernels.modules.lock().expect("module cache").get(&key) {
            return Ok(m.clone());
        }
        let source = shader.source_with(sizes);
        let (module, info) = validate_source(&source).map_err(|message| GpuError::Validation {
            context: format!("shader {} {sizes:?}", shader.name()),
            message,
        })?;
        let checks = wgpu::ShaderRuntimeChecks {
            bounds_checks: !shader.trusted_indices(),
            ..wgpu::ShaderRuntimeChecks::checked()
        };
        let wgpu_module = self.scoped(shader.name(), || {
            // SAFETY: only stages whose every index stays in bounds by construction turn the
            // checks off; see `Shader::trusted_indices`. Loop bounding stays on.
            unsafe {
                self.device.create_shader_module_trusted(
                    wgpu::ShaderModuleDescriptor {
                        label: Some(shader.name()),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    },
                    checks,
                )
            }
        })?;
        let entry = Arc::new(ModuleEntry {
            wgpu: wgpu_module,
            naga: module,
            info,
        });
        self.kernels
            .modules
            .lock()
            .expect("module cache")
            .insert(key, entry.clone());
        Ok(entry)
    }

    /// Binds `buffers` (binding index, whole buffer) to `kernel`; they must be exactly the
    /// bindings it uses.
    pub fn dispatch(
        &self,
        kernel: &Arc<Kernel>,
        buffers: &[(u32, &wgpu::Buffer)],
        workgroups: [u32; 3],
    ) -> Result<Dispatch, GpuError> {
        let resources: Vec<(u32, wgpu::BindingResource)> = buffers
            .iter()
            .map(|(binding, buffer)| (*binding, buffer.as_entire_binding()))
            .collect();
        self.dispatch_resources(kernel, &resources, workgroups)
    }

    /// [`GpuContext::dispatch`] with any binding resource, e.g. a range of a buffer.
    pub fn dispatch_resources(
        &self,
        kernel: &Arc<Kernel>,
        resources: &[(u32, wgpu::BindingResource)],
        workgroups: [u32; 3],
    ) -> Result<Dispatch, GpuError> {
        let mut given: Vec<u32> = resources.iter().map(|b| b.0).collect();
        given.sort_unstable();
        let wanted: Vec<u32> = kernel.bindings.iter().map(|b| b.0).collect();
        if given != wanted {
            return Err(GpuError::Binding {
                kernel: kernel.name.clone(),
                message: format!("uses bindings {wanted:?} but was given {given:?}"),
            });
        }
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .iter()
            .map(|(binding, resource)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: resource.clone(),
            })
            .collect();
        let bind_group = self.scoped(&kernel.name, || {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&kernel.name),
                layout: &kernel.layout,
                entries: &entries,
            })
        })?;
        Ok(Dispatch {
            kernel: kernel.clone(),
            bind_group,
            workgroups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_respects_the_per_dimension_limit() {
        let max = MAX_WORKGROUPS_PER_DIM;
        assert_eq!(grid(1, 64, max), [1, 1, 1]);
        assert_eq!(grid(64 * 65_535, 64, max), [65_535, 1, 1]);
        let [x, y, _] = grid(64 * 65_536, 64, max);
        assert!(x <= max && (x as u64) * (y as u64) >= 65_536);
        // A lowered limit (the tests' forced path) gives the same coverage in two dimensions.
        for n in 1..200u64 {
            let [x, y, _] = grid(n, 4, 3);
            assert!(x <= 3 && (x * y * 4) as u64 >= n, "{n}: {x} x {y}");
        }
    }
}
