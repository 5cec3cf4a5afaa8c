package sales_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// countingStore is the real store, counting the records its push
// transactions read (every read method of engine.Tx) and the reads.
type countingStore struct {
	engine.Store
	rows, reads atomic.Int64
	contests    atomic.Int64 // contest records read by Find
}

func (s *countingStore) Push(ctx context.Context, p models.Principal, keys []engine.Key, fn func(engine.Tx) error) error {
	return s.Store.Push(ctx, p, keys, func(tx engine.Tx) error { return fn(&countingTx{Tx: tx, s: s}) })
}

func (s *countingStore) reset() { s.rows.Store(0); s.reads.Store(0); s.contests.Store(0) }

type countingTx struct {
	engine.Tx
	s *countingStore
}

func (t *countingTx) count(n int) { t.s.rows.Add(int64(n)); t.s.reads.Add(1) }

func (t *countingTx) Load(ctx context.Context, e *engine.Entity, ids []uuid.UUID) (map[uuid.UUID]*engine.Record, error) {
	out, err := t.Tx.Load(ctx, e, ids)
	t.count(len(out))
	return out, err
}

func (t *countingTx) Find(ctx context.Context, e *engine.Entity, where map[string]any) ([]*engine.Record, error) {
	out, err := t.Tx.Find(ctx, e, where)
	t.count(len(out))
	if e.Name == "contests" {
		t.s.contests.Add(int64(len(out)))
	}
	return out, err
}

func (t *countingTx) Range(ctx context.Context, e *engine.Entity, where map[string]any, field string, from, to time.Time) ([]*engine.Record, error) {
	out, err := t.Tx.Range(ctx, e, where, field, from, to)
	t.count(len(out))
	return out, err
}

func (t *countingTx) Latest(ctx context.Context, e *engine.Entity, where map[string]any, field string, from, to time.Time, skip []uuid.UUID, limit int) ([]*engine.Record, error) {
	out, err := t.Tx.Latest(ctx, e, where, field, from, to, skip, limit)
	t.count(len(out))
	return out, err
}

func (t *countingTx) Nearest(ctx context.Context, looks []engine.StoreLook) ([][][]*engine.Record, error) {
	out, err := t.Tx.Nearest(ctx, looks)
	n := 0
	for _, l := range out {
		for _, p := range l {
			n += len(p)
		}
	}
	t.s.rows.Add(int64(n))
	for _, l := range looks {
		t.s.reads.Add(int64(len(l.Pivots))) // a look-up per pivot
	}
	return out, err
}

// TestPushWorkIsBoundedByTheBatch: a device that stamps every call with the
// same minute pushes 500 calls at a time, eight times. Each push verifies
// its calls (speed and revisit rules) and looks for a streak; the records
// it reads must depend on the batch, not on the calls already stored
// around it: the eighth push, with 3,500 calls of that minute stored,
// reads no more than twice what the second (500 stored) did, and never
// more than a small multiple of the batch. (Verification read every
// stored call of the rep within the cooldown, and the streak check every
// call since the last order's minute: the eighth push read 7× the second.)
func TestPushWorkIsBoundedByTheBatch(t *testing.T) {
	f := synctest.New(t, storetest.Options{})
	counter := &countingStore{Store: f.DB.Feed()}
	f.En = engine.New(counter, sales.Entities(), f.Now, nil)
	rep := f.Principal("rep1@demo.test")
	accountID := f.AccountsByTeam()[*rep.TeamID][0]
	account, err := f.En.Get(context.Background(), rep, "accounts", accountID)
	if err != nil || account == nil {
		t.Fatalf("account: %v %v", account, err)
	}
	lat, lng := *account.FloatValue("lat"), *account.FloatValue("lng")
	minute := f.Now().Add(-2 * time.Hour).Truncate(time.Minute).Format(time.RFC3339)

	const batch, pushes = 500, 8
	var seq int64
	rows := make([]int64, pushes)
	for p := range pushes {
		muts := make([]engine.Mutation, batch)
		for i := range muts {
			seq++
			outcome := map[int64]string{0: "order", 1: "no_answer", 2: "meeting"}[seq%3]
			fields := map[string]any{"account_id": accountID.String(), "kind": "unscheduled", "status": "completed",
				"outcome": outcome, "started_at": minute, "check_in_lat": lat, "check_in_lng": lng, "check_in_accuracy_m": 10.0,
				"notes": fmt.Sprintf("same-minute call %d", seq)}
			if outcome == "order" {
				fields["order_value"] = 120.5
			}
			muts[i] = visitMut(seq, uuid.New(), f.Now(), fields)
		}
		counter.reset()
		f.Push(rep, muts...)
		rows[p] = counter.rows.Load()
		t.Logf("push %d: %d records read in %d look-ups", p+1, rows[p], counter.reads.Load())
	}
	for p, n := range rows {
		if n > 8*batch {
			t.Errorf("push %d read %d records for a batch of %d: more than 8 per call", p+1, n, batch)
		}
	}
	// The first push meets no stored call; the second meets 500.
	if rows[pushes-1] > 2*rows[1] {
		t.Errorf("the last push read %d records, the second %d: the work grows with the calls stored (%v)", rows[pushes-1], rows[1], rows)
	}
}

// TestPushReadsOnlyItsTeamsContests: a rep's visit is scored by the
// organisation-wide contests and their team's, so a push reads only those
// — not every team's contest (the field-day bench, 91 teams with a contest
// each, spent 17 % of a push's CPU decoding all of them).
func TestPushReadsOnlyItsTeamsContests(t *testing.T) {
	d := newDom(t)
	south, north := d.teams["South"], d.teams["North"]
	start, end := d.Now().Add(-24*time.Hour), d.Now().Add(7*24*time.Hour)
	for i := range 10 {
		in := contestIn(fmt.Sprintf("South %d", i), start, end, nil)
		in.TeamID = &south
		d.mustContest("admin", in)
	}
	in := contestIn("North", start, end, nil)
	in.TeamID = &north
	northContest := d.mustContest("admin", in)
	d.tick()

	counter := &countingStore{Store: d.DB.Feed()}
	d.En = engine.New(counter, sales.Entities(), d.Now, nil)
	d.create("rep1", "visits", visitFields(d.north[0], d.Now().Add(-time.Hour), map[string]any{"outcome": "meeting"}))
	if n := counter.contests.Load(); n != 1 {
		t.Errorf("a North rep's push read %d contest records, want 1 (North's own; none is organisation-wide)", n)
	}
	if got := d.standings(northContest)["rep1"]; got == nil || got.FloatValue("total_points") == nil || *got.FloatValue("total_points") == 0 {
		t.Errorf("rep1's North standing %v, want the visit scored", got)
	}
}
