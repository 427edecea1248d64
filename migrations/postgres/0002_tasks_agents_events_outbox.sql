-- Agents: the registry routing chooses from. Names are unique.
CREATE TABLE agents (
    id                      UUID PRIMARY KEY,
    name                    TEXT NOT NULL UNIQUE,
    capabilities            JSONB NOT NULL,                 -- array of capability names
    model                   TEXT NOT NULL,                  -- provider/model
    max_concurrency         INTEGER NOT NULL CHECK (max_concurrency >= 1),
    sessions_completed      BIGINT NOT NULL DEFAULT 0 CHECK (sessions_completed >= 0),
    sessions_failed         BIGINT NOT NULL DEFAULT 0 CHECK (sessions_failed >= 0),
    sessions_timed_out      BIGINT NOT NULL DEFAULT 0 CHECK (sessions_timed_out >= 0),
    total_duration_ms       BIGINT NOT NULL DEFAULT 0 CHECK (total_duration_ms >= 0),
    total_tokens            BIGINT NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    total_cost_micro_usd    BIGINT NOT NULL DEFAULT 0 CHECK (total_cost_micro_usd >= 0),
    total_retries           BIGINT NOT NULL DEFAULT 0 CHECK (total_retries >= 0),
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL,
    version                 BIGINT NOT NULL DEFAULT 1
);

-- Tasks: a requirement and its decomposition. Edges live in their own tables.
CREATE TABLE tasks (
    id                      UUID PRIMARY KEY,
    title                   TEXT NOT NULL,
    description             TEXT NOT NULL,
    complexity              TEXT NOT NULL CHECK (complexity IN ('trivial','simple','moderate','complex','very_complex')),
    parent_id               UUID REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    status                  TEXT NOT NULL CHECK (status IN ('pending','ready','running','completed','failed','cancelled')),
    required_capabilities   JSONB NOT NULL,                 -- array of capability names
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL,
    version                 BIGINT NOT NULL DEFAULT 1,
    deleted_at              TIMESTAMPTZ
);
CREATE INDEX tasks_live_by_created ON tasks (created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tasks_by_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;

-- A parent's ordered subtasks, exactly as the parent lists them.
CREATE TABLE task_subtasks (
    parent_id   UUID NOT NULL REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    position    INTEGER NOT NULL CHECK (position >= 0),
    child_id    UUID NOT NULL REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (parent_id, position),
    UNIQUE (parent_id, child_id)
);

-- "task_id cannot start before depends_on completes".
CREATE TABLE task_dependencies (
    task_id     UUID NOT NULL REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    depends_on  UUID NOT NULL REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (task_id, depends_on),
    CHECK (task_id <> depends_on)
);
CREATE INDEX task_dependencies_reverse ON task_dependencies (depends_on);

-- Each session's event log: seq 1, 2, 3, … in commit order.
CREATE TABLE session_events (
    session_id  UUID NOT NULL REFERENCES sessions (id),
    seq         BIGINT NOT NULL CHECK (seq >= 1),
    event_type  TEXT NOT NULL,
    payload     JSONB NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- Transactional outbox: every domain event, written in the same transaction as its change, relayed
-- afterwards and then marked published.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    aggregate_type  TEXT NOT NULL CHECK (aggregate_type IN ('session','task','agent')),
    aggregate_id    UUID NOT NULL,
    event_type      TEXT NOT NULL,
    payload         JSONB NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    published_at    TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE INDEX sessions_live_by_agent ON sessions (agent, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX sessions_live_by_task ON sessions (parent_task, created_at DESC, id DESC) WHERE deleted_at IS NULL;
