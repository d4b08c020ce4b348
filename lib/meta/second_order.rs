//! The second-order meta-gradient (beyond the paper; docs/method.md, "Second order"):
//! truncated BPTT with the Hessian terms the paper's assumption ∂∇_t/∂φ = 0 drops.

use super::workspace::Shard;
use crate::learned::Preprocessing;
use crate::problems::ProblemSet;

/// BPTT of one shard's unroll with the second-order terms, step by step from the last: with
/// λ_t = dL/dθ_t (per problem, over the batch size B), λ_T = w_T ∇_T / B; the output of step t
/// gets output_scale · λ_{t+1}; the networks' backward through step t gives ḡ_t = dL/d∇_t; and
/// λ_t = λ_{t+1} + w_t ∇_t / B + H_t ḡ_t. The paper's BPTT is this without H_t ḡ_t. ∇_0 comes
/// from before the unroll, where truncation stops the gradient. Adds dL/dφ to `s.grad`.
pub(crate) fn second_order_backward<P: ProblemSet>(
    weights: &[f32],
    pre: Preprocessing,
    scale: f32,
    u: usize,
    batch: &P,
    s: &mut Shard<P::Scratch>,
) {
    let (dim, rows) = (batch.dim(), s.theta.len());
    let local = s.problems.len();
    let t_len = s.thetas.len() / rows;
    let inv_count = 1.0 / batch.count() as f32;
    // Adds w_t ∇_t / B (t ≥ 1) to the adjoint.
    let add_loss_term = |adjoint: &mut [f32], grads: &[f32], step_weights: &[f32], t: usize| {
        for k in 0..local {
            let w = step_weights[(t - 1) * local + k] * inv_count;
            let span = k * dim..(k + 1) * dim;
            for (a, g) in adjoint[span.clone()]
                .iter_mut()
                .zip(&grads[t * rows..(t + 1) * rows][span])
            {
                *a += w * g;
            }
        }
    };
    s.adjoint.fill(0.0);
    add_loss_term(&mut s.adjoint, &s.grads, &s.step_weights, t_len);
    let hessian = batch
        .hessian()
        .expect("the workspace checked that the problem has Hessian-vector products");
    s.step.backward_begin();
    for t in (0..t_len).rev() {
        let dy = &mut s.d_outputs[t * rows..(t + 1) * rows];
        for (d, a) in dy.iter_mut().zip(&s.adjoint) {
            *d = scale * a;
        }
        s.step.backward_step(
            weights,
            t,
            &s.d_outputs[t * rows..(t + 1) * rows],
            &mut s.d_features,
        );
        if t == 0 {
            break;
        }
        let g_t = &s.grads[t * rows..(t + 1) * rows];
        pre.input_gradient(g_t, &s.d_features, &mut s.d_grad);
        for (k, p) in s.problems.clone().enumerate() {
            let span = k * dim..(k + 1) * dim;
            hessian.hessian_vector(
                p,
                u * t_len + t,
                &s.thetas[t * rows..(t + 1) * rows][span.clone()],
                &s.d_grad[span.clone()],
                &mut s.hessian_product[span],
                &mut s.scratch,
            );
        }
        for (a, h) in s.adjoint.iter_mut().zip(&s.hessian_product) {
            *a += h;
        }
        add_loss_term(&mut s.adjoint, &s.grads, &s.step_weights, t);
    }
    s.step.backward_finish(&mut s.grad);
}
