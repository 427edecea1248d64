//! Turning stored rows back into domain entities. Each backend reads its own column types
//! ([`Columns`]); building the record, range checks and rehydration are the same for all, and any
//! row that does not make a valid entity becomes [`RepositoryError::Corrupt`].

use std::collections::BTreeSet;
use std::fmt::Display;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use domain::{
    Agent, AgentPerformanceMetrics, AgentRecord, ExecutionMetrics, InboxItem, InboxItemId, Role,
    Session, SessionId, SessionRecord, Task, TaskId, TaskRecord,
};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use oio_application::ports::{
    Aggregate, NewEvent, OutboxMessage, QueueDepth, QueueEntry, RemoteRef, RepositoryError,
    StoredSessionEvent, TokenRecord, UserRecord, WebSessionRecord,
};

/// One result row read in its backend's storage format. Errors are messages saying what is wrong
/// with the value; the caller names the row.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> Result<String, String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, String>;
    fn uuid(&self, column: &str) -> Result<Uuid, String>;
    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, String>;
    fn time(&self, column: &str) -> Result<DateTime<Utc>, String>;
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, String>;
    /// An integer column (BIGINT on PostgreSQL, INTEGER on SQLite: both 64-bit).
    fn int(&self, column: &str) -> Result<i64, String>;
    /// A list of ids in stored order (a task's edges, aggregated by the query).
    fn uuids(&self, column: &str) -> Result<Vec<Uuid>, String>;
    /// A boolean column (BOOLEAN on PostgreSQL, 0/1 INTEGER on SQLite).
    fn flag(&self, column: &str) -> Result<bool, String>;
    /// A nullable JSON column (JSONB on PostgreSQL, text on SQLite), as JSON text.
    fn opt_json_text(&self, column: &str) -> Result<Option<String>, String>;
}

/// A row being decoded, with the names its errors report.
struct Fields<'r, C: ?Sized> {
    row: &'r C,
    entity: &'static str,
    id: String,
}

impl<'r, C: Columns + ?Sized> Fields<'r, C> {
    /// Reads the row's uuid key first, so every later error can name the row.
    fn keyed(row: &'r C, entity: &'static str) -> Result<(Self, Uuid), RepositoryError> {
        Self::keyed_by(row, entity, "id")
    }

    /// Like [`Self::keyed`], for a key column not named `id`.
    fn keyed_by(
        row: &'r C,
        entity: &'static str,
        key: &str,
    ) -> Result<(Self, Uuid), RepositoryError> {
        let mut fields = Self {
            row,
            entity,
            id: "?".to_owned(),
        };
        let id = fields.uuid(key)?;
        fields.id = id.to_string();
        Ok((fields, id))
    }

    fn corrupt(&self, what: &str, message: impl Display) -> RepositoryError {
        RepositoryError::Corrupt {
            entity: self.entity,
            id: self.id.clone(),
            message: format!("{what}: {message}"),
        }
    }

    fn at<T>(&self, column: &str, value: Result<T, String>) -> Result<T, RepositoryError> {
        value.map_err(|m| self.corrupt(column, m))
    }

    fn text(&self, column: &str) -> Result<String, RepositoryError> {
        self.at(column, self.row.text(column))
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, RepositoryError> {
        self.at(column, self.row.opt_text(column))
    }

    fn uuid(&self, column: &str) -> Result<Uuid, RepositoryError> {
        self.at(column, self.row.uuid(column))
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, RepositoryError> {
        self.at(column, self.row.opt_uuid(column))
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>, RepositoryError> {
        self.at(column, self.row.time(column))
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        self.at(column, self.row.opt_time(column))
    }

    fn u64(&self, column: &str) -> Result<u64, RepositoryError> {
        let value = self.at(column, self.row.int(column))?;
        u64::try_from(value).map_err(|_| self.corrupt(column, format!("negative value {value}")))
    }

    fn flag(&self, column: &str) -> Result<bool, RepositoryError> {
        self.at(column, self.row.flag(column))
    }

    fn u32(&self, column: &str) -> Result<u32, RepositoryError> {
        let value = self.at(column, self.row.int(column))?;
        u32::try_from(value).map_err(|_| self.corrupt(column, format!("{value} is not a u32")))
    }

    /// A text column holding one of the domain's names (statuses, complexities).
    fn parsed<T>(&self, column: &str) -> Result<T, RepositoryError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.text(column)?
            .parse()
            .map_err(|e| self.corrupt(column, e))
    }

    /// A nullable JSON column.
    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, RepositoryError> {
        self.at(column, self.row.opt_json_text(column))?
            .map(|text| serde_json::from_str(&text).map_err(|e| self.corrupt(column, e)))
            .transpose()
    }

    /// A JSON column.
    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, RepositoryError> {
        self.opt_json(column)?
            .ok_or_else(|| self.corrupt(column, "NULL where a document is required"))
    }

    fn ids<T: From<Uuid>>(&self, column: &str) -> Result<impl Iterator<Item = T>, RepositoryError> {
        Ok(self
            .at(column, self.row.uuids(column))?
            .into_iter()
            .map(T::from))
    }

    /// The decoded record must also pass the entity's own rules.
    fn rehydrated<T, E: Display>(&self, entity: Result<T, E>) -> Result<T, RepositoryError> {
        entity.map_err(|e| self.corrupt("record", e))
    }
}

/// A `sessions` row (every column).
pub(crate) fn session_from_row(row: &(impl Columns + ?Sized)) -> Result<Session, RepositoryError> {
    let (f, id) = Fields::keyed(row, "session")?;
    let record = SessionRecord {
        id: SessionId::from_uuid(id),
        title: f.text("title")?,
        prompt: f.text("prompt")?,
        workspace: f.text("workspace")?,
        agent: f.opt_text("agent")?,
        parent_task: f.opt_uuid("parent_task")?.map(TaskId::from_uuid),
        status: f.parsed("status")?,
        attempt: f.u32("attempt")?,
        max_attempts: f.u32("max_attempts")?,
        created_at: f.time("created_at")?,
        updated_at: f.time("updated_at")?,
        started_at: f.opt_time("started_at")?,
        finished_at: f.opt_time("finished_at")?,
        metrics: ExecutionMetrics {
            tokens_input: f.u64("tokens_input")?,
            tokens_output: f.u64("tokens_output")?,
            tokens_reasoning: f.u64("tokens_reasoning")?,
            tokens_cache_read: f.u64("tokens_cache_read")?,
            tokens_cache_write: f.u64("tokens_cache_write")?,
            cost_micro_usd: f.u64("cost_micro_usd")?,
            duration_ms: f.u64("duration_ms")?,
            files_changed: f.u32("files_changed")?,
            retries: f.u32("retries")?,
        },
        last_error: f.opt_text("last_error")?,
        stop_reason: f.opt_json("stop_reason")?,
        version: f.u64("version")?,
        deleted_at: f.opt_time("deleted_at")?,
    };
    f.rehydrated(Session::rehydrate(record))
}

/// A `tasks` row with its edges aggregated into `subtasks` (by position) and `dependencies`.
pub(crate) fn task_from_row(row: &(impl Columns + ?Sized)) -> Result<Task, RepositoryError> {
    let (f, id) = Fields::keyed(row, "task")?;
    let record = TaskRecord {
        id: TaskId::from_uuid(id),
        title: f.text("title")?,
        description: f.text("description")?,
        complexity: f.parsed("complexity")?,
        parent: f.opt_uuid("parent_id")?.map(TaskId::from_uuid),
        subtasks: f.ids("subtasks")?.collect(),
        dependencies: f.ids("dependencies")?.collect(),
        required_capabilities: f.json::<BTreeSet<_>>("required_capabilities")?,
        status: f.parsed("status")?,
        assignment: f.opt_json("assignment")?,
        execution: f.opt_json("execution")?.unwrap_or_default(),
        created_at: f.time("created_at")?,
        updated_at: f.time("updated_at")?,
        version: f.u64("version")?,
        deleted_at: f.opt_time("deleted_at")?,
    };
    f.rehydrated(Task::rehydrate(record))
}

/// An `agents` row (every column, capabilities as JSON text).
pub(crate) fn agent_from_row(row: &(impl Columns + ?Sized)) -> Result<Agent, RepositoryError> {
    let (f, id) = Fields::keyed(row, "agent")?;
    let record = AgentRecord {
        id: id.into(),
        name: f.text("name")?,
        capabilities: f.json("capabilities")?,
        model: f.text("model")?,
        max_concurrency: f.u32("max_concurrency")?,
        performance: AgentPerformanceMetrics {
            sessions_completed: f.u64("sessions_completed")?,
            sessions_failed: f.u64("sessions_failed")?,
            sessions_timed_out: f.u64("sessions_timed_out")?,
            total_duration_ms: f.u64("total_duration_ms")?,
            total_tokens: f.u64("total_tokens")?,
            total_cost_micro_usd: f.u64("total_cost_micro_usd")?,
            total_retries: f.u64("total_retries")?,
        },
        recent: f.json("recent_performance")?,
        created_at: f.time("created_at")?,
        updated_at: f.time("updated_at")?,
        version: f.u64("version")?,
    };
    f.rehydrated(Agent::rehydrate(record))
}

/// A `session_queue` row (the columns both queue adapters select).
pub(crate) fn queue_entry_from_row(
    row: &(impl Columns + ?Sized),
) -> Result<QueueEntry, RepositoryError> {
    let (f, id) = Fields::keyed_by(row, "queue entry", "session_id")?;
    let server = f.opt_text("server")?;
    let remote = match (
        &server,
        f.opt_text("remote_session")?,
        f.opt_text("remote_directory")?,
        f.opt_text("message_id")?,
    ) {
        (Some(server), Some(session), Some(directory), Some(message_id)) => Some(RemoteRef {
            server: server.clone(),
            session,
            directory,
            message_id,
        }),
        _ => None,
    };
    let priority = f.at("priority", f.row.int("priority"))?;
    Ok(QueueEntry {
        session: SessionId::from_uuid(id),
        priority: i32::try_from(priority)
            .map_err(|_| f.corrupt("priority", format!("{priority} is not an i32")))?,
        agent: f.opt_text("agent")?,
        owner: f.opt_text("owner")?,
        fence: f.u64("fence")?,
        server,
        remote,
        cancel_requested: f.flag("cancel_requested")?,
        enqueued_at: f.time("enqueued_at")?,
        available_at: f.time("available_at")?,
        lease_expires_at: f.opt_time("lease_expires_at")?,
        deadline: f.opt_time("deadline_at")?,
    })
}

/// Rows of `(key, count)` from a `GROUP BY` (`key` TEXT, `n` a count); errors name `entity`.
pub(crate) fn counts_from_rows<R: Columns>(
    rows: &[R],
    entity: &'static str,
    key: &str,
) -> Result<Vec<(String, u64)>, RepositoryError> {
    let bad = |message: String| RepositoryError::Corrupt {
        entity,
        id: key.to_owned(),
        message,
    };
    rows.iter()
        .map(|row| {
            let name = row.text(key).map_err(bad)?;
            let n = row.int("n").map_err(bad)?;
            Ok((name, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}

/// The row of `DispatchQueue::depth` (`waiting`, `leased`, `expired` counts).
pub(crate) fn queue_depth_from_row(
    row: &(impl Columns + ?Sized),
) -> Result<QueueDepth, RepositoryError> {
    let count = |column: &str| -> Result<u64, RepositoryError> {
        let n = row
            .int(column)
            .map_err(|message| RepositoryError::Corrupt {
                entity: "queue depth",
                id: column.to_owned(),
                message,
            })?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    Ok(QueueDepth {
        waiting: count("waiting")?,
        leased: count("leased")?,
        expired: count("expired")?,
    })
}

/// A `session_events` row (payload as JSON text).
pub(crate) fn session_event_from_row(
    row: &(impl Columns + ?Sized),
) -> Result<StoredSessionEvent, RepositoryError> {
    let mut f = Fields {
        row,
        entity: "session event",
        id: "?".to_owned(),
    };
    let session_id = f.uuid("session_id")?;
    f.id = session_id.to_string();
    let seq = f.u64("seq")?;
    f.id = format!("{session_id}#{seq}");
    Ok(StoredSessionEvent {
        session_id: SessionId::from_uuid(session_id),
        seq,
        event_type: f.text("event_type")?,
        payload: f.json("payload")?,
        occurred_at: f.time("occurred_at")?,
    })
}

/// An `outbox` row (payload as JSON text).
pub(crate) fn outbox_message_from_row(
    row: &(impl Columns + ?Sized),
) -> Result<OutboxMessage, RepositoryError> {
    let mut f = Fields {
        row,
        entity: "outbox message",
        id: "?".to_owned(),
    };
    let id = f.at("id", row.int("id"))?;
    f.id = id.to_string();
    let aggregate = f.text("aggregate_type")?;
    let aggregate = Aggregate::parse(&aggregate)
        .ok_or_else(|| f.corrupt("aggregate_type", format!("unknown aggregate {aggregate:?}")))?;
    Ok(OutboxMessage {
        id,
        event: NewEvent {
            aggregate,
            aggregate_id: f.uuid("aggregate_id")?,
            event_type: f.text("event_type")?,
            payload: f.json("payload")?,
            occurred_at: f.time("occurred_at")?,
        },
        published_at: f.opt_time("published_at")?,
    })
}

impl<'r, C: Columns + ?Sized> Fields<'r, C> {
    /// Reads the row's text key first, so every later error can name the row.
    fn named(
        row: &'r C,
        entity: &'static str,
        key: &str,
    ) -> Result<(Self, String), RepositoryError> {
        let mut fields = Self {
            row,
            entity,
            id: "?".to_owned(),
        };
        let id = fields.text(key)?;
        fields.id = id.clone();
        Ok((fields, id))
    }

    fn role(&self, column: &str) -> Result<Role, RepositoryError> {
        self.text(column)?
            .parse()
            .map_err(|e: domain::ValidationError| self.corrupt(column, e.message))
    }
}

/// A `users` row.
pub(crate) fn user_from_row(row: &(impl Columns + ?Sized)) -> Result<UserRecord, RepositoryError> {
    let (f, username) = Fields::named(row, "user", "username")?;
    Ok(UserRecord {
        password_hash: f.text("password_hash")?,
        role: f.role("role")?,
        created_at: f.time("created_at")?,
        updated_at: f.time("updated_at")?,
        username,
    })
}

/// An `api_tokens` row.
pub(crate) fn token_from_row(
    row: &(impl Columns + ?Sized),
) -> Result<TokenRecord, RepositoryError> {
    let (f, id) = Fields::named(row, "token", "id")?;
    Ok(TokenRecord {
        name: f.text("name")?,
        role: f.role("role")?,
        secret_hash: f.text("secret_hash")?,
        created_by: f.text("created_by")?,
        created_at: f.time("created_at")?,
        expires_at: f.opt_time("expires_at")?,
        revoked_at: f.opt_time("revoked_at")?,
        id,
    })
}

/// A `web_sessions` row. Its key is a secret's hash and is not shown in errors.
pub(crate) fn web_session_from_row(
    row: &(impl Columns + ?Sized),
) -> Result<WebSessionRecord, RepositoryError> {
    let f = Fields {
        row,
        entity: "web session",
        id: "(hidden)".to_owned(),
    };
    Ok(WebSessionRecord {
        id_hash: f.text("id_hash")?,
        username: f.text("username")?,
        csrf: f.text("csrf")?,
        created_at: f.time("created_at")?,
        expires_at: f.time("expires_at")?,
    })
}

/// An `inbox_items` row.
pub(crate) fn inbox_item_from_row(
    row: &(impl Columns + ?Sized),
) -> Result<InboxItem, RepositoryError> {
    let (f, id) = Fields::keyed(row, "inbox item")?;
    Ok(InboxItem {
        id: InboxItemId::from_uuid(id),
        server: f.text("server")?,
        remote_session: f.text("remote_session")?,
        directory: f.opt_text("directory")?,
        session: f.opt_uuid("session_id")?.map(SessionId::from_uuid),
        request_id: f.text("request_id")?,
        kind: f.json("request")?,
        status: f.parsed("status")?,
        created_at: f.time("created_at")?,
        escalated_at: f.opt_time("escalated_at")?,
        resolved_at: f.opt_time("resolved_at")?,
        resolution: f.opt_json("resolution")?,
        version: f.u64("version")?,
    })
}
