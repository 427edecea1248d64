//! Where a claimed session goes: the dispatch queue's placement decision, made in Rust between
//! the claim's read and its write.

use oio_application::ports::{Claim, ClaimRequest, QueueEntry, QueueLease};

/// The server for a claimed row and whether its remote session is kept: a row already running
/// on a listed server stays there (re-attach; it already counts against that server); otherwise
/// the least loaded listed server with room (load / capacity, then name). `None`: no room.
pub(crate) fn place(
    entry: &QueueEntry,
    request: &ClaimRequest,
    load: impl Fn(&str) -> u64,
) -> Option<(String, bool)> {
    if let Some(remote) = &entry.remote {
        if request.servers.iter().any(|s| s.server == remote.server) {
            return Some((remote.server.clone(), true));
        }
    }
    request
        .servers
        .iter()
        .map(|s| (s, load(&s.server)))
        .filter(|(s, used)| *used < u64::from(s.capacity))
        .min_by(|(a, used_a), (b, used_b)| {
            // used_a / cap_a against used_b / cap_b, without division.
            (u128::from(*used_a) * u128::from(b.capacity))
                .cmp(&(u128::from(*used_b) * u128::from(a.capacity)))
                .then_with(|| a.server.cmp(&b.server))
        })
        .map(|(s, _)| (s.server.clone(), false))
}

/// The claim a freshly leased row makes.
pub(crate) fn claim_of(entry: QueueEntry, recovered: bool) -> Claim {
    Claim {
        lease: QueueLease {
            session: entry.session,
            owner: entry.owner.clone().unwrap_or_default(),
            fence: entry.fence,
        },
        server: entry.server.clone().unwrap_or_default(),
        remote: entry.remote,
        recovered,
        cancel_requested: entry.cancel_requested,
        priority: entry.priority,
        enqueued_at: entry.enqueued_at,
        available_at: entry.available_at,
        deadline: entry.deadline,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use domain::SessionId;

    use super::*;
    use oio_application::ports::{RemoteRef, ServerCapacity};

    fn entry(remote: Option<&str>) -> QueueEntry {
        QueueEntry {
            session: SessionId::from_uuid(uuid::Uuid::new_v4()),
            priority: 0,
            agent: None,
            owner: None,
            fence: 0,
            server: remote.map(str::to_owned),
            remote: remote.map(|server| RemoteRef {
                server: server.to_owned(),
                session: "ses_1".into(),
                directory: "/w".into(),
                message_id: "msg_1".into(),
            }),
            cancel_requested: false,
            enqueued_at: Utc::now(),
            available_at: Utc::now(),
            lease_expires_at: None,
            deadline: None,
        }
    }

    fn request(servers: &[(&str, u32)]) -> ClaimRequest {
        ClaimRequest {
            owner: "r1".into(),
            lease_ttl: std::time::Duration::from_secs(10),
            servers: servers
                .iter()
                .map(|(name, capacity)| ServerCapacity {
                    server: (*name).into(),
                    capacity: *capacity,
                })
                .collect(),
        }
    }

    #[test]
    fn the_least_loaded_server_with_room_wins_relative_to_capacity() {
        let loads = |name: &str| match name {
            "a" => 3,
            "b" => 1,
            _ => 0,
        };
        // a: 3/8 used, b: 1/2 used -> a is relatively freer.
        let placed = place(&entry(None), &request(&[("a", 8), ("b", 2)]), loads);
        assert_eq!(placed, Some(("a".into(), false)));
        // Full servers are never chosen.
        let placed = place(&entry(None), &request(&[("a", 3), ("b", 1)]), loads);
        assert_eq!(placed, None);
    }

    #[test]
    fn a_running_session_stays_on_its_listed_server_even_when_full() {
        let placed = place(&entry(Some("b")), &request(&[("a", 8), ("b", 1)]), |_| 1);
        assert_eq!(placed, Some(("b".into(), true)));
        // Its server is not reachable any more: it starts afresh elsewhere.
        let placed = place(&entry(Some("c")), &request(&[("a", 8)]), |_| 1);
        assert_eq!(placed, Some(("a".into(), false)));
    }
}
