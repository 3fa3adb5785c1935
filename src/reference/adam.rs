//! f64 reference of one Adam step, exactly as `torch.optim.Adam` (no weight decay, no AMSGrad)
//! computes it for one parameter group.

pub use crate::model::AdamHyper;

/// One Adam update of a parameter group in place. `step` is the group's step count after
/// incrementing (1 on the first update). Every element is updated, zero gradients included.
pub fn adam_step(
    param: &mut [f64],
    grad: &[f64],
    exp_avg: &mut [f64],
    exp_avg_sq: &mut [f64],
    lr: f64,
    step: u32,
    hyper: &AdamHyper,
) {
    assert!(step >= 1, "Adam steps count from 1");
    assert!(grad.len() == param.len() && exp_avg.len() == param.len());
    assert_eq!(exp_avg_sq.len(), param.len());
    let bias1 = 1.0 - hyper.beta1.powi(step as i32);
    let bias2 = 1.0 - hyper.beta2.powi(step as i32);
    let step_size = lr / bias1;
    for i in 0..param.len() {
        let g = grad[i];
        exp_avg[i] = hyper.beta1 * exp_avg[i] + (1.0 - hyper.beta1) * g;
        exp_avg_sq[i] = hyper.beta2 * exp_avg_sq[i] + (1.0 - hyper.beta2) * g * g;
        let denom = exp_avg_sq[i].sqrt() / bias2.sqrt() + hyper.eps;
        param[i] -= step_size * exp_avg[i] / denom;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_by_lr_against_the_gradient_sign() {
        // At t = 1, m_hat = g and sqrt(v_hat) = |g|: the step is lr * sign(g) (eps aside).
        let mut p = vec![1.0, 1.0, 1.0];
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        adam_step(
            &mut p,
            &[0.5, -3.0, 0.0],
            &mut m,
            &mut v,
            0.1,
            1,
            &AdamHyper::default(),
        );
        assert!((p[0] - 0.9).abs() < 1e-12 && (p[1] - 1.1).abs() < 1e-12);
        assert_eq!(p[2], 1.0);
        assert!((m[0] - 0.05).abs() < 1e-15 && (v[1] - 0.009).abs() < 1e-15);
    }

    #[test]
    fn zero_gradient_still_moves_by_momentum() {
        let hyper = AdamHyper::default();
        let mut p = vec![0.0];
        let (mut m, mut v) = (vec![0.0], vec![0.0]);
        adam_step(&mut p, &[1.0], &mut m, &mut v, 0.01, 1, &hyper);
        let after_first = p[0];
        adam_step(&mut p, &[0.0], &mut m, &mut v, 0.01, 2, &hyper);
        // m = 0.09, v = 0.000999; m_hat = 0.09 / 0.19, v_hat = 0.000999 / 0.001999.
        let expected = 0.01 * (0.09 / 0.19) / (0.000_999f64 / 0.001_999).sqrt();
        assert!((after_first - p[0] - expected).abs() < 1e-12);
    }
}
