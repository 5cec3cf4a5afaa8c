-- +goose Up
-- The answer to each non-sync POST sent with an Idempotency-Key, kept 24
-- hours: a retry with the same key and body gets the stored answer instead
-- of a second effect. status is 0 while the first request runs.
CREATE TABLE idempotency_keys (
    org_id        uuid NOT NULL REFERENCES orgs (id),
    user_id       uuid NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status        integer NOT NULL,
    content_type  text NOT NULL,
    body          bytea NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
