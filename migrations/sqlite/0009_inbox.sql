-- See migrations/postgres/0009_inbox.sql. Timestamps as fixed-width RFC 3339 UTC text, JSON as text.
CREATE TABLE inbox_items (
    id             TEXT PRIMARY KEY,
    server         TEXT NOT NULL,
    remote_session TEXT NOT NULL,
    directory      TEXT,
    session_id     TEXT,
    request_id     TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('permission', 'question')),
    request        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'escalated', 'answered', 'expired')),
    created_at     TEXT NOT NULL,
    escalated_at   TEXT,
    resolved_at    TEXT,
    resolution     TEXT,
    version        INTEGER NOT NULL CHECK (version >= 1),
    UNIQUE (server, request_id)
) STRICT;
CREATE INDEX inbox_items_newest ON inbox_items (created_at DESC, id DESC);
CREATE INDEX inbox_items_open ON inbox_items (created_at DESC, id DESC)
    WHERE status IN ('pending', 'escalated');
