-- +goose Up
-- Notifications: the synced in-app inbox (entity "notifications", one row
-- per notification) doubles as the push outbox. A trigger writes the row in
-- the transaction of the change that caused it; the dispatcher
-- (notifications/, store/notifications.go) claims due rows and pushes them.
--
-- The columns after not_before are the dispatcher's alone. The sync entity
-- does not declare them, so engine writes (marking a notification read)
-- never touch them and cannot undo a recorded send.
CREATE TABLE notifications (
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    id              TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    category        TEXT NOT NULL,
    type            TEXT NOT NULL,
    title           TEXT NOT NULL,
    body            TEXT,
    data            TEXT,
    read_at         DATETIME,
    dedupe_key      TEXT,
    collapse_key    TEXT,
    urgent          INTEGER,
    not_before      DATETIME,
    version         INTEGER NOT NULL,
    deleted         INTEGER NOT NULL DEFAULT 0,
    clocks          TEXT NOT NULL DEFAULT '{}',
    created_by      TEXT,
    created_at      DATETIME NOT NULL,
    updated_at      DATETIME NOT NULL,
    -- delivery state: pending (new or to retry), deferred (quiet hours, a
    -- visit in progress), sending (leased to a dispatcher until
    -- next_attempt_at), sent, inbox_only (preferences, cap, no device) or
    -- dead (gave up after retries).
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'deferred', 'sending', 'sent', 'inbox_only', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DATETIME,
    lease_id        TEXT,
    sent_at         DATETIME,
    last_error      TEXT,
    PRIMARY KEY (org_id, id)
);
-- The inbox, newest first.
CREATE INDEX notifications_inbox ON notifications (org_id, user_id, created_at, id);
-- Pushes per user per day, for the daily cap.
CREATE INDEX notifications_sent ON notifications (org_id, user_id, sent_at) WHERE sent_at IS NOT NULL;
-- The dispatcher's queue: undelivered rows by when they are due.
CREATE INDEX notifications_due ON notifications (COALESCE(next_attempt_at, not_before, created_at))
    WHERE status IN ('pending', 'deferred', 'sending');

-- Follow-ups falling due, for the reminder job (sync.NotifyFollowUps).
CREATE INDEX visits_follow_up ON visits (org_id, follow_up_at) WHERE follow_up_at IS NOT NULL;

-- push_tokens: the FCM registration token of each device, owned by the user
-- who last registered it there.
CREATE TABLE push_tokens (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    device_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    token      TEXT NOT NULL,
    platform   TEXT NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, device_id),
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
);
CREATE INDEX push_tokens_user ON push_tokens (org_id, user_id);
CREATE INDEX push_tokens_token ON push_tokens (token);

-- notification_preferences: a user's settings; no row means the defaults.
CREATE TABLE notification_preferences (
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    user_id     TEXT NOT NULL,
    categories  TEXT NOT NULL DEFAULT '{}', -- JSON {"category": false} for those switched off
    quiet_start TEXT,                       -- HH:MM, null for no quiet hours
    quiet_end   TEXT,
    daily_cap   INTEGER NOT NULL,
    updated_at  DATETIME NOT NULL,
    PRIMARY KEY (org_id, user_id),
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
);

-- +goose Down
DROP INDEX visits_follow_up;
DROP TABLE notification_preferences;
DROP TABLE push_tokens;
DROP TABLE notifications;
