-- +goose Up
-- The field-sales domain: ride-alongs, assessments, contests, the points
-- ledger, standings and recognition. Every table is a synced entity
-- (store/sync.go): typed field columns plus the sync bookkeeping.
ALTER TABLE visits ADD COLUMN verification text;
ALTER TABLE visits ADD COLUMN check_in_distance_m double precision;

CREATE TABLE ride_alongs (
    org_id uuid NOT NULL REFERENCES orgs (id),
    id uuid NOT NULL,
    rep_id uuid,
    manager_id uuid,
    visit_id uuid,
    mode text NOT NULL,
    status text NOT NULL,
    requested_by text,
    scheduled_for timestamptz,
    note text,
    manager_check_in_lat double precision,
    manager_check_in_lng double precision,
    joint_verified boolean,
    completed_at timestamptz,
    team_id uuid,
    prev_status text,
    version bigint NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    clocks text NOT NULL DEFAULT '{}',
    created_by uuid,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE assessments (
    org_id uuid NOT NULL REFERENCES orgs (id),
    id uuid NOT NULL,
    rep_id uuid NOT NULL,
    assessor_id uuid,
    phase text NOT NULL,
    contest_id uuid,
    ride_along_id uuid,
    behaviours text,
    status text NOT NULL,
    rep_comment text,
    due_at timestamptz,
    template_version bigint,
    team_id uuid,
    version bigint NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    clocks text NOT NULL DEFAULT '{}',
    created_by uuid,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE contests (
    org_id uuid NOT NULL REFERENCES orgs (id),
    id uuid NOT NULL,
    name text NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    time_zone text NOT NULL,
    team_id uuid,
    rules text,
    targets text,
    grace_hours bigint,
    status text,
    rules_version bigint,
    owner_id uuid,
    version bigint NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    clocks text NOT NULL DEFAULT '{}',
    created_by uuid,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE score_entries (
    org_id uuid NOT NULL REFERENCES orgs (id),
    id uuid NOT NULL,
    contest_id uuid,
    rep_id uuid,
    team_id uuid,
    source_entity text,
    source_id uuid,
    rule text,
    kind text,
    points double precision,
    value bigint,
    cost bigint,
    reason text,
    occurred_at timestamptz,
    reverses uuid,
    rules_version bigint,
    version bigint NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    clocks text NOT NULL DEFAULT '{}',
    created_by uuid,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE standings (
    org_id uuid NOT NULL REFERENCES orgs (id),
    id uuid NOT NULL,
    contest_id uuid,
    rep_id uuid,
    team_id uuid,
    rank bigint,
    previous_rank bigint,
    outcome_points double precision,
    activity_points double precision,
    total_points double precision,
    outcome_value bigint,
    activity_cost bigint,
    productivity double precision,
    target double precision,
    progress double precision,
    as_of timestamptz,
    contest_scope_team uuid,
    version bigint NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    clocks text NOT NULL DEFAULT '{}',
    created_by uuid,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE TABLE recognitions (
    org_id uuid NOT NULL REFERENCES orgs (id),
    id uuid NOT NULL,
    from_user_id uuid,
    to_user_id uuid NOT NULL,
    message text NOT NULL,
    badge text,
    kind text,
    contest_id uuid,
    sent_at timestamptz,
    version bigint NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    clocks text NOT NULL DEFAULT '{}',
    created_by uuid,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
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
    org_id uuid NOT NULL,
    contest_id uuid NOT NULL,
    version bigint NOT NULL,
    rules text NOT NULL,
    targets text,
    changed_by uuid NOT NULL,
    changed_at timestamptz NOT NULL,
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
