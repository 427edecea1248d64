-- One SQL layer for both backends (issue 16). PostgreSQL's 0010 widens its INTEGER columns to
-- BIGINT and stores the stop reason as JSONB; SQLite's INTEGER is already 64-bit and its JSON is
-- text, so nothing changes here. Kept so both backends number their migrations alike.
SELECT 1;
