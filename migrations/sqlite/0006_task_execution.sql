-- See migrations/postgres/0006_task_execution.sql.
ALTER TABLE tasks ADD COLUMN execution TEXT;
