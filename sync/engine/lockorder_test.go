package engine_test

import (
	"bytes"
	"context"
	"sort"
	"testing"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// savesStore is the real store, noting what each Save of a push writes.
type savesStore struct {
	engine.Store
	saves []saved
}

type saved struct {
	entity string
	ids    []uuid.UUID
}

func (s *savesStore) Push(ctx context.Context, p models.Principal, keys []engine.Key, fn func(engine.Tx) error) error {
	return s.Store.Push(ctx, p, keys, func(tx engine.Tx) error {
		return fn(&savesTx{Tx: tx, s: s})
	})
}

type savesTx struct {
	engine.Tx
	s *savesStore
}

func (t *savesTx) Save(ctx context.Context, e *engine.Entity, recs []*engine.Record) error {
	ids := make([]uuid.UUID, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	t.s.saves = append(t.s.saves, saved{e.Name, ids})
	return t.Tx.Save(ctx, e, recs)
}

// TestSaveOrderIsFixed holds the order a push writes rows in: entities by
// name, records by id, whatever order the batch wrote them. Two pushes
// updating the same rows (a team's standings, re-ranked by each) then lock
// them in the same order; in the order of writing, two reps' pushes
// deadlocked on PostgreSQL under the field-day bench.
func TestSaveOrderIsFixed(t *testing.T) {
	f := synctest.New(t, storetest.Options{})
	st := &savesStore{Store: f.DB.Feed()}
	en := engine.New(st, sales.Entities(), f.Now, nil)
	rep := f.Principal("rep1@demo.test")
	account := f.AccountsByTeam()[*rep.TeamID][0]

	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	// Written in descending id order, an account after the visits.
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) > 0 })
	ms := f.Now().UnixMilli()
	var muts []engine.Mutation
	for i, id := range ids {
		muts = append(muts, engine.Mutation{Seq: int64(i + 1), Entity: "visits", ID: id, Op: engine.OpUpsert, HLC: engine.HLC{MS: ms + int64(i)},
			Fields: synctest.RawFields(t, map[string]any{"account_id": account})})
	}
	muts = append(muts, engine.Mutation{Seq: 5, Entity: "accounts", ID: uuid.New(), Op: engine.OpUpsert, HLC: engine.HLC{MS: ms + 9},
		Fields: synctest.RawFields(t, map[string]any{"name": "Order Hardware", "city": "Duluth"})})
	res, err := en.Push(context.Background(), rep, muts)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Results {
		if r.Status != engine.StatusApplied {
			t.Fatalf("seq %d: %s %+v, want applied", r.Seq, r.Status, r.Error)
		}
	}
	var names []string
	for _, s := range st.saves {
		names = append(names, s.entity)
		if !sort.SliceIsSorted(s.ids, func(i, j int) bool { return bytes.Compare(s.ids[i][:], s.ids[j][:]) < 0 }) {
			t.Errorf("%s saved in the order %v, want ascending ids", s.entity, s.ids)
		}
	}
	if !sort.StringsAreSorted(names) || len(names) < 2 {
		t.Errorf("entities saved in the order %v, want two or more, by name", names)
	}
}
