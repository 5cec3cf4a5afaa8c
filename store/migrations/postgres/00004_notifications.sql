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
    org_id          uuid NOT NULL REFERENCES orgs (id),
    id              uuid NOT NULL,
    user_id         uuid NOT NULL,
    category        text NOT NULL,
    type            text NOT NULL,
    title           text NOT NULL,
    body            text,
    data            text,
    read_at         timestamptz,
    dedupe_key      text,
    collapse_key    text,
    urgent          boolean,
    not_before      timestamptz,
    version         bigint NOT NULL,
    deleted         boolean NOT NULL DEFAULT false,
    clocks          text NOT NULL DEFAULT '{}',
    created_by      uuid,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    -- delivery state: pending (new or to retry), deferred (quiet hours, a
    -- visit in progress), sending (leased to a dispatcher until
    -- next_attempt_at), sent, inbox_only (preferences, cap, no device) or
    -- dead (gave up after retries).
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'deferred', 'sending', 'sent', 'inbox_only', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    lease_id        uuid,
    sent_at         timestamptz,
    last_error      text,
    PRIMARY KEY (org_id, id)
);
-- The inbox, newest first.
CREATE INDEX notifications_inbox ON notifications (org_id, user_id, created_at, id);
-- Pushes per user per day, for the daily cap.
CREATE INDEX notifications_sent ON notifications (org_id, user_id, sent_at) WHERE sent_at IS NOT NULL;
-- The dispatcher's queue: undelivered rows by when they are due. It is the
-- one index that does not lead with org_id: the dispatcher serves every
-- organisation, and the partial predicate keeps it to rows in flight.
CREATE INDEX notifications_due ON notifications ((COALESCE(next_attempt_at, not_before, created_at)))
    WHERE status IN ('pending', 'deferred', 'sending');

-- Follow-ups falling due, for the reminder job (sync.NotifyFollowUps).
CREATE INDEX visits_follow_up ON visits (org_id, follow_up_at) WHERE follow_up_at IS NOT NULL;

-- push_tokens: the FCM registration token of each device, owned by the user
-- who last registered it there. A device has one row, so a phone handed to
-- a colleague who logs in and registers moves its token to them.
CREATE TABLE push_tokens (
    org_id     uuid NOT NULL REFERENCES orgs (id),
    device_id  uuid NOT NULL,
    user_id    uuid NOT NULL,
    token      text NOT NULL,
    platform   text NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, device_id),
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
);
CREATE INDEX push_tokens_user ON push_tokens (org_id, user_id);
-- A token is one app install: registering it anywhere removes it from
-- wherever else it was, in any organisation, so it is looked up alone.
CREATE INDEX push_tokens_token ON push_tokens (token);

-- notification_preferences: a user's settings; no row means the defaults.
CREATE TABLE notification_preferences (
    org_id      uuid NOT NULL REFERENCES orgs (id),
    user_id     uuid NOT NULL,
    categories  text NOT NULL DEFAULT '{}', -- JSON {"category": false} for those switched off
    quiet_start text,                       -- HH:MM, null for no quiet hours
    quiet_end   text,
    daily_cap   integer NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id),
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
);

-- +goose Down
DROP INDEX visits_follow_up;
DROP TABLE notification_preferences;
DROP TABLE push_tokens;
DROP TABLE notifications;
