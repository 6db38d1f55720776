//! Time per dispatch: from GPU timestamps where the adapter has TIMESTAMP_QUERY (each dispatch
//! in its own compute pass, bracketed by a begin and an end timestamp), else from the wall clock
//! around each dispatch submitted and waited for on its own.

use std::time::Instant;

use super::context::GpuContext;
use super::error::GpuError;
use super::kernels::Dispatch;

/// Queries per query set (wgpu's limit is 4,096): two per dispatch.
const DISPATCHES_PER_SET: usize = 2048;

/// How the times were measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    GpuTimestamps,
    WallClock,
}

impl GpuContext {
    /// Runs `dispatches` in order, once, and returns each one's time in seconds.
    pub fn profile(&self, dispatches: &[&Dispatch]) -> Result<(Clock, Vec<f64>), GpuError> {
        if !self.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            let mut times = Vec::with_capacity(dispatches.len());
            for d in dispatches {
                let t = Instant::now();
                self.submit("profile", &[d])?;
                self.wait()?;
                times.push(t.elapsed().as_secs_f64());
            }
            return Ok((Clock::WallClock, times));
        }
        let period = self.queue.get_timestamp_period() as f64 * 1e-9;
        let mut times = Vec::with_capacity(dispatches.len());
        for chunk in dispatches.chunks(DISPATCHES_PER_SET) {
            let n = 2 * chunk.len() as u32;
            let bytes = 8 * n as u64;
            let ticks = self.scoped("profile", || {
                let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: n,
                });
                let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("profile timestamps"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("profile readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let mut enc = self
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("profile"),
                    });
                for (i, d) in chunk.iter().enumerate() {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(d.name()),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: &set,
                            beginning_of_pass_write_index: Some(2 * i as u32),
                            end_of_pass_write_index: Some(2 * i as u32 + 1),
                        }),
                    });
                    d.record(&mut pass);
                }
                enc.resolve_query_set(&set, 0..n, &resolved, 0);
                enc.copy_buffer_to_buffer(&resolved, 0, &readback, 0, bytes);
                self.queue.submit([enc.finish()]);
                readback
            })?;
            let slice = ticks.slice(..);
            slice.map_async(wgpu::MapMode::Read, |_| {});
            self.wait()?;
            let view = slice.get_mapped_range().map_err(|e| GpuError::Readback {
                label: "profile timestamps".into(),
                message: e.to_string(),
            })?;
            let stamps: &[u64] = bytemuck::cast_slice(&view);
            times.extend(
                stamps
                    .chunks(2)
                    .map(|p| p[1].saturating_sub(p[0]) as f64 * period),
            );
        }
        Ok((Clock::GpuTimestamps, times))
    }
}
