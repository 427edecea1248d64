//! `server bench storage`: storage throughput and latency figures, printed, never asserted.
//!
//! Bulk insert: sessions committed through the Unit of Work in batches (each with its created
//! event, so the outbox and event log are written too). Versioned update: read a running session,
//! add metrics, commit with the version read — the lifecycle's hot path — one at a time.
//!
//! `server bench engine` lives in [`engine`], with its in-process stand-ins in [`instant_agent`].

pub mod engine;
pub mod instant_agent;

use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use domain::{MetricsDelta, NewSession, Prompt, Session, SessionId, SessionTitle, WorkspacePath};
use uuid::Uuid;

use crate::ports::{ChangeSet, EntityKey, RepositoryError};
use crate::storage::Store;

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct StorageBench {
    pub rows: u32,
    pub batch: u32,
    pub updates: u32,
}

/// The figures, for printing.
#[derive(Debug, Clone)]
pub struct StorageFigures {
    pub rows: u32,
    pub insert_elapsed: Duration,
    pub updates: u32,
    pub update_p50: Duration,
    pub update_p99: Duration,
    pub update_max: Duration,
}

impl StorageFigures {
    pub fn rows_per_second(&self) -> f64 {
        f64::from(self.rows) / self.insert_elapsed.as_secs_f64()
    }
}

fn session(i: u32) -> Session {
    let now = Utc::now().trunc_subsecs(6);
    Session::new(
        NewSession {
            id: SessionId::from_uuid(Uuid::new_v4()),
            title: SessionTitle::new(format!("bench session {i}")).expect("valid"),
            prompt: Prompt::new("benchmark prompt: add a health endpoint").expect("valid"),
            workspace: WorkspacePath::new("/srv/bench/repo").expect("valid"),
            agent: None,
            parent_task: None,
            max_attempts: 3,
        },
        now,
    )
    .expect("valid session")
}

/// The p-th percentile (0..=100) of sorted samples, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub async fn run(store: &Store, bench: StorageBench) -> Result<StorageFigures, RepositoryError> {
    // Bulk insert.
    let started = Instant::now();
    let mut i = 0;
    while i < bench.rows {
        let end = (i + bench.batch).min(bench.rows);
        let mut changes = ChangeSet::new();
        for n in i..end {
            let s = session(n);
            changes.insert_session(&s).event(&s.created_event());
        }
        store.unit_of_work.commit(changes).await?;
        i = end;
    }
    let insert_elapsed = started.elapsed();

    // Versioned updates on one running session.
    let mut target = session(u32::MAX);
    let mut changes = ChangeSet::new();
    changes.insert_session(&target);
    store.unit_of_work.commit(changes).await?;
    target = target.with_version(1);
    let now = Utc::now().trunc_subsecs(6);
    for step in [Session::enqueue, Session::start] {
        step(&mut target, now).expect("legal");
    }
    let mut changes = ChangeSet::new();
    changes.update_session(&target);
    let committed = store.unit_of_work.commit(changes).await?;
    target.set_version(
        committed
            .version_of(EntityKey::Session(target.id()))
            .unwrap_or(2),
    );

    let mut samples = Vec::with_capacity(bench.updates as usize);
    for _ in 0..bench.updates {
        let started = Instant::now();
        let mut current = store
            .sessions
            .get(target.id())
            .await?
            .ok_or(RepositoryError::NotFound(EntityKey::Session(target.id())))?;
        let event = current
            .record_metrics(
                MetricsDelta {
                    tokens_input: 10,
                    tokens_output: 5,
                    ..MetricsDelta::default()
                },
                Utc::now().trunc_subsecs(6),
            )
            .expect("running sessions take metrics");
        let mut changes = ChangeSet::new();
        changes.update_session(&current).event(&event);
        store.unit_of_work.commit(changes).await?;
        samples.push(started.elapsed());
    }
    samples.sort();
    Ok(StorageFigures {
        rows: bench.rows,
        insert_elapsed,
        updates: bench.updates,
        update_p50: percentile(&samples, 50.0),
        update_p99: percentile(&samples, 99.0),
        update_max: samples.last().copied().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_uses_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&samples, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(percentile(&samples[..1], 99.0), Duration::from_millis(1));
    }
}
