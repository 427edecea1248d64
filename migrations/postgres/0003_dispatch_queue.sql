-- The dispatch queue: one row per session that waits for, or holds, an OpenCode slot. The row
-- exists from enqueue until the session reaches a terminal state (the same transaction as the
-- transition). A row with no owner is waiting; a row with an owner is leased by that replica
-- until lease_expires_at. Every claim bumps fence: writes of a former owner (an older fence) are
-- refused, so a replica that lost its lease cannot overwrite its successor's work.
CREATE TABLE session_queue (
    session_id          UUID PRIMARY KEY REFERENCES sessions (id),
    priority            INTEGER NOT NULL DEFAULT 0,
    enqueued_at         TIMESTAMPTZ NOT NULL,
    available_at        TIMESTAMPTZ NOT NULL,          -- not claimable before (retry backoff)
    agent               TEXT,                          -- per-agent concurrency limits
    owner               TEXT,                          -- the replica holding the lease
    fence               BIGINT NOT NULL DEFAULT 0 CHECK (fence >= 0),
    lease_expires_at    TIMESTAMPTZ,
    claimed_at          TIMESTAMPTZ,
    server              TEXT,                          -- the OpenCode server it runs on
    remote_session      TEXT,                          -- OpenCode's ses… id
    remote_directory    TEXT,                          -- the worktree OpenCode works in
    message_id          TEXT,                          -- our msg… id of the prompt
    deadline_at         TIMESTAMPTZ,                   -- per-session timeout
    cancel_requested    BOOLEAN NOT NULL DEFAULT FALSE,
    CHECK ((owner IS NULL) = (lease_expires_at IS NULL))
);

-- Waiting rows in dispatch order.
CREATE INDEX session_queue_waiting ON session_queue (priority DESC, enqueued_at, session_id)
    WHERE owner IS NULL;
-- Leases, for recovery and per-server / per-agent load.
CREATE INDEX session_queue_leased ON session_queue (lease_expires_at) WHERE owner IS NOT NULL;
CREATE INDEX session_queue_by_server ON session_queue (server) WHERE owner IS NOT NULL;
CREATE INDEX session_queue_by_agent ON session_queue (agent) WHERE owner IS NOT NULL;
