-- Agents: the registry routing chooses from. Names are unique.
CREATE TABLE agents (
    id                      TEXT PRIMARY KEY NOT NULL,
    name                    TEXT NOT NULL UNIQUE,
    capabilities            TEXT NOT NULL,                  -- JSON array of capability names
    model                   TEXT NOT NULL,                  -- provider/model
    max_concurrency         INTEGER NOT NULL CHECK (max_concurrency >= 1),
    sessions_completed      INTEGER NOT NULL DEFAULT 0,
    sessions_failed         INTEGER NOT NULL DEFAULT 0,
    sessions_timed_out      INTEGER NOT NULL DEFAULT 0,
    total_duration_ms       INTEGER NOT NULL DEFAULT 0,
    total_tokens            INTEGER NOT NULL DEFAULT 0,
    total_cost_micro_usd    INTEGER NOT NULL DEFAULT 0,
    total_retries           INTEGER NOT NULL DEFAULT 0,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    version                 INTEGER NOT NULL DEFAULT 1
) STRICT;

-- Tasks: a requirement and its decomposition. Edges live in their own tables.
CREATE TABLE tasks (
    id                      TEXT PRIMARY KEY NOT NULL,
    title                   TEXT NOT NULL,
    description             TEXT NOT NULL,
    complexity              TEXT NOT NULL CHECK (complexity IN ('trivial','simple','moderate','complex','very_complex')),
    parent_id               TEXT REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    status                  TEXT NOT NULL CHECK (status IN ('pending','ready','running','completed','failed','cancelled')),
    required_capabilities   TEXT NOT NULL,                  -- JSON array of capability names
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    version                 INTEGER NOT NULL DEFAULT 1,
    deleted_at              TEXT
) STRICT;
CREATE INDEX tasks_live_by_created ON tasks (created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tasks_by_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;

-- A parent's ordered subtasks, exactly as the parent lists them.
CREATE TABLE task_subtasks (
    parent_id   TEXT NOT NULL REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    position    INTEGER NOT NULL CHECK (position >= 0),
    child_id    TEXT NOT NULL REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (parent_id, position),
    UNIQUE (parent_id, child_id)
) STRICT;

-- "task_id cannot start before depends_on completes".
CREATE TABLE task_dependencies (
    task_id     TEXT NOT NULL REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    depends_on  TEXT NOT NULL REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (task_id, depends_on),
    CHECK (task_id <> depends_on)
) STRICT;
CREATE INDEX task_dependencies_reverse ON task_dependencies (depends_on);

-- Each session's event log: seq 1, 2, 3, … in commit order.
CREATE TABLE session_events (
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    event_type  TEXT NOT NULL,
    payload     TEXT NOT NULL,                              -- JSON
    occurred_at TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) STRICT;

-- Transactional outbox: every domain event, written in the same transaction as its change, relayed
-- afterwards and then marked published.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    aggregate_type  TEXT NOT NULL CHECK (aggregate_type IN ('session','task','agent')),
    aggregate_id    TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,                          -- JSON
    occurred_at     TEXT NOT NULL,
    published_at    TEXT
) STRICT;
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE INDEX sessions_live_by_agent ON sessions (agent, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX sessions_live_by_task ON sessions (parent_task, created_at DESC, id DESC) WHERE deleted_at IS NULL;
