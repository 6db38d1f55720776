//! Files: atomic writes and NumPy `.npz` output.

pub mod atomic;
pub mod checkpoint;
pub mod npy;

pub use atomic::write_atomic;
