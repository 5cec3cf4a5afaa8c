-- +goose Up
-- Location privacy: coordinates older than the retention are coarsened to
-- about 1 km by an hourly job (sales.RedactLocations), which stamps each
-- record it rewrote with location_redacted_at so it is never redone. The
-- partial indexes hold only the records still owed a redaction, ordered by
-- the age of their location, so finding the next batch reads that batch,
-- not the table. Their predicates and expressions must match the job's
-- query (store.syncTx.Due) word for word for the planner to use them.
ALTER TABLE visits ADD COLUMN location_redacted_at DATETIME;
ALTER TABLE ride_alongs ADD COLUMN location_redacted_at DATETIME;
CREATE INDEX visits_location_due ON visits (org_id, (COALESCE(started_at, created_at)), id)
    WHERE location_redacted_at IS NULL AND NOT deleted AND (check_in_lat IS NOT NULL OR check_out_lat IS NOT NULL);
CREATE INDEX ride_alongs_location_due ON ride_alongs (org_id, (COALESCE(completed_at, created_at)), id)
    WHERE location_redacted_at IS NULL AND NOT deleted AND (manager_check_in_lat IS NOT NULL);

-- +goose Down
DROP INDEX ride_alongs_location_due;
DROP INDEX visits_location_due;
ALTER TABLE ride_alongs DROP COLUMN location_redacted_at;
ALTER TABLE visits DROP COLUMN location_redacted_at;
