package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/store"
)

// holdWrites takes the database's write lock in a transaction of the
// test's own and keeps it until release: on PostgreSQL EXCLUSIVE locks on
// sync_devices, which every push writes first, and teams (reads go on); on SQLite
// the write transaction of the store's writer connection. release is safe
// to call more than once, and runs at cleanup at the latest.
func holdWrites(t *testing.T, db *store.DB) (release func()) {
	t.Helper()
	tx := db.Gorm().Begin()
	if tx.Error != nil {
		t.Fatalf("begin: %v", tx.Error)
	}
	switch db.Dialect() {
	case store.Postgres:
		if err := tx.Exec(`LOCK TABLE sync_devices, teams IN EXCLUSIVE MODE`).Error; err != nil {
			t.Fatalf("lock sync_devices: %v", err)
		}
	case store.SQLite:
		// BEGIN IMMEDIATE (the store's _txlock) took the write lock;
		// a write makes sure of it.
		if err := tx.Exec(`UPDATE sync_counter SET value = value WHERE id = 1`).Error; err != nil {
			t.Fatalf("take the write lock: %v", err)
		}
	}
	var done bool
	release = func() {
		if !done {
			done = true
			tx.Rollback()
		}
	}
	t.Cleanup(release)
	return release
}

// TestPushPastItsDeadlineAnswers503: a push that waits for the database
// longer than its deadline — a lock held by another session — rolls back
// and answers 503 with Retry-After, instead of committing after the phone
// gave up; once the lock is free, nothing of it is stored. Both push routes
// have the push deadline: the request deadline is far longer here, and the
// lock is released on its own only long after the push deadline.
func TestPushPastItsDeadlineAnswers503(t *testing.T) {
	env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) {
		d.PushTimeout = 300 * time.Millisecond
		d.RequestTimeout = time.Minute
	}})
	rep := env.Login("rep1@demo.test")
	all, _ := pullAll(t, env, rep.Access)
	var account uuid.UUID
	for _, c := range all {
		if c.Entity == "accounts" {
			account = c.ID
			break
		}
	}
	wm := newWMDevice(env, "rep1@demo.test")
	wm.pull(t)
	ms := env.Clock.Now().UnixMilli()
	native, melon := uuid.New(), uuid.New()
	tests := []struct {
		name string
		req  apitest.Request
	}{
		{
			name: "native push",
			req: apitest.Request{Method: http.MethodPost, Path: "/v1/sync/push", Token: rep.Access,
				Body: pushBody{SchemaVersion: 1, Mutations: []mutation{func() mutation { m := newVisit(native, account, ms, nil); m.Seq = 1; return m }()}}},
		},
		{
			name: "WatermelonDB push",
			req: apitest.Request{Method: http.MethodPost, Path: wmPath(wm.last, ""), Token: wm.Access,
				Body: map[string]any{"changes": wmTables("visits", wmCreated(wmVisit(melon, account, ms, nil)))}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := holdWrites(t, env.DB)
			// A fail-safe, not a measure: a push without its deadline
			// would commit once this frees the lock, and answer 200.
			timer := time.AfterFunc(20*time.Second, release)
			defer timer.Stop()
			res := env.Do(tt.req)
			expectProblem(t, res, http.StatusServiceUnavailable, "unavailable")
			if ra := res.Header.Get("Retry-After"); ra == "" {
				t.Errorf("503 without Retry-After")
			}
			if env.DB.Dialect() == store.Postgres {
				waitNoLockWaiters(t, env.DB)
			}
			release()
		})
	}

	after, pr := pullAll(t, env, rep.Access)
	wmAfter, _ := pullAll(t, env, wm.Access)
	for k, v := range wmAfter {
		after[k] = v
	}
	for _, id := range []uuid.UUID{native, melon} {
		if _, ok := after[key("visits", id)]; ok {
			t.Errorf("visit %s of a push that answered 503 was stored", id)
		}
	}
	if pr.LastSeq != 0 {
		t.Errorf("last_seq %d after a push that answered 503, want 0", pr.LastSeq)
	}
}

// waitNoLockWaiters fails the test unless, within 10 s, no session of the
// database waits for a lock: the database itself stopped waiting for the
// push that gave up (its lock_timeout), rather than waiting on for as long
// as the lock is held, with the locks it has.
func waitNoLockWaiters(t *testing.T, db *store.DB) {
	t.Helper()
	var n int64
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		err := db.Gorm().Raw(`SELECT count(*) FROM pg_locks WHERE NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Row().Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Errorf("%d lock waits remain after the push answered 503", n)
}

// TestRequestPastItsDeadlineAnswers503: any other request has the request
// deadline; past it, a request waiting for the database answers 503 with
// Retry-After, not a 500 and not a 499 (the server gave up, not the
// client).
func TestRequestPastItsDeadlineAnswers503(t *testing.T) {
	env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) {
		d.RequestTimeout = 300 * time.Millisecond
		d.PushTimeout = time.Minute
	}})
	admin := env.Login("admin@demo.test")
	release := holdWrites(t, env.DB)
	timer := time.AfterFunc(20*time.Second, release)
	defer timer.Stop()
	// Creating a team writes: it waits for the lock.
	res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/teams", Token: admin.Access, Body: map[string]any{"name": "East"}})
	expectProblem(t, res, http.StatusServiceUnavailable, "unavailable")
	if ra := res.Header.Get("Retry-After"); ra == "" {
		t.Errorf("503 without Retry-After")
	}
	release()
	var n int64
	if err := env.DB.Gorm().WithContext(context.Background()).Table("teams").Where("name = ?", "East").Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the team of a request that answered 503 was stored")
	}
}
