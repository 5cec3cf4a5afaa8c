-- +goose Up
-- Synced entities. Each row is a record's current state: typed columns for
-- every field, plus the sync bookkeeping (version, tombstone flag, per-field
-- clocks as JSON, the creating device).
CREATE TABLE accounts (
    org_id                uuid NOT NULL REFERENCES orgs (id),
    id                    uuid NOT NULL,
    name                  text NOT NULL,
    address               text,
    city                  text,
    lat                   double precision,
    lng                   double precision,
    status                text NOT NULL,
    phone                 text,
    notes                 text,
    owner_rep_id          uuid,
    team_id               uuid,
    possible_duplicate_of uuid,
    name_key              text,
    version               bigint NOT NULL,
    deleted               boolean NOT NULL DEFAULT false,
    clocks                text NOT NULL DEFAULT '{}',
    created_by            uuid,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX accounts_team_name ON accounts (org_id, team_id, name_key);

CREATE TABLE visits (
    org_id              uuid NOT NULL REFERENCES orgs (id),
    id                  uuid NOT NULL,
    account_id          uuid,
    kind                text NOT NULL,
    status              text NOT NULL,
    planned_at          timestamptz,
    started_at          timestamptz,
    ended_at            timestamptz,
    check_in_lat        double precision,
    check_in_lng        double precision,
    check_in_accuracy_m double precision,
    check_out_lat       double precision,
    check_out_lng       double precision,
    outcome             text NOT NULL,
    order_value         bigint, -- cents
    referrals           bigint NOT NULL DEFAULT 0,
    follow_up_at        timestamptz,
    notes               text,
    rep_id              uuid,
    team_id             uuid,
    version             bigint NOT NULL,
    deleted             boolean NOT NULL DEFAULT false,
    clocks              text NOT NULL DEFAULT '{}',
    created_by          uuid,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX visits_rep_started ON visits (org_id, rep_id, started_at);

CREATE TABLE activities (
    org_id      uuid NOT NULL REFERENCES orgs (id),
    id          uuid NOT NULL,
    type        text NOT NULL,
    occurred_at timestamptz NOT NULL,
    account_id  uuid,
    visit_id    uuid,
    value       bigint, -- cents
    cost        bigint, -- cents
    notes       text,
    rep_id      uuid,
    team_id     uuid,
    version     bigint NOT NULL,
    deleted     boolean NOT NULL DEFAULT false,
    clocks      text NOT NULL DEFAULT '{}',
    created_by  uuid,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX activities_rep_occurred ON activities (org_id, rep_id, occurred_at);

-- sync_changes is the change feed: one row per record, moved forward on
-- every write. txid is the writing transaction's id; pulls read only rows
-- of transactions older than every transaction still running (see
-- store/sync.go), so a change is never skipped.
CREATE TABLE sync_changes (
    org_id          uuid NOT NULL,
    entity          text NOT NULL,
    record_id       uuid NOT NULL,
    txid            bigint NOT NULL,
    version         bigint NOT NULL,
    team_id         uuid,
    user_id         uuid,
    visibility      smallint NOT NULL,
    deleted         boolean NOT NULL,
    created_by      uuid,
    created_version bigint NOT NULL,
    PRIMARY KEY (org_id, entity, record_id)
);
CREATE INDEX sync_changes_feed ON sync_changes (org_id, txid, version);
CREATE INDEX sync_changes_team ON sync_changes (org_id, team_id, txid, version);
CREATE INDEX sync_changes_user ON sync_changes (org_id, user_id, txid, version);

CREATE SEQUENCE sync_version;

-- sync_devices holds each device's last processed seq; it is updated in
-- the same transaction as the mutations' effects.
CREATE TABLE sync_devices (
    org_id     uuid NOT NULL,
    user_id    uuid NOT NULL,
    device_id  uuid NOT NULL,
    last_seq   bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id, device_id)
);

CREATE TABLE sync_rejections (
    org_id     uuid NOT NULL,
    user_id    uuid NOT NULL,
    device_id  uuid NOT NULL,
    seq        bigint NOT NULL,
    entity     text NOT NULL,
    record_id  uuid NOT NULL,
    code       text NOT NULL,
    message    text NOT NULL,
    field      text,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id, device_id, seq)
);

CREATE TABLE sync_conflicts (
    org_id       uuid NOT NULL,
    id           uuid NOT NULL,
    entity       text NOT NULL,
    record_id    uuid NOT NULL,
    field        text NOT NULL,
    kept         text NOT NULL,
    server_value text NOT NULL,
    client_value text NOT NULL,
    user_id      uuid NOT NULL,
    device_id    uuid NOT NULL,
    team_id      uuid,
    owner_id     uuid,
    visibility   smallint NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX sync_conflicts_team ON sync_conflicts (org_id, team_id, created_at);
CREATE INDEX sync_conflicts_owner ON sync_conflicts (org_id, owner_id, created_at);

-- +goose Down
DROP TABLE sync_conflicts;
DROP TABLE sync_rejections;
DROP TABLE sync_devices;
DROP SEQUENCE sync_version;
DROP TABLE sync_changes;
DROP TABLE activities;
DROP TABLE visits;
DROP TABLE accounts;
