//! Typed GPU errors; each message says what went wrong and what the user can do.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found (backends tried: {backends}). Install a GPU driver with Vulkan, Metal or DX12 \
         support; on a CPU-only Linux host install Mesa's software Vulkan driver: \
         `apt-get install -y mesa-vulkan-drivers libvulkan1`"
    )]
    NoAdapter { backends: String },
    #[error("no adapter name contains {wanted:?}; available adapters: {available}")]
    AdapterNotFound { wanted: String, available: String },
    #[error(
        "cannot run neuralrg-gpu's kernels on {reasons}; name another adapter with --adapter \
         (these can: {suitable}) or leave --adapter out"
    )]
    AdapterUnsuitable { reasons: String, suitable: String },
    #[error(
        "no adapter found can run neuralrg-gpu's kernels ({reasons}): install a Vulkan driver \
         for the GPU; on a CPU-only Linux host, `apt-get install -y mesa-vulkan-drivers libvulkan1`"
    )]
    NoSuitableAdapter { reasons: String },
    #[error("the adapter {adapter:?} refused to create a device: {message}")]
    RequestDevice { adapter: String, message: String },
    #[error("GPU validation error in {context}: {message}")]
    Validation { context: String, message: String },
    #[error("GPU out of memory in {context}: {advice}")]
    OutOfMemory {
        context: String,
        advice: &'static str,
    },
    #[error(
        "buffer {label:?} needs {bytes} bytes but the adapter allows at most {limit} bytes ({limit_name}); \
         {advice}"
    )]
    BufferTooLarge {
        label: String,
        bytes: u64,
        limit: u64,
        limit_name: &'static str,
        /// Which flags to change: the buffer's size depends on them.
        advice: &'static str,
    },
    #[error(
        "buffer {label:?} ({bytes}) would bring this configuration's device memory to at least \
         {total}, above the {budget} {origin}; {advice}"
    )]
    DeviceMemory {
        label: String,
        bytes: String,
        /// The total, and how much of it grows with the flow's parameters.
        total: String,
        budget: String,
        origin: super::context::BudgetSource,
        advice: &'static str,
    },
    #[error(
        "WGPU_BACKEND={value:?} names no backend: use vulkan, metal, dx12 or gl (several \
         separated by commas), or unset it"
    )]
    BadBackendVariable { value: String },
    #[error(
        "kernel {kernel} would run {iterations} loop iterations per GPU thread, but {adapter} stops \
         every thread's loops after {limit} (results would be wrong); {advice}, or use a hardware GPU"
    )]
    LoopBudget {
        kernel: String,
        adapter: String,
        iterations: u64,
        limit: u64,
        advice: String,
    },
    #[error("kernel {kernel}: {message}")]
    Binding { kernel: String, message: String },
    #[error("reading back {label:?} from the GPU failed: {message}")]
    Readback { label: String, message: String },
    #[error("the GPU device was lost or timed out: {0}")]
    Poll(String),
}
