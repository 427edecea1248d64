-- Sessions: one row per coding session, with its metrics inline (they are read with it, always).
CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY NOT NULL,           -- uuid, hyphenated
    title               TEXT NOT NULL,
    prompt              TEXT NOT NULL,
    workspace           TEXT NOT NULL,
    agent               TEXT,
    parent_task         TEXT,
    status              TEXT NOT NULL CHECK (status IN ('pending','queued','running','paused','completed','failed','cancelled','timed_out')),
    attempt             INTEGER NOT NULL CHECK (attempt >= 1),
    max_attempts        INTEGER NOT NULL CHECK (max_attempts >= 1),
    created_at          TEXT NOT NULL,                       -- RFC 3339, UTC
    updated_at          TEXT NOT NULL,
    started_at          TEXT,
    finished_at         TEXT,
    tokens_input        INTEGER NOT NULL DEFAULT 0,
    tokens_output       INTEGER NOT NULL DEFAULT 0,
    tokens_reasoning    INTEGER NOT NULL DEFAULT 0,
    tokens_cache_read   INTEGER NOT NULL DEFAULT 0,
    tokens_cache_write  INTEGER NOT NULL DEFAULT 0,
    cost_micro_usd      INTEGER NOT NULL DEFAULT 0,
    duration_ms         INTEGER NOT NULL DEFAULT 0,
    files_changed       INTEGER NOT NULL DEFAULT 0,
    retries             INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    version             INTEGER NOT NULL DEFAULT 1,
    deleted_at          TEXT
) STRICT;

-- The dashboard's list: newest first, live rows only, optionally by status.
CREATE INDEX sessions_live_by_created ON sessions (created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX sessions_live_by_status ON sessions (status, created_at DESC, id DESC) WHERE deleted_at IS NULL;
