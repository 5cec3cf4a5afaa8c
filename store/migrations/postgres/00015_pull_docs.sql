-- +goose Up
-- doc is the record's pull encoding (engine.Entity.MarshalRecord: the
-- "data" object of a native pull's change), written by the statement that
-- writes the feed row, so that a pull page is one read of the feed with no
-- load per entity (store.Feed.PullPage); a tombstone's serves its
-- updated_at. NULL in rows written before this migration: those pull from
-- their records.
--
-- The encoding belongs to the build that wrote it. A release that changes
-- what a pulled record looks like (a field added, renamed or hidden, a
-- value formatted otherwise) or that rewrites records in SQL must clear the
-- affected docs in its migration: UPDATE sync_changes SET doc = NULL
-- WHERE entity = '…'.
ALTER TABLE sync_changes ADD COLUMN doc text;

-- +goose Down
ALTER TABLE sync_changes DROP COLUMN doc;
