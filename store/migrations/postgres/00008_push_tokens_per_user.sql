-- +goose Up
-- push_tokens: one row per user of a device, not one per device. A device
-- id is chosen by the app, not a secret: keyed by device alone, a user who
-- logged in with another's device id took over that user's row. A token
-- (one app install) still lives in one row only: registering it removes it
-- from every other row.
ALTER TABLE push_tokens DROP CONSTRAINT push_tokens_pkey, ADD PRIMARY KEY (org_id, device_id, user_id);

-- +goose Down
-- Each device keeps the row registered last.
DELETE FROM push_tokens p USING push_tokens q
    WHERE q.org_id = p.org_id AND q.device_id = p.device_id
    AND (q.updated_at > p.updated_at OR (q.updated_at = p.updated_at AND q.user_id > p.user_id));
ALTER TABLE push_tokens DROP CONSTRAINT push_tokens_pkey, ADD PRIMARY KEY (org_id, device_id);
