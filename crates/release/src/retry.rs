//! Bounded exponential backoff, shared by API calls and pushes.

use std::time::Duration;

/// How often and how patiently to retry a transient failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (at least 1).
    pub max_attempts: u32,
    /// The delay before the second attempt.
    pub initial_delay: Duration,
    /// The factor each later delay grows by.
    pub factor: f64,
    /// The longest delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The balena CLI's API retry: 7 attempts, 1 s doubling up to 60 s.
    pub const API: RetryPolicy = RetryPolicy {
        max_attempts: 7,
        initial_delay: Duration::from_secs(1),
        factor: 2.0,
        max_delay: Duration::from_secs(60),
    };

    /// The balena CLI's push retry: 3 attempts, 2 s then 2.8 s.
    pub const PUSH: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        initial_delay: Duration::from_secs(2),
        factor: 1.4,
        max_delay: Duration::from_secs(60),
    };

    /// No retry at all.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        initial_delay: Duration::ZERO,
        factor: 1.0,
        max_delay: Duration::ZERO,
    };

    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial_delay.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// Whether another attempt may follow failed attempt number `attempt`.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts.max(1)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::API
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy::PUSH;
        assert_eq!(p.delay(1), Duration::from_secs(2));
        assert_eq!(p.delay(2), Duration::from_millis(2800));
        let api = RetryPolicy::API;
        assert_eq!(api.delay(3), Duration::from_secs(4));
        assert_eq!(api.delay(30), Duration::from_secs(60));
        assert!(api.allows_retry_after(6));
        assert!(!api.allows_retry_after(7));
        assert!(!RetryPolicy::NONE.allows_retry_after(1));
    }
}
