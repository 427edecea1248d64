//! Runs every storage port contract against every adapter: SQLite in a temp file and PostgreSQL in
//! a fresh database per check (never skipped under CI=true).

use server::storage::{PoolSettings, Store};

use crate::support;

const POOL: PoolSettings = PoolSettings {
    max_connections: 5,
    acquire_timeout: std::time::Duration::from_secs(10),
};

/// A fresh SQLite store; the temp dir lives as long as the returned guard.
async fn sqlite() -> (Store, tempfile::TempDir) {
    support::store::sqlite_with(POOL).await
}

/// A fresh PostgreSQL store, or `None` where PostgreSQL is unavailable outside CI.
async fn postgres() -> Option<(Store, support::postgres::TestDatabase)> {
    support::store::postgres_with(POOL).await
}

macro_rules! contract_on_every_backend {
    ($($port:ident :: $check:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let (store, _guard) = super::sqlite().await;
                    crate::contract::$port::$check(&store).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let Some((store, _guard)) = super::postgres().await else { return };
                    crate::contract::$port::$check(&store).await;
                }
            )*
        }
    };
}

contract_on_every_backend!(
    credential_store::users_round_trip_and_names_are_unique,
    credential_store::updating_a_user_ends_their_browser_sessions,
    credential_store::tokens_round_trip_list_newest_first_and_revoke_once,
    credential_store::web_sessions_expire_and_are_purged,
    session_repository::a_committed_session_reads_back_equal_at_version_1,
    session_repository::every_field_round_trips,
    session_repository::a_guardrail_stop_round_trips_typed_and_a_retry_clears_it,
    session_repository::an_unknown_session_is_none,
    session_repository::the_list_is_newest_first_with_ties_broken_by_id,
    session_repository::the_list_filters_by_status_agent_task_and_time_range,
    session_repository::keyset_pages_walk_every_session_once_in_order,
    session_repository::soft_deleted_sessions_vanish_from_reads_and_can_be_restored,
    session_repository::the_event_log_keeps_commit_order_with_gapless_seq,
    session_repository::ping_answers,
    unit_of_work::an_update_bumps_the_version_and_stores_the_change,
    unit_of_work::a_stale_update_conflicts_and_changes_nothing,
    unit_of_work::an_update_of_a_missing_entity_is_not_found,
    unit_of_work::a_duplicate_insert_is_refused_and_the_original_kept,
    unit_of_work::a_value_beyond_the_column_range_is_refused_and_nothing_written,
    unit_of_work::a_failing_change_rolls_back_the_whole_batch,
    unit_of_work::events_reach_the_outbox_with_their_change_in_order,
    unit_of_work::the_outbox_pages_by_limit,
    unit_of_work::the_outbox_tails_after_an_id_published_or_not,
    unit_of_work::exactly_one_of_many_racing_writers_wins_per_version,
    unit_of_work::retrying_writers_lose_no_update,
    task_repository::a_task_tree_round_trips_with_order_and_edges,
    task_repository::tasks_list_by_parent_roots_and_status,
    task_repository::an_update_replaces_the_edges,
    task_repository::a_dangling_edge_fails_the_commit_and_writes_nothing,
    task_repository::soft_deleted_tasks_vanish_and_can_be_restored,
    task_repository::task_pages_walk_every_task_once,
    agent_repository::agents_read_back_by_id_and_name_and_list_by_name,
    agent_repository::a_second_agent_with_a_taken_name_is_refused,
    agent_repository::performance_updates_are_versioned,
    agent_repository::the_recent_track_record_round_trips,
    dispatch_queue::claims_go_by_priority_then_fifo_and_wait_for_available_at,
    dispatch_queue::a_lapsed_lease_is_recovered_and_the_old_owner_is_fenced_off,
    dispatch_queue::servers_take_no_more_sessions_than_their_capacity,
    dispatch_queue::an_agent_runs_no_more_sessions_than_its_limit,
    dispatch_queue::a_recovered_session_reattaches_on_its_listed_server,
    dispatch_queue::concurrent_claimers_take_every_session_exactly_once,
    dispatch_queue::a_requeued_session_waits_for_its_backoff,
    dispatch_queue::queue_changes_and_cancellations_are_signalled,
    dispatch_queue::depth_counts_waiting_leased_and_expired_rows,
    inbox::a_recorded_item_reads_back_equal_at_version_1,
    inbox::a_repeated_request_is_recorded_once,
    inbox::racing_recorders_store_one_item,
    inbox::answering_bumps_the_version_and_keeps_the_resolution,
    inbox::a_stale_write_conflicts_and_changes_nothing,
    inbox::lists_are_newest_first_and_open_lists_skip_closed_items,
);
