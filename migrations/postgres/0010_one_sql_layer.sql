-- One SQL layer for both backends (issue 16): every integer column is 64-bit, as SQLite's
-- INTEGER is, so both bind and read the same i64; the stop reason is JSON like every other
-- document column. Existing values convert losslessly.
ALTER TABLE sessions
    ALTER COLUMN attempt TYPE BIGINT,
    ALTER COLUMN max_attempts TYPE BIGINT,
    ALTER COLUMN files_changed TYPE BIGINT,
    ALTER COLUMN retries TYPE BIGINT,
    ALTER COLUMN stop_reason TYPE JSONB USING stop_reason::jsonb;
ALTER TABLE agents ALTER COLUMN max_concurrency TYPE BIGINT;
ALTER TABLE task_subtasks ALTER COLUMN position TYPE BIGINT;
ALTER TABLE session_queue ALTER COLUMN priority TYPE BIGINT;
