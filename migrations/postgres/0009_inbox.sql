-- The human-in-the-loop inbox: every permission request and question an OpenCode server raised.
-- One row per (server, request_id): events repeat after a stream reconnects, the row does not.
-- session_id is ours when the remote session is known to be ours; no foreign key, so an item
--   outlives a purged session (it is the audit of who allowed what).
-- request: the InboxKind as JSON (permission + patterns, or the questions and their options).
-- resolution: who answered what and when (InboxResolution as JSON), for answered items.
CREATE TABLE inbox_items (
    id             UUID PRIMARY KEY,
    server         TEXT NOT NULL,
    remote_session TEXT NOT NULL,
    directory      TEXT,
    session_id     UUID,
    request_id     TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('permission', 'question')),
    request        JSONB NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'escalated', 'answered', 'expired')),
    created_at     TIMESTAMPTZ NOT NULL,
    escalated_at   TIMESTAMPTZ,
    resolved_at    TIMESTAMPTZ,
    resolution     JSONB,
    version        BIGINT NOT NULL CHECK (version >= 1),
    UNIQUE (server, request_id)
);
CREATE INDEX inbox_items_newest ON inbox_items (created_at DESC, id DESC);
CREATE INDEX inbox_items_open ON inbox_items (created_at DESC, id DESC)
    WHERE status IN ('pending', 'escalated');
