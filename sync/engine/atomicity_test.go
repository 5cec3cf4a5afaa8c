package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// errInjected is the failure faultyStore injects.
var errInjected = errors.New("injected storage failure")

// faultyStore is the real store with one Tx method made to fail: the
// failAt-th call (1-based) of the method named fail returns err, after the
// calls before it really wrote inside the transaction.
type faultyStore struct {
	engine.Store
	fail   string // "Push" fails before any transaction
	failAt int
	err    error
}

func (s *faultyStore) Push(ctx context.Context, p models.Principal, keys []engine.Key, fn func(engine.Tx) error) error {
	if s.fail == "Push" {
		return s.err
	}
	return s.Store.Push(ctx, p, keys, func(tx engine.Tx) error {
		return fn(&faultyTx{Tx: tx, s: s, calls: map[string]int{}})
	})
}

type faultyTx struct {
	engine.Tx
	s     *faultyStore
	calls map[string]int
}

// fault reports the injected error when this call of op is the one to fail.
func (t *faultyTx) fault(op string) error {
	t.calls[op]++
	if op == t.s.fail && t.calls[op] == max(t.s.failAt, 1) {
		return fmt.Errorf("%s: %w", op, t.s.err)
	}
	return nil
}

func (t *faultyTx) Save(ctx context.Context, e *engine.Entity, recs []*engine.Record) error {
	if err := t.fault("Save"); err != nil {
		return err
	}
	return t.Tx.Save(ctx, e, recs)
}

func (t *faultyTx) SaveConflicts(ctx context.Context, cs []engine.ConflictRecord) error {
	if err := t.fault("SaveConflicts"); err != nil {
		return err
	}
	return t.Tx.SaveConflicts(ctx, cs)
}

func (t *faultyTx) SaveRejections(ctx context.Context, rs []engine.Rejection) error {
	if err := t.fault("SaveRejections"); err != nil {
		return err
	}
	return t.Tx.SaveRejections(ctx, rs)
}

func (t *faultyTx) SetLastSeq(ctx context.Context, seq int64, log []engine.LoggedMutation) error {
	if err := t.fault("SetLastSeq"); err != nil {
		return err
	}
	return t.Tx.SetLastSeq(ctx, seq, log)
}

func (t *faultyTx) Find(ctx context.Context, e *engine.Entity, where map[string]any) ([]*engine.Record, error) {
	if err := t.fault("Find"); err != nil {
		return nil, err
	}
	return t.Tx.Find(ctx, e, where)
}

// atomicBatch is a push that writes two accounts and a visit, merges a
// stale edit (a conflict) and has one mutation rejected: every kind of
// write a push makes.
func atomicBatch(t *testing.T, f *synctest.Fixture, p models.Principal) (muts []engine.Mutation, newAccount, visit, seeded uuid.UUID) {
	t.Helper()
	seeded = f.AccountsByTeam()[*p.TeamID][0]
	newAccount, visit = uuid.New(), uuid.New()
	ms := f.Now().UnixMilli()
	muts = []engine.Mutation{
		{Seq: 1, Entity: "accounts", ID: newAccount, Op: engine.OpUpsert, HLC: engine.HLC{MS: ms},
			Fields: synctest.RawFields(t, map[string]any{"name": "Atomic Hardware", "city": "Minneapolis"})},
		{Seq: 2, Entity: "visits", ID: visit, Op: engine.OpUpsert, HLC: engine.HLC{MS: ms + 1},
			Fields: synctest.RawFields(t, map[string]any{"account_id": newAccount, "notes": "first call", "outcome": "meeting",
				"started_at": f.Now().Add(-time.Hour).Format(time.RFC3339)})},
		// A server-owned field: rejected.
		{Seq: 3, Entity: "visits", ID: uuid.New(), Op: engine.OpUpsert, HLC: engine.HLC{MS: ms + 2},
			Fields: synctest.RawFields(t, map[string]any{"account_id": seeded, "team_id": uuid.New()})},
		{Seq: 4, Entity: "accounts", ID: seeded, Op: engine.OpUpsert, HLC: engine.HLC{MS: ms + 3},
			Fields: synctest.RawFields(t, map[string]any{"notes": "updated by the atomic batch"})},
		// Stamped before seq 2's notes: loses, and is a conflict.
		{Seq: 5, Entity: "visits", ID: visit, Op: engine.OpUpsert, HLC: engine.HLC{MS: ms},
			Fields: synctest.RawFields(t, map[string]any{"notes": "stale notes"})},
	}
	return muts, newAccount, visit, seeded
}

// TestPushIsAtomic injects a failure at each step of a push's transaction
// and checks that the push fails and leaves nothing behind — no record, no
// feed entry, no conflict, no rejection, the device's seq unchanged — and
// that pushing the same batch again then applies it exactly once.
func TestPushIsAtomic(t *testing.T) {
	unavailable := fmt.Errorf("connection reset: %w", models.ErrUnavailable)
	tests := []struct {
		name     string
		fail     string
		failAt   int
		err      error
		wantCode string // models.ErrorCode of the push's error
	}{
		// The accounts are saved, then the visits fail.
		{name: "second entity's save fails", fail: "Save", failAt: 2, err: errInjected, wantCode: models.CodeInternal},
		{name: "saving the conflict fails", fail: "SaveConflicts", err: errInjected, wantCode: models.CodeInternal},
		{name: "saving the rejection fails", fail: "SaveRejections", err: errInjected, wantCode: models.CodeInternal},
		{name: "recording the last seq fails", fail: "SetLastSeq", err: errInjected, wantCode: models.CodeInternal},
		// The database goes away after the accounts were written.
		{name: "database unavailable mid-push", fail: "Save", failAt: 2, err: unavailable, wantCode: models.CodeUnavailable},
		// A storage failure inside an entity rule (a started visit looks up
		// the rep's pending ride-alongs) fails the push; it is not the
		// mutation's fault, so it must not become a rejection.
		{name: "database unavailable inside a rule", fail: "Find", err: unavailable, wantCode: models.CodeUnavailable},
		{name: "database unavailable at begin", fail: "Push", err: unavailable, wantCode: models.CodeUnavailable},
	}
	// One database for every case: each pushes from a new device with new
	// records, and checks only what it wrote.
	base := synctest.New(t, storetest.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := base.On(t)
			rep := f.Principal("rep1@demo.test")
			admin := f.Principal("admin@demo.test")
			_, cursor := f.PullAll(admin, "", 100)
			muts, newAccount, visit, seeded := atomicBatch(t, f, rep)

			faulty := engine.New(&faultyStore{Store: f.DB.Feed(), fail: tt.fail, failAt: tt.failAt, err: tt.err}, sales.Entities(), f.Now, nil)
			_, err := faulty.Push(ctx, rep, muts)
			if err == nil {
				t.Fatal("push with a failing store: got no error")
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("push error %v does not wrap the injected %v", err, tt.err)
			}
			if got := models.ErrorCode(err); got != tt.wantCode {
				t.Errorf("push error code: got %q, want %q (%v)", got, tt.wantCode, err)
			}
			assertPushLeftNothing(t, f, rep, admin, cursor, visit)

			// The retry, on a healthy store, applies the batch once.
			res, err := f.En.Push(ctx, rep, muts)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			want := []string{engine.StatusApplied, engine.StatusApplied, engine.StatusRejected, engine.StatusApplied, engine.StatusMerged}
			if got := statuses(res); !equalStrings(got, want) || res.LastSeq != 5 {
				t.Fatalf("retry: got %v last_seq %d, want %v last_seq 5", got, res.LastSeq, want)
			}
			if code := res.Results[2].Error.Code; code != engine.CodeServerOwned {
				t.Errorf("retry: seq 3 rejected with %q, want %q", code, engine.CodeServerOwned)
			}
			changes, cursor := f.PullAll(admin, cursor, 100)
			got := map[uuid.UUID]*engine.Record{}
			for _, c := range changes {
				got[c.Record.ID] = c.Record
			}
			if len(changes) != 3 || got[newAccount] == nil || got[visit] == nil || got[seeded] == nil {
				t.Fatalf("pull after the retry: got %d changes %v, want the new account, the visit and the seeded account", len(changes), keysOf(got))
			}
			if n := got[visit].StringValue("notes"); n != "first call" {
				t.Errorf("visit notes: got %q, want %q", n, "first call")
			}
			if n := got[seeded].StringValue("notes"); n != "updated by the atomic batch" {
				t.Errorf("seeded account notes: got %q", n)
			}
			assertDeviceState(t, f, rep, 5, []int64{3})
			assertConflicts(t, f, admin, visit, 1)

			// A third push: all duplicates, and nothing changes.
			res, err = f.En.Push(ctx, rep, muts)
			if err != nil {
				t.Fatalf("third push: %v", err)
			}
			for i, r := range res.Results {
				if r.Status != engine.StatusDuplicate {
					t.Errorf("third push: seq %d is %s, want duplicate", muts[i].Seq, r.Status)
				}
			}
			if changes, _ := f.PullAll(admin, cursor, 100); len(changes) != 0 {
				t.Errorf("third push: %d new changes, want none", len(changes))
			}
			assertDeviceState(t, f, rep, 5, []int64{3})
			assertConflicts(t, f, admin, visit, 1)
		})
	}
}

// assertPushLeftNothing checks that a failed push left no trace.
func assertPushLeftNothing(t *testing.T, f *synctest.Fixture, rep, admin models.Principal, cursor string, visit uuid.UUID) {
	t.Helper()
	if changes, _ := f.PullAll(admin, cursor, 100); len(changes) != 0 {
		for _, c := range changes {
			t.Errorf("failed push left a change: %s %s version %d", c.Entity.Name, c.Record.ID, c.Record.Version)
		}
	}
	assertDeviceState(t, f, rep, 0, nil)
	assertConflicts(t, f, admin, visit, 0)
}

// assertDeviceState checks the device's last processed seq and the seqs of
// its recorded rejections, as a pull reports them.
func assertDeviceState(t *testing.T, f *synctest.Fixture, p models.Principal, wantSeq int64, wantRejected []int64) {
	t.Helper()
	res, err := f.En.Pull(context.Background(), p, "", 1)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	var got []int64
	for _, r := range res.Rejections {
		got = append(got, r.Seq)
	}
	if res.LastSeq != wantSeq || fmt.Sprint(got) != fmt.Sprint(wantRejected) {
		t.Errorf("device state: last_seq %d, rejected seqs %v; want %d, %v", res.LastSeq, got, wantSeq, wantRejected)
	}
}

// assertConflicts checks how many conflicts p sees on one record.
func assertConflicts(t *testing.T, f *synctest.Fixture, p models.Principal, record uuid.UUID, want int) {
	t.Helper()
	cs, _, err := f.En.Conflicts(context.Background(), p, "", 1000)
	if err != nil {
		t.Fatalf("conflicts: %v", err)
	}
	n := 0
	for _, c := range cs {
		if c.RecordID == record {
			n++
		}
	}
	if n != want {
		t.Errorf("conflicts on %s: got %d, want %d", record, n, want)
	}
}

func statuses(res engine.PushResult) []string {
	out := make([]string, len(res.Results))
	for i, r := range res.Results {
		out[i] = r.Status
	}
	return out
}

func equalStrings(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func keysOf[V any](m map[uuid.UUID]V) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestSameBatchPushedTwiceAtOnce pushes one batch from one device on two
// connections at the same moment (a phone retrying while its first request
// is still in flight): one push applies it, the other finds every seq
// already processed, and the effects exist once.
func TestSameBatchPushedTwiceAtOnce(t *testing.T) {
	ctx := context.Background()
	f := synctest.New(t, storetest.Options{})
	admin := f.Principal("admin@demo.test")
	for round := range 5 {
		rep := f.Principal("rep1@demo.test") // a new device each round
		muts, _, visit, _ := atomicBatch(t, f, rep)
		var (
			start   = make(chan struct{})
			wg      sync.WaitGroup
			results [2]engine.PushResult
			errs    [2]error
		)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], errs[i] = f.En.Push(ctx, rep, muts)
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: push %d: %v", round, i, err)
			}
		}
		applied := []string{engine.StatusApplied, engine.StatusApplied, engine.StatusRejected, engine.StatusApplied, engine.StatusMerged}
		dup := []string{engine.StatusDuplicate, engine.StatusDuplicate, engine.StatusDuplicate, engine.StatusDuplicate, engine.StatusDuplicate}
		a, b := statuses(results[0]), statuses(results[1])
		if !(equalStrings(a, applied) && equalStrings(b, dup)) && !(equalStrings(a, dup) && equalStrings(b, applied)) {
			t.Fatalf("round %d: got %v and %v; want one push %v and the other all duplicates", round, a, b, applied)
		}
		for i := range results {
			if results[i].LastSeq != 5 {
				t.Errorf("round %d: push %d last_seq %d, want 5", round, i, results[i].LastSeq)
			}
		}
		assertDeviceState(t, f, rep, 5, []int64{3})
		assertConflicts(t, f, admin, visit, 1)
		// The visit's stored version is the one the applying push reported.
		win := results[0]
		if win.Results[0].Status == engine.StatusDuplicate {
			win = results[1]
		}
		if rec := snapshotRecord(f, admin, "visits", visit); rec == nil || rec.Version != win.Results[1].Version {
			t.Errorf("round %d: visit stored as %+v, want version %d", round, rec, win.Results[1].Version)
		}
	}
}

// snapshotRecord pulls everything p sees and returns one record, or nil.
func snapshotRecord(f *synctest.Fixture, p models.Principal, entity string, id uuid.UUID) *engine.Record {
	f.T.Helper()
	changes, _ := f.PullAll(p, "", 500)
	var out *engine.Record
	for _, c := range changes {
		if c.Entity.Name == entity && c.Record.ID == id {
			out = c.Record
		}
	}
	return out
}

// TestConcurrentCreatesOfOneRecordMerge has two devices create the same
// record id at the same moment with different fields (a visit logged on
// the rep's phone and tablet, or by the rep and their manager): the second
// write must merge into the first, never overwrite it, so both fields
// survive.
func TestConcurrentCreatesOfOneRecordMerge(t *testing.T) {
	ctx := context.Background()
	base := synctest.New(t, storetest.Options{})
	rep := base.Principal("rep1@demo.test")
	account := base.AccountsByTeam()[*rep.TeamID][0]
	tests := []struct {
		name   string
		second string         // the second device's user
		extra  map[string]any // what the second device also sends
	}{
		{name: "two phones of the rep", second: "rep1@demo.test"},
		{name: "the rep and their manager", second: "manager1@demo.test", extra: map[string]any{"rep_id": rep.UserID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base.On(t)
			admin := f.Principal("admin@demo.test")
			for round := range 8 {
				p1, p2 := rep, f.Principal(tt.second)
				p1.DeviceID = uuid.New()
				id := uuid.New()
				ms := f.Now().UnixMilli()
				f1 := map[string]any{"account_id": account, "notes": "from the first device"}
				f2 := map[string]any{"account_id": account, "referrals": 3, "outcome": "demo"}
				for k, v := range tt.extra {
					f2[k] = v
				}
				pushes := []struct {
					p   models.Principal
					mut engine.Mutation
				}{
					{p1, engine.Mutation{Seq: 1, Entity: "visits", ID: id, Op: engine.OpUpsert, HLC: engine.HLC{MS: ms}, Fields: synctest.RawFields(t, f1)}},
					// Stamped later, so its outcome beats the default the
					// first device's create stamps when it lands first.
					{p2, engine.Mutation{Seq: 1, Entity: "visits", ID: id, Op: engine.OpUpsert, HLC: engine.HLC{MS: ms + 1}, Fields: synctest.RawFields(t, f2)}},
				}
				var (
					start = make(chan struct{})
					wg    sync.WaitGroup
					res   [2]engine.PushResult
					errs  [2]error
				)
				for i, ps := range pushes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						res[i], errs[i] = f.En.Push(ctx, ps.p, []engine.Mutation{ps.mut})
					}()
				}
				close(start)
				wg.Wait()
				for i := range 2 {
					if errs[i] != nil {
						t.Fatalf("round %d: push %d: %v", round, i, errs[i])
					}
					if s := res[i].Results[0].Status; s != engine.StatusApplied && s != engine.StatusMerged {
						t.Fatalf("round %d: push %d: %s %+v", round, i, s, res[i].Results[0].Error)
					}
				}
				rec := snapshotRecord(f, admin, "visits", id)
				if rec == nil {
					t.Fatalf("round %d: visit missing", round)
				}
				got := fmt.Sprintf("notes=%v referrals=%v outcome=%v rep=%v", rec.Values["notes"], rec.Values["referrals"], rec.Values["outcome"], rec.Values["rep_id"])
				want := fmt.Sprintf("notes=%v referrals=%v outcome=%v rep=%v", "from the first device", int64(3), "demo", rep.UserID)
				if got != want {
					t.Errorf("round %d: got %s, want %s (a lost update)", round, got, want)
				}
			}
		})
	}
}
