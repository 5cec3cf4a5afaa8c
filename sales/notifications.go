package sales

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// NotificationsEntity is the entity name of the in-app inbox.
const NotificationsEntity = entNotifications

// Notifications are each user's in-app inbox, synced to their phones alone
// so the inbox works offline. The server writes them (Notify) and marks
// them read (ReadNotification); clients never push them.
//
// The hidden fields are fixed when the notification is written and read by
// the dispatcher. Its delivery state (status, attempts, next attempt,
// lease, sent_at, last error) lives in columns of the same table that the
// entity does not declare, so the engine never writes them: marking a
// notification read rewrites the declared fields and cannot undo a send
// the dispatcher recorded meanwhile. See store/notifications.go.
func Notifications() *engine.Entity {
	return &engine.Entity{
		Name:     NotificationsEntity,
		ReadOnly: true,
		Fields: []engine.Field{
			{Name: "user_id", Type: engine.UUID, Access: engine.ServerOwned, Required: true},
			{Name: "category", Type: engine.Enum, Enum: categoryNames(), Access: engine.ServerOwned, Required: true},
			{Name: "type", Type: engine.String, MaxLen: 100, Access: engine.ServerOwned, Required: true},
			{Name: "title", Type: engine.String, MaxLen: models.MaxNotificationTitle, Access: engine.ServerOwned, Required: true},
			{Name: "body", Type: engine.Text, MaxLen: models.MaxNotificationBody, Access: engine.ServerOwned},
			{Name: "data", Type: engine.JSON, Access: engine.ServerOwned},
			{Name: "read_at", Type: engine.Time, Access: engine.ServerOwned},
			{Name: "dedupe_key", Type: engine.String, MaxLen: 300, Hidden: true},
			{Name: "collapse_key", Type: engine.String, MaxLen: 100, Hidden: true},
			{Name: "urgent", Type: engine.Bool, Hidden: true},
			{Name: "not_before", Type: engine.Time, Hidden: true},
		},
		Scope: func(r *engine.Record) engine.Scope {
			return engine.Scope{UserID: r.UUIDValue(fUserID), Visibility: engine.VisPrivate}
		},
	}
}

func categoryNames() []string {
	out := make([]string, len(models.Categories))
	for i, c := range models.Categories {
		out[i] = string(c)
	}
	return out
}

// NotificationID is the record id of the notification with dedupe key key
// for userID in orgID.
func NotificationID(orgID, userID uuid.UUID, key string) uuid.UUID {
	return engine.NameID(orgID, "notif:"+userID.String()+":"+key)
}

// Notify writes n to its recipient's inbox and the push outbox, in the
// transaction of c, once: the record id derives from the organisation, the
// recipient and n.DedupeKey (NotificationID), and PutNew writes nothing
// when that record exists. So a trigger fires once however often the
// change behind it is replayed: a batch pushed twice, a hook run on two
// replicas, a standing recomputed. The dispatcher (package notifications)
// later decides whether and when to push it (preferences, quiet hours,
// daily cap, a visit in progress) and sends it.
//
// How a domain rule fires a notification: in an AfterWrite hook (added
// with OnWrite) or a server transaction (Engine.Server), build it with one
// of the models builders, address it, and call Notify:
//
//	OnWrite(entities, "ride_alongs", func(c *Context, old, r *Record) error {
//		if r.StringValue("status") != models.RideAccepted || (old != nil && old.StringValue("status") == models.RideAccepted) {
//			return nil
//		}
//		n := models.RideAlongAcceptedNotification(r.ID, accepterName, accountName, when.In(loc))
//		return Notify(c, n.To(requesterID))
//	})
//
// Pick the dedupe key so that it names the event, not the run: the
// builders' keys hold the entity ids and, where an event may recur (an
// overtake), a time bucket. Notify returns the model errors of
// Notification.Validate for a malformed n.
func Notify(c *engine.Context, n models.Notification) error {
	_, err := notify(c, n)
	return err
}

// notify is Notify that reports whether it wrote a new notification.
func notify(c *engine.Context, n models.Notification) (bool, error) {
	if err := n.Validate(); err != nil {
		return false, fmt.Errorf("notify %s: %w", n.Type, err)
	}
	data := map[string]string{fType: n.Type}
	for k, v := range n.Data {
		data[k] = v
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return false, fmt.Errorf("notify %s: encode data: %w", n.Type, err)
	}
	notBefore := n.NotBefore.UTC()
	if n.NotBefore.IsZero() {
		notBefore = c.Now
	}
	r := &engine.Record{
		ID: NotificationID(c.P.OrgID, n.UserID, n.DedupeKey),
		Values: map[string]any{
			fUserID:    n.UserID,
			fCategory:  string(n.Category),
			fType:      n.Type,
			fTitle:     models.Clip(n.Title, models.MaxNotificationTitle),
			fBody:      models.Clip(n.Body, models.MaxNotificationBody),
			fData:      string(raw),
			fDedupeKey: models.Clip(n.DedupeKey, 300),
			fUrgent:    n.Urgent,
			fNotBefore: notBefore,
		},
	}
	if n.CollapseKey != "" {
		r.Values[fCollapseKey] = n.CollapseKey
	}
	return c.PutNew(NotificationsEntity, r)
}

// ReadNotification marks one of p's notifications read, through a server
// write so p's other devices see it in their next pull. Marking a read
// notification again keeps the first read_at. Errors: not_found (no such
// notification, or another user's).
func ReadNotification(ctx context.Context, en *engine.Engine, p models.Principal, id uuid.UUID) (*engine.Record, error) {
	if en.Entity(NotificationsEntity) == nil {
		return nil, models.ErrNotFound
	}
	var out *engine.Record
	err := en.Server(ctx, p, func(c *engine.Context) error {
		r, err := c.Lookup(NotificationsEntity, id)
		if err != nil {
			return err
		}
		if r == nil {
			return models.ErrNotFound
		}
		if r.TimeValue(fReadAt) != nil {
			out = r
			return nil
		}
		next := r.Clone()
		next.Values[fReadAt] = c.Now
		out = next
		return c.Put(NotificationsEntity, next)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
