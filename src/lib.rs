//! NeuralRG on the GPU: Neural Network Renormalization Group flows (Li & Wang, 2018) for
//! lattice statistical physics, with every numerical kernel in WGSL on wgpu.

pub mod analysis;
pub mod bench;
pub mod config;
pub mod flow;
pub mod gpu;
pub mod io;
pub mod logspace;
pub mod memory;
pub mod physics;
pub mod plot;
pub mod reference;
pub mod sample;
pub mod streams;
pub mod sweep;
pub mod train;
