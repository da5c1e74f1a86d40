//! Per-site exponential backoff: each failure in a row doubles the wait (jittered, capped); a success resets it.

use std::time::Duration;

/// The first wait after a failure.
pub const BASE: Duration = Duration::from_secs(5);
/// The longest wait.
pub const CAP: Duration = Duration::from_secs(300);

/// Failures in a row, and the waits they earn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Counts a failure; returns how long to wait before the next try: `BASE` doubled for each
    /// earlier failure in a row, capped at `CAP`, then scaled by `jitter` (from 0.8 to 1.2, so
    /// that sites failing together do not retry in step).
    pub fn failed(&mut self, jitter: f64) -> Duration {
        let doublings = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let wait = BASE.saturating_mul(2u32.saturating_pow(doublings)).min(CAP);
        wait.mul_f64(jitter.clamp(0.8, 1.2))
    }

    /// A success: the next failure waits `BASE` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// A factor from 0.8 to 1.2, different at each call.
pub fn jitter() -> f64 {
    use std::hash::BuildHasher;
    let noise = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    // In ten-thousandths, so that the ends are exactly 0.8 and 1.2 (0.8 + 0.4 is not).
    (8_000 + noise % 4_001) as f64 / 10_000.0
}

/// `period` give or take a tenth of it: periodic work of many sites spreads out.
pub fn jittered(period: Duration) -> Duration {
    period.mul_f64((jitter() / 2.0 + 0.5).clamp(0.9, 1.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_the_base_up_to_the_cap_and_reset_on_success() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| backoff.failed(1.0).as_secs()).collect();
        assert_eq!(waits, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        backoff.reset();
        assert_eq!(backoff.failed(1.0), BASE);
    }

    #[test]
    fn jitter_stays_within_a_fifth_either_way() {
        for _ in 0..1000 {
            let factor = jitter();
            assert!((0.8..=1.2).contains(&factor), "{factor}");
            let period = jittered(Duration::from_secs(600)).as_secs_f64();
            assert!((540.0..=660.0).contains(&period), "{period}");
        }
        let mut backoff = Backoff::default();
        assert_eq!(
            backoff.failed(5.0),
            Duration::from_secs(6),
            "clamped to 1.2"
        );
    }
}
