-- +goose Up
-- Organisations and the login directory are global; every other table is a
-- tenant table whose keys and indexes lead with org_id, so Citus can later
-- distribute it by org_id without rewriting a query.
CREATE TABLE orgs (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL
);

-- logins maps an email to its one user: login happens before the org is
-- known. It is small and would be a Citus reference table.
CREATE TABLE logins (
    email   text PRIMARY KEY,
    org_id  uuid NOT NULL REFERENCES orgs (id),
    user_id uuid NOT NULL
);

CREATE TABLE teams (
    org_id     uuid NOT NULL REFERENCES orgs (id),
    id         uuid NOT NULL,
    name       text NOT NULL,
    manager_id uuid,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
);

CREATE TABLE users (
    org_id        uuid NOT NULL REFERENCES orgs (id),
    id            uuid NOT NULL,
    email         text NOT NULL,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('rep', 'manager', 'admin')),
    team_id       uuid,
    active        boolean NOT NULL DEFAULT true,
    time_zone     text NOT NULL DEFAULT 'UTC',
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, email),
    FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id)
);
CREATE INDEX users_team ON users (org_id, team_id);

ALTER TABLE teams ADD FOREIGN KEY (org_id, manager_id) REFERENCES users (org_id, id);

-- sessions: one per user and device; access tokens name it (sid) and every
-- request checks it is live, so revocation takes effect at once.
CREATE TABLE sessions (
    org_id       uuid NOT NULL,
    id           uuid NOT NULL,
    user_id      uuid NOT NULL,
    device_id    uuid NOT NULL,
    device_name  text NOT NULL DEFAULT '',
    platform     text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
);
CREATE INDEX sessions_user_device ON sessions (org_id, user_id, device_id);

-- refresh_tokens keeps every token a session was issued, hashed. A token that
-- is presented after it was rotated is proof of theft.
CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,
    org_id     uuid NOT NULL,
    session_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz,
    FOREIGN KEY (org_id, session_id) REFERENCES sessions (org_id, id)
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (org_id, session_id);

-- +goose Down
DROP TABLE refresh_tokens;
DROP TABLE sessions;
ALTER TABLE teams DROP CONSTRAINT teams_org_id_manager_id_fkey;
DROP TABLE users;
DROP TABLE teams;
DROP TABLE logins;
DROP TABLE orgs;
