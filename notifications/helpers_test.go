package notifications_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/notifications"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// start is noon in Chicago (CDT), where the demo users live: outside the
// default quiet hours.
var start = time.Date(2026, 3, 10, 17, 0, 0, 0, time.UTC)

// fixture is a fresh database with the demo organisation, an engine to
// write notifications with, and a clock the test moves.
type fixture struct {
	t     testing.TB
	db    *store.DB
	en    *engine.Engine
	clock atomic.Int64
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{t: t}
	f.clock.Store(start.UnixNano())
	f.db = storetest.MustOpenDBWith(t, storetest.Options{Now: f.now})
	if _, err := demo.Seed(context.Background(), f.db, auth.NewPasswords(auth.TestArgon2), f.now()); err != nil {
		t.Fatalf("seed demo: %v", err)
	}
	f.en = engine.New(f.db.Feed(), sales.Entities(), f.now, nil)
	return f
}

func (f *fixture) now() time.Time          { return time.Unix(0, f.clock.Load()).UTC() }
func (f *fixture) advance(d time.Duration) { f.clock.Add(int64(d)) }
func (f *fixture) setClock(t time.Time)    { f.clock.Store(t.UnixNano()) }
func (f *fixture) ctx() context.Context    { return context.Background() }
func (f *fixture) user(email string) models.User {
	f.t.Helper()
	u, err := f.db.People().UserByEmail(f.ctx(), email)
	if err != nil {
		f.t.Fatalf("user %s: %v", email, err)
	}
	return u
}

func (f *fixture) principal(email string, device uuid.UUID) models.Principal {
	u := f.user(email)
	return models.Principal{OrgID: u.OrgID, UserID: u.ID, Role: u.Role, TeamID: u.TeamID, DeviceID: device, SessionID: uuid.New()}
}

// register gives email a device with an FCM token.
func (f *fixture) register(email, token string) uuid.UUID {
	f.t.Helper()
	device := uuid.New()
	if err := f.db.Outbox().PutPushToken(f.ctx(), f.principal(email, device), token, "android"); err != nil {
		f.t.Fatalf("register token: %v", err)
	}
	return device
}

func (f *fixture) setPrefs(email string, edit func(*models.NotificationPreferences)) {
	f.t.Helper()
	u := f.user(email)
	p := models.DefaultNotificationPreferences()
	edit(&p)
	if err := f.db.Outbox().SetNotificationPreferences(f.ctx(), u.OrgID, u.ID, p); err != nil {
		f.t.Fatalf("set preferences: %v", err)
	}
}

// notify writes notifications in one server transaction and returns their
// ids.
func (f *fixture) notify(ns ...models.Notification) []uuid.UUID {
	f.t.Helper()
	if len(ns) == 0 {
		return nil
	}
	org := f.user("admin@demo.test").OrgID
	ids := make([]uuid.UUID, len(ns))
	err := f.en.Server(f.ctx(), models.Principal{OrgID: org}, func(c *engine.Context) error {
		for i, n := range ns {
			if err := sales.Notify(c, n); err != nil {
				return err
			}
			ids[i] = sales.NotificationID(org, n.UserID, n.DedupeKey)
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("notify: %v", err)
	}
	return ids
}

// note is a plain notification to email with a fresh dedupe key.
func (f *fixture) note(email string, cat models.Category) models.Notification {
	n := models.RecognitionReceivedNotification(uuid.New(), "Dana North", "Nice call")
	n.Category = cat
	return n.To(f.user(email).ID)
}

func (f *fixture) delivery(id uuid.UUID) store.NotificationDelivery {
	f.t.Helper()
	d, err := f.db.Outbox().NotificationDelivery(f.ctx(), f.user("admin@demo.test").OrgID, id)
	if err != nil {
		f.t.Fatalf("delivery of %s: %v", id, err)
	}
	return d
}

func (f *fixture) wantStatus(id uuid.UUID, want string) store.NotificationDelivery {
	f.t.Helper()
	d := f.delivery(id)
	if d.Status != want {
		f.t.Fatalf("notification %s: status %q (%s), want %q", id, d.Status, d.LastError, want)
	}
	return d
}

func (f *fixture) tokens(email string) []string {
	f.t.Helper()
	u := f.user(email)
	ts, err := f.db.Outbox().PushTokens(f.ctx(), u.OrgID, u.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, t := range ts {
		out = append(out, t.Token)
	}
	return out
}

func (f *fixture) dispatcher(s notifications.Sender) *notifications.Dispatcher {
	return notifications.NewDispatcher(f.db.Outbox(), s, notifications.Options{Now: f.now, Rand: func() float64 { return 0 }})
}

func (f *fixture) runOnce(d *notifications.Dispatcher) notifications.Stats {
	f.t.Helper()
	st, err := d.RunOnce(f.ctx())
	if err != nil {
		f.t.Fatalf("RunOnce: %v", err)
	}
	return st
}

// fakeFCM is a local stand-in for the FCM HTTP v1 API. It records every
// message the SDK sends and answers from a per-token script of statuses
// (then 200).
type fakeFCM struct {
	srv *httptest.Server

	mu        sync.Mutex
	requests  int
	delivered []fcmMessage
	script    map[string][]int
	authz     []string
}

// fcmMessage is the part of an FCM v1 message the tests look at.
type fcmMessage struct {
	Token        string            `json:"token"`
	Notification map[string]string `json:"notification"`
	Data         map[string]string `json:"data"`
	Android      struct {
		CollapseKey  string            `json:"collapse_key"`
		Priority     string            `json:"priority"`
		Notification map[string]string `json:"notification"`
	} `json:"android"`
	APNS struct {
		Headers map[string]string `json:"headers"`
	} `json:"apns"`
}

var sendPath = regexp.MustCompile(`^/v1/projects/([^/]+)/messages:send$`)

func newFakeFCM(t testing.TB) *fakeFCM {
	f := &fakeFCM{script: map[string][]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// answer makes the next sends to token get these statuses, in order.
func (f *fakeFCM) answer(token string, statuses ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[token] = append(f.script[token], statuses...)
}

func (f *fakeFCM) serve(w http.ResponseWriter, r *http.Request) {
	m := sendPath.FindStringSubmatch(r.URL.Path)
	if r.Method != http.MethodPost || m == nil {
		http.Error(w, "no such route", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Message fcmMessage `json:"message"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests++
	f.authz = append(f.authz, r.Header.Get("Authorization"))
	status := http.StatusOK
	if s := f.script[req.Message.Token]; len(s) > 0 {
		status, f.script[req.Message.Token] = s[0], s[1:]
	}
	if status == http.StatusOK {
		f.delivered = append(f.delivered, req.Message)
	}
	n := len(f.delivered)
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	switch status {
	case http.StatusOK:
		fmt.Fprintf(w, `{"name": "projects/%s/messages/%d"}`, m[1], n)
	case http.StatusNotFound:
		w.WriteHeader(status)
		io.WriteString(w, `{"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
			"details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}`)
	case http.StatusBadRequest:
		w.WriteHeader(status)
		io.WriteString(w, `{"error": {"code": 400, "message": "The registration token is not a valid FCM registration token", "status": "INVALID_ARGUMENT",
			"details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"}]}}`)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(status)
		io.WriteString(w, `{"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED",
			"details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "QUOTA_EXCEEDED"}]}}`)
	case http.StatusServiceUnavailable:
		w.WriteHeader(status)
		io.WriteString(w, `{"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}}`)
	default:
		w.WriteHeader(status)
		io.WriteString(w, `{"error": {"code": 500, "message": "Internal error.", "status": "INTERNAL",
			"details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INTERNAL"}]}}`)
	}
}

func (f *fakeFCM) deliveredTo(token string) []fcmMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fcmMessage
	for _, m := range f.delivered {
		if m.Token == token {
			out = append(out, m)
		}
	}
	return out
}

func (f *fakeFCM) counts() (requests, delivered int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, len(f.delivered)
}

// sender is the real FCM sender pointed at the fake.
func (f *fakeFCM) sender(t testing.TB) notifications.Sender {
	t.Helper()
	s, err := notifications.NewFCMSender(context.Background(), notifications.FCMConfig{Endpoint: f.srv.URL, ProjectID: "fieldsync-test"})
	if err != nil {
		t.Fatalf("fcm sender: %v", err)
	}
	return s
}
