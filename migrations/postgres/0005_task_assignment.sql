-- The agent routing chose for a task, its score and the explanation listing every candidate.
ALTER TABLE tasks ADD COLUMN assignment JSONB;
