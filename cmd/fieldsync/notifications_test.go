package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
)

// seededURL is a fresh database with the demo organisation (without its
// history, and with cheap password hashes, so serve starts at once).
func seededURL(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dbURL := storetest.URL(t)
	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := demo.Seed(ctx, db, auth.NewPasswords(auth.TestArgon2), time.Now()); err != nil {
		t.Fatal(err)
	}
	return dbURL
}

// TestServePushesThroughFCMEndpoint starts `fieldsync serve` with
// FIELDSYNC_FCM_ENDPOINT pointing at a local fake FCM server: the log names
// the FCM sender, and a rep's streak of calls without an order reaches
// their manager's registered device through the real SDK.
func TestServePushesThroughFCMEndpoint(t *testing.T) {
	var (
		mu     sync.Mutex
		titles = map[string][]string{} // by token
	)
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Message struct {
				Token        string            `json:"token"`
				Notification map[string]string `json:"notification"`
			} `json:"message"`
		}
		b, _ := io.ReadAll(r.Body)
		if !strings.HasPrefix(r.URL.Path, "/v1/projects/acme-test/messages:send") || json.Unmarshal(b, &req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		titles[req.Message.Token] = append(titles[req.Message.Token], req.Message.Notification["title"])
		mu.Unlock()
		io.WriteString(w, `{"name": "projects/acme-test/messages/1"}`)
	}))
	t.Cleanup(fake.Close) // after serve stops: cleanups run last-in first-out

	s := startServe(t, env{"FIELDSYNC_DATABASE_URL": seededURL(t), "FIELDSYNC_LOG_FORMAT": "json", "FIELDSYNC_JWT_SECRET": testSecret,
		"FIELDSYNC_FCM_ENDPOINT": fake.URL, "FIELDSYNC_FIREBASE_PROJECT_ID": "acme-test"})
	logs := s.stderr.String()
	for _, want := range []string{`"msg":"push notifications"`, `"sender":"fcm"`, `"project":"acme-test"`, `"endpoint":"` + fake.URL + `"`, `"auth":"static token"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the startup log lacks %s:\n%s", want, logs)
		}
	}

	login := func(email string) string {
		t.Helper()
		status, body := call(t, http.MethodPost, s.base+"/v1/auth/login", "", map[string]any{
			"email": email, "password": demo.Password, "device_id": uuid.NewString()})
		if status != http.StatusOK {
			t.Fatalf("login %s: %d %v", email, status, body)
		}
		return body["access_token"].(string)
	}
	mgr := login("manager1@demo.test")
	if status, body := call(t, http.MethodPut, s.base+"/v1/me/notification-preferences", mgr, map[string]any{"quiet_hours": nil, "daily_cap": 100}); status != http.StatusOK {
		t.Fatalf("preferences: %d %v", status, body)
	}
	if status, body := call(t, http.MethodPut, s.base+"/v1/devices/current/push-token", mgr, map[string]any{"token": "manager-phone", "platform": "ios"}); status != http.StatusNoContent {
		t.Fatalf("push token: %d %v", status, body)
	}

	rep := login("rep1@demo.test")
	status, pull := call(t, http.MethodGet, s.base+"/v1/sync/pull?limit=1000", rep, nil)
	if status != http.StatusOK {
		t.Fatalf("pull: %d", status)
	}
	account := ""
	for _, ch := range pull["changes"].([]any) {
		if m := ch.(map[string]any); m["entity"] == "accounts" {
			account = m["id"].(string)
			break
		}
	}
	if account == "" {
		t.Fatal("rep1 pulled no account")
	}
	// An order, then five calls without one.
	now := time.Now().UTC()
	var muts []map[string]any
	for i, outcome := range []string{"order", "no_answer", "none", "not_interested", "no_answer", "none"} {
		fields := map[string]any{"account_id": account, "kind": "unscheduled", "status": "completed", "outcome": outcome,
			"started_at": now.Add(time.Duration(i+1) * time.Minute).Format(time.RFC3339)}
		muts = append(muts, map[string]any{"seq": i + 1, "entity": "visits", "id": uuid.NewString(), "op": "upsert",
			"fields": fields, "hlc": map[string]any{"ms": now.UnixMilli(), "counter": i}})
	}
	if status, body := call(t, http.MethodPost, s.base+"/v1/sync/push", rep, map[string]any{"schema_version": 1, "mutations": muts}); status != http.StatusOK {
		t.Fatalf("push: %d %v", status, body)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := append([]string(nil), titles["manager-phone"]...)
		mu.Unlock()
		found := false
		for _, title := range got {
			found = found || title == "Riley Park: 5 walk-ins without an order"
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the manager's phone received %q, not the streak", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeLogsTheLogSender: without Firebase settings serve keeps the
// inbox and logs pushes instead of sending them, and says so at start.
func TestServeLogsTheLogSender(t *testing.T) {
	s := startServe(t, env{"FIELDSYNC_DATABASE_URL": seededURL(t), "FIELDSYNC_LOG_FORMAT": "json", "FIELDSYNC_JWT_SECRET": testSecret})
	if logs := s.stderr.String(); !strings.Contains(logs, `"msg":"push notifications","sender":"log"`) {
		t.Errorf("the startup log does not name the log sender:\n%s", logs)
	}
}
