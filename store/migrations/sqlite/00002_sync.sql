-- +goose Up
-- Synced entities. Each row is a record's current state: typed columns for
-- every field, plus the sync bookkeeping (version, tombstone flag, per-field
-- clocks as JSON, the creating device).
CREATE TABLE accounts (
    org_id                TEXT NOT NULL REFERENCES orgs (id),
    id                    TEXT NOT NULL,
    name                  text NOT NULL,
    address               text,
    city                  text,
    lat                   REAL,
    lng                   REAL,
    status                text NOT NULL,
    phone                 text,
    notes                 text,
    owner_rep_id          TEXT,
    team_id               TEXT,
    possible_duplicate_of TEXT,
    name_key              text,
    version               INTEGER NOT NULL,
    deleted               INTEGER NOT NULL DEFAULT 0,
    clocks                text NOT NULL DEFAULT '{}',
    created_by            TEXT,
    created_at            DATETIME NOT NULL,
    updated_at            DATETIME NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX accounts_team_name ON accounts (org_id, team_id, name_key);

CREATE TABLE visits (
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    id                  TEXT NOT NULL,
    account_id          TEXT,
    kind                text NOT NULL,
    status              text NOT NULL,
    planned_at          DATETIME,
    started_at          DATETIME,
    ended_at            DATETIME,
    check_in_lat        REAL,
    check_in_lng        REAL,
    check_in_accuracy_m REAL,
    check_out_lat       REAL,
    check_out_lng       REAL,
    outcome             text NOT NULL,
    order_value         INTEGER, -- cents
    referrals           INTEGER NOT NULL DEFAULT 0,
    follow_up_at        DATETIME,
    notes               text,
    rep_id              TEXT,
    team_id             TEXT,
    version             INTEGER NOT NULL,
    deleted             INTEGER NOT NULL DEFAULT 0,
    clocks              text NOT NULL DEFAULT '{}',
    created_by          TEXT,
    created_at          DATETIME NOT NULL,
    updated_at          DATETIME NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX visits_rep_started ON visits (org_id, rep_id, started_at);

CREATE TABLE activities (
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    id          TEXT NOT NULL,
    type        text NOT NULL,
    occurred_at DATETIME NOT NULL,
    account_id  TEXT,
    visit_id    TEXT,
    value       INTEGER, -- cents
    cost        INTEGER, -- cents
    notes       text,
    rep_id      TEXT,
    team_id     TEXT,
    version     INTEGER NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0,
    clocks      text NOT NULL DEFAULT '{}',
    created_by  TEXT,
    created_at  DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX activities_rep_occurred ON activities (org_id, rep_id, occurred_at);

-- sync_changes is the change feed: one row per record, moved forward on
-- every write. txid is the writing transaction's id; pulls read only rows
-- of transactions older than every transaction still running (see
-- store/sync.go), so a change is never skipped.
CREATE TABLE sync_changes (
    org_id          TEXT NOT NULL,
    entity          text NOT NULL,
    record_id       TEXT NOT NULL,
    txid            INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    team_id         TEXT,
    user_id         TEXT,
    visibility      INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    created_by      TEXT,
    created_version INTEGER NOT NULL,
    PRIMARY KEY (org_id, entity, record_id)
);
CREATE INDEX sync_changes_feed ON sync_changes (org_id, txid, version);
CREATE INDEX sync_changes_team ON sync_changes (org_id, team_id, txid, version);
CREATE INDEX sync_changes_user ON sync_changes (org_id, user_id, txid, version);

-- SQLite writers are serial (BEGIN IMMEDIATE), so one counter row hands
-- out versions in commit order.
CREATE TABLE sync_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO sync_counter (id, value) VALUES (1, 0);

-- sync_devices holds each device's last processed seq; it is updated in
-- the same transaction as the mutations' effects.
CREATE TABLE sync_devices (
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, user_id, device_id)
);

CREATE TABLE sync_rejections (
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

CREATE TABLE sync_conflicts (
    org_id       TEXT NOT NULL,
    id           TEXT NOT NULL,
    entity       text NOT NULL,
    record_id    TEXT NOT NULL,
    field        text NOT NULL,
    kept         text NOT NULL,
    server_value text NOT NULL,
    client_value text NOT NULL,
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    team_id      TEXT,
    owner_id     TEXT,
    visibility   INTEGER NOT NULL,
    created_at   DATETIME NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX sync_conflicts_team ON sync_conflicts (org_id, team_id, created_at);
CREATE INDEX sync_conflicts_owner ON sync_conflicts (org_id, owner_id, created_at);

-- +goose Down
DROP TABLE sync_conflicts;
DROP TABLE sync_rejections;
DROP TABLE sync_devices;
DROP TABLE sync_counter;
DROP TABLE sync_changes;
DROP TABLE activities;
DROP TABLE visits;
DROP TABLE accounts;
