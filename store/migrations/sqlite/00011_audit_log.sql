-- +goose Up
-- audit_log is the organisation's append-only record of changes to who may
-- do what and to how people are scored: role and team changes, team
-- creation, contest rules and targets, assessments changed after sharing.
-- Each row is written in the transaction of the change it records.
-- before_state and after_state are JSON objects of the audited fields that
-- changed (before_state is NULL for a creation); actor_id is NULL for the
-- server's own work and for admin commands run on the host.
CREATE TABLE audit_log (
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    id           TEXT NOT NULL,
    actor_id     TEXT,
    action       TEXT NOT NULL,
    object_type  TEXT NOT NULL,
    object_id    TEXT NOT NULL,
    before_state TEXT,
    after_state  TEXT,
    at           DATETIME NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX audit_log_at ON audit_log (org_id, at, id);
CREATE INDEX audit_log_actor ON audit_log (org_id, actor_id, at, id);
CREATE INDEX audit_log_object ON audit_log (org_id, object_type, object_id, at, id);

-- Append-only: the database itself refuses to change or remove a row.
-- +goose StatementBegin
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE audit_log;
