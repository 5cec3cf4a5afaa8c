-- +goose Up
-- Visit verification and streaks look up a call's neighbours (engine
-- Context.Nearest: the rep's previous and next check-in, the previous and
-- next visit of the same account, the calls after the last order) with
-- ORDER BY started_at, id LIMIT n from a (started_at, id) pivot. Each of
-- these indexes answers one such look-up by reading a few entries from
-- the pivot, however many visits share the rep, the account or the
-- minute: id is in every key, so a pivot inside a run of visits stamped
-- with the same time is found by the index, not by a scan of the run.
-- The rep's index with id replaces the one without (a prefix of it).
CREATE INDEX visits_rep_started_id ON visits (org_id, rep_id, started_at, id);
DROP INDEX visits_rep_started;
-- Check-ins only: the speed rule skips visits without a GPS fix.
CREATE INDEX visits_rep_check_ins ON visits (org_id, rep_id, started_at, id)
    WHERE check_in_lat IS NOT NULL AND check_in_lng IS NOT NULL;
CREATE INDEX visits_rep_account_started ON visits (org_id, rep_id, account_id, started_at, id);

-- +goose Down
DROP INDEX visits_rep_account_started;
DROP INDEX visits_rep_check_ins;
CREATE INDEX visits_rep_started ON visits (org_id, rep_id, started_at);
DROP INDEX visits_rep_started_id;
