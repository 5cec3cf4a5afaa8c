package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// TestPushFairShare: one user floods the server with ten pushes at once,
// each held open; at most two of them hold or queue for push slots, the
// other eight are refused rate_limited (Retry-After 1) after the share's
// wait, and another user's push goes through with the flooder's two
// still in the queue ahead of it at most — on PostgreSQL (three slots)
// while the flooder's pushes are still held, on SQLite (one writer)
// right after the two.
func TestPushFairShare(t *testing.T) {
	db := storetest.MustOpenDBWith(t, storetest.Options{MaxOpenConns: 5, PushShareWait: 300 * time.Millisecond})
	ctx := context.Background()
	org := uuid.New()
	flooder := models.Principal{OrgID: org, UserID: uuid.New(), DeviceID: uuid.New(), Role: models.RoleRep}
	other := models.Principal{OrgID: org, UserID: uuid.New(), DeviceID: uuid.New(), Role: models.RoleRep}

	var (
		release   = make(chan struct{})
		inFlight  atomic.Int64 // the flooder's pushes inside their transaction
		most      atomic.Int64
		entered   atomic.Int64 // the flooder's pushes that ever got a slot
		wg        sync.WaitGroup
		refusedMu sync.Mutex
		refused   []error
	)
	const flood = 10
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.Feed().Push(ctx, flooder, nil, func(engine.Tx) error {
				entered.Add(1)
				n := inFlight.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-release
				inFlight.Add(-1)
				return nil
			})
			if err != nil {
				refusedMu.Lock()
				refused = append(refused, err)
				refusedMu.Unlock()
			}
		}()
	}
	// The eight beyond the share are refused within their wait.
	deadline := time.Now().Add(10 * time.Second)
	for {
		refusedMu.Lock()
		n := len(refused)
		refusedMu.Unlock()
		if n >= flood-2 {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			wg.Wait()
			t.Fatalf("%d of %d pushes of one user refused after 10 s, want %d", n, flood, flood-2)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Another user's push meanwhile.
	otherDone := make(chan error, 1)
	var flooderAhead int64
	go func() {
		otherDone <- db.Feed().Push(ctx, other, nil, func(engine.Tx) error {
			flooderAhead = entered.Load()
			return nil
		})
	}()
	if db.Dialect() == store.Postgres {
		// Three push slots: the flooder holds two, the third is free.
		select {
		case err := <-otherDone:
			if err != nil {
				t.Errorf("the other user's push: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the other user's push waited 10 s while one user's pushes held their slots")
		}
		close(release)
	} else {
		// One writer: the other user's push waits for the flooder's two.
		close(release)
		if err := <-otherDone; err != nil {
			t.Errorf("the other user's push: %v", err)
		}
	}
	wg.Wait()

	if got := most.Load(); got > 2 {
		t.Errorf("%d pushes of one user held push slots at once, want at most 2", got)
	}
	if flooderAhead > 2 {
		t.Errorf("%d of the flooder's pushes ran before the other user's, want at most 2", flooderAhead)
	}
	if got := entered.Load(); got != 2 {
		t.Errorf("%d of the flooder's pushes ran, want 2", got)
	}
	if len(refused) != flood-2 {
		t.Errorf("%d refused, want %d: %v", len(refused), flood-2, refused)
	}
	for _, err := range refused {
		var me *models.Error
		if !errors.As(err, &me) || me.Code != models.CodeRateLimited || me.RetryAfterSeconds != 1 {
			t.Errorf("refusal %v, want rate_limited with Retry-After 1", err)
		}
	}

	// The share is given back: the flooder pushes again at once.
	if err := db.Feed().Push(ctx, flooder, nil, func(engine.Tx) error { return nil }); err != nil {
		t.Errorf("a later push of the same user: %v", err)
	}
}
