-- +goose Up
-- push_tokens: one row per user of a device, not one per device. A device
-- id is chosen by the app, not a secret: keyed by device alone, a user who
-- logged in with another's device id took over that user's row. A token
-- (one app install) still lives in one row only: registering it removes it
-- from every other row.
CREATE TABLE push_tokens_by_user (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    device_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    token      TEXT NOT NULL,
    platform   TEXT NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, device_id, user_id),
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
);
INSERT INTO push_tokens_by_user (org_id, device_id, user_id, token, platform, created_at, updated_at)
    SELECT org_id, device_id, user_id, token, platform, created_at, updated_at FROM push_tokens;
DROP TABLE push_tokens;
ALTER TABLE push_tokens_by_user RENAME TO push_tokens;
CREATE INDEX push_tokens_user ON push_tokens (org_id, user_id);
CREATE INDEX push_tokens_token ON push_tokens (token);

-- +goose Down
CREATE TABLE push_tokens_by_device (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    device_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    token      TEXT NOT NULL,
    platform   TEXT NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, device_id),
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
);
-- Each device keeps the row registered last.
INSERT INTO push_tokens_by_device (org_id, device_id, user_id, token, platform, created_at, updated_at)
    SELECT org_id, device_id, user_id, token, platform, created_at, updated_at FROM push_tokens p
    WHERE NOT EXISTS (SELECT 1 FROM push_tokens q WHERE q.org_id = p.org_id AND q.device_id = p.device_id
        AND (q.updated_at > p.updated_at OR (q.updated_at = p.updated_at AND q.user_id > p.user_id)));
DROP TABLE push_tokens;
ALTER TABLE push_tokens_by_device RENAME TO push_tokens;
CREATE INDEX push_tokens_user ON push_tokens (org_id, user_id);
CREATE INDEX push_tokens_token ON push_tokens (token);
