//! The seam between a physical model and the machinery that learns it: the training step, the
//! target stages of sampling and HMC, the estimates' -ln Z and the f64 twins' gradient checks
//! see a model only through [`Target`]. What a second model (phi^4, say) needs besides a file
//! implementing it: its choice in the config and in `sample::Model` (which hold the Ising
//! target today), and its own observables and exact sampler where the samplers compare with
//! Wolff.

use super::target_stage::TargetStage;
use crate::gpu::{GpuBuffer, GpuContext, GpuError};

/// A target density pi(x) over configurations x of an L x L lattice (row-major sites).
pub trait Target {
    /// The lattice side L.
    fn lattice(&self) -> usize;

    /// The number of sites, L^2.
    fn n_sites(&self) -> usize {
        self.lattice() * self.lattice()
    }

    /// -ln Z of pi: the lower bound of the variational free energy.
    fn neg_ln_z(&self) -> f64;

    /// ln pi(x) (unnormalised) and grad ln pi(x) for one configuration: the f64 twin of
    /// [`Target::stage`].
    fn log_prob_and_grad(&self, x: &[f64]) -> (f64, Vec<f64>);

    /// The device stage filling ln pi and its gradient for `batch` configurations held in `x`
    /// ([batch, N]).
    fn stage(
        &self,
        ctx: &GpuContext,
        x: &GpuBuffer<f32>,
        batch: usize,
    ) -> Result<TargetStage, GpuError>;
}
