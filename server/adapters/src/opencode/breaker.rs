//! The per-server circuit breaker: closed → open after N consecutive server faults → half-open
//! after the open duration (one probe call at a time) → closed on the probe's success, open again
//! on its failure.
//!
//! Why our own and not `recloser` or `failsafe`: the fleet must read a breaker's state without
//! making a call (to route new sessions away from an open one) — recloser exposes no state, and
//! failsafe's `is_call_permitted` moves the breaker as it answers; both time themselves with
//! `std::time::Instant`, so tokio's paused clock cannot drive their tests; recloser decides on a
//! failure *rate* over a full ring buffer where we want "N in a row"; and neither lets a
//! transition log name the server without wrapping it. The machine is small and tested below.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::policy::BreakerPolicy;

pub use oio_application::ports::BreakerState;

#[derive(Debug)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `probing`: the one trial call is out; others are refused until it reports.
    HalfOpen {
        probing: bool,
    },
}

/// One server's breaker. Cheap to share behind the client's `Arc`.
#[derive(Debug)]
pub struct CircuitBreaker {
    /// The server, as logs name it.
    server: String,
    policy: BreakerPolicy,
    inner: Mutex<Inner>,
}

/// Leave to make one call. Report its outcome with [`Permit::success`] or [`Permit::failure`];
/// a permit dropped without either (the call was cancelled) frees a half-open probe slot without
/// counting.
#[must_use]
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    /// The session the call is about, for the transition logs.
    session: &'a str,
    probe: bool,
    reported: bool,
}

impl CircuitBreaker {
    pub fn new(server: impl Into<String>, policy: BreakerPolicy) -> Self {
        let server = server.into();
        oio_application::metrics::set_breaker_state(&server, BreakerState::Closed);
        Self {
            server,
            policy,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is a plain value always left consistent: a panic elsewhere cannot corrupt it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state as routing should see it: an open breaker whose time is up reads half-open.
    pub fn state(&self) -> BreakerState {
        match &*self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Back to closed with no failures counted: the server behind it was replaced (a supervised
    /// restart), so the old failures say nothing about the new one.
    pub fn reset(&self) {
        *self.lock() = Inner::Closed { failures: 0 };
        oio_application::metrics::set_breaker_state(&self.server, BreakerState::Closed);
    }

    /// Leave to call, or how long until the breaker will let a probe through. `session` (may be
    /// empty) only names the call in logs.
    pub fn acquire<'a>(&'a self, session: &'a str) -> Result<Permit<'a>, Duration> {
        let mut inner = self.lock();
        let probe = match &mut *inner {
            Inner::Closed { .. } => false,
            Inner::Open { until } => {
                let now = Instant::now();
                if now < *until {
                    return Err(*until - now);
                }
                tracing::info!(server = %self.server, session, "circuit breaker half-open: letting one probe call through");
                *inner = Inner::HalfOpen { probing: true };
                oio_application::metrics::set_breaker_state(&self.server, BreakerState::HalfOpen);
                true
            }
            Inner::HalfOpen { probing } => {
                if *probing {
                    // The probe is still out; its outcome decides. Refuse without a wait hint.
                    return Err(Duration::ZERO);
                }
                *probing = true;
                true
            }
        };
        Ok(Permit {
            breaker: self,
            session,
            probe,
            reported: false,
        })
    }

    fn on_success(&self, probe: bool, session: &str) {
        let mut inner = self.lock();
        match &mut *inner {
            Inner::Closed { failures } => *failures = 0,
            Inner::HalfOpen { .. } if probe => {
                tracing::info!(server = %self.server, session, "circuit breaker closed: probe call succeeded");
                *inner = Inner::Closed { failures: 0 };
                oio_application::metrics::set_breaker_state(&self.server, BreakerState::Closed);
            }
            // A call let through before the breaker opened, or a non-probe in half-open (cannot
            // happen): the probe decides, not stragglers.
            Inner::HalfOpen { .. } | Inner::Open { .. } => {}
        }
    }

    fn on_failure(&self, probe: bool, session: &str) {
        let mut inner = self.lock();
        let open_for = self.policy.open_for;
        match &mut *inner {
            Inner::Closed { failures } => {
                *failures += 1;
                if *failures >= self.policy.failure_threshold.max(1) {
                    tracing::warn!(
                        server = %self.server,
                        session,
                        failures = *failures,
                        ?open_for,
                        "circuit breaker open: refusing calls"
                    );
                    *inner = Inner::Open {
                        until: Instant::now() + open_for,
                    };
                    oio_application::metrics::set_breaker_state(&self.server, BreakerState::Open);
                } else {
                    tracing::debug!(server = %self.server, session, failures = *failures, "circuit breaker counted a failure");
                }
            }
            Inner::HalfOpen { .. } if probe => {
                tracing::warn!(server = %self.server, session, ?open_for, "circuit breaker open again: probe call failed");
                *inner = Inner::Open {
                    until: Instant::now() + open_for,
                };
                oio_application::metrics::set_breaker_state(&self.server, BreakerState::Open);
            }
            Inner::HalfOpen { .. } | Inner::Open { .. } => {}
        }
    }

    fn on_abandoned(&self, probe: bool) {
        if probe {
            if let Inner::HalfOpen { probing } = &mut *self.lock() {
                *probing = false;
            }
        }
    }
}

impl Permit<'_> {
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.on_success(self.probe, self.session);
    }

    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.on_failure(self.probe, self.session);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.on_abandoned(self.probe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, open_for_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(
            "http://test",
            BreakerPolicy {
                failure_threshold: threshold,
                open_for: Duration::from_millis(open_for_ms),
            },
        )
    }

    fn fail(b: &CircuitBreaker) {
        b.acquire("").expect("permitted").failure();
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_of_consecutive_failures() {
        let b = breaker(3, 1000);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        let wait = b.acquire("").expect_err("refused while open");
        assert_eq!(wait, Duration::from_millis(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_failure_count() {
        let b = breaker(2, 1000);
        fail(&b);
        b.acquire("").unwrap().success();
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_opens_after_the_open_duration_and_lets_one_probe_through() {
        let b = breaker(1, 1000);
        fail(&b);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(b.acquire("").is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.acquire("").expect("probe permitted");
        assert_eq!(
            b.acquire("")
                .expect_err("second call refused while probing"),
            Duration::ZERO
        );
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.acquire("").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_the_breaker_again() {
        let b = breaker(1, 1000);
        fail(&b);
        tokio::time::advance(Duration::from_millis(1000)).await;
        b.acquire("").unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.acquire("").unwrap_err(), Duration::from_millis(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_frees_the_probe_slot_without_deciding() {
        let b = breaker(1, 1000);
        fail(&b);
        tokio::time::advance(Duration::from_millis(1000)).await;
        drop(b.acquire("").unwrap());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.acquire("").expect("a new probe").success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn stragglers_from_before_the_opening_do_not_close_it() {
        let b = breaker(1, 1000);
        let straggler = b.acquire("").unwrap();
        fail(&b);
        straggler.success();
        assert_eq!(b.state(), BreakerState::Open);
    }
}
