-- The dispatch queue: see migrations/postgres/0003_dispatch_queue.sql. In embedded mode one
-- process writes at a time (BEGIN IMMEDIATE), which is SQLite's equivalent of SKIP LOCKED claims.
CREATE TABLE session_queue (
    session_id          TEXT PRIMARY KEY NOT NULL REFERENCES sessions (id),
    priority            INTEGER NOT NULL DEFAULT 0,
    enqueued_at         TEXT NOT NULL,
    available_at        TEXT NOT NULL,
    agent               TEXT,
    owner               TEXT,
    fence               INTEGER NOT NULL DEFAULT 0 CHECK (fence >= 0),
    lease_expires_at    TEXT,
    claimed_at          TEXT,
    server              TEXT,
    remote_session      TEXT,
    remote_directory    TEXT,
    message_id          TEXT,
    deadline_at         TEXT,
    cancel_requested    INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    CHECK ((owner IS NULL) = (lease_expires_at IS NULL))
) STRICT;

CREATE INDEX session_queue_waiting ON session_queue (priority DESC, enqueued_at, session_id)
    WHERE owner IS NULL;
CREATE INDEX session_queue_leased ON session_queue (lease_expires_at) WHERE owner IS NOT NULL;
CREATE INDEX session_queue_by_server ON session_queue (server) WHERE owner IS NOT NULL;
CREATE INDEX session_queue_by_agent ON session_queue (agent) WHERE owner IS NOT NULL;
