-- See migrations/postgres/0004_agent_recent_performance.sql.
ALTER TABLE agents ADD COLUMN recent_performance TEXT NOT NULL DEFAULT '{}';
