//! Adapter selection, device creation with the adapter's own limits, and error scopes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::error::GpuError;
use super::kernels::{grid, Dispatch, KernelCache, MAX_WORKGROUPS_PER_DIM};
use super::{STORAGE_BUFFERS_PER_STAGE, WG};

/// How to choose the adapter. `WGPU_BACKEND` (e.g. `vulkan`, `metal`, `dx12`, `gl`) is honoured too.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Case-insensitive substring of the adapter name; `None` picks the best adapter.
    pub adapter: Option<String>,
    /// Lowers the workgroups per dispatch dimension below the portable 65,535, so that tests
    /// reach the two-dimensional grid at tiny sizes. `None`: 65,535.
    pub max_workgroups_per_dim: Option<u32>,
    /// Lowers the largest per-row factor buffer of a backward pass below 64 MiB, so that tests
    /// reach the chunked backward at tiny sizes. `None`: 64 MiB.
    pub row_budget_bytes: Option<u64>,
    /// Rows per slice of the factor-shape weight reduction, so that tests reach several slices
    /// (and chunks of whole slices) at tiny sizes. `None`: `flow::backward`'s constant.
    pub reduce_slice_rows: Option<usize>,
    /// Sets the loop-iteration budget per invocation (see [`GpuContext::loop_budget`]), so that
    /// tests reach the paths that respect it. `None`: the adapter's own.
    pub loop_budget: Option<u64>,
    /// Largest coupling step (bytes of weights) the flow kernels bind as a uniform rather than
    /// as storage, so that tests reach both variants. `None`: the adapter's uniform binding limit.
    pub uniform_weights_bytes: Option<u64>,
    /// Whether a backward pass sums each invocation's weight gradients in place (see
    /// [`GpuContext::accumulate_gradients`]), so that tests reach both shapes. `None`: the
    /// adapter's choice.
    pub accumulate_gradients: Option<bool>,
    /// Most coupling steps of a layer one flow dispatch applies, so that tests reach the
    /// one-step dispatches and uneven groups. `None`: as many as the binding and loop limits
    /// allow (see [`GpuContext::steps_per_dispatch`]).
    pub steps_per_dispatch: Option<usize>,
    /// Device memory this program may allocate (`--memory-limit`): a configuration that needs
    /// more is refused before the buffer that would pass it is created. `None`: no limit of our
    /// own, but a CPU adapter is still held to the host memory available.
    pub memory_limit: Option<u64>,
    /// What a refusal of a buffer tells the user to change: the command's own flags.
    pub size_advice: SizeAdvice,
}

/// What to change when a buffer does not fit, by what its size grows with, as the command's
/// flags name it (`hmc` has --chains; a checkpoint fixes the lattice and the flow).
#[derive(Debug, Clone, Copy)]
pub struct SizeAdvice {
    /// For buffers that grow with the batch (or the chains) and the lattice.
    pub batch: &'static str,
    /// For buffers that grow with the flow's parameters.
    pub flow: &'static str,
}

impl Default for SizeAdvice {
    fn default() -> Self {
        Self {
            batch: "reduce --batch or --lattice",
            flow: "reduce --hidden, --mlp-layers, --couplings or --depth",
        }
    }
}

/// Most dispatches one command buffer of [`GpuContext::submit`] records: more than a training
/// step of the default flow, so that stays one submission.
pub const MAX_DISPATCHES_PER_SUBMISSION: usize = 512;

/// Bytes counted against a context's memory budget, given back when dropped.
pub(crate) struct Reservation {
    counters: Arc<Allocated>,
    growth: Growth,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.counters[self.growth as usize].fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// What a buffer's size grows with, so that a refusal names the flags that would shrink it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Growth {
    /// The batch (or the chains) and the lattice.
    Batch = 0,
    /// The flow's parameters.
    Flow = 1,
}

/// Bytes of live buffers, per [`Growth`].
type Allocated = [AtomicU64; 2];

/// Where a device-memory budget comes from, for the message that refuses a configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetSource {
    /// `--memory-limit`.
    Limit,
    /// The host memory available when the context was made: a CPU adapter's device memory.
    HostMemory,
}

impl std::fmt::Display for BudgetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Limit => "set by --memory-limit",
            Self::HostMemory => "of host memory available to this CPU adapter",
        })
    }
}

/// Loop iterations llvmpipe (Mesa's CPU rasteriser, behind lavapipe) runs per invocation: its
/// guard against endless loops ends every loop once an invocation has run this many iterations
/// in all its loops together, silently, so a kernel that loops longer computes garbage. Measured
/// here with Mesa 22.3.6: two MLP evaluations of 32,258 iterations each were exact, of 32,768
/// each wrong.
pub const LLVMPIPE_LOOP_LIMIT: u64 = 65_535;

/// Largest per-row factor buffer of a backward pass; bigger layers are processed in chunks.
const ROW_BUDGET_BYTES: u64 = 64 << 20;

/// Optional features we use when the adapter has them.
const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::SUBGROUP);

pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Workgroups per dispatch dimension that [`GpuContext::grid`] stays within.
    pub max_workgroups_per_dim: u32,
    /// Largest per-row factor buffer of a backward pass (see [`GpuOptions::row_budget_bytes`]).
    pub row_budget_bytes: u64,
    /// See [`GpuOptions::reduce_slice_rows`].
    pub reduce_slice_rows: Option<usize>,
    /// Loop iterations one invocation may run, where the driver caps them (llvmpipe); stages
    /// split their work to stay within it or refuse a configuration that cannot.
    pub loop_budget: Option<u64>,
    /// Largest coupling step (bytes of weights) bound as a uniform (see
    /// [`GpuOptions::uniform_weights_bytes`]).
    pub uniform_weights_bytes: u64,
    /// Whether backward passes of narrow MLPs sum each invocation's weight gradients in private
    /// accumulators rather than writing per-row factors for a separate reduction: on CPU
    /// adapters (lavapipe), where memory traffic costs more than arithmetic and private arrays
    /// live in cache; not on GPUs, where hundreds of accumulators per invocation would spill.
    pub accumulate_gradients: bool,
    /// Most coupling steps of a layer one flow dispatch applies (see
    /// [`GpuOptions::steps_per_dispatch`]): each dispatch costs a fixed overhead (about 50 us on
    /// lavapipe, a few on a GPU), so a layer's steps run in one dispatch where the limits allow.
    pub steps_per_dispatch: usize,
    /// The device memory buffers may take in all, and where that bound comes from.
    pub memory_budget: Option<(u64, BudgetSource)>,
    /// Bytes of the storage buffers created through this context and not yet dropped (each
    /// gives its bytes back when dropped, so stages built one after another fit one budget).
    allocated: Arc<Allocated>,
    /// See [`GpuOptions::size_advice`].
    pub(crate) size_advice: SizeAdvice,
    pub(crate) kernels: KernelCache,
    /// Every adapter found when this one was chosen, for `info`.
    adapters: Vec<AdapterSummary>,
}

/// Refuses a `WGPU_BACKEND` that names no backend wgpu knows, before wgpu ignores it with a
/// warning and finds no adapter.
fn check_backend_variable() -> Result<(), GpuError> {
    const NAMES: [&str; 11] = [
        "vulkan", "vk", "dx12", "d3d12", "metal", "mtl", "opengl", "gles", "gl", "webgpu", "noop",
    ];
    match std::env::var("WGPU_BACKEND") {
        Ok(value)
            if !value
                .to_lowercase()
                .split(',')
                .any(|b| NAMES.contains(&b.trim())) =>
        {
            Err(GpuError::BadBackendVariable { value })
        }
        _ => Ok(()),
    }
}

/// Why an adapter with these limits and downlevel flags cannot run the kernels, if it cannot:
/// every stage is a compute shader binding up to [`STORAGE_BUFFERS_PER_STAGE`] storage buffers,
/// in workgroups of up to [`WG`] invocations.
pub fn unsuitable(limits: &wgpu::Limits, flags: wgpu::DownlevelFlags) -> Option<String> {
    if !flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS) {
        return Some("it has no compute shaders".into());
    }
    if limits.max_storage_buffers_per_shader_stage < STORAGE_BUFFERS_PER_STAGE {
        return Some(format!(
            "it binds {} storage buffers per stage, the kernels need {STORAGE_BUFFERS_PER_STAGE}",
            limits.max_storage_buffers_per_shader_stage
        ));
    }
    let invocations = limits
        .max_compute_invocations_per_workgroup
        .min(limits.max_compute_workgroup_size_x);
    if invocations < WG {
        return Some(format!(
            "its workgroups hold {invocations} invocations, the kernels need {WG}"
        ));
    }
    None
}

/// An adapter as [`choose`] sees it: name, backend, type, and why it cannot run the kernels.
type Candidate = (String, wgpu::Backend, wgpu::DeviceType, Option<String>);

/// Which adapter to use: of those whose name contains `wanted` (all without it), the ones that
/// can run the kernels, real GPUs first and Vulkan/Metal/DX12 before GL; an error naming the
/// adapters and what to do where none is left.
fn choose(found: &[Candidate], wanted: Option<&str>) -> Result<usize, GpuError> {
    let named =
        |c: &Candidate| wanted.is_none_or(|w| c.0.to_lowercase().contains(&w.to_lowercase()));
    let list = |keep: &dyn Fn(&Candidate) -> bool| {
        let names: Vec<&str> = found
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.0.as_str())
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    if let (Some(w), false) = (wanted, found.iter().any(named)) {
        return Err(GpuError::AdapterNotFound {
            wanted: w.to_string(),
            available: list(&|_| true),
        });
    }
    if let Some((i, _)) = found
        .iter()
        .enumerate()
        .filter(|(_, c)| named(c) && c.3.is_none())
        .min_by_key(|(_, c)| (device_rank(c.2), c.1 == wgpu::Backend::Gl))
    {
        return Ok(i);
    }
    let reasons = found
        .iter()
        .filter(|c| named(c))
        .map(|c| format!("{:?} ({:?}): {}", c.0, c.1, c.3.as_deref().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("; ");
    Err(match wanted {
        Some(_) => GpuError::AdapterUnsuitable {
            reasons,
            suitable: list(&|c| c.3.is_none()),
        },
        None => GpuError::NoSuitableAdapter { reasons },
    })
}

fn device_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

impl GpuContext {
    /// The adapters wgpu finds, each with why it cannot run the kernels if it cannot
    /// ([`unsuitable`]): Vulkan/Metal/DX12 first, GL only where none of those can (probing GL
    /// prints noise on headless hosts); WGPU_BACKEND overrides both. Also the backends tried.
    fn enumerate() -> (Vec<(wgpu::Adapter, Option<String>)>, Vec<wgpu::Backends>) {
        let mut adapters = Vec::new();
        let mut tried = Vec::new();
        let native = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
        for backends in [native, wgpu::Backends::GL] {
            let backends = backends.with_env();
            if tried.contains(&backends) {
                continue;
            }
            tried.push(backends);
            let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
            desc.backends = backends;
            // Where the driver reports a memory budget (Vulkan's VK_EXT_memory_budget), buffer
            // creation beyond 95% of it fails with an out-of-memory error we report, rather
            // than the device being lost.
            desc.memory_budget_thresholds.for_resource_creation = Some(95);
            let instance = wgpu::Instance::new(desc);
            adapters.extend(
                pollster::block_on(instance.enumerate_adapters(backends))
                    .into_iter()
                    .map(|a| {
                        let why = unsuitable(&a.limits(), a.get_downlevel_capabilities().flags);
                        (a, why)
                    }),
            );
            if adapters.iter().any(|(_, why)| why.is_none()) {
                break;
            }
        }
        (adapters, tried)
    }

    /// The adapters wgpu finds, those [`GpuContext::new`] would pass over with the reason.
    pub fn adapters() -> Result<Vec<AdapterSummary>, GpuError> {
        check_backend_variable()?;
        Ok(Self::enumerate()
            .0
            .iter()
            .map(|(a, why)| AdapterSummary::new(&a.get_info(), why.clone(), false))
            .collect())
    }

    pub fn new(opts: &GpuOptions) -> Result<Arc<Self>, GpuError> {
        check_backend_variable()?;
        let (adapters, tried) = Self::enumerate();
        if adapters.is_empty() {
            let mut backends = tried
                .iter()
                .map(|b| format!("{b:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            if let Ok(v) = std::env::var("WGPU_BACKEND") {
                backends.push_str(&format!(" from WGPU_BACKEND={v:?}"));
            }
            return Err(GpuError::NoAdapter { backends });
        }
        let found: Vec<Candidate> = adapters
            .iter()
            .map(|(a, why)| {
                let i = a.get_info();
                (i.name, i.backend, i.device_type, why.clone())
            })
            .collect();
        let chosen = choose(&found, opts.adapter.as_deref())?;
        let listed = adapters
            .iter()
            .enumerate()
            .map(|(k, (a, why))| AdapterSummary::new(&a.get_info(), why.clone(), k == chosen))
            .collect();
        let adapter = &adapters[chosen].0;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features() & WANTED_FEATURES;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("neuralrg-gpu"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: info.name.clone(),
            message: e.to_string(),
        })?;
        let llvmpipe = info.name.to_lowercase().contains("llvmpipe")
            || info.driver_info.to_lowercase().contains("llvmpipe");
        let loop_budget = opts.loop_budget.or(llvmpipe.then_some(LLVMPIPE_LOOP_LIMIT));
        let accumulate_gradients = opts
            .accumulate_gradients
            .unwrap_or(info.device_type == wgpu::DeviceType::Cpu);
        // A CPU adapter's buffers are host memory; leave a tenth for the host's own arrays.
        let host = (info.device_type == wgpu::DeviceType::Cpu)
            .then(crate::memory::host_available)
            .flatten()
            .map(|b| (b / 10 * 9, BudgetSource::HostMemory));
        let memory_budget = match (opts.memory_limit.map(|b| (b, BudgetSource::Limit)), host) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        let uniform_weights_bytes = opts
            .uniform_weights_bytes
            .unwrap_or(limits.max_uniform_buffer_binding_size)
            .min(limits.max_uniform_buffer_binding_size);
        Ok(Arc::new(Self {
            device,
            queue,
            info,
            limits,
            features,
            max_workgroups_per_dim: opts
                .max_workgroups_per_dim
                .unwrap_or(MAX_WORKGROUPS_PER_DIM)
                .clamp(1, MAX_WORKGROUPS_PER_DIM),
            row_budget_bytes: opts.row_budget_bytes.unwrap_or(ROW_BUDGET_BYTES).max(4),
            reduce_slice_rows: opts.reduce_slice_rows,
            loop_budget,
            uniform_weights_bytes,
            accumulate_gradients,
            steps_per_dispatch: opts.steps_per_dispatch.unwrap_or(usize::MAX).max(1),
            memory_budget,
            allocated: Arc::new(Default::default()),
            size_advice: opts.size_advice,
            kernels: KernelCache::default(),
            adapters: listed,
        }))
    }

    /// Counts `bytes` of a new buffer against the memory budget until the returned reservation
    /// is dropped (with its buffer), refusing it (before it is created) where it would pass the
    /// budget.
    ///
    /// The refusal advises shrinking what holds most of the total, not what the last buffer
    /// grows with: a large batch can push a small parameter-sized buffer over the budget.
    pub(crate) fn reserve(&self, label: &str, bytes: u64) -> Result<Reservation, GpuError> {
        let growth = Self::growth(label);
        let counter = &self.allocated[growth as usize];
        counter.fetch_add(bytes, Ordering::Relaxed);
        let [batch, flow] = self.allocated.each_ref().map(|c| c.load(Ordering::Relaxed));
        match self.memory_budget {
            Some((budget, origin)) if batch + flow > budget => {
                counter.fetch_sub(bytes, Ordering::Relaxed);
                let larger = if flow > batch {
                    Growth::Flow
                } else {
                    Growth::Batch
                };
                Err(GpuError::DeviceMemory {
                    label: label.to_string(),
                    bytes: crate::memory::human(bytes),
                    total: format!(
                        "{} ({} of it parameter-sized)",
                        crate::memory::human(batch + flow),
                        crate::memory::human(flow)
                    ),
                    budget: crate::memory::human(budget),
                    origin,
                    advice: self.advice(larger),
                })
            }
            _ => Ok(Reservation {
                counters: self.allocated.clone(),
                growth,
                bytes,
            }),
        }
    }

    /// Bytes of the storage buffers of this context that are alive.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Runs `f` inside validation and out-of-memory error scopes and maps what they catch to typed errors.
    pub fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T, GpuError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v {
            return Err(GpuError::Validation {
                context: context.to_string(),
                message: e.to_string(),
            });
        }
        if o.is_some() {
            return Err(GpuError::OutOfMemory {
                context: context.to_string(),
                advice: self.advice_for(context),
            });
        }
        Ok(out)
    }

    /// Records the dispatches in order into command buffers and submits them: long lists as
    /// several of at most [`MAX_DISPATCHES_PER_SUBMISSION`], one after another (the same
    /// order, so the same results), because an HMC trajectory of many
    /// leapfrog steps would otherwise hold its whole recording in host memory, and keep a GPU
    /// busy past a display driver's watchdog, in one piece.
    pub fn submit(&self, label: &str, dispatches: &[&Dispatch]) -> Result<(), GpuError> {
        for part in dispatches.chunks(MAX_DISPATCHES_PER_SUBMISSION) {
            self.scoped(label, || {
                let mut enc = self
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(label),
                        timestamp_writes: None,
                    });
                    for d in part {
                        d.record(&mut pass);
                    }
                }
                self.queue.submit([enc.finish()]);
            })?;
        }
        Ok(())
    }

    /// Refuses a kernel whose invocations would run more loop iterations than the adapter
    /// allows; `advice` says which flag to change.
    pub fn check_loops(&self, kernel: &str, iterations: u64, advice: &str) -> Result<(), GpuError> {
        match self.loop_budget {
            Some(limit) if iterations > limit => Err(GpuError::LoopBudget {
                kernel: kernel.to_string(),
                adapter: self.info.name.clone(),
                iterations,
                limit,
                advice: advice.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Workgroup counts covering `invocations` with `wg`-wide workgroups (see [`grid`]).
    pub fn grid(&self, invocations: u64, wg: u32) -> [u32; 3] {
        grid(invocations, wg, self.max_workgroups_per_dim)
    }

    /// Blocks until all submitted work has finished.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Poll(e.to_string()))
    }
}

/// An adapter wgpu finds, as `neuralrg-gpu info` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    /// Whether it is the context's adapter.
    pub in_use: bool,
    /// Why it cannot run the kernels, if it cannot ([`unsuitable`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsuitable: Option<String>,
}

impl AdapterSummary {
    fn new(i: &wgpu::AdapterInfo, unsuitable: Option<String>, in_use: bool) -> Self {
        Self {
            name: i.name.clone(),
            backend: format!("{:?}", i.backend),
            device_type: format!("{:?}", i.device_type),
            in_use,
            unsuitable,
        }
    }
}

/// What `neuralrg-gpu info` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_uniform_buffer_binding_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub shader_f16: bool,
    pub timestamp_query: bool,
    pub subgroup: bool,
    /// Every adapter found, this one among them.
    pub adapters: Vec<AdapterSummary>,
}

impl GpuContext {
    /// The adapter in use, its limits and features, and every adapter found.
    pub fn report(&self) -> AdapterReport {
        let l = &self.limits;
        AdapterReport {
            name: self.info.name.clone(),
            backend: format!("{:?}", self.info.backend),
            device_type: format!("{:?}", self.info.device_type),
            driver: self.info.driver.clone(),
            driver_info: self.info.driver_info.clone(),
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            max_uniform_buffer_binding_size: l.max_uniform_buffer_binding_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            shader_f16: self.features.contains(wgpu::Features::SHADER_F16),
            timestamp_query: self.features.contains(wgpu::Features::TIMESTAMP_QUERY),
            subgroup: self.features.contains(wgpu::Features::SUBGROUP),
            adapters: self.adapters.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adapter_without_what_the_kernels_need_is_unsuitable_and_says_why() {
        let all = wgpu::DownlevelFlags::all();
        let limits = wgpu::Limits::default();
        assert_eq!(unsuitable(&limits, all), None);
        let why = unsuitable(&limits, all - wgpu::DownlevelFlags::COMPUTE_SHADERS).unwrap();
        assert!(why.contains("compute shaders"), "{why}");
        let few = wgpu::Limits {
            max_storage_buffers_per_shader_stage: 4,
            ..limits.clone()
        };
        let why = unsuitable(&few, all).unwrap();
        assert!(why.contains("4 storage buffers"), "{why}");
        let small = wgpu::Limits {
            max_compute_workgroup_size_x: 32,
            ..limits
        };
        let why = unsuitable(&small, all).unwrap();
        assert!(why.contains("32 invocations"), "{why}");
    }

    #[test]
    fn the_choice_passes_over_adapters_that_cannot_run_the_kernels() {
        use wgpu::{Backend, DeviceType};
        let found: Vec<Candidate> = vec![
            (
                "GPU A".into(),
                Backend::Vulkan,
                DeviceType::DiscreteGpu,
                Some("no compute".into()),
            ),
            ("GPU A".into(), Backend::Gl, DeviceType::DiscreteGpu, None),
            ("llvmpipe".into(), Backend::Vulkan, DeviceType::Cpu, None),
            (
                "Old GL".into(),
                Backend::Gl,
                DeviceType::IntegratedGpu,
                Some("4 buffers".into()),
            ),
        ];
        // The best that can run them, though an unusable one ranks higher; by name, a usable
        // match beside an unusable one.
        assert_eq!(choose(&found, None).unwrap(), 1);
        assert_eq!(choose(&found, Some("gpu a")).unwrap(), 1);
        assert_eq!(choose(&found, Some("llvm")).unwrap(), 2);
        // Named but unusable: its reason and the usable names.
        let e = choose(&found, Some("old gl")).unwrap_err().to_string();
        assert!(
            e.contains("4 buffers") && e.contains("GPU A, llvmpipe"),
            "{e}"
        );
        assert!(matches!(
            choose(&found, Some("nothing")),
            Err(GpuError::AdapterNotFound { .. })
        ));
        // None usable: each with its reason.
        let e = choose(&found[3..], None).unwrap_err().to_string();
        assert!(
            e.contains("\"Old GL\" (Gl): 4 buffers") && e.contains("install"),
            "{e}"
        );
    }
}
