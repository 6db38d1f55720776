//! Typed device buffers: allocation checked against the adapter's limits first, upload, readback.

use std::marker::PhantomData;
use std::sync::mpsc;

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::context::{GpuContext, Growth, Reservation};
use super::error::GpuError;

/// A device buffer of `len` elements of `T`.
pub struct GpuBuffer<T: Pod> {
    pub buffer: wgpu::Buffer,
    pub len: usize,
    label: String,
    _reservation: Reservation,
    _t: PhantomData<T>,
}

impl<T: Pod> GpuBuffer<T> {
    pub fn bytes(&self) -> u64 {
        (self.len * std::mem::size_of::<T>()) as u64
    }
}

/// Builds with `batch` rows, or with half as many again and again while a buffer does not fit
/// (the adapter's binding limits, the memory budget, or the driver's), down to one row; returns
/// the batch built with. For stages that map rows independently, so any batch gives the same rows.
pub fn fitting_batch<T>(
    mut batch: usize,
    mut build: impl FnMut(usize) -> Result<T, GpuError>,
) -> Result<(usize, T), GpuError> {
    loop {
        match build(batch) {
            Err(
                GpuError::BufferTooLarge { .. }
                | GpuError::DeviceMemory { .. }
                | GpuError::OutOfMemory { .. },
            ) if batch > 1 => {
                batch /= 2;
            }
            built => return built.map(|t| (batch, t)),
        }
    }
}

const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl GpuContext {
    /// The flags a buffer's size depends on, from its label: the parameter-sized buffers (the
    /// parameters, their packed copy, Adam's moments, gradients and their partial sums) grow with
    /// the flow, every other one with the batch and the lattice (as the command names them:
    /// [`GpuOptions::size_advice`](super::GpuOptions)).
    pub(crate) fn advice_for(&self, label: &str) -> &'static str {
        self.advice(Self::growth(label))
    }

    /// What a buffer grows with, from its label (see [`GpuContext::advice_for`]).
    pub(crate) fn growth(label: &str) -> Growth {
        const PER_PARAMETER: [&str; 5] = ["param", "weights", "adam", "grad", "partial sums"];
        if label != "grad log pi" && PER_PARAMETER.iter().any(|p| label.contains(p)) {
            Growth::Flow
        } else {
            Growth::Batch
        }
    }

    /// The command's advice for buffers that grow with `growth`.
    pub(crate) fn advice(&self, growth: Growth) -> &'static str {
        match growth {
            Growth::Batch => self.size_advice.batch,
            Growth::Flow => self.size_advice.flow,
        }
    }

    /// Refuses a buffer the adapter cannot hold, naming the size and the limit.
    pub fn check_buffer_size(
        &self,
        label: &str,
        bytes: u64,
        uniform: bool,
    ) -> Result<(), GpuError> {
        let (limit, limit_name) = if uniform {
            (
                self.limits.max_uniform_buffer_binding_size,
                "max_uniform_buffer_binding_size",
            )
        } else {
            (
                self.limits.max_storage_buffer_binding_size,
                "max_storage_buffer_binding_size",
            )
        };
        for (limit, limit_name) in [
            (limit, limit_name),
            (self.limits.max_buffer_size, "max_buffer_size"),
        ] {
            if bytes > limit {
                return Err(GpuError::BufferTooLarge {
                    label: label.to_string(),
                    bytes,
                    limit,
                    limit_name,
                    advice: self.advice_for(label),
                });
            }
        }
        Ok(())
    }

    /// A zero-filled storage buffer of `len` elements.
    pub fn storage<T: Pod>(&self, label: &str, len: usize) -> Result<GpuBuffer<T>, GpuError> {
        self.storage_with(label, len, wgpu::BufferUsages::empty())
    }

    /// A zero-filled storage buffer of `len` elements whose ranges can also be bound as
    /// uniforms (each range within the uniform binding limit; see [`GpuContext::dispatch_resources`]).
    pub fn storage_uniform<T: Pod>(
        &self,
        label: &str,
        len: usize,
    ) -> Result<GpuBuffer<T>, GpuError> {
        self.storage_with(label, len, wgpu::BufferUsages::UNIFORM)
    }

    fn storage_with<T: Pod>(
        &self,
        label: &str,
        len: usize,
        extra: wgpu::BufferUsages,
    ) -> Result<GpuBuffer<T>, GpuError> {
        // Zero-length bindings are invalid; keep one element so empty inputs still bind.
        let bytes = (len.max(1) * std::mem::size_of::<T>()) as u64;
        self.check_buffer_size(label, bytes, false)?;
        let reservation = self.reserve(label, bytes)?;
        let buffer = self.scoped(label, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.next_multiple_of(4),
                usage: STORAGE_USAGE | extra,
                mapped_at_creation: false,
            })
        })?;
        Ok(GpuBuffer {
            buffer,
            len,
            label: label.to_string(),
            _reservation: reservation,
            _t: PhantomData,
        })
    }

    /// A storage buffer holding a copy of `data`.
    pub fn storage_from<T: Pod>(&self, label: &str, data: &[T]) -> Result<GpuBuffer<T>, GpuError> {
        let buf = self.storage::<T>(label, data.len())?;
        self.write(&buf, data);
        Ok(buf)
    }

    /// A uniform buffer holding `value`; rewrite it with [`GpuContext::write_uniform`]. Not
    /// counted against the memory budget: a few dozen bytes of parameters each.
    pub fn uniform<T: Pod>(&self, label: &str, value: &T) -> Result<wgpu::Buffer, GpuError> {
        let bytes = bytemuck::bytes_of(value);
        self.check_buffer_size(label, bytes.len() as u64, true)?;
        self.scoped(label, || {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: bytes,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                })
        })
    }

    pub fn write_uniform<T: Pod>(&self, buffer: &wgpu::Buffer, value: &T) {
        self.queue
            .write_buffer(buffer, 0, bytemuck::bytes_of(value));
    }

    /// Overwrites the start of `buf` with `data` (queued; ordered before later submissions).
    pub fn write<T: Pod>(&self, buf: &GpuBuffer<T>, data: &[T]) {
        assert!(
            data.len() <= buf.len,
            "write of {} elements into {:?} of {}",
            data.len(),
            buf.label,
            buf.len
        );
        if !data.is_empty() {
            self.queue
                .write_buffer(&buf.buffer, 0, bytemuck::cast_slice(data));
        }
    }

    /// Copies each source buffer into its destination of the same length, in one submission
    /// (ordered after earlier and before later submissions).
    pub fn copy<T: Pod>(
        &self,
        label: &str,
        pairs: &[(&GpuBuffer<T>, &GpuBuffer<T>)],
    ) -> Result<(), GpuError> {
        self.scoped(label, || {
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
            for (from, to) in pairs {
                assert_eq!(
                    from.len, to.len,
                    "copy between buffers of different lengths"
                );
                enc.copy_buffer_to_buffer(&from.buffer, 0, &to.buffer, 0, from.bytes());
            }
            self.queue.submit([enc.finish()]);
        })
    }

    /// Copies the whole buffer back to the host, waiting for all queued work first.
    pub fn read<T: Pod>(&self, buf: &GpuBuffer<T>) -> Result<Vec<T>, GpuError> {
        if buf.len == 0 {
            return Ok(Vec::new());
        }
        let bytes = buf.bytes();
        let padded = bytes.next_multiple_of(4);
        let staging = self.scoped(&buf.label, || {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: padded,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("readback"),
                });
            enc.copy_buffer_to_buffer(&buf.buffer, 0, &staging, 0, padded);
            self.queue.submit([enc.finish()]);
            staging
        })?;
        let slice = staging.slice(..);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        let readback_err = |message: String| GpuError::Readback {
            label: buf.label.clone(),
            message,
        };
        rx.recv()
            .map_err(|e| readback_err(e.to_string()))?
            .map_err(|e| readback_err(e.to_string()))?;
        let view = slice
            .get_mapped_range()
            .map_err(|e| readback_err(e.to_string()))?;
        let data: Vec<T> = bytemuck::cast_slice(&view[..bytes as usize]).to_vec();
        drop(view);
        staging.unmap();
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn too_large() -> GpuError {
        GpuError::BufferTooLarge {
            label: "rows".into(),
            bytes: 2,
            limit: 1,
            limit_name: "max_buffer_size",
            advice: "reduce --batch",
        }
    }

    #[test]
    fn buffers_are_booked_to_what_they_grow_with() {
        use super::super::context::Growth;
        for label in [
            "flow params",
            "flow packed weights",
            "adam m",
            "grad",
            "gradient partial sums",
        ] {
            assert!(matches!(GpuContext::growth(label), Growth::Flow), "{label}");
        }
        // Per-sample or per-chain buffers whose names could read as parameter-sized.
        for label in [
            "grad log pi",
            "hmc log-det coefficients",
            "response log-det coefficients",
            "flow log-det partials",
            "train state",
        ] {
            assert!(
                matches!(GpuContext::growth(label), Growth::Batch),
                "{label}"
            );
        }
    }

    #[test]
    fn fitting_batch_halves_until_the_buffers_fit() {
        let mut tried = Vec::new();
        let got = fitting_batch(100, |b| {
            tried.push(b);
            if b > 20 {
                Err(too_large())
            } else {
                Ok(b * 10)
            }
        });
        assert_eq!(got.unwrap(), (12, 120));
        assert_eq!(tried, [100, 50, 25, 12]);
        // One row that does not fit is the error; another error is not retried.
        assert!(matches!(
            fitting_batch(4, |_| Err::<(), _>(too_large())),
            Err(GpuError::BufferTooLarge { .. })
        ));
        let mut calls = 0;
        let other = fitting_batch(8, |_| {
            calls += 1;
            Err::<(), _>(GpuError::Validation {
                context: "x".into(),
                message: "y".into(),
            })
        });
        assert!(matches!(other, Err(GpuError::Validation { .. })) && calls == 1);
    }
}
