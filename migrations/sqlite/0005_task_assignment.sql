-- See migrations/postgres/0005_task_assignment.sql.
ALTER TABLE tasks ADD COLUMN assignment TEXT;
