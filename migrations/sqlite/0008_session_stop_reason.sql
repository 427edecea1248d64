-- Why a guardrail (budget or runaway guard) stopped a session: a typed terminal reason, as JSON
-- ({"code": "budget_exceeded", ...}); NULL for every other ending. Only `failed` sessions have one.
ALTER TABLE sessions ADD COLUMN stop_reason TEXT CHECK (stop_reason IS NULL OR status = 'failed');
