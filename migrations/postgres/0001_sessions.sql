-- Sessions: one row per coding session, with its metrics inline (they are read with it, always).
CREATE TABLE sessions (
    id                  UUID PRIMARY KEY,
    title               TEXT NOT NULL,
    prompt              TEXT NOT NULL,
    workspace           TEXT NOT NULL,
    agent               TEXT,
    parent_task         UUID,
    status              TEXT NOT NULL CHECK (status IN ('pending','queued','running','paused','completed','failed','cancelled','timed_out')),
    attempt             INTEGER NOT NULL CHECK (attempt >= 1),
    max_attempts        INTEGER NOT NULL CHECK (max_attempts >= 1),
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ,
    tokens_input        BIGINT NOT NULL DEFAULT 0 CHECK (tokens_input >= 0),
    tokens_output       BIGINT NOT NULL DEFAULT 0 CHECK (tokens_output >= 0),
    tokens_reasoning    BIGINT NOT NULL DEFAULT 0 CHECK (tokens_reasoning >= 0),
    tokens_cache_read   BIGINT NOT NULL DEFAULT 0 CHECK (tokens_cache_read >= 0),
    tokens_cache_write  BIGINT NOT NULL DEFAULT 0 CHECK (tokens_cache_write >= 0),
    cost_micro_usd      BIGINT NOT NULL DEFAULT 0 CHECK (cost_micro_usd >= 0),
    duration_ms         BIGINT NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    files_changed       INTEGER NOT NULL DEFAULT 0 CHECK (files_changed >= 0),
    retries             INTEGER NOT NULL DEFAULT 0 CHECK (retries >= 0),
    last_error          TEXT,
    version             BIGINT NOT NULL DEFAULT 1,
    deleted_at          TIMESTAMPTZ
);

-- The dashboard's list: newest first, live rows only, optionally by status.
CREATE INDEX sessions_live_by_created ON sessions (created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX sessions_live_by_status ON sessions (status, created_at DESC, id DESC) WHERE deleted_at IS NULL;
