//! The physics: the lattice, the continuous Ising target of eq. (7), and exact free energies.

pub mod exact;
pub mod ising;
pub mod lattice;
pub mod target_stage;
pub mod wolff;

pub use ising::IsingTarget;
pub use lattice::Lattice;
