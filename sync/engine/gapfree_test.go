package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
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

// skipUnlessPostgres skips a test of an anomaly only PostgreSQL has:
// SQLite writers are serial (BEGIN IMMEDIATE), so there versions are handed
// out in commit order and a transaction can never commit "behind" another.
func skipUnlessPostgres(t *testing.T) {
	t.Helper()
	if os.Getenv(storetest.EnvURL) == "" {
		t.Skip("PostgreSQL only: set " + storetest.EnvURL + " to run. Out-of-order commits cannot happen on SQLite, whose writers are serial.")
	}
}

// TestPullNeverSkipsUnderConcurrentPushes pushes new visits from eight
// devices at once while four admins pull the feed in small pages. Commits
// land out of version order all the time; every puller must still end up
// having seen every visit whose push reported it applied.
func TestPullNeverSkipsUnderConcurrentPushes(t *testing.T) {
	skipUnlessPostgres(t)
	const (
		pushers = 8
		batches = 40
		pullers = 4
	)
	f := synctest.New(t, storetest.Options{MaxOpenConns: pushers + pullers + 8})
	accounts := f.AccountsByTeam()
	orgID := f.Principal("admin@demo.test").OrgID
	emails := []string{"rep1@demo.test", "rep2@demo.test", "rep3@demo.test", "rep4@demo.test", "rep5@demo.test", "rep6@demo.test", "rep1@demo.test", "rep4@demo.test"}

	ctx := context.Background()
	var (
		mu        sync.Mutex
		committed = map[uuid.UUID]bool{}
		pushWG    sync.WaitGroup
		pushed    = make(chan struct{}) // closed when every pusher is done
	)
	for i := range pushers {
		p := f.Principal(emails[i])
		acc := accounts[*p.TeamID]
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		pushWG.Add(1)
		go func() {
			defer pushWG.Done()
			var seq int64
			for b := range batches {
				n := 1 + rng.IntN(4)
				muts := make([]engine.Mutation, n)
				for j := range muts {
					seq++
					muts[j] = engine.Mutation{Seq: seq, Entity: "visits", ID: uuid.New(), Op: engine.OpUpsert,
						HLC:    engine.HLC{MS: f.Now().UnixMilli(), Counter: seq},
						Fields: synctest.RawFields(t, map[string]any{"account_id": acc[rng.IntN(len(acc))], "notes": fmt.Sprintf("pusher %d batch %d", i, b)})}
				}
				res, err := f.En.Push(ctx, p, muts)
				if err != nil {
					t.Errorf("pusher %d batch %d: %v", i, b, err)
					return
				}
				mu.Lock()
				for j, r := range res.Results {
					if r.Status != engine.StatusApplied {
						t.Errorf("pusher %d seq %d: %s %+v", i, muts[j].Seq, r.Status, r.Error)
						continue
					}
					committed[muts[j].ID] = true
				}
				mu.Unlock()
			}
		}()
	}
	go func() { pushWG.Wait(); close(pushed) }()

	type pullerStats struct{ pages, changes int }
	stats := make([]pullerStats, pullers)
	missing := make([][]uuid.UUID, pullers)
	var pullWG sync.WaitGroup
	for i := range pullers {
		p := f.Principal("admin@demo.test")
		limit := 3 + 5*i
		pullWG.Add(1)
		go func() {
			defer pullWG.Done()
			seen := map[uuid.UUID]bool{}
			var (
				cursor  string
				prev    engine.Position
				done    bool
				waitEnd time.Time
			)
			for {
				// Half the pullers read as the native endpoint does (docs),
				// half with full records (WatermelonDB).
				pull := f.En.Pull
				if i%2 == 0 {
					pull = f.En.PullDocs
				}
				res, err := pull(ctx, p, cursor, limit)
				if err != nil {
					t.Errorf("puller %d: %v", i, err)
					return
				}
				if res.Reset {
					t.Errorf("puller %d: unexpected reset", i)
					return
				}
				stats[i].pages++
				for _, c := range res.Changes {
					if !positionAfter(c.Pos, prev) {
						t.Errorf("puller %d: change at %+v does not follow %+v", i, c.Pos, prev)
						return
					}
					prev = c.Pos
					if c.Entity.Name == "visits" {
						seen[c.Record.ID] = true
					}
					stats[i].changes++
				}
				cursor = res.Cursor
				if !done {
					select {
					case <-pushed:
						done, waitEnd = true, time.Now().Add(20*time.Second)
					default:
						continue
					}
				}
				// The pushers are done: pull until the end of the feed and
				// every committed visit has arrived. A skipped change never
				// arrives, whatever the wait.
				if res.HasMore {
					continue
				}
				mu.Lock()
				var miss []uuid.UUID
				for id := range committed {
					if !seen[id] {
						miss = append(miss, id)
					}
				}
				mu.Unlock()
				if len(miss) == 0 {
					return
				}
				if time.Now().After(waitEnd) {
					missing[i] = miss
					return
				}
				time.Sleep(20 * time.Millisecond) // a commit still behind the feed horizon
			}
		}()
	}
	// Beside them, a version-only cursor ("version > cursor"), to show the
	// anomaly is real under this load. Logged, not asserted: how often a
	// commit lands behind a later version depends on timing.
	naiveSeen := map[uuid.UUID]bool{}
	pullWG.Add(1)
	go func() {
		defer pullWG.Done()
		var after int64
		for {
			finished := false
			select {
			case <-pushed:
				finished = true
			default:
			}
			var rows []struct {
				RecordID uuid.UUID
				Version  int64
			}
			if err := f.DB.Gorm().Raw(`SELECT record_id, version FROM sync_changes WHERE org_id = ? AND entity = 'visits' AND version > ? ORDER BY version LIMIT 10`,
				orgID, after).Scan(&rows).Error; err != nil {
				t.Errorf("version-only feed: %v", err)
				return
			}
			for _, r := range rows {
				naiveSeen[r.RecordID] = true
				after = r.Version
			}
			if finished && len(rows) == 0 {
				return
			}
		}
	}()
	pullWG.Wait()
	if t.Failed() {
		return
	}
	if len(committed) < pushers*batches {
		t.Fatalf("only %d visits committed", len(committed))
	}
	for i := range pullers {
		t.Logf("puller %d (limit %d): %d pages, %d changes", i, 3+5*i, stats[i].pages, stats[i].changes)
		if n := len(missing[i]); n > 0 {
			t.Errorf("puller %d never saw %d of %d committed visits, e.g. %s", i, n, len(committed), missing[i][0])
		}
	}
	skipped := 0
	for id := range committed {
		if !naiveSeen[id] {
			skipped++
		}
	}
	t.Logf("a version-only cursor, read at the same time, skipped %d of %d committed visits", skipped, len(committed))
}

// TestPullWaitsForAnOlderTransaction shows, one step at a time, the
// interleaving that makes a version-only cursor skip a change, and that
// the feed does not:
//
//  1. Transaction A takes version vA and writes a visit, and stays open.
//  2. A push commits visit B with version vB > vA.
//  3. A pull now runs. With "version > cursor" it would return B and move
//     the cursor to vB; A commits afterwards with vA < vB, below the
//     cursor, and no later pull returns it. The engine's pull instead
//     returns nothing past A: B's transaction is younger than A, a feed
//     writer of the same organisation still running, so the cursor stays
//     before A.
//  4. A commits; the next pull returns A's visit, then B.
func TestPullWaitsForAnOlderTransaction(t *testing.T) {
	skipUnlessPostgres(t)
	ctx := context.Background()
	f := synctest.New(t, storetest.Options{})
	admin := f.Principal("admin@demo.test")
	rep := f.Principal("rep1@demo.test")
	account := f.AccountsByTeam()[*rep.TeamID][0]
	_, cursor := f.PullAll(admin, "", 100)
	start, ok := engine.DecodeCursor(admin, cursor)
	if !ok {
		t.Fatal("cursor does not decode")
	}

	// 1. Transaction A: a server transaction of the organisation (as a
	// contest recompute runs) writes a visit and its feed row, and stays
	// open until released.
	visitA := uuid.New()
	now := f.Now()
	written := make(chan int64)
	release := make(chan error)
	aDone := make(chan error, 1)
	go func() {
		aDone <- f.DB.Feed().Server(ctx, rep.OrgID, func(tx engine.Tx) error {
			vs, err := tx.NextVersions(ctx, 1)
			if err != nil {
				return err
			}
			rec := &engine.Record{ID: visitA, Version: vs[0], CreatedAt: now, UpdatedAt: now, Clocks: map[string]engine.FieldClock{},
				Values: map[string]any{"account_id": account, "kind": "unscheduled", "status": "completed", "outcome": "none", "referrals": int64(0),
					"notes": "written by the slow transaction A", "rep_id": rep.UserID, "team_id": *rep.TeamID}}
			if err := tx.Save(ctx, sales.Visits(), []*engine.Record{rec}); err != nil {
				return err
			}
			written <- vs[0]
			return <-release
		})
	}()
	var vA int64
	select {
	case vA = <-written:
	case err := <-aDone:
		t.Fatalf("transaction A: %v", err)
	}
	defer func() {
		select {
		case release <- fmt.Errorf("test ended"):
		default:
		}
	}()
	// 2. Push B through the engine: it commits, with a higher version.
	visitB := uuid.New()
	res, err := f.En.Push(ctx, rep, []engine.Mutation{{Seq: 1, Entity: "visits", ID: visitB, Op: engine.OpUpsert,
		HLC: engine.HLC{MS: now.UnixMilli()}, Fields: synctest.RawFields(t, map[string]any{"account_id": account, "notes": "pushed while A is open"})}})
	if err != nil {
		t.Fatalf("push B: %v", err)
	}
	vB := res.Results[0].Version
	if res.Results[0].Status != engine.StatusApplied || vB <= vA {
		t.Fatalf("push B: %s version %d; want applied with a version above A's %d", res.Results[0].Status, vB, vA)
	}

	// 3a. What a version-only feed would do: "version > cursor" returns B
	// alone (A is invisible until it commits), so the cursor would move to
	// vB, past A's vA.
	naive := func(after int64) []int64 {
		t.Helper()
		var vs []int64
		if err := f.DB.Gorm().Raw(`SELECT version FROM sync_changes WHERE org_id = ? AND version > ? ORDER BY version`,
			admin.OrgID, after).Scan(&vs).Error; err != nil {
			t.Fatalf("naive feed: %v", err)
		}
		return vs
	}
	if got := naive(start.Version); len(got) != 1 || got[0] != vB {
		t.Fatalf("version > %d before A commits: got versions %v, want [%d] (B only)", start.Version, got, vB)
	}

	// 3b. The engine's pull returns nothing while A runs, and its cursor
	// stays before A's position.
	page, err := f.En.Pull(ctx, admin, cursor, 100)
	if err != nil {
		t.Fatalf("pull while A is open: %v", err)
	}
	for _, c := range page.Changes {
		t.Errorf("pull while A is open returned %s %s (version %d); want nothing past A", c.Entity.Name, c.Record.ID, c.Pos.Version)
	}
	pos, ok := engine.DecodeCursor(admin, page.Cursor)
	if !ok {
		t.Fatal("cursor does not decode")
	}

	// 4. A commits behind B.
	release <- nil
	if err := <-aDone; err != nil {
		t.Fatalf("commit A: %v", err)
	}
	var txidA int64
	if err := f.DB.Gorm().Raw(`SELECT txid FROM sync_changes WHERE org_id = ? AND record_id = ?`, rep.OrgID, visitA).Row().Scan(&txidA); err != nil {
		t.Fatalf("A's feed row: %v", err)
	}
	if !positionAfter(engine.Position{Txid: txidA, Version: vA}, pos) {
		t.Fatalf("the pull while A was open moved the cursor to %+v, at or past A's position {Txid:%d Version:%d}", pos, txidA, vA)
	}
	// The version-only cursor, now at vB, never returns A.
	if got := naive(vB); len(got) != 0 {
		t.Fatalf("version > %d after A commits: got %v, want none", vB, got)
	}
	if got := naive(start.Version); len(got) != 2 || got[0] != vA {
		t.Fatalf("version > %d after A commits: got %v, want [%d %d]", start.Version, got, vA, vB)
	}
	// The engine's cursor returns A, then B.
	changes, _ := f.PullAll(admin, page.Cursor, 100)
	var ids []uuid.UUID
	for _, c := range changes {
		ids = append(ids, c.Record.ID)
	}
	if len(ids) != 2 || ids[0] != visitA || ids[1] != visitB {
		t.Fatalf("pull after A commits: got %v, want [%s (A) %s (B)]", ids, visitA, visitB)
	}
	if got := changes[0].Record.StringValue("notes"); got != "written by the slow transaction A" {
		t.Errorf("A's visit notes: got %q", got)
	}
}

// TestPullIsNotHeldBackByUnrelatedTransactions: a pull waits only for
// transactions that may still write its organisation's feed. Another
// organisation's open feed write (a long contest recompute, say) and a
// transaction that writes no feed at all (a report, a migration) must not
// delay it, as a horizon of "the oldest transaction running anywhere"
// would.
func TestPullIsNotHeldBackByUnrelatedTransactions(t *testing.T) {
	skipUnlessPostgres(t)
	ctx := context.Background()
	f := synctest.New(t, storetest.Options{})
	admin := f.Principal("admin@demo.test")
	rep := f.Principal("rep1@demo.test")
	account := f.AccountsByTeam()[*rep.TeamID][0]
	_, cursor := f.PullAll(admin, "", 100)

	// Another organisation's feed writer, left open.
	now := f.Now()
	other := models.Org{ID: uuid.New(), Name: "Other Co", CreatedAt: now}
	if err := f.DB.People().CreateOrg(ctx, other, models.User{OrgID: other.ID, ID: uuid.New(), Email: "admin@other.test", Name: "Other Admin",
		Role: models.RoleAdmin, Active: true, TimeZone: "UTC", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatalf("create org: %v", err)
	}
	team := models.Team{OrgID: other.ID, ID: uuid.New(), Name: "East", CreatedAt: now}
	if err := f.DB.People().CreateTeam(ctx, team); err != nil {
		t.Fatalf("create team: %v", err)
	}
	written, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- f.DB.Feed().Server(ctx, other.ID, func(tx engine.Tx) error {
			vs, err := tx.NextVersions(ctx, 1)
			if err != nil {
				return err
			}
			acc := &engine.Record{ID: uuid.New(), Version: vs[0], CreatedAt: now, UpdatedAt: now, Clocks: map[string]engine.FieldClock{},
				Values: map[string]any{"name": "Slow Hardware", "name_key": "slow hardware", "status": "customer", "team_id": team.ID}}
			if err := tx.Save(ctx, sales.Accounts(), []*engine.Record{acc}); err != nil {
				return err
			}
			close(written)
			<-release
			return nil
		})
	}()
	select {
	case <-written:
	case err := <-done:
		t.Fatalf("other organisation's transaction: %v", err)
	}
	defer func() {
		close(release)
		if err := <-done; err != nil {
			t.Errorf("other organisation's transaction: %v", err)
		}
	}()

	// A transaction with an id that writes no feed, left open.
	report := f.DB.Gorm().Begin()
	defer report.Rollback()
	var xid int64
	if err := report.Raw(`SELECT pg_current_xact_id()::text::bigint`).Row().Scan(&xid); err != nil {
		t.Fatalf("report transaction: %v", err)
	}

	visit := uuid.New()
	res := f.Push(rep, engine.Mutation{Seq: 1, Entity: "visits", ID: visit, Op: engine.OpUpsert,
		HLC: engine.HLC{MS: now.UnixMilli()}, Fields: synctest.RawFields(t, map[string]any{"account_id": account})})
	if res.Results[0].Status != engine.StatusApplied {
		t.Fatalf("push: %+v", res.Results[0])
	}
	page, err := f.En.Pull(ctx, admin, cursor, 100)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	found := false
	for _, c := range page.Changes {
		found = found || c.Record.ID == visit
	}
	if !found {
		t.Fatalf("a pull right after the push returned %d changes without the visit: held back by transactions that cannot write this organisation's feed", len(page.Changes))
	}
}
