//! The physics: the lattice, the seam every model implements ([`Target`]), the continuous Ising
//! target of eq. (7) with its device stage, and exact free energies.

pub mod exact;
pub mod ising;
mod ising_stage;
pub mod lattice;
pub mod target;
pub mod target_stage;
pub mod wolff;

pub use ising::IsingTarget;
pub use lattice::Lattice;
pub use target::Target;
pub use target_stage::TargetStage;
