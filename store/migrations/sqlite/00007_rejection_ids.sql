-- +goose Up
-- Rejections get an id of their own: WatermelonDB pushes have no seq (their
-- refusals are stored with seq 0), and GET /v1/sync/rejections pages by id.
-- id comes last, where PostgreSQL's ADD COLUMN puts it: both trees keep
-- the same column order (store/schema_test.go).
CREATE TABLE sync_rejections_new (
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    entity     text NOT NULL,
    record_id  TEXT NOT NULL,
    code       text NOT NULL,
    message    text NOT NULL,
    field      text,
    created_at DATETIME NOT NULL,
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT
);
INSERT INTO sync_rejections_new (org_id, user_id, device_id, seq, entity, record_id, code, message, field, created_at)
    SELECT org_id, user_id, device_id, seq, entity, record_id, code, message, field, created_at
    FROM sync_rejections ORDER BY created_at, seq;
DROP TABLE sync_rejections;
ALTER TABLE sync_rejections_new RENAME TO sync_rejections;
CREATE INDEX sync_rejections_device ON sync_rejections (org_id, user_id, device_id, seq);
CREATE INDEX sync_rejections_recent ON sync_rejections (org_id, user_id, device_id, id);

-- +goose Down
CREATE TABLE sync_rejections_old (
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    entity     text NOT NULL,
    record_id  TEXT NOT NULL,
    code       text NOT NULL,
    message    text NOT NULL,
    field      text,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, user_id, device_id, seq)
);
INSERT OR IGNORE INTO sync_rejections_old (org_id, user_id, device_id, seq, entity, record_id, code, message, field, created_at)
    SELECT org_id, user_id, device_id, seq, entity, record_id, code, message, field, created_at FROM sync_rejections WHERE seq > 0;
DROP TABLE sync_rejections;
ALTER TABLE sync_rejections_old RENAME TO sync_rejections;
