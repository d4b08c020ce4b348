//! Eq. (1), θ_{t+1} = θ_t + g_t, for the rows of a shard of problems: g_t is the output scale
//! times the networks' output on the preprocessed gradient (§2.1, Appendix A), plus the step
//! of a base rule where the optimizer has one. Evaluation (a forward-only tape) and
//! meta-training (a tape that records an unroll) both step here, and meta-training's BPTT runs
//! back through the same tapes.
//!
//! Each network serves the rows of its parameter group: a problem's groups are gathered into
//! one contiguous block of rows per network, and the outputs scattered back. The paper's single
//! network serves every row in place, with no copy.

use super::architecture::{CoordinateTape, TapeRows};
use super::optimizer::Networks;
use super::preprocessing::Preprocessing;
use crate::baselines::{BaseStep, BaselineRule, CorrectionForm, UpdateRule};
use crate::error::{Error, Result};
use crate::kernels::fastmath::exp_f32;
use crate::problems::ParamGroup;
use std::ops::Range;

/// One network's share of the rows.
struct Part {
    /// This network's weights within φ.
    weights: Range<usize>,
    /// Its rows, or `None` for every row in order.
    rows: Option<Vec<Range<usize>>>,
    tape: Box<dyn CoordinateTape>,
    // Gathered copies of the rows' features, outputs and gradients (empty when `rows` is None).
    features: Vec<f32>,
    outputs: Vec<f32>,
    d_outputs: Vec<f32>,
    dy: Vec<f32>,
    d_inputs: Vec<f32>,
}

/// The state of eq. (1) over `problems × dim` rows: tapes, buffers and the base rule, all
/// allocated once.
pub struct LearnedStep {
    preprocessing: Preprocessing,
    output_scale: f32,
    parts: Vec<Part>,
    /// Preprocessed gradient features of every row (`rows × features`).
    features: Vec<f32>,
    /// The networks' raw output for every row, before the output scale.
    outputs: Vec<f32>,
    /// The base rule, and how the networks' output corrects its step.
    base: Option<(BaselineRule, CorrectionForm)>,
    /// The base rule's step Δ of every row, under [`CorrectionForm::Scaled`] (else empty).
    base_delta: Vec<f32>,
    rows: usize,
}

impl LearnedStep {
    /// Steps for `problems` problems of `dim` coordinates whose parameters fall into `groups`,
    /// recording `slots` steps for BPTT (1: forward only). Every group needs a network.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        networks: &Networks,
        preprocessing: Preprocessing,
        output_scale: f32,
        base: Option<BaseStep>,
        groups: &[ParamGroup],
        dim: usize,
        problems: usize,
        slots: usize,
    ) -> Result<Self> {
        let rows = problems * dim;
        let f = preprocessing.features();
        let mut served: Vec<Vec<Range<usize>>> = vec![Vec::new(); networks.len()];
        for g in groups {
            let k = networks.serving(&g.name).ok_or_else(|| {
                Error::Config(format!(
                    "the problem's parameter group '{}' has no network in this optimizer (it has {}); \
                     train one for this problem's groups",
                    g.name,
                    networks.groups().join(", ")
                ))
            })?;
            served[k].extend(g.ranges.iter().cloned());
        }
        for (net, within) in networks.iter().zip(&served) {
            let per_problem = within.iter().map(|r| r.len()).sum();
            net.architecture
                .check_rows(TapeRows::new(problems, per_problem))?;
        }
        let ranges = networks.ranges();
        let parts = networks
            .iter()
            .zip(served)
            .zip(ranges)
            .map(|((net, mut within), weights)| {
                within.sort_by_key(|r| r.start);
                let all_rows = merge((0..problems).flat_map(|p| {
                    within
                        .iter()
                        .map(move |r| p * dim + r.start..p * dim + r.end)
                }));
                let n: usize = all_rows.iter().map(|r| r.len()).sum();
                let whole = all_rows.len() == 1 && all_rows[0] == (0..rows);
                let gathered = |width: usize| if whole { Vec::new() } else { vec![0.0; width] };
                Part {
                    weights,
                    tape: net
                        .architecture
                        .tape(TapeRows::new(problems, n / problems.max(1)), slots),
                    features: gathered(n * f),
                    outputs: gathered(n),
                    d_outputs: if slots > 1 {
                        gathered(slots * n)
                    } else {
                        Vec::new()
                    },
                    dy: if slots > 1 { gathered(n) } else { Vec::new() },
                    d_inputs: if slots > 1 {
                        gathered(n * f)
                    } else {
                        Vec::new()
                    },
                    rows: (!whole).then_some(all_rows),
                }
            })
            .collect();
        Ok(LearnedStep {
            preprocessing,
            output_scale,
            parts,
            features: vec![0.0; rows * f],
            outputs: vec![0.0; rows],
            base: base.map(|b| (b.kind.rule(b.lr, rows), b.form)),
            base_delta: match base {
                Some(b) if b.form == CorrectionForm::Scaled => vec![0.0; rows],
                _ => Vec::new(),
            },
            rows,
        })
    }

    /// Back to the state before the first step (a new trajectory).
    pub fn reset(&mut self) {
        for p in &mut self.parts {
            p.tape.reset_state();
        }
        if let Some((base, _)) = &mut self.base {
            base.reset();
        }
    }

    /// Begins a truncated unroll: the state carries over, gradients will stop here.
    pub fn start_unroll(&mut self) {
        for p in &mut self.parts {
            p.tape.start_unroll();
        }
    }

    /// Eq. (1): θ ← θ + output_scale · m(pre(∇)), then the base rule's step, with the weights
    /// φ = `weights`; under a scaled base rule θ ← θ + Δ · exp(output_scale · m) instead.
    pub fn step(&mut self, weights: &[f32], theta: &mut [f32], grad: &[f32]) {
        let f = self.preprocessing.features();
        self.preprocessing.apply(grad, &mut self.features);
        for p in &mut self.parts {
            let w = &weights[p.weights.clone()];
            match &p.rows {
                None => p.tape.forward(w, &self.features, &mut self.outputs),
                Some(rows) => {
                    gather(&self.features, rows, f, &mut p.features);
                    p.tape.forward(w, &p.features, &mut p.outputs);
                    scatter(&p.outputs, rows, 1, &mut self.outputs);
                }
            }
        }
        let scale = self.output_scale;
        match &mut self.base {
            Some((base, CorrectionForm::Scaled)) => {
                base.delta(&mut self.base_delta, grad);
                for ((x, d), o) in theta.iter_mut().zip(&self.base_delta).zip(&self.outputs) {
                    *x += d * exp_f32(scale * o);
                }
            }
            base => {
                for (x, o) in theta.iter_mut().zip(&self.outputs) {
                    *x += scale * o;
                }
                if let Some((base, _)) = base {
                    base.step(theta, grad);
                }
            }
        }
    }

    /// The networks' raw outputs of the last step, one per row.
    pub fn outputs(&self) -> &[f32] {
        &self.outputs
    }

    /// Truncated BPTT over the steps recorded since [`LearnedStep::start_unroll`]:
    /// `d_outputs[t * rows + r]` is dL/d(raw output) of row r at step t. Adds dL/dφ to `grad`.
    pub fn backward(&mut self, weights: &[f32], d_outputs: &[f32], grad: &mut [f32]) {
        let rows = self.rows;
        for p in &mut self.parts {
            let (w, g) = (&weights[p.weights.clone()], &mut grad[p.weights.clone()]);
            match &p.rows {
                None => p.tape.backward(w, d_outputs, g),
                Some(part_rows) => {
                    let n = p.outputs.len();
                    for (t, dst) in p.d_outputs.chunks_exact_mut(n).enumerate() {
                        gather(&d_outputs[t * rows..(t + 1) * rows], part_rows, 1, dst);
                    }
                    p.tape.backward(w, &p.d_outputs, g);
                }
            }
        }
    }

    /// Starts a backward pass taken one step at a time, from the last recorded step down.
    pub fn backward_begin(&mut self) {
        for p in &mut self.parts {
            p.tape.backward_begin();
        }
    }

    /// Backward through recorded step `t` given dL/d(raw output) `dy` of every row; writes
    /// dL/d(input features) of that step to `d_features` (`rows × features`).
    pub fn backward_step(&mut self, weights: &[f32], t: usize, dy: &[f32], d_features: &mut [f32]) {
        let f = self.preprocessing.features();
        for p in &mut self.parts {
            let w = &weights[p.weights.clone()];
            match &p.rows {
                None => p.tape.backward_step(w, t, dy, d_features),
                Some(rows) => {
                    gather(dy, rows, 1, &mut p.dy);
                    p.tape.backward_step(w, t, &p.dy, &mut p.d_inputs);
                    scatter(&p.d_inputs, rows, f, d_features);
                }
            }
        }
    }

    /// Ends a step-by-step backward pass: adds dL/dφ to `grad`.
    pub fn backward_finish(&mut self, grad: &mut [f32]) {
        for p in &mut self.parts {
            p.tape.backward_finish(&mut grad[p.weights.clone()]);
        }
    }

    /// Bytes held by the tapes and buffers, for memory reports.
    pub fn bytes(&self) -> usize {
        let part: usize = self
            .parts
            .iter()
            .map(|p| {
                p.tape.bytes()
                    + 4 * (p.features.len()
                        + p.outputs.len()
                        + p.d_outputs.len()
                        + p.dy.len()
                        + p.d_inputs.len())
            })
            .sum();
        part + 4 * (self.features.len() + self.outputs.len() + self.base_delta.len())
    }
}

impl Clone for LearnedStep {
    fn clone(&self) -> Self {
        LearnedStep {
            preprocessing: self.preprocessing,
            output_scale: self.output_scale,
            parts: self
                .parts
                .iter()
                .map(|p| Part {
                    weights: p.weights.clone(),
                    rows: p.rows.clone(),
                    tape: p.tape.boxed_clone(),
                    features: p.features.clone(),
                    outputs: p.outputs.clone(),
                    d_outputs: p.d_outputs.clone(),
                    dy: p.dy.clone(),
                    d_inputs: p.d_inputs.clone(),
                })
                .collect(),
            features: self.features.clone(),
            outputs: self.outputs.clone(),
            base: self.base.clone(),
            base_delta: self.base_delta.clone(),
            rows: self.rows,
        }
    }
}

/// Sorted ranges with adjacent ones joined.
fn merge(ranges: impl Iterator<Item = Range<usize>>) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for r in ranges.filter(|r| !r.is_empty()) {
        match out.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

/// Copies rows `rows` (each `width` values) of `src` one after another into `dst`.
fn gather(src: &[f32], rows: &[Range<usize>], width: usize, dst: &mut [f32]) {
    let mut at = 0;
    for r in rows {
        let len = r.len() * width;
        dst[at..at + len].copy_from_slice(&src[r.start * width..r.end * width]);
        at += len;
    }
}

/// The inverse of [`gather`]: puts the rows of `src` back at `rows` of `dst`.
fn scatter(src: &[f32], rows: &[Range<usize>], width: usize, dst: &mut [f32]) {
    let mut at = 0;
    for r in rows {
        let len = r.len() * width;
        dst[r.start * width..r.end * width].copy_from_slice(&src[at..at + len]);
        at += len;
    }
}
