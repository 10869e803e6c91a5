//! Learning-rate schedules as plain state machines (no tensors), so their
//! state is two numbers in the resumable checkpoint and they are tested
//! exactly.

use super::config::SchedulerConfig;
use serde::{Deserialize, Serialize};

/// A schedule's mutable state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    config: SchedulerConfig,
    base_lr: f64,
    total_steps: usize,
    /// Current multiplier of the plateau schedule.
    plateau_scale: f64,
    /// Best validation score seen (plateau).
    best: f64,
    /// Validations since the best (plateau).
    bad: usize,
}

impl Schedule {
    /// A schedule for `total_steps` optimiser steps at peak `base_lr`.
    pub fn new(config: SchedulerConfig, base_lr: f64, total_steps: usize) -> Schedule {
        Schedule {
            config,
            base_lr,
            total_steps,
            plateau_scale: 1.0,
            best: f64::MIN, // finite: the state is JSON
            bad: 0,
        }
    }

    /// The same progress (plateau cuts, best score) under a possibly
    /// changed configuration: a resumed run follows its current config.
    pub fn retarget(self, config: SchedulerConfig, base_lr: f64, total_steps: usize) -> Schedule {
        Schedule {
            config,
            base_lr,
            total_steps,
            ..self
        }
    }

    /// Learning rate of step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        match self.config {
            SchedulerConfig::Constant => self.base_lr,
            SchedulerConfig::Plateau { min_lr, .. } => {
                (self.base_lr * self.plateau_scale).max(min_lr)
            }
            SchedulerConfig::WarmupCosine {
                warmup_steps,
                min_lr,
            } => {
                if step < warmup_steps {
                    self.base_lr * (step + 1) as f64 / warmup_steps as f64
                } else {
                    let span = self.total_steps.saturating_sub(warmup_steps).max(1) as f64;
                    let t = ((step - warmup_steps) as f64 / span).min(1.0);
                    min_lr
                        + 0.5 * (self.base_lr - min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
                }
            }
        }
    }

    /// Report a validation score (higher is better); the plateau schedule
    /// cuts its rate after `patience` reports without improvement.
    pub fn observe(&mut self, score: f64) {
        if let SchedulerConfig::Plateau {
            factor, patience, ..
        } = self.config
        {
            if score > self.best {
                self.best = score;
                self.bad = 0;
            } else {
                self.bad += 1;
                if self.bad > patience {
                    self.plateau_scale *= factor;
                    self.bad = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let s = Schedule::new(
            SchedulerConfig::WarmupCosine {
                warmup_steps: 4,
                min_lr: 0.1,
            },
            1.0,
            104,
        );
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert_eq!(s.lr(4), 1.0);
        assert!((s.lr(54) - 0.55).abs() < 1e-12); // half way: mean of peak and floor
        assert!((s.lr(104) - 0.1).abs() < 1e-12);
        assert!((s.lr(500) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn plateau_cuts_after_patience_without_improvement() {
        let mut s = Schedule::new(
            SchedulerConfig::Plateau {
                factor: 0.5,
                patience: 2,
                min_lr: 0.2,
            },
            1.0,
            100,
        );
        for score in [0.5, 0.6, 0.6, 0.59] {
            s.observe(score);
        }
        assert_eq!(s.lr(10), 1.0); // two bad reports: still patient
        s.observe(0.55);
        assert_eq!(s.lr(10), 0.5);
        s.observe(0.7); // improvement resets the count
        for _ in 0..3 {
            s.observe(0.1);
        }
        assert_eq!(s.lr(10), 0.25);
        for _ in 0..3 {
            s.observe(0.1);
        }
        assert_eq!(s.lr(10), 0.2); // floor
    }
}
