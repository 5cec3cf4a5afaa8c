-- +goose Up
-- The field-sales domain: ride-alongs, assessments, contests, the points
-- ledger, standings and recognition. Every table is a synced entity
-- (store/sync.go): typed field columns plus the sync bookkeeping.
ALTER TABLE visits ADD COLUMN verification TEXT;
ALTER TABLE visits ADD COLUMN check_in_distance_m REAL;

CREATE TABLE ride_alongs (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    id TEXT NOT NULL,
    rep_id TEXT,
    manager_id TEXT,
    visit_id TEXT,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_by TEXT,
    scheduled_for DATETIME,
    note TEXT,
    manager_check_in_lat REAL,
    manager_check_in_lng REAL,
    joint_verified INTEGER,
    completed_at DATETIME,
    team_id TEXT,
    prev_status TEXT,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    clocks TEXT NOT NULL DEFAULT '{}',
    created_by TEXT,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE assessments (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    id TEXT NOT NULL,
    rep_id TEXT NOT NULL,
    assessor_id TEXT,
    phase TEXT NOT NULL,
    contest_id TEXT,
    ride_along_id TEXT,
    behaviours TEXT,
    status TEXT NOT NULL,
    rep_comment TEXT,
    due_at DATETIME,
    template_version INTEGER,
    team_id TEXT,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    clocks TEXT NOT NULL DEFAULT '{}',
    created_by TEXT,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE contests (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    starts_at DATETIME NOT NULL,
    ends_at DATETIME NOT NULL,
    time_zone TEXT NOT NULL,
    team_id TEXT,
    rules TEXT,
    targets TEXT,
    grace_hours INTEGER,
    status TEXT,
    rules_version INTEGER,
    owner_id TEXT,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    clocks TEXT NOT NULL DEFAULT '{}',
    created_by TEXT,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE score_entries (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    id TEXT NOT NULL,
    contest_id TEXT,
    rep_id TEXT,
    team_id TEXT,
    source_entity TEXT,
    source_id TEXT,
    rule TEXT,
    kind TEXT,
    points REAL,
    value INTEGER,
    cost INTEGER,
    reason TEXT,
    occurred_at DATETIME,
    reverses TEXT,
    rules_version INTEGER,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    clocks TEXT NOT NULL DEFAULT '{}',
    created_by TEXT,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE standings (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    id TEXT NOT NULL,
    contest_id TEXT,
    rep_id TEXT,
    team_id TEXT,
    rank INTEGER,
    previous_rank INTEGER,
    outcome_points REAL,
    activity_points REAL,
    total_points REAL,
    outcome_value INTEGER,
    activity_cost INTEGER,
    productivity REAL,
    target REAL,
    progress REAL,
    as_of DATETIME,
    contest_scope_team TEXT,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    clocks TEXT NOT NULL DEFAULT '{}',
    created_by TEXT,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE recognitions (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    id TEXT NOT NULL,
    from_user_id TEXT,
    to_user_id TEXT NOT NULL,
    message TEXT NOT NULL,
    badge TEXT,
    kind TEXT,
    contest_id TEXT,
    sent_at DATETIME,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    clocks TEXT NOT NULL DEFAULT '{}',
    created_by TEXT,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX ride_alongs_rep ON ride_alongs (org_id, rep_id, mode, status);
CREATE INDEX ride_alongs_status ON ride_alongs (org_id, status);
CREATE INDEX assessments_rep ON assessments (org_id, rep_id);
CREATE INDEX contests_status ON contests (org_id, status);
CREATE INDEX score_entries_bucket ON score_entries (org_id, contest_id, rep_id, occurred_at);
CREATE INDEX standings_contest ON standings (org_id, contest_id);
CREATE INDEX recognitions_giver ON recognitions (org_id, from_user_id, sent_at);

-- contest_rule_versions audits every change of a contest's scoring rules.
CREATE TABLE contest_rule_versions (
    org_id TEXT NOT NULL,
    contest_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    rules TEXT NOT NULL,
    targets TEXT,
    changed_by TEXT NOT NULL,
    changed_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, contest_id, version)
);

-- +goose Down
DROP TABLE contest_rule_versions;
DROP TABLE recognitions;
DROP TABLE standings;
DROP TABLE score_entries;
DROP TABLE contests;
DROP TABLE assessments;
DROP TABLE ride_alongs;
ALTER TABLE visits DROP COLUMN check_in_distance_m;
ALTER TABLE visits DROP COLUMN verification;
