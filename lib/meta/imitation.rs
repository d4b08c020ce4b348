//! Imitation of a hand-designed optimizer before the meta-loss (beyond the paper; Chen et al.,
//! NeurIPS 2020; docs/method.md, "Beyond the paper").

use super::config::{ImitationLoss, MetaTrainConfig};
use super::workspace::Shard;
use crate::baselines::UpdateRule;

/// The imitation term of step `t` of an unroll on one shard: the teacher takes its step from
/// the same θ_t and ∇_t (`s.anchor` enters as θ_t and leaves as the teacher's θ_{t+1}), and
/// `s.d_outputs` of step t receives dL/d(raw output). Returns Σ over the shard's problems of
/// (1/n) Σ_i (weighted) r_i², r = the network's update − the teacher's.
pub(crate) fn imitation_step<S>(
    cfg: &MetaTrainConfig,
    t: usize,
    dim: usize,
    count: usize,
    s: &mut Shard<S>,
) -> f64 {
    let rows = s.theta.len();
    let scale = cfg.output_scale;
    let imitation_scale = 2.0 * scale / (count * dim) as f32;
    let teacher = s.teacher.as_mut().expect("imitation without a teacher");
    teacher.step(&mut s.anchor, &s.grads[t * rows..(t + 1) * rows]);
    let d = &mut s.d_outputs[t * rows..(t + 1) * rows];
    for ((d, own), taught) in d.iter_mut().zip(&s.theta).zip(&s.anchor) {
        *d = own - taught;
    }
    let squares = if s.teacher_update_ms.is_empty() {
        d.iter().map(|&r| (r * r) as f64).sum()
    } else {
        weigh_relative(dim, scale, s.step.outputs(), &mut s.teacher_update_ms, d)
    };
    for d in d.iter_mut() {
        *d *= imitation_scale;
    }
    squares / dim as f64
}

/// Relative imitation ([`ImitationLoss::Relative`]): turns each error r_i (in `errors`, one
/// problem of `dim` coordinates after another) into r_i / (v_i + δ²), the derivative of the
/// weighted loss up to the factor 2, and returns Σ_i r_i² / (v_i + δ²). The teacher's update
/// is the LSTM's, output_scale · m_i, less the error.
fn weigh_relative(
    dim: usize,
    output_scale: f32,
    outputs: &[f32],
    update_ms: &mut [f32],
    errors: &mut [f32],
) -> f64 {
    let decay = ImitationLoss::DECAY;
    let mut weighted = 0.0f64;
    for ((out, ms), err) in outputs
        .chunks_exact(dim)
        .zip(update_ms.chunks_exact_mut(dim))
        .zip(errors.chunks_exact_mut(dim))
    {
        let mut mean = 0.0f64;
        for ((&m, v), &r) in out.iter().zip(ms.iter_mut()).zip(err.iter()) {
            let taught = output_scale * m - r;
            *v = decay * *v + (1.0 - decay) * taught * taught;
            mean += *v as f64;
        }
        let floor =
            ((ImitationLoss::FLOOR as f64 * mean / dim as f64) as f32).max(f32::MIN_POSITIVE);
        for (v, r) in ms.iter().zip(err.iter_mut()) {
            let weight = 1.0 / (v + floor);
            weighted += (*r * *r * weight) as f64;
            *r *= weight;
        }
    }
    weighted
}
