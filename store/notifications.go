package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/notifications"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// The store implements the dispatcher's outbox.
var _ notifications.Store = (*Outbox)(nil)

// notificationsEntity declares the inbox columns the sync engine owns; the
// delivery columns (status, attempts, next_attempt_at, lease_id, sent_at,
// last_error) are this file's alone. See the 00004 migration.
var notificationsEntity = sales.Notifications()

// dueExpr is when an outbox row is next due. A claimed row's
// next_attempt_at is its lease's end, so a row whose dispatcher died is
// due again when the lease lapses. The notifications_due index is on
// exactly this expression.
const dueExpr = "COALESCE(next_attempt_at, not_before, created_at)"

// PutPushToken registers or rotates the FCM token of the caller's device.
// Each user of a device has their own row: a device id is chosen by the
// app and is no credential, so registering under another user's device id
// never touches that user's row. The token is removed wherever else it was
// registered, in any organisation: it is one app install (a shared phone
// registers the same token for whoever logs in), and it must not receive
// another user's pushes.
func (db *Outbox) PutPushToken(ctx context.Context, p models.Principal, token, platform string) error {
	now := db.now().UTC()
	return db.transaction(ctx, func(tx *gorm.DB) error {
		err := tx.Exec(`DELETE FROM push_tokens WHERE token = ? AND NOT (org_id = ? AND device_id = ? AND user_id = ?)`,
			token, p.OrgID.String(), p.DeviceID.String(), p.UserID.String()).Error
		if err != nil {
			return fmt.Errorf("move push token: %w", err)
		}
		err = tx.Exec(`INSERT INTO push_tokens (org_id, device_id, user_id, token, platform, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (org_id, device_id, user_id) DO UPDATE SET token = excluded.token,
				platform = excluded.platform, updated_at = excluded.updated_at`,
			p.OrgID.String(), p.DeviceID.String(), p.UserID.String(), token, platform, now, now).Error
		if err != nil {
			return fmt.Errorf("save push token: %w", err)
		}
		return nil
	})
}

// DeletePushToken removes the push token of the caller's device, if the
// caller owns it. Deleting an absent token is a no-op.
func (db *Outbox) DeletePushToken(ctx context.Context, p models.Principal) error {
	err := db.gorm.WithContext(ctx).Exec(`DELETE FROM push_tokens WHERE org_id = ? AND device_id = ? AND user_id = ?`,
		p.OrgID.String(), p.DeviceID.String(), p.UserID.String()).Error
	if err != nil {
		return fmt.Errorf("delete push token: %w", translate(err))
	}
	return nil
}

// removeSessionPushToken removes the push token the user of a session
// registered on its device: a device logged out gets no more pushes.
func removeSessionPushToken(tx *gorm.DB, orgID, sessionID uuid.UUID) error {
	err := tx.Exec(`DELETE FROM push_tokens WHERE org_id = ? AND EXISTS (
			SELECT 1 FROM sessions s WHERE s.org_id = push_tokens.org_id AND s.id = ?
			AND s.device_id = push_tokens.device_id AND s.user_id = push_tokens.user_id)`,
		orgID.String(), sessionID.String()).Error
	if err != nil {
		return fmt.Errorf("remove push token: %w", err)
	}
	return nil
}

// removeUserPushTokens removes every push token of a user (deactivation).
func removeUserPushTokens(tx *gorm.DB, orgID, userID uuid.UUID) error {
	err := tx.Exec(`DELETE FROM push_tokens WHERE org_id = ? AND user_id = ?`, orgID.String(), userID.String()).Error
	if err != nil {
		return fmt.Errorf("remove push tokens: %w", err)
	}
	return nil
}

// PushTokens lists a user's registered devices (tests, support).
func (db *Outbox) PushTokens(ctx context.Context, orgID, userID uuid.UUID) ([]notifications.Token, error) {
	var out []notifications.Token
	err := scanTokens(db.read.WithContext(ctx).Raw(`SELECT org_id, user_id, device_id, token, platform FROM push_tokens
		WHERE org_id = ? AND user_id = ? ORDER BY device_id`, orgID.String(), userID.String()), func(t notifications.Token) {
		out = append(out, t)
	})
	if err != nil {
		return nil, fmt.Errorf("list push tokens: %w", translate(err))
	}
	return out, nil
}

func scanTokens(q *gorm.DB, each func(notifications.Token)) error {
	rows, err := q.Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var t notifications.Token
		if err := rows.Scan(&t.OrgID, &t.UserID, &t.DeviceID, &t.Token, &t.Platform); err != nil {
			return err
		}
		each(t)
	}
	return rows.Err()
}

// NotificationPreferences returns a user's preferences, the defaults when
// they never set any.
func (db *Outbox) NotificationPreferences(ctx context.Context, orgID, userID uuid.UUID) (models.NotificationPreferences, error) {
	m, err := loadPreferences(db.read.WithContext(ctx), orgID, []string{userID.String()})
	if err != nil {
		return models.NotificationPreferences{}, translate(err)
	}
	if p, ok := m[userID]; ok {
		return p, nil
	}
	return models.DefaultNotificationPreferences(), nil
}

// SetNotificationPreferences replaces a user's preferences.
func (db *Outbox) SetNotificationPreferences(ctx context.Context, orgID, userID uuid.UUID, p models.NotificationPreferences) error {
	off := map[string]bool{}
	for c, isOff := range p.Off {
		if isOff {
			off[string(c)] = false
		}
	}
	cats, err := json.Marshal(off)
	if err != nil {
		return fmt.Errorf("encode categories: %w", err)
	}
	var qs, qe any
	if p.Quiet != nil {
		qs, qe = p.Quiet.Start, p.Quiet.End
	}
	err = db.gorm.WithContext(ctx).Exec(`INSERT INTO notification_preferences (org_id, user_id, categories, quiet_start, quiet_end, daily_cap, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (org_id, user_id) DO UPDATE SET categories = excluded.categories, quiet_start = excluded.quiet_start,
			quiet_end = excluded.quiet_end, daily_cap = excluded.daily_cap, updated_at = excluded.updated_at`,
		orgID.String(), userID.String(), string(cats), qs, qe, p.DailyCap, db.now().UTC()).Error
	if err != nil {
		return fmt.Errorf("save notification preferences: %w", translate(err))
	}
	return nil
}

// loadPreferences reads the stored preferences of some users of one org.
func loadPreferences(tx *gorm.DB, orgID uuid.UUID, users []string) (map[uuid.UUID]models.NotificationPreferences, error) {
	rows, err := tx.Raw(`SELECT user_id, categories, quiet_start, quiet_end, daily_cap FROM notification_preferences
		WHERE org_id = ? AND user_id IN ?`, orgID.String(), users).Rows()
	if err != nil {
		return nil, fmt.Errorf("load notification preferences: %w", err)
	}
	defer rows.Close()
	out := map[uuid.UUID]models.NotificationPreferences{}
	for rows.Next() {
		var (
			user     uuid.UUID
			cats     string
			qs, qe   sql.NullString
			dailyCap int
		)
		if err := rows.Scan(&user, &cats, &qs, &qe, &dailyCap); err != nil {
			return nil, fmt.Errorf("load notification preferences: %w", err)
		}
		p := models.NotificationPreferences{Off: map[models.Category]bool{}, DailyCap: dailyCap}
		var m map[string]bool
		if err := json.Unmarshal([]byte(cats), &m); err != nil {
			return nil, fmt.Errorf("decode categories of %s: %w", user, err)
		}
		for c, on := range m {
			if !on {
				p.Off[models.Category(c)] = true
			}
		}
		if qs.Valid && qe.Valid {
			p.Quiet = &models.QuietHours{Start: qs.String, End: qe.String}
		}
		out[user] = p
	}
	return out, rows.Err()
}

// Inbox lists p's notifications newest first, after a position in that
// order (the zero position starts at the newest), unread ones only when
// unread is set.
func (db *Outbox) Inbox(ctx context.Context, p models.Principal, after models.InboxPos, limit int, unread bool) ([]*engine.Record, error) {
	e := notificationsEntity
	q := `SELECT ` + strings.Join(columns(e), ", ") + ` FROM notifications WHERE org_id = ? AND user_id = ? AND deleted = ?`
	args := []any{p.OrgID.String(), p.UserID.String(), false}
	if unread {
		q += ` AND read_at IS NULL`
	}
	if after.ID != uuid.Nil {
		q += ` AND (created_at < ? OR (created_at = ? AND id < ?))`
		args = append(args, after.At.UTC(), after.At.UTC(), after.ID.String())
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit)
	var out []*engine.Record
	if err := scanRecords(db.read.WithContext(ctx).Raw(q, args...), e, false, func(r *engine.Record) { out = append(out, r) }); err != nil {
		return nil, fmt.Errorf("list notifications: %w", translate(err))
	}
	return out, nil
}

// ClaimNotifications claims due outbox rows for a dispatcher.
//
// Why this is safe with many dispatchers: on PostgreSQL the due rows are
// selected FOR UPDATE SKIP LOCKED, so two claims running at once take
// disjoint rows without waiting for each other, and each claimed row is
// marked sending with next_attempt_at at the lease's end before the
// transaction commits. Sends happen after the commit, outside any lock;
// only the claimer's LeaseID can then record the outcome. A claimer that
// dies leaves its rows sending until the lease lapses; they are then due
// again and another dispatcher claims them (a push FCM had accepted just
// before the crash is then sent twice: delivery is at least once, and
// exactly once otherwise).
//
// The daily cap must hold across dispatchers too: the claim takes a
// transaction-scoped advisory lock per recipient (in one sorted order, so
// claims never deadlock) before counting the recipient's pushes of the
// day, and a row marked sending counts (its sent_at is set at the claim
// and cleared if the send fails). A second claim for the same user waits
// for the first to commit and then sees its reservations. On SQLite
// writers are serial, so a plain claim is enough.
func (db *Outbox) ClaimNotifications(ctx context.Context, c notifications.Claim, plan notifications.Planner) ([]notifications.Claimed, error) {
	var out []notifications.Claimed
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		out = nil
		q := `SELECT org_id, id, user_id, category, type, title, body, data, collapse_key, urgent, not_before, created_at, attempts
			FROM notifications WHERE status IN ('pending', 'deferred', 'sending') AND ` + dueExpr + ` <= ? AND deleted = ?
			ORDER BY ` + dueExpr + ` LIMIT ?`
		q += db.dialect.claimLock()
		due, err := scanDue(tx.Raw(q, c.Now.UTC(), false, c.Limit))
		if err != nil {
			return fmt.Errorf("claim notifications: %w", err)
		}
		if len(due) == 0 {
			return nil
		}
		rs, err := db.recipients(tx, c.Now, due)
		if err != nil {
			return err
		}
		steps := plan(due, rs)
		if len(steps) != len(due) {
			return fmt.Errorf("claim notifications: plan returned %d steps for %d rows", len(steps), len(due))
		}
		if err := applySteps(tx, c, due, steps); err != nil {
			return err
		}
		for i, s := range steps {
			if s.Status == notifications.StatusSending {
				r := rs[notifications.UserKey{OrgID: due[i].OrgID, UserID: due[i].Notification.UserID}]
				out = append(out, notifications.Claimed{Due: due[i], Tokens: r.Tokens})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func scanDue(q *gorm.DB) ([]notifications.Due, error) {
	rows, err := q.Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []notifications.Due
	for rows.Next() {
		var (
			d                notifications.Due
			n                = &d.Notification
			body, data, ck   sql.NullString
			urgent           sql.NullBool
			notBefore        sql.NullTime
			category, typeOf string
		)
		if err := rows.Scan(&d.OrgID, &n.ID, &n.UserID, &category, &typeOf, &n.Title, &body, &data, &ck, &urgent,
			&notBefore, &n.CreatedAt, &d.Attempts); err != nil {
			return nil, err
		}
		n.Category, n.Type, n.Body, n.CollapseKey, n.Urgent = models.Category(category), typeOf, body.String, ck.String, urgent.Bool
		n.CreatedAt = n.CreatedAt.UTC()
		if notBefore.Valid {
			n.NotBefore = notBefore.Time.UTC()
		}
		if data.Valid && data.String != "" {
			if err := json.Unmarshal([]byte(data.String), &n.Data); err != nil {
				return nil, fmt.Errorf("decode data of notification %s: %w", n.ID, err)
			}
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// recipients reads, per recipient of the due rows, what delivery decisions
// need: whether they are active, their time zone and preferences, their
// devices, whether they are at a customer, and their pushes so far today.
func (db *Outbox) recipients(tx *gorm.DB, now time.Time, due []notifications.Due) (map[notifications.UserKey]*notifications.Recipient, error) {
	byOrg := map[uuid.UUID][]string{}
	seen := map[notifications.UserKey]bool{}
	var keys []notifications.UserKey
	for _, d := range due {
		k := notifications.UserKey{OrgID: d.OrgID, UserID: d.Notification.UserID}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
			byOrg[k.OrgID] = append(byOrg[k.OrgID], k.UserID.String())
		}
	}
	if err := db.dialect.lockRecipients(tx, keys); err != nil {
		return nil, err
	}
	out := make(map[notifications.UserKey]*notifications.Recipient, len(keys))
	for org, users := range byOrg {
		rows, err := tx.Raw(`SELECT id, time_zone, active FROM users WHERE org_id = ? AND id IN ?`, org.String(), users).Rows()
		if err != nil {
			return nil, fmt.Errorf("load recipients: %w", err)
		}
		for rows.Next() {
			var (
				id     uuid.UUID
				tz     string
				active bool
			)
			if err := rows.Scan(&id, &tz, &active); err != nil {
				rows.Close()
				return nil, fmt.Errorf("load recipients: %w", err)
			}
			out[notifications.UserKey{OrgID: org, UserID: id}] = &notifications.Recipient{
				Active: active, Location: models.Location(tz), Prefs: models.DefaultNotificationPreferences(),
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("load recipients: %w", err)
		}
		get := func(user uuid.UUID) *notifications.Recipient {
			return out[notifications.UserKey{OrgID: org, UserID: user}]
		}

		prefs, err := loadPreferences(tx, org, users)
		if err != nil {
			return nil, err
		}
		for user, p := range prefs {
			if r := get(user); r != nil {
				r.Prefs = p
			}
		}
		err = scanTokens(tx.Raw(`SELECT org_id, user_id, device_id, token, platform FROM push_tokens
			WHERE org_id = ? AND user_id IN ? ORDER BY device_id`, org.String(), users), func(t notifications.Token) {
			if r := get(t.UserID); r != nil {
				r.Tokens = append(r.Tokens, t)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("load push tokens: %w", err)
		}
		if err := scanUsers(tx.Raw(`SELECT DISTINCT rep_id FROM visits WHERE org_id = ? AND rep_id IN ? AND status = 'in_progress'
			AND deleted = ? AND COALESCE(started_at, updated_at) > ?`, org.String(), users, false, now.Add(-models.MaxVisitLength).UTC()),
			func(user uuid.UUID, _ time.Time) {
				if r := get(user); r != nil {
					r.InVisit = true
				}
			}); err != nil {
			return nil, fmt.Errorf("load visits in progress: %w", err)
		}
		// A calendar day is at most 25 hours (DST): read the last 25 and
		// count each user's since their own midnight.
		if err := scanUsers(tx.Raw(`SELECT user_id, sent_at FROM notifications WHERE org_id = ? AND user_id IN ? AND sent_at >= ?`,
			org.String(), users, now.Add(-25*time.Hour).UTC()),
			func(user uuid.UUID, at time.Time) {
				if r := get(user); r != nil && !at.Before(models.DayStart(now, r.Location)) {
					r.SentToday++
				}
			}); err != nil {
			return nil, fmt.Errorf("count pushes today: %w", err)
		}
	}
	return out, nil
}

// scanUsers reads rows of a user id and, optionally, a time.
func scanUsers(q *gorm.DB, each func(uuid.UUID, time.Time)) error {
	rows, err := q.Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	for rows.Next() {
		var (
			id uuid.UUID
			at sql.NullTime
		)
		dest := []any{&id}
		if len(cols) > 1 {
			dest = append(dest, &at)
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		each(id, at.Time)
	}
	return rows.Err()
}

// applySteps records the claim's decisions: rows to send are leased, the
// others deferred or settled. Rows with the same outcome are updated by
// one statement.
func applySteps(tx *gorm.DB, c notifications.Claim, due []notifications.Due, steps []notifications.Step) error {
	type group struct {
		org    uuid.UUID
		status string
		at     int64
		reason string
	}
	ids := map[group][]string{}
	var order []group
	for i, s := range steps {
		g := group{org: due[i].OrgID, status: s.Status, reason: s.Reason}
		if s.Status == notifications.StatusDeferred {
			g.at = s.At.UTC().UnixNano()
		}
		if ids[g] == nil {
			order = append(order, g)
		}
		ids[g] = append(ids[g], due[i].Notification.ID.String())
	}
	now := c.Now.UTC()
	for _, g := range order {
		var err error
		switch g.status {
		case notifications.StatusSending:
			err = tx.Exec(`UPDATE notifications SET status = 'sending', attempts = attempts + 1, next_attempt_at = ?,
				lease_id = ?, sent_at = ?, last_error = NULL WHERE org_id = ? AND id IN ?`,
				now.Add(c.Lease), c.LeaseID.String(), now, g.org.String(), ids[g]).Error
		case notifications.StatusDeferred, notifications.StatusInboxOnly, notifications.StatusDead:
			var next any
			if g.status == notifications.StatusDeferred {
				next = time.Unix(0, g.at).UTC()
			}
			err = tx.Exec(`UPDATE notifications SET status = ?, next_attempt_at = ?, lease_id = NULL, sent_at = NULL,
				last_error = ? WHERE org_id = ? AND id IN ?`, g.status, next, nullString(g.reason), g.org.String(), ids[g]).Error
		default:
			err = fmt.Errorf("unknown step %q", g.status)
		}
		if err != nil {
			return fmt.Errorf("claim notifications: %w", err)
		}
	}
	return nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// FinishNotifications records the outcomes of sends, each only while its
// row is still leased to the outcome's LeaseID.
func (db *Outbox) FinishNotifications(ctx context.Context, outcomes []notifications.Outcome) error {
	type group struct {
		org, lease uuid.UUID
		status     string
		next       int64
		msg        string
	}
	ids := map[group][]string{}
	var order []group
	for _, o := range outcomes {
		g := group{org: o.OrgID, lease: o.LeaseID, status: o.Status, msg: o.Error}
		if o.Status == notifications.StatusPending {
			g.next = o.Next.UTC().UnixNano()
		}
		if ids[g] == nil {
			order = append(order, g)
		}
		ids[g] = append(ids[g], o.ID.String())
	}
	return db.transaction(ctx, func(tx *gorm.DB) error {
		for _, g := range order {
			var err error
			switch g.status {
			case notifications.StatusSent:
				err = tx.Exec(`UPDATE notifications SET status = 'sent', next_attempt_at = NULL, lease_id = NULL, last_error = NULL
					WHERE org_id = ? AND id IN ? AND status = 'sending' AND lease_id = ?`, g.org.String(), ids[g], g.lease.String()).Error
			case notifications.StatusPending, notifications.StatusInboxOnly, notifications.StatusDead:
				var next any
				if g.status == notifications.StatusPending {
					next = time.Unix(0, g.next).UTC()
				}
				err = tx.Exec(`UPDATE notifications SET status = ?, next_attempt_at = ?, lease_id = NULL, sent_at = NULL, last_error = ?
					WHERE org_id = ? AND id IN ? AND status = 'sending' AND lease_id = ?`,
					g.status, next, nullString(g.msg), g.org.String(), ids[g], g.lease.String()).Error
			default:
				err = fmt.Errorf("unknown outcome %q", g.status)
			}
			if err != nil {
				return fmt.Errorf("record push outcomes: %w", err)
			}
		}
		return nil
	})
}

// DeletePushTokens removes dead tokens, each only if its device still has
// that token (a fresh one registered meanwhile stays).
func (db *Outbox) DeletePushTokens(ctx context.Context, tokens []notifications.Token) error {
	return db.transaction(ctx, func(tx *gorm.DB) error {
		for _, t := range tokens {
			err := tx.Exec(`DELETE FROM push_tokens WHERE org_id = ? AND device_id = ? AND token = ?`,
				t.OrgID.String(), t.DeviceID.String(), t.Token).Error
			if err != nil {
				return fmt.Errorf("delete push token: %w", err)
			}
		}
		return nil
	})
}

// OutboxBacklog counts the outbox rows not yet delivered, by status
// (pending, deferred, sending, each reported, with zero counts too), with
// the creation time of the oldest. It reads every organisation: it is for
// the operator's metrics, not for any tenant. Errors: unavailable.
func (db *Outbox) OutboxBacklog(ctx context.Context) ([]notifications.Backlog, error) {
	out := []notifications.Backlog{{Status: notifications.StatusPending}, {Status: notifications.StatusDeferred}, {Status: notifications.StatusSending}}
	g := db.read.WithContext(ctx)
	for i := range out {
		b := &out[i]
		if err := g.Raw(`SELECT count(*) FROM notifications WHERE status = ? AND deleted = ?`, b.Status, false).Row().Scan(&b.Count); err != nil {
			return nil, fmt.Errorf("outbox backlog: %w", translate(err))
		}
		if b.Count == 0 {
			continue
		}
		// Ordered rather than min(): SQLite's min() of a timestamp
		// column loses the column's type, and the driver its parsing.
		var oldest sql.NullTime
		err := g.Raw(`SELECT created_at FROM notifications WHERE status = ? AND deleted = ? ORDER BY created_at LIMIT 1`, b.Status, false).Row().Scan(&oldest)
		if err != nil && err != sql.ErrNoRows {
			return nil, fmt.Errorf("outbox backlog: %w", translate(err))
		}
		if oldest.Valid {
			b.Oldest = oldest.Time.UTC()
		}
	}
	return out, nil
}

// NotificationDelivery is an outbox row's delivery state, for tests and
// support.
type NotificationDelivery struct {
	Status    string
	Attempts  int
	Next      *time.Time
	SentAt    *time.Time
	LastError string
}

// NotificationDelivery returns the delivery state of one notification.
// Errors: not_found.
func (db *Outbox) NotificationDelivery(ctx context.Context, orgID, id uuid.UUID) (NotificationDelivery, error) {
	var (
		d        NotificationDelivery
		next, at sql.NullTime
		msg      sql.NullString
	)
	err := db.read.WithContext(ctx).Raw(`SELECT status, attempts, next_attempt_at, sent_at, last_error FROM notifications
		WHERE org_id = ? AND id = ?`, orgID.String(), id.String()).Row().Scan(&d.Status, &d.Attempts, &next, &at, &msg)
	if err == sql.ErrNoRows {
		return d, models.ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("notification delivery: %w", translate(err))
	}
	if next.Valid {
		t := next.Time.UTC()
		d.Next = &t
	}
	if at.Valid {
		t := at.Time.UTC()
		d.SentAt = &t
	}
	d.LastError = msg.String
	return d, nil
}
