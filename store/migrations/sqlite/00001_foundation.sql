-- +goose Up
-- Organisations and the login directory are global; every other table is a
-- tenant table whose keys and indexes lead with org_id, so Citus can later
-- distribute it by org_id without rewriting a query.
CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    name       text NOT NULL,
    created_at DATETIME NOT NULL
);

-- logins maps an email to its one user: login happens before the org is
-- known. It is small and would be a Citus reference table.
CREATE TABLE logins (
    email   text PRIMARY KEY,
    org_id  TEXT NOT NULL REFERENCES orgs (id),
    user_id TEXT NOT NULL
);

CREATE TABLE teams (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    id         TEXT NOT NULL,
    name       text NOT NULL,
    manager_id TEXT,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name),
    FOREIGN KEY (org_id, manager_id) REFERENCES users (org_id, id)
);

CREATE TABLE users (
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    id            TEXT NOT NULL,
    email         text NOT NULL,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('rep', 'manager', 'admin')),
    team_id       TEXT,
    active        INTEGER NOT NULL DEFAULT 1,
    time_zone     text NOT NULL DEFAULT 'UTC',
    password_hash text NOT NULL,
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, email),
    FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id)
);
CREATE INDEX users_team ON users (org_id, team_id);

-- sessions: one per user and device; access tokens name it (sid) and every
-- request checks it is live, so revocation takes effect at once.
CREATE TABLE sessions (
    org_id       TEXT NOT NULL,
    id           TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    device_name  text NOT NULL DEFAULT '',
    platform     text NOT NULL DEFAULT '',
    created_at   DATETIME NOT NULL,
    last_used_at DATETIME NOT NULL,
    expires_at   DATETIME NOT NULL,
    revoked_at   DATETIME,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
);
CREATE INDEX sessions_user_device ON sessions (org_id, user_id, device_id);

-- refresh_tokens keeps every token a session was issued, hashed. A token that
-- is presented after it was rotated is proof of theft.
CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,
    org_id     TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    rotated_at DATETIME,
    FOREIGN KEY (org_id, session_id) REFERENCES sessions (org_id, id)
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (org_id, session_id);

-- +goose Down
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE teams;
DROP TABLE users;
DROP TABLE logins;
DROP TABLE orgs;
