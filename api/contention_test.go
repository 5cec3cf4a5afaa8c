package api_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/store"
)

// firstAccount returns an account the session's user can see.
func firstAccount(t *testing.T, env *apitest.Env, token string) uuid.UUID {
	t.Helper()
	all, _ := pullAll(t, env, token)
	for _, c := range all {
		if c.Entity == "accounts" {
			return c.ID
		}
	}
	t.Fatal("no account visible")
	return uuid.Nil
}

// TestSQLiteBusyAnswers503: another process holding the SQLite file's
// write lock for longer than the busy timeout (here a second store on the
// same file, inside a write transaction) makes a push answer 503 with
// Retry-After — SQLITE_BUSY is transient — not 500; nothing of the push is
// stored.
func TestSQLiteBusyAnswers503(t *testing.T) {
	env := apitest.New(t, apitest.Options{BusyTimeout: 200 * time.Millisecond})
	if env.DB.Dialect() != store.SQLite {
		t.Skip("SQLite only: PostgreSQL has no file lock")
	}
	rep := env.Login("rep1@demo.test")
	account := firstAccount(t, env, rep.Access)

	other, err := store.Open(context.Background(), "sqlite:"+env.DB.Path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	release := holdWrites(t, other)
	defer release()

	id := uuid.New()
	m := newVisit(id, account, env.Clock.Now().UnixMilli(), nil)
	m.Seq = 1
	res := pushRequest(env, rep.Access, pushBody{SchemaVersion: 1, Mutations: []mutation{m}})
	expectProblem(t, res, http.StatusServiceUnavailable, "unavailable")
	if ra := res.Header.Get("Retry-After"); ra == "" {
		t.Errorf("503 without Retry-After")
	}
	release()
	after, pr := pullAll(t, env, rep.Access)
	if _, ok := after[key("visits", id)]; ok {
		t.Errorf("the visit of a push that answered 503 was stored")
	}
	if pr.LastSeq != 0 {
		t.Errorf("last_seq %d after a push that answered 503, want 0", pr.LastSeq)
	}
}

// TestReadsDoNotWaitForPushes: while pushes wait for the write lock —
// more of them than SQLite's pool used to have connections — the session
// check of every request, GET /v1/me, a pull and /readyz still answer 200,
// before any of the pushes has: reads have connections of their own, and
// readiness a probe of its own. Once the lock is free the pushes go
// through.
func TestReadsDoNotWaitForPushes(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	rep := env.Login("rep1@demo.test")
	account := firstAccount(t, env, rep.Access)
	const pushes = 6
	devices := make([]apitest.Session, pushes)
	for i := range devices {
		devices[i] = env.Login("rep1@demo.test")
	}

	release := holdWrites(t, env.DB)
	defer release()
	var wg sync.WaitGroup
	var answered atomic.Int32
	statuses := make([]int, pushes)
	for i, dev := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := newVisit(uuid.New(), account, env.Clock.Now().UnixMilli(), nil)
			m.Seq = 1
			res := pushRequest(env, dev.Access, pushBody{SchemaVersion: 1, Mutations: []mutation{m}})
			statuses[i] = res.StatusCode
			answered.Add(1)
		}()
	}
	// Wait until pushes queue for the writers' connections (SQLite) or
	// for the lock (PostgreSQL), so the reads below meet them.
	if env.DB.Dialect() == store.SQLite {
		sqlDB, err := env.DB.Gorm().DB()
		if err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(10 * time.Second); sqlDB.Stats().WaitCount == 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatal("no push ever waited for a connection")
			}
		}
	}

	for _, r := range []apitest.Request{
		{Method: http.MethodGet, Path: "/v1/me", Token: rep.Access},
		{Method: http.MethodGet, Path: "/v1/sync/pull", Token: rep.Access},
		{Method: http.MethodGet, Path: "/readyz"},
	} {
		res := env.Do(r)
		apitest.Expect(t, res, http.StatusOK)
	}
	if n := answered.Load(); n != 0 {
		t.Errorf("%d pushes answered before the reads, while the write lock was held: the reads waited for them", n)
	}
	release()
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("push %d answered %d once the lock was free, want 200", i, s)
		}
	}
}
