//! f64 twin of `shaders/adam.wgsl`.

use crate::train::AdamConfig;

/// One Adam update at step `t` (1-based) of `params` and the moments `m`, `v`.
pub fn adam_step(
    cfg: &AdamConfig,
    t: u64,
    params: &mut [f64],
    m: &mut [f64],
    v: &mut [f64],
    grad: &[f64],
) {
    let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    if !norm.is_finite() {
        return;
    }
    let factor = if cfg.clip_grad > 0.0 {
        (cfg.clip_grad / (norm + 1e-6)).min(1.0)
    } else {
        1.0
    };
    let bias1 = 1.0 - cfg.beta1.powi(t as i32);
    let bias2 = 1.0 - cfg.beta2.powi(t as i32);
    for i in 0..params.len() {
        let g = grad[i] * factor;
        m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g;
        v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g * g;
        params[i] -= cfg.lr
            * ((m[i] / bias1) / ((v[i] / bias2).sqrt() + cfg.eps) + cfg.weight_decay * params[i]);
    }
}
