//! The fleet: every configured OpenCode server, with what routing needs to know about each —
//! whether its last health check passed, its circuit breaker's state, and how many sessions it
//! runs against its capacity — and [`Fleet::pick`], which places a new session on the least
//! loaded server that can take it. A server whose breaker is open receives no new sessions.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::task::JoinHandle;

use super::breaker::BreakerState;
use super::client::OpenCodeClient;
use super::policy::ResiliencePolicy;
use crate::opencode::settings::OpenCodeSettings;
use oio_application::ports::{AgentServer, AgentServerError};

struct Member {
    client: OpenCodeClient,
    capacity: u32,
    in_flight: AtomicU32,
    /// Optimistic until the first check says otherwise, so a new fleet is usable at once.
    healthy: AtomicBool,
}

pub use oio_application::ports::ServerReport;

/// A place on one server, taken by [`Fleet::pick`]. Dropping it frees the place.
pub struct ServerSlot {
    member: Arc<Member>,
}

impl ServerSlot {
    pub fn client(&self) -> &OpenCodeClient {
        &self.member.client
    }
}

impl std::fmt::Debug for ServerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSlot")
            .field("server", &self.member.client.name())
            .finish()
    }
}

impl Drop for ServerSlot {
    fn drop(&mut self) {
        self.member.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct Fleet {
    members: Vec<Arc<Member>>,
    /// Serialises choose-and-take, so two picks cannot both take a server's last place.
    picking: Mutex<()>,
}

/// Stops the periodic health checks when dropped.
#[derive(Debug)]
pub struct HealthChecks(JoinHandle<()>);

impl Drop for HealthChecks {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Fleet {
    /// A fleet of clients, each with its capacity (sessions at once).
    pub fn new(servers: impl IntoIterator<Item = (OpenCodeClient, u32)>) -> Self {
        Self {
            members: servers
                .into_iter()
                .map(|(client, capacity)| {
                    Arc::new(Member {
                        client,
                        capacity,
                        in_flight: AtomicU32::new(0),
                        healthy: AtomicBool::new(true),
                    })
                })
                .collect(),
            picking: Mutex::new(()),
        }
    }

    pub fn from_settings(
        settings: &OpenCodeSettings,
        policy: &ResiliencePolicy,
    ) -> Result<Self, AgentServerError> {
        let servers = settings
            .servers
            .iter()
            .map(|s| {
                Ok((
                    OpenCodeClient::from_settings(s, policy.clone())?,
                    s.capacity,
                ))
            })
            .collect::<Result<Vec<_>, AgentServerError>>()?;
        Ok(Self::new(servers))
    }

    /// Adds a server (a supervised one, after the configured ones).
    pub fn add(&mut self, client: OpenCodeClient, capacity: u32) {
        self.members.push(Arc::new(Member {
            client,
            capacity,
            in_flight: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
        }));
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every server's standing, in configuration order.
    pub fn report(&self) -> Vec<ServerReport> {
        self.members
            .iter()
            .map(|m| ServerReport {
                server: m.client.name().to_string(),
                // A draining (supervised, about to be recycled) server takes no new sessions.
                healthy: m.healthy.load(Ordering::Acquire) && !m.client.is_draining(),
                breaker: m.client.breaker_state(),
                in_flight: m.in_flight.load(Ordering::Acquire),
                capacity: m.capacity,
            })
            .collect()
    }

    /// A place on the best server for a new session, or `None` if no server can take one.
    pub fn pick(&self) -> Option<ServerSlot> {
        let _picking = self.picking.lock().unwrap_or_else(|e| e.into_inner());
        let reports = self.report();
        let Some(index) = choose(&reports) else {
            tracing::warn!(
                servers = reports.len(),
                "fleet: no server can take a session"
            );
            return None;
        };
        let member = &self.members[index];
        member.in_flight.fetch_add(1, Ordering::AcqRel);
        tracing::debug!(
            server = %reports[index].server,
            in_flight = reports[index].in_flight + 1,
            capacity = reports[index].capacity,
            "fleet: session placed"
        );
        Some(ServerSlot {
            member: Arc::clone(member),
        })
    }

    /// Asks every server for its health, all at once, and records the answers.
    pub async fn check_health(&self) {
        join_all(self.members.iter().map(|member| async move {
            let outcome = member.client.probe_health().await;
            let healthy = matches!(&outcome, Ok(h) if h.healthy);
            let was = member.healthy.swap(healthy, Ordering::AcqRel);
            let server = member.client.name();
            match (&outcome, was, healthy) {
                (_, false, true) => tracing::info!(%server, "fleet: server healthy again"),
                (Err(error), true, false) => {
                    tracing::warn!(%server, %error, "fleet: server failed its health check")
                }
                (Ok(_), true, false) => {
                    tracing::warn!(%server, "fleet: server reports itself unhealthy")
                }
                _ => tracing::trace!(%server, healthy, "fleet: health checked"),
            }
        }))
        .await;
    }

    /// Checks health now and then every `interval`, until the returned guard is dropped.
    pub fn spawn_health_checks(self: &Arc<Self>, interval: Duration) -> HealthChecks {
        let fleet = Arc::clone(self);
        HealthChecks(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            // A slow round must not be followed by a burst of catch-up checks.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                fleet.check_health().await;
            }
        }))
    }
}

/// The server for a new session: healthy, breaker not open, a free place; then closed breakers
/// before half-open ones (a half-open server is on trial), then the lowest load (in-flight over
/// capacity), then the most free places, then configuration order.
fn choose(servers: &[ServerReport]) -> Option<usize> {
    servers
        .iter()
        .enumerate()
        .filter(|(_, s)| s.healthy && s.breaker != BreakerState::Open && s.in_flight < s.capacity)
        .min_by(|(ia, a), (ib, b)| {
            let trial = |s: &ServerReport| s.breaker == BreakerState::HalfOpen;
            // a.in_flight / a.capacity vs b.in_flight / b.capacity, without floating point.
            let load_a = u64::from(a.in_flight) * u64::from(b.capacity);
            let load_b = u64::from(b.in_flight) * u64::from(a.capacity);
            trial(a)
                .cmp(&trial(b))
                .then(load_a.cmp(&load_b))
                .then((b.capacity - b.in_flight).cmp(&(a.capacity - a.in_flight)))
                .then(ia.cmp(ib))
        })
        .map(|(i, _)| i)
}

impl oio_application::ports::AgentServers for Fleet {
    fn available(&self) -> Vec<oio_application::ports::ServerCapacity> {
        self.members
            .iter()
            .filter(|m| {
                m.healthy.load(Ordering::Acquire)
                    && !m.client.is_draining()
                    && m.client.breaker_state() != BreakerState::Open
            })
            .map(|m| oio_application::ports::ServerCapacity {
                server: m.client.name().to_string(),
                capacity: m.capacity,
            })
            .collect()
    }

    fn get(&self, name: &str) -> Option<Arc<dyn AgentServer>> {
        self.members
            .iter()
            .find(|m| m.client.name() == name)
            .map(|m| Arc::new(m.client.clone()) as Arc<dyn AgentServer>)
    }

    fn report(&self) -> Vec<ServerReport> {
        Fleet::report(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opencode::policy::BreakerPolicy;
    use url::Url;

    fn report(in_flight: u32, capacity: u32) -> ServerReport {
        ServerReport {
            server: String::new(),
            healthy: true,
            breaker: BreakerState::Closed,
            in_flight,
            capacity,
        }
    }

    #[test]
    fn the_least_loaded_server_is_chosen() {
        assert_eq!(choose(&[report(2, 4), report(1, 4), report(3, 4)]), Some(1));
        // Load is relative to capacity: 2 of 8 is lighter than 1 of 2.
        assert_eq!(choose(&[report(1, 2), report(2, 8)]), Some(1));
    }

    #[test]
    fn equal_load_prefers_more_free_places_then_configuration_order() {
        assert_eq!(choose(&[report(1, 2), report(2, 4)]), Some(1));
        assert_eq!(choose(&[report(0, 4), report(0, 4)]), Some(0));
    }

    #[test]
    fn full_unhealthy_and_open_servers_are_never_chosen() {
        let full = report(4, 4);
        let unhealthy = ServerReport {
            healthy: false,
            ..report(0, 4)
        };
        let open = ServerReport {
            breaker: BreakerState::Open,
            ..report(0, 4)
        };
        assert_eq!(
            choose(&[full.clone(), unhealthy.clone(), open.clone()]),
            None
        );
        assert_eq!(choose(&[full, unhealthy, open, report(3, 4)]), Some(3));
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn a_half_open_server_is_chosen_only_when_no_closed_one_can_be() {
        let trial = ServerReport {
            breaker: BreakerState::HalfOpen,
            ..report(0, 4)
        };
        assert_eq!(choose(&[trial.clone(), report(3, 4)]), Some(1));
        assert_eq!(choose(&[trial, report(4, 4)]), Some(0));
    }

    fn fleet(capacities: &[u32], policy: ResiliencePolicy) -> Fleet {
        Fleet::new(capacities.iter().enumerate().map(|(i, c)| {
            let url = Url::parse(&format!("http://127.0.0.1:{}", 9 + i)).unwrap();
            (OpenCodeClient::new(url, None, policy.clone()).unwrap(), *c)
        }))
    }

    #[tokio::test]
    async fn picks_spread_sessions_and_slots_free_their_place_when_dropped() {
        let fleet = fleet(&[1, 2], ResiliencePolicy::default());
        let a = fleet.pick().expect("first");
        let b = fleet.pick().expect("second");
        let c = fleet.pick().expect("third");
        assert!(fleet.pick().is_none(), "all three places taken");
        assert_eq!(
            fleet
                .report()
                .iter()
                .map(|r| r.in_flight)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        let freed = b.client().name().to_string();
        drop(b);
        let d = fleet.pick().expect("a freed place");
        assert_eq!(d.client().name(), freed);
        drop((a, c, d));
        assert!(fleet.report().iter().all(|r| r.in_flight == 0));
    }

    #[tokio::test]
    async fn a_server_whose_breaker_is_open_gets_no_new_sessions() {
        let policy = ResiliencePolicy {
            breaker: BreakerPolicy {
                failure_threshold: 1,
                open_for: Duration::from_secs(60),
            },
            ..ResiliencePolicy::default()
        };
        let fleet = fleet(&[4, 4], policy);
        // Open the first server's breaker as a failed call would.
        fleet.members[0]
            .client
            .breaker()
            .acquire("")
            .unwrap()
            .failure();
        for _ in 0..4 {
            let slot = fleet.pick().expect("second server has room");
            assert_eq!(slot.client().name(), "http://127.0.0.1:10/");
            std::mem::forget(slot);
        }
        assert!(fleet.pick().is_none());
    }

    #[tokio::test]
    async fn a_draining_server_gets_no_new_sessions_and_a_retargeted_one_keeps_its_name() {
        use oio_application::ports::AgentServers;
        let fleet = fleet(&[4], ResiliencePolicy::default());
        let client = &fleet.members[0].client;
        client.set_draining(true);
        assert!(fleet.pick().is_none());
        assert!(fleet.available().is_empty());
        assert!(!fleet.report()[0].healthy);
        client.set_draining(false);
        assert!(fleet.pick().is_some());

        let name = client.name().to_owned();
        client.retarget(Url::parse("http://127.0.0.1:7/").unwrap(), None);
        assert_eq!(client.base_url().as_str(), "http://127.0.0.1:7/");
        assert_eq!(client.name(), name);
        assert!(fleet.get(&name).is_some());
    }

    #[tokio::test]
    async fn a_failed_health_check_takes_a_server_out_of_rotation() {
        // A port just freed refuses connections: the check fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let client = OpenCodeClient::new(url, None, ResiliencePolicy::default()).unwrap();
        let fleet = Fleet::new([(client, 4)]);
        assert!(fleet.report()[0].healthy);
        fleet.check_health().await;
        assert!(!fleet.report()[0].healthy);
        assert!(fleet.pick().is_none());
    }
}
