//! Learning-rate schedules (REFERENCE.md, "Training loop").
//!
//! The reference decays only the position learning rate, exponentially from `lr_init` to
//! `lr_final` over `max_steps` (inria's `get_expon_lr_func`); every other group keeps a constant
//! rate. The position rates are multiplied by the scene's `spatial_lr_scale` (camera extent) by
//! the caller.

/// inria's `get_expon_lr_func`: a log-linear interpolation from `init` to `final_lr`, with an
/// optional warm-up ("delay") that scales the rate by a sine ramp from `delay_mult` to 1 over
/// the first `delay_steps` steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialLr {
    pub init: f64,
    pub final_lr: f64,
    /// Length of the warm-up ramp; 0 disables it (the reference's positions use 0).
    pub delay_steps: u32,
    /// Rate multiplier at step 0 of the warm-up ramp.
    pub delay_mult: f64,
    /// Step at which the rate reaches `final_lr` (and stays there).
    pub max_steps: u32,
}

impl ExponentialLr {
    /// The schedule without warm-up (`delay_steps = 0`, `delay_mult = 1`).
    pub fn new(init: f64, final_lr: f64, max_steps: u32) -> Self {
        Self {
            init,
            final_lr,
            delay_steps: 0,
            delay_mult: 1.0,
            max_steps,
        }
    }

    /// The learning rate at `step` (the reference passes the 1-based iteration number).
    pub fn at(&self, step: u32) -> f64 {
        // The reference returns 0 when both ends are 0 (their logarithms would be -inf).
        if self.init == 0.0 && self.final_lr == 0.0 {
            return 0.0;
        }
        let step = f64::from(step);
        let delay_rate = if self.delay_steps > 0 {
            let ramp = (step / f64::from(self.delay_steps)).clamp(0.0, 1.0);
            self.delay_mult + (1.0 - self.delay_mult) * (0.5 * std::f64::consts::PI * ramp).sin()
        } else {
            1.0
        };
        // max_steps = 0 would divide by zero; the reference would be at its end already.
        let t = if self.max_steps == 0 {
            1.0
        } else {
            (step / f64::from(self.max_steps)).clamp(0.0, 1.0)
        };
        let log_lerp = (self.init.ln() * (1.0 - t) + self.final_lr.ln() * t).exp();
        delay_rate * log_lerp
    }
}

/// The learning rate of every parameter group at a step, as the reference sets them: the
/// position rate follows [`ExponentialLr`] scaled by the scene extent, the others are constant,
/// and `f_rest` learns 20 times slower than `f_dc`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupLearningRates {
    /// The position schedule before scaling by `spatial_lr_scale`.
    pub position: ExponentialLr,
    /// The camera extent (REFERENCE.md, "Initialisation and scene").
    pub spatial_lr_scale: f64,
    pub feature: f64,
    pub opacity: f64,
    pub scaling: f64,
    pub rotation: f64,
}

impl GroupLearningRates {
    /// inria's defaults (OptimizationParams) for a scene of the given extent.
    pub fn reference_defaults(spatial_lr_scale: f64) -> Self {
        Self {
            position: ExponentialLr {
                delay_mult: 0.01,
                ..ExponentialLr::new(0.000_16, 0.000_001_6, 30_000)
            },
            spatial_lr_scale,
            feature: 0.0025,
            opacity: 0.025,
            scaling: 0.005,
            rotation: 0.001,
        }
    }

    /// The rates at `step` (the 1-based iteration) in [`crate::ParamGroup::ALL`] order.
    pub fn at(&self, step: u32) -> [f32; 6] {
        // Scaling both ends by the extent scales the whole log-lerp by it, as the reference
        // does by passing `lr_init * spatial_lr_scale` and `lr_final * spatial_lr_scale`.
        let position = ExponentialLr {
            init: self.position.init * self.spatial_lr_scale,
            final_lr: self.position.final_lr * self.spatial_lr_scale,
            ..self.position
        };
        [
            position.at(step),
            self.scaling,
            self.rotation,
            self.opacity,
            self.feature,
            self.feature / 20.0,
        ]
        .map(|lr| lr as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
    }

    /// inria's position schedule: 1.6e-4 -> 1.6e-6 over 30000 steps, no delay.
    fn positions() -> ExponentialLr {
        ExponentialLr {
            delay_mult: 0.01, // no effect without delay steps (REFERENCE.md)
            ..ExponentialLr::new(1.6e-4, 1.6e-6, 30_000)
        }
    }

    #[test]
    fn position_schedule_start_middle_end() {
        let lr = positions();
        assert!(close(lr.at(0), 1.6e-4));
        // Halfway the log-lerp is the geometric mean: sqrt(1.6e-4 * 1.6e-6) = 1.6e-5.
        assert!(close(lr.at(15_000), 1.6e-5), "{}", lr.at(15_000));
        // A quarter of the way: 1.6e-4 * 100^(-1/4) = 1.6e-4 / sqrt(10).
        assert!(close(lr.at(7_500), 1.6e-4 / 10f64.sqrt()));
        assert!(close(lr.at(30_000), 1.6e-6));
        // Past the end the rate stays at its final value.
        assert!(close(lr.at(45_000), 1.6e-6));
        // Monotone decreasing in between.
        assert!(lr.at(1) < lr.at(0) && lr.at(29_999) > lr.at(30_000));
    }

    #[test]
    fn delay_ramps_up_with_a_sine() {
        let lr = ExponentialLr {
            init: 1.0,
            final_lr: 1.0,
            delay_steps: 100,
            delay_mult: 0.01,
            max_steps: 1000,
        };
        assert!(close(lr.at(0), 0.01));
        // At half the delay: 0.01 + 0.99 * sin(pi/4).
        assert!(close(
            lr.at(50),
            0.01 + 0.99 * std::f64::consts::FRAC_1_SQRT_2
        ));
        assert!(close(lr.at(100), 1.0));
        assert!(close(lr.at(500), 1.0));
    }

    #[test]
    fn group_rates_follow_the_reference_layout() {
        let rates = GroupLearningRates::reference_defaults(2.0).at(0);
        // xyz, scaling, rotation, opacity, f_dc, f_rest (ParamGroup::ALL order).
        assert_eq!(rates, [0.000_32, 0.005, 0.001, 0.025, 0.0025, 0.000_125]);
        let end = GroupLearningRates::reference_defaults(2.0).at(30_000);
        assert!((f64::from(end[0]) - 3.2e-6).abs() < 1e-12);
    }

    #[test]
    fn zero_rates_stay_zero() {
        let lr = ExponentialLr::new(0.0, 0.0, 100);
        assert_eq!(lr.at(0), 0.0);
        assert_eq!(lr.at(50), 0.0);
        // A zero-length schedule is at its end immediately.
        assert!(close(ExponentialLr::new(2.0, 1.0, 0).at(0), 1.0));
    }
}
