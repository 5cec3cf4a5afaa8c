-- +goose Up
-- audit_log is the organisation's append-only record of changes to who may
-- do what and to how people are scored: role and team changes, team
-- creation, contest rules and targets, assessments changed after sharing.
-- Each row is written in the transaction of the change it records.
-- before_state and after_state are JSON objects of the audited fields that
-- changed (before_state is NULL for a creation); actor_id is NULL for the
-- server's own work and for admin commands run on the host.
CREATE TABLE audit_log (
    org_id       uuid NOT NULL REFERENCES orgs (id),
    id           uuid NOT NULL,
    actor_id     uuid,
    action       text NOT NULL,
    object_type  text NOT NULL,
    object_id    uuid NOT NULL,
    before_state text,
    after_state  text,
    at           timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX audit_log_at ON audit_log (org_id, at, id);
CREATE INDEX audit_log_actor ON audit_log (org_id, actor_id, at, id);
CREATE INDEX audit_log_object ON audit_log (org_id, object_type, object_id, at, id);

-- Append-only: the database itself refuses to change or remove a row.
-- +goose StatementBegin
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- +goose Down
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
