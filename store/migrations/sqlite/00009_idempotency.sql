-- +goose Up
-- The answer to each non-sync POST sent with an Idempotency-Key, kept 24
-- hours: a retry with the same key and body gets the stored answer instead
-- of a second effect. status is 0 while the first request runs.
CREATE TABLE idempotency_keys (
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    user_id       TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    content_type  TEXT NOT NULL,
    body          BLOB NOT NULL,
    created_at    DATETIME NOT NULL,
    PRIMARY KEY (org_id, user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
