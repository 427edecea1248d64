-- How a task runs: a root's run settings (workspace, parallelism, failure policy, cancel request),
-- a task's own failure policy, the sessions started for a leaf, what the last one left, and a note
-- for operators. NULL: never started.
ALTER TABLE tasks ADD COLUMN execution JSONB;
