package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// NotificationStore is what the notification endpoints need of storage:
// push tokens, preferences and the inbox. Marking read goes through the
// sync engine, so that phones see it in pull.
type NotificationStore interface {
	PutPushToken(ctx context.Context, p models.Principal, token, platform string) error
	DeletePushToken(ctx context.Context, p models.Principal) error
	NotificationPreferences(ctx context.Context, orgID, userID uuid.UUID) (models.NotificationPreferences, error)
	SetNotificationPreferences(ctx context.Context, orgID, userID uuid.UUID, p models.NotificationPreferences) error
	Inbox(ctx context.Context, p models.Principal, after models.InboxPos, limit int, unread bool) ([]*engine.Record, error)
}

// maxPushToken bounds an FCM registration token (they are ~160 characters
// today; Google documents no limit, so leave room).
const maxPushToken = 4096

type pushTokenRequest struct {
	Token    string `json:"token"`
	Platform string `json:"platform"`
}

// putPushToken registers or rotates the FCM token of the device named in
// the access token. The app calls it at every start and whenever FCM
// rotates the token; it is idempotent.
func (s *Server) putPushToken(c echo.Context) error {
	var req pushTokenRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var errs []models.FieldError
	switch {
	case req.Token == "":
		errs = append(errs, models.FieldError{Field: "token", Code: models.CodeInvalid, Message: "is required"})
	case utf8.RuneCountInString(req.Token) > maxPushToken:
		errs = append(errs, models.FieldError{Field: "token", Code: models.CodeInvalid, Message: "must be at most 4096 characters"})
	case strings.IndexFunc(req.Token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		errs = append(errs, models.FieldError{Field: "token", Code: models.CodeInvalid, Message: "must not contain spaces or control characters"})
	}
	switch req.Platform {
	case "android", "ios", "web":
	default:
		errs = append(errs, models.FieldError{Field: "platform", Code: models.CodeInvalid, Message: "must be android, ios or web"})
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	if err := s.notif.PutPushToken(c.Request().Context(), principal(c), req.Token, req.Platform); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// deletePushToken stops pushes to the caller's device.
func (s *Server) deletePushToken(c echo.Context) error {
	if err := s.notif.DeletePushToken(c.Request().Context(), principal(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type quietHoursDTO struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type notificationPrefsDTO struct {
	Categories map[string]bool `json:"categories"`
	QuietHours *quietHoursDTO  `json:"quiet_hours"`
	DailyCap   int             `json:"daily_cap"`
}

// notificationPrefsRequest is a PUT body: omitted members take their
// defaults, quiet_hours null means none.
type notificationPrefsRequest struct {
	Categories map[string]bool `json:"categories"`
	QuietHours json.RawMessage `json:"quiet_hours"`
	DailyCap   *int            `json:"daily_cap"`
}

func prefsDTO(p models.NotificationPreferences) notificationPrefsDTO {
	out := notificationPrefsDTO{Categories: map[string]bool{}, DailyCap: p.DailyCap}
	for _, c := range models.Categories {
		out.Categories[string(c)] = p.Enabled(c)
	}
	if p.Quiet != nil {
		out.QuietHours = &quietHoursDTO{Start: p.Quiet.Start, End: p.Quiet.End}
	}
	return out
}

func (s *Server) getNotificationPrefs(c echo.Context) error {
	p := principal(c)
	prefs, err := s.notif.NotificationPreferences(c.Request().Context(), p.OrgID, p.UserID)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, prefsDTO(prefs))
}

// putNotificationPrefs replaces the caller's preferences.
func (s *Server) putNotificationPrefs(c echo.Context) error {
	var req notificationPrefsRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	prefs := models.DefaultNotificationPreferences()
	var errs []models.FieldError
	keys := make([]string, 0, len(req.Categories))
	for k := range req.Categories {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !models.Category(k).Valid() {
			errs = append(errs, models.FieldError{Field: "categories." + k, Code: "unknown_field",
				Message: "is not a category (coaching, ride_alongs, contests, standings, recognition, reminders)"})
			continue
		}
		if !req.Categories[k] {
			prefs.Off[models.Category(k)] = true
		}
	}
	switch raw := strings.TrimSpace(string(req.QuietHours)); raw {
	case "":
	case "null":
		prefs.Quiet = nil
	default:
		var q quietHoursDTO
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&q); err != nil {
			errs = append(errs, models.FieldError{Field: "quiet_hours", Code: models.CodeInvalid, Message: `must be {"start": "HH:MM", "end": "HH:MM"} or null`})
		} else {
			prefs.Quiet = &models.QuietHours{Start: q.Start, End: q.End}
		}
	}
	if req.DailyCap != nil {
		prefs.DailyCap = *req.DailyCap
	}
	errs = append(errs, fieldErrors(prefs.Validate())...)
	if len(errs) > 0 {
		return invalid(errs)
	}
	p := principal(c)
	if err := s.notif.SetNotificationPreferences(c.Request().Context(), p.OrgID, p.UserID, prefs); err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, prefsDTO(prefs))
}

// inboxCursor is the opaque position of GET /v1/notifications.
type inboxCursor struct {
	At time.Time `json:"t"`
	ID uuid.UUID `json:"i"`
}

func encodeInboxCursor(r *engine.Record) string {
	b, _ := json.Marshal(inboxCursor{At: r.CreatedAt.UTC(), ID: r.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeInboxCursor(s string) (models.InboxPos, error) {
	if s == "" {
		return models.InboxPos{}, nil
	}
	bad := models.FieldInvalid("cursor", "must be the next_cursor of a previous page")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return models.InboxPos{}, bad
	}
	var ic inboxCursor
	if err := json.Unmarshal(b, &ic); err != nil || ic.ID == uuid.Nil {
		return models.InboxPos{}, bad
	}
	return models.InboxPos{At: ic.At, ID: ic.ID}, nil
}

// listNotifications pages through the caller's inbox, newest first.
func (s *Server) listNotifications(c echo.Context) error {
	limit, err := intParam(c, "limit", 50, 1, 200)
	if err != nil {
		return err
	}
	after, err := decodeInboxCursor(c.QueryParam("cursor"))
	if err != nil {
		return err
	}
	unread := false
	switch c.QueryParam("unread") {
	case "", "false":
	case "true":
		unread = true
	default:
		return models.FieldInvalid("unread", "must be true or false")
	}
	recs, err := s.notif.Inbox(c.Request().Context(), principal(c), after, limit+1, unread)
	if err != nil {
		return err
	}
	next := ""
	if len(recs) > limit {
		recs = recs[:limit]
		next = encodeInboxCursor(recs[limit-1])
	}
	e := s.sync.Entity(sales.NotificationsEntity)
	b := []byte(`{"notifications":[`)
	for i, r := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.MarshalRecord(b, r)
	}
	cur, _ := json.Marshal(next)
	b = append(b, `],"next_cursor":`...)
	b = append(b, cur...)
	b = append(b, '}')
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// readNotification marks one of the caller's notifications read.
func (s *Server) readNotification(c echo.Context) error {
	id, err := parseUUID("id", c.Param("id"))
	if err != nil {
		return err
	}
	r, err := sales.ReadNotification(c.Request().Context(), s.sync, principal(c), id)
	if err != nil {
		return err
	}
	e := s.sync.Entity(sales.NotificationsEntity)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, e.MarshalRecord(nil, r))
}
