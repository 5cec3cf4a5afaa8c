-- +goose Up
-- A conflict names both writers: the pushing user (user_id) and whose
-- device last wrote the stored value, and when by that device's clock.
-- Conflicts logged before this migration leave them unknown.
ALTER TABLE sync_conflicts ADD COLUMN server_user_id TEXT;
ALTER TABLE sync_conflicts ADD COLUMN server_written_at DATETIME;

-- +goose Down
ALTER TABLE sync_conflicts DROP COLUMN server_written_at;
ALTER TABLE sync_conflicts DROP COLUMN server_user_id;
