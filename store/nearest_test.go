package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// readingStore is the real store, keeping how many visit rows each push's
// transaction read.
type readingStore struct {
	engine.Store
	reads int64
}

func (s *readingStore) Push(ctx context.Context, p models.Principal, keys []engine.Key, fn func(engine.Tx) error) error {
	return s.Store.Push(ctx, p, keys, func(tx engine.Tx) error {
		before, err := store.TableReads(tx, "visits")
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			return err
		}
		after, err := store.TableReads(tx, "visits")
		s.reads = after - before
		return err
	})
}

// TestPushReadsNeighboursNotTheOrganisation: verifying a batch reads each
// call's neighbours and those records, by key — not the organisation's
// visits. The look-up of the records found joined them to visits, which
// PostgreSQL planned as a merge join over the organisation's whole primary
// key (or a hash join over the table) once it held some thousands of
// visits: a push's work grew with everyone's history. The organisation
// here holds 6,000 visits of other reps; a rep's push of 100 calls must
// read a few rows per call.
func TestPushReadsNeighboursNotTheOrganisation(t *testing.T) {
	f := synctest.New(t, storetest.Options{})
	if f.DB.Dialect() != store.Postgres {
		t.Skip("counts PostgreSQL's rows read (pg_stat_xact_user_tables); SQLite looks up each neighbour by its own statement")
	}
	accounts := f.AccountsByTeam()
	var seq int64
	calls := func(p models.Principal, n int, start time.Time) []engine.Mutation {
		team := accounts[*p.TeamID]
		muts := make([]engine.Mutation, n)
		for i := range muts {
			seq++
			at := start.Add(time.Duration(i) * 20 * time.Minute)
			fields := map[string]any{"account_id": team[i%len(team)].String(), "kind": "unscheduled", "status": "completed",
				"outcome": "no_answer", "started_at": at.Format(time.RFC3339),
				"ended_at": at.Add(10 * time.Minute).Format(time.RFC3339), "notes": fmt.Sprintf("call %d", seq)}
			muts[i] = engine.Mutation{Seq: seq, Entity: "visits", ID: uuid.New(), Op: engine.OpUpsert, Fields: synctest.RawFields(t, fields),
				HLC: engine.HLC{MS: f.Now().UnixMilli(), Counter: seq}}
		}
		return muts
	}
	// Others' history: 6,000 calls over the weeks before.
	for i, rep := range []string{"rep2", "rep3", "rep4"} {
		p := f.Principal(rep + "@demo.test")
		for b := range 4 {
			start := f.Now().Add(-time.Duration(30-7*b-i) * 24 * time.Hour)
			f.Push(p, calls(p, 500, start)...)
		}
	}
	// The planner's view of the table as autovacuum would leave it.
	if err := f.DB.Gorm().Exec(`ANALYZE visits`).Error; err != nil {
		t.Fatal(err)
	}

	reading := &readingStore{Store: f.DB.Feed()}
	f.En = engine.New(reading, sales.Entities(), f.Now, nil)
	rep := f.Principal("rep1@demo.test")
	const batch = 100
	for b := range 3 {
		f.Push(rep, calls(rep, batch, f.Now().Add(-time.Duration(3-b)*48*time.Hour))...)
		t.Logf("push %d of %d calls read %d visit rows", b+1, batch, reading.reads)
		if reading.reads > 12*batch {
			t.Errorf("push %d of %d calls read %d visit rows, more than 12 a call: the work follows the organisation's history", b+1, batch, reading.reads)
		}
	}
}
