-- +goose Up
-- Tombstones (deleted records and their feed rows) older than the
-- retention are purged. sync_purges keeps, per organisation, the highest
-- feed position purged: a cursor below it may have missed a delete, so
-- its pull answers reset.
CREATE TABLE sync_purges (
    org_id        TEXT PRIMARY KEY REFERENCES orgs (id),
    txid          INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    updated_at    DATETIME NOT NULL
);
CREATE INDEX sync_changes_tombstones ON sync_changes (org_id, txid, version) WHERE deleted;

-- +goose Down
DROP INDEX sync_changes_tombstones;
DROP TABLE sync_purges;
