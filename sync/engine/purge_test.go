package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
	"github.com/fieldsync/fieldsync/sync/watermelondb"
)

// TestPurgedTombstonesResetOlderCursors: tombstones older than the
// retention are removed, and a device whose cursor lies below one — it may
// never have learnt of that delete — is reset, natively and over the
// WatermelonDB protocol. Devices that saw the delete carry on, and recent
// tombstones stay.
func TestPurgedTombstonesResetOlderCursors(t *testing.T) {
	ctx := context.Background()
	f := synctest.New(t, storetest.Options{})
	rep := f.Principal("rep1@demo.test")
	stale, current := f.Principal("admin@demo.test"), f.Principal("admin@demo.test")
	account := f.AccountsByTeam()[*rep.TeamID][0]
	const retention = 90 * 24 * time.Hour

	var seq int64
	upsert := func(id uuid.UUID, notes string) {
		t.Helper()
		seq++
		res := f.Push(rep, engine.Mutation{Seq: seq, Entity: "visits", ID: id, Op: engine.OpUpsert,
			HLC: engine.HLC{MS: f.Now().UnixMilli()}, Fields: synctest.RawFields(t, map[string]any{"account_id": account, "notes": notes})})
		if s := res.Results[0].Status; s != engine.StatusApplied {
			t.Fatalf("upsert %s: %s", notes, s)
		}
	}
	remove := func(id uuid.UUID) {
		t.Helper()
		seq++
		res := f.Push(rep, engine.Mutation{Seq: seq, Entity: "visits", ID: id, Op: engine.OpDelete, HLC: engine.HLC{MS: f.Now().UnixMilli()}})
		if s := res.Results[0].Status; s != engine.StatusApplied {
			t.Fatalf("delete: %s", s)
		}
	}
	old, kept, recent := uuid.New(), uuid.New(), uuid.New()
	upsert(old, "deleted long ago")
	upsert(kept, "still here")
	upsert(recent, "deleted yesterday")
	_, staleCursor := f.PullAll(stale, "", 100)
	wm, err := watermelondb.New(f.En, f.DB.Feed()).Pull(ctx, stale, watermelondb.PullRequest{}, func(watermelondb.Kind, engine.Change) error { return nil })
	if err != nil {
		t.Fatalf("watermelondb pull: %v", err)
	}
	remove(old)
	_, currentCursor := f.PullAll(current, "", 100)

	f.Advance(retention)
	remove(recent)
	f.Advance(24 * time.Hour)
	n, err := f.En.PurgeTombstones(ctx, rep.OrgID, f.Now().Add(-retention))
	if err != nil {
		t.Fatalf("purge: %v", err)
	}
	if n != 1 {
		t.Fatalf("purged %d tombstones, want 1 (only the one older than the retention)", n)
	}
	if again, err := f.En.PurgeTombstones(ctx, rep.OrgID, f.Now().Add(-retention)); err != nil || again != 0 {
		t.Fatalf("a second purge removed %d (%v), want 0", again, err)
	}
	admin := f.Principal("admin@demo.test")
	if r := snapshotRecord(f, admin, "visits", old); r != nil {
		t.Errorf("the purged visit is still stored: %+v", r)
	}
	if r := snapshotRecord(f, admin, "visits", recent); r == nil || !r.Deleted {
		t.Errorf("the recent tombstone: %+v, want it kept", r)
	}

	// The device that pulled before the purged delete is reset.
	page, err := f.En.Pull(ctx, stale, staleCursor, 100)
	if err != nil {
		t.Fatalf("stale pull: %v", err)
	}
	if !page.Reset || len(page.Changes) != 0 || page.Cursor != "" {
		t.Fatalf("stale pull: reset %v, %d changes, cursor %q; want a reset", page.Reset, len(page.Changes), page.Cursor)
	}
	// The one that saw it carries on with the recent delete only.
	changes, _ := f.PullAll(current, currentCursor, 100)
	var ids []uuid.UUID
	for _, c := range changes {
		ids = append(ids, c.Record.ID)
	}
	if len(ids) != 1 || ids[0] != recent || !changes[0].Record.Deleted {
		t.Fatalf("current pull after the purge: %v, want the recent delete of %s only", ids, recent)
	}
	// Starting over works, and knows nothing of the purged visit.
	all, _ := f.PullAll(stale, "", 1000)
	for _, c := range all {
		if c.Record.ID == old {
			t.Fatal("a fresh pull returned the purged visit")
		}
	}

	res, err := watermelondb.New(f.En, f.DB.Feed()).Pull(ctx, stale, watermelondb.PullRequest{LastPulledAt: wm.Timestamp}, func(watermelondb.Kind, engine.Change) error { return nil })
	if err != nil {
		t.Fatalf("watermelondb pull after the purge: %v", err)
	}
	if !res.Replacement {
		t.Error("a WatermelonDB client that pulled before the purged delete got an incremental sync, want a replacement")
	}
}

// TestResyncAfterPurgePagesThrough: a pull from scratch after a purge
// pages through cursors below the purged positions without being reset
// (it read the feed as the purge left it), while a pull from scratch that
// began before the purge, and whose next page lies below a purged
// tombstone, is reset: it may hold the record whose delete is gone.
func TestResyncAfterPurgePagesThrough(t *testing.T) {
	ctx := context.Background()
	f := synctest.New(t, storetest.Options{})
	rep := f.Principal("rep1@demo.test")
	account := f.AccountsByTeam()[*rep.TeamID][0]
	const retention = 90 * 24 * time.Hour

	var seq int64
	push := func(op string, id uuid.UUID) {
		t.Helper()
		seq++
		m := engine.Mutation{Seq: seq, Entity: "visits", ID: id, Op: op, HLC: engine.HLC{MS: f.Now().UnixMilli()}}
		if op == engine.OpUpsert {
			m.Fields = synctest.RawFields(t, map[string]any{"account_id": account, "notes": "call"})
		}
		if s := f.Push(rep, m).Results[0].Status; s != engine.StatusApplied {
			t.Fatalf("%s: %s", op, s)
		}
	}
	ids := make([]uuid.UUID, 6)
	for i := range ids {
		ids[i] = uuid.New()
		push(engine.OpUpsert, ids[i])
	}
	// Begun before the purge: one page, ending below the delete to come.
	early, err := f.En.Pull(ctx, rep, "", 1)
	if err != nil || early.Reset || !early.HasMore {
		t.Fatalf("first page: %+v, %v", early, err)
	}
	push(engine.OpDelete, ids[5])
	f.Advance(retention + time.Hour)
	if n, err := f.En.PurgeTombstones(ctx, rep.OrgID, f.Now().Add(-retention)); err != nil || n != 1 {
		t.Fatalf("purged %d (%v), want 1", n, err)
	}

	// From scratch, one record a page: every page but the last lies below
	// the purged delete.
	all, _ := f.PullAll(rep, "", 1)
	n := 0
	for _, c := range all {
		if c.Entity.Name == "visits" {
			n++
		}
	}
	if n != 5 {
		t.Errorf("a resync from scratch after the purge pulled %d visits, want the 5 not deleted", n)
	}
	next, err := f.En.Pull(ctx, rep, early.Cursor, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !next.Reset {
		t.Errorf("a pull begun before the purge continued below the purged delete: %d changes, want a reset", len(next.Changes))
	}
}
