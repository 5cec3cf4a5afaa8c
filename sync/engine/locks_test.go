package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// TestManyLargePushesAtOnce: a team back online after a day without signal
// pushes its largest batches all at once. On PostgreSQL a push holds a lock
// per record until it commits, in a lock table the whole cluster shares;
// sixteen pushes of 1,000 fill it on a default server ("out of shared
// memory", for every session of the cluster) unless the store keeps its
// pushes within a budget. Every push must apply in full.
func TestManyLargePushesAtOnce(t *testing.T) {
	skipUnlessPostgres(t)
	const pushes = 16
	// The pushes are one rep's on 16 devices (the demo has few reps); the
	// per-user share of push slots is lifted so that all 16 meet the
	// lock-table budget at once, which is what this test is about, rather
	// than wait their turn two at a time (and, on a loaded machine, pass
	// the share's wait).
	f := synctest.New(t, storetest.Options{MaxOpenConns: 20, PushesPerUser: pushes})
	rep := f.Principal("rep1@demo.test")
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := 0; i < pushes; i++ {
		p := rep
		p.DeviceID = uuid.New()
		muts := make([]engine.Mutation, engine.MaxBatch)
		for j := range muts {
			muts[j] = engine.Mutation{Seq: int64(j + 1), Entity: "accounts", ID: uuid.New(), Op: engine.OpUpsert,
				HLC:    engine.HLC{MS: f.Now().UnixMilli(), Counter: int64(j)},
				Fields: synctest.RawFields(t, map[string]any{"name": fmt.Sprintf("Walk-in %d-%d", i, j)})}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := f.En.Push(context.Background(), p, muts)
			if err == nil {
				for _, r := range res.Results {
					if r.Status != engine.StatusApplied {
						err = fmt.Errorf("seq %d: %s %+v", r.Seq, r.Status, r.Error)
						break
					}
				}
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("push: %v", err)
	}
	var n int
	if err := f.DB.Gorm().Raw(`SELECT count(*) FROM accounts WHERE name LIKE 'Walk-in %'`).Row().Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != pushes*engine.MaxBatch {
		t.Errorf("%d accounts stored, want %d", n, pushes*engine.MaxBatch)
	}
}
