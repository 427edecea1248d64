-- An agent's recent, decayed track record (overall and per capability), as one JSON document:
-- read and written whole with the agent; routing prefers it to the lifetime counters.
ALTER TABLE agents ADD COLUMN recent_performance JSONB NOT NULL DEFAULT '{}'::jsonb;
