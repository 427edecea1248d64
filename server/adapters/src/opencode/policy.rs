//! How hard the OpenCode client tries, and how fast it gives up: timeouts, retries, the
//! client-side rate limit, the circuit breaker and the event stream's liveness rules. One
//! [`ResiliencePolicy`] per server; the defaults suit a production fleet, tests shrink them.

use std::num::NonZeroU32;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct ResiliencePolicy {
    /// Any call but the blocking prompt, from sending to the last byte of the answer.
    pub request_timeout: Duration,
    /// The blocking prompt, which answers only when the whole turn is done.
    pub prompt_timeout: Duration,
    /// Establishing the TCP connection.
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Requests per second to this server from this process; `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    pub breaker: BreakerPolicy,
    pub events: EventStreamPolicy,
    /// How often a [`super::Fleet`] asks each server for its health.
    pub health_check_interval: Duration,
}

impl Default for ResiliencePolicy {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            prompt_timeout: Duration::from_secs(2 * 60 * 60),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            rate_limit: Some(RateLimit::default()),
            breaker: BreakerPolicy::default(),
            events: EventStreamPolicy::default(),
            health_check_interval: Duration::from_secs(15),
        }
    }
}

/// Exponential backoff with jitter for calls that are safe to repeat.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Randomise each delay so many clients do not retry in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    pub(crate) fn backoff(&self) -> backon::ExponentialBuilder {
        let builder = backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries);
        if self.jitter {
            builder.with_jitter()
        } else {
            builder
        }
    }
}

/// A GCRA quota: a sustained rate with a burst allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Default for RateLimit {
    fn default() -> Self {
        // OpenCode answers reads in milliseconds; this only stops a runaway loop from flooding it.
        Self {
            per_second: NonZeroU32::new(50).expect("non-zero"),
            burst: NonZeroU32::new(20).expect("non-zero"),
        }
    }
}

/// When the circuit breaker opens, and for how long.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerPolicy {
    /// Consecutive server faults (unreachable, timeout, 5xx) that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before letting one probe through.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

/// Liveness and reconnection of the event stream.
#[derive(Clone, Debug, PartialEq)]
pub struct EventStreamPolicy {
    /// How often the server sends `server.heartbeat` (OpenCode: every 10 s).
    pub heartbeat_interval: Duration,
    /// Silent intervals after which the stream counts as dead and is reopened.
    pub missed_heartbeats: u32,
    /// Reconnection backoff: first delay, doubling up to the maximum, with jitter.
    pub reconnect_min_delay: Duration,
    pub reconnect_max_delay: Duration,
}

impl Default for EventStreamPolicy {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            missed_heartbeats: 3,
            reconnect_min_delay: Duration::from_millis(250),
            reconnect_max_delay: Duration::from_secs(10),
        }
    }
}

impl EventStreamPolicy {
    /// How long the stream may stay silent before it is reopened.
    pub fn silence_limit(&self) -> Duration {
        self.heartbeat_interval * self.missed_heartbeats.max(1)
    }
}

impl From<&crate::opencode::settings::OpenCodeResilienceSettings> for ResiliencePolicy {
    fn from(s: &crate::opencode::settings::OpenCodeResilienceSettings) -> Self {
        let defaults = ResiliencePolicy::default();
        Self {
            request_timeout: Duration::from_secs(s.request_timeout_secs),
            connect_timeout: Duration::from_secs(s.connect_timeout_secs),
            retry: RetryPolicy {
                max_retries: s.max_retries as usize,
                ..defaults.retry
            },
            rate_limit: NonZeroU32::new(s.rate_limit_per_second).map(|per_second| RateLimit {
                per_second,
                burst: per_second.min(RateLimit::default().burst),
            }),
            breaker: BreakerPolicy {
                failure_threshold: s.breaker_failure_threshold,
                open_for: Duration::from_secs(s.breaker_open_secs),
            },
            health_check_interval: Duration::from_secs(s.health_check_interval_secs),
            ..defaults
        }
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;
    use crate::opencode::settings::OpenCodeResilienceSettings;

    #[test]
    fn settings_become_the_policy_and_zero_rate_means_unlimited() {
        let settings = OpenCodeResilienceSettings {
            request_timeout_secs: 7,
            breaker_failure_threshold: 2,
            breaker_open_secs: 9,
            rate_limit_per_second: 0,
            max_retries: 1,
            ..OpenCodeResilienceSettings::default()
        };
        let policy = ResiliencePolicy::from(&settings);
        assert_eq!(policy.request_timeout, Duration::from_secs(7));
        assert_eq!(policy.breaker.failure_threshold, 2);
        assert_eq!(policy.breaker.open_for, Duration::from_secs(9));
        assert_eq!(policy.retry.max_retries, 1);
        assert!(policy.rate_limit.is_none());
        let limited = ResiliencePolicy::from(&OpenCodeResilienceSettings {
            rate_limit_per_second: 5,
            ..OpenCodeResilienceSettings::default()
        });
        assert_eq!(limited.rate_limit.unwrap().per_second.get(), 5);
        assert_eq!(limited.rate_limit.unwrap().burst.get(), 5);
    }
}
