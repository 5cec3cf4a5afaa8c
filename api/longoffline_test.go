package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// pushMeasured pushes one batch straight over HTTP (without the spec check
// of env.Do, whose allocations would blur the measure) and reports the
// bytes the process allocated while it ran and how much the live heap grew
// once the garbage was collected.
func pushMeasured(t *testing.T, env *apitest.Env, token string, muts []mutation) (pr pushResponse, allocated uint64, retained int64) {
	t.Helper()
	body, err := json.Marshal(pushBody{SchemaVersion: 1, Mutations: muts})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, err := http.NewRequest(http.MethodPost, env.Server.URL+"/v1/sync/push", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := env.Server.Client().Do(req)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("push of %d: status %d: %.500s", len(muts), res.StatusCode, b)
	}
	if err := json.Unmarshal(b, &pr); err != nil {
		t.Fatalf("decode push answer: %v", err)
	}
	b, body = nil, nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	return pr, after.TotalAlloc - before.TotalAlloc, int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// pullInto applies every page after cursor to r, as a phone's database
// does (a tombstone removes the record), and returns the last page.
func pullInto(t *testing.T, env *apitest.Env, token, cursor string, r replica) pullResponse {
	t.Helper()
	for page := 0; ; page++ {
		if page > 200 {
			t.Fatal("pull does not end")
		}
		pr := pullPage(t, env, token, cursor, 500)
		if pr.Reset {
			return pr
		}
		for _, c := range pr.Changes {
			if c.Op == "delete" {
				delete(r, key(c.Entity, c.ID))
				continue
			}
			r[key(c.Entity, c.ID)] = c
		}
		cursor = pr.Cursor
		if !pr.HasMore {
			return pr
		}
	}
}

// liveOnly drops the tombstones of a full pull.
func liveOnly(r replica) replica {
	out := replica{}
	for k, c := range r {
		if c.Op == "upsert" {
			out[k] = c
		}
	}
	return out
}

// sameReplica fails the test unless a and b hold the same records at the
// same versions.
func sameReplica(t *testing.T, what string, got, want replica) {
	t.Helper()
	var missing, extra, stale []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			missing = append(missing, k)
		case g.Version != w.Version:
			stale = append(stale, fmt.Sprintf("%s at version %d, server %d", k, g.Version, w.Version))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra)+len(stale) > 0 {
		cut := func(s []string) []string { slices.Sort(s); return s[:min(len(s), 5)] }
		t.Fatalf("%s: %d records, server has %d: %d missing %v, %d extra %v, %d stale %v", what, len(got), len(want),
			len(missing), cut(missing), len(extra), cut(extra), len(stale), cut(stale))
	}
}

// TestLongOffline: a phone comes back after 60 days offline, its clock and
// HLCs 60 days behind the changes its teammates made meanwhile, with
// longOfflineMutations pending. It pushes them in batches of the server's
// largest size, resuming from its cursor of 60 days ago, and ends holding
// exactly what the server holds: each of its records once, its deletes
// gone, its account edits merged field by field under the teammates' later
// ones. Each push's allocations and the live heap stay within fixed bounds,
// the same for the last batch as for the first: a push that read the
// organisation's or the device's records wholesale would break them.
//
// Then a device whose cursor lies before a tombstone purged by the
// retention gets reset: true, resyncs from scratch and converges with its
// user's other device, which pulled all along.
func TestLongOffline(t *testing.T) {
	// The largest push deadline: a batch of 1,000 under the race detector
	// on a busy machine takes a while, and a 503 here would say nothing.
	// The default budget of mutations per user: the phone's backlog goes
	// through at once, in pushes one after another, the clock standing
	// still meanwhile.
	d := newDemoWith(t, apitest.Options{Deps: func(deps *api.Deps) {
		deps.PushTimeout = 55 * time.Second
		deps.PushBudget = api.DefaultPushBudget
	}})
	env := d.env
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(60, 1))
	start := env.Clock.Now()

	phone := newDevice(env, "rep1@demo.test")
	local, page := pullAll(t, env, phone.Access)
	local = liveOnly(local)
	phoneCursor := page.Cursor
	// rep3 has a tablet that syncs and a phone left in a drawer past the
	// tombstone retention.
	drawer := newDevice(env, "rep3@demo.test")
	_, page = pullAll(t, env, drawer.Access)
	drawerCursor := page.Cursor
	tablet := newDevice(env, "rep3@demo.test")
	tabletLocal, page := pullAll(t, env, tablet.Access)
	tabletLocal = liveOnly(tabletLocal)
	tabletCursor := page.Cursor

	// The phone's offline work, its clock 60 days and more behind the
	// server's when it syncs: a call every 5 minutes over the 17 days
	// before its last pull, some edited or deleted soon after, and edits of
	// its team's accounts (phone and city) that a teammate edits too, later.
	type wantVisit struct {
		notes   string
		deleted bool
	}
	visits := map[uuid.UUID]*wantVisit{}
	var order []uuid.UUID
	recent := func() uuid.UUID { // one of the phone's last 20 calls, not deleted
		for {
			if id := order[max(0, len(order)-1-rng.IntN(20))]; !visits[id].deleted {
				return id
			}
		}
	}
	edited := d.north[:5]
	firstCall := start.Add(-time.Duration(longOfflineMutations) * 5 * time.Minute)
	pending := make([]mutation, 0, longOfflineMutations)
	for i := range longOfflineMutations {
		at := firstCall.Add(time.Duration(i) * 5 * time.Minute)
		ms := at.Add(time.Minute).UnixMilli()
		var m mutation
		switch {
		case i%50 == 49:
			id := recent()
			visits[id].deleted = true
			m = deleteOf("visits", id, ms)
		case i%10 == 9:
			id := recent()
			notes := fmt.Sprintf("edited offline %d", i)
			visits[id].notes = notes
			m = visitUpsert(id, ms, map[string]any{"notes": notes})
		case i%250 == 7:
			acc := edited[(i/250)%len(edited)]
			m = upsertOf("accounts", acc, ms, map[string]any{"phone": fmt.Sprintf("+1 555 %04d", i), "city": fmt.Sprintf("Offline City %d", i)})
		default:
			id := uuid.New()
			notes := fmt.Sprintf("offline call %d", i)
			outcome := "meeting"
			if i%4 == 0 {
				outcome = "order"
			}
			visits[id] = &wantVisit{notes: notes}
			order = append(order, id)
			m = newVisit(id, d.north[i%len(d.north)], ms, map[string]any{"kind": "unscheduled", "status": "completed", "outcome": outcome,
				"started_at": at.Format(time.RFC3339), "notes": notes})
		}
		m.Seq = int64(i + 1)
		pending = append(pending, m)
	}
	// The cities the phone wrote last; nobody else writes them.
	wantCity := map[uuid.UUID]string{}
	for _, m := range pending {
		if m.Entity == "accounts" {
			id, _ := uuid.Parse(m.ID)
			wantCity[id] = m.Fields["city"].(string)
		}
	}

	// Meanwhile, 60 days of the others' work: rep2 and rep4 (the other
	// team) log calls every few days, rep3's tablet logs and deletes some,
	// and on day 30 rep2 updates the phone numbers of the accounts the
	// phone edited.
	others := []*device{newDevice(env, "rep2@demo.test"), newDevice(env, "rep4@demo.test"), tablet}
	accountsOf := [][]uuid.UUID{d.north, d.south, d.north}
	wantPhone := map[uuid.UUID]string{}
	var tabletVisits []uuid.UUID
	for day := 1; day <= 60; day++ {
		env.Clock.Advance(24 * time.Hour)
		now := env.Clock.Now()
		for _, dev := range others {
			dev.relogin()
		}
		if day == 30 {
			var muts []mutation
			for i, acc := range edited {
				wantPhone[acc] = fmt.Sprintf("+1 555 9%03d", i)
				muts = append(muts, upsertOf("accounts", acc, now.UnixMilli(), map[string]any{"phone": wantPhone[acc]}))
			}
			others[0].push(t, muts...)
		}
		if day%longOfflineEvery != 0 {
			continue
		}
		for o, dev := range others {
			muts := make([]mutation, longOfflineOthersBatch)
			for i := range muts {
				id := uuid.New()
				if dev == tablet {
					tabletVisits = append(tabletVisits, id)
				}
				muts[i] = newVisit(id, accountsOf[o][i%len(accountsOf[o])], now.UnixMilli()+int64(i), map[string]any{"kind": "unscheduled", "status": "completed",
					"outcome": "meeting", "started_at": now.Add(-time.Duration(i+1) * time.Minute).Format(time.RFC3339), "notes": fmt.Sprintf("day %d call %d", day, i)})
			}
			if dev == tablet && len(tabletVisits) > longOfflineOthersBatch {
				// A delete: a tombstone the drawer phone must learn of.
				muts = append(muts, deleteOf("visits", tabletVisits[0], now.UnixMilli()+int64(len(muts))))
				tabletVisits = tabletVisits[1:]
			}
			for _, r := range dev.push(t, muts...).Results {
				if r.Status != "applied" {
					t.Fatalf("day %d: %s's mutation %d: %s %+v", day, dev.email, r.Seq, r.Status, r.Error)
				}
			}
		}
		if day%(2*longOfflineEvery) == 0 {
			page = pullInto(t, env, tablet.Access, tabletCursor, tabletLocal)
			tabletCursor = page.Cursor
		}
	}

	// The phone syncs: it signs in again (its refresh token lapsed after
	// 30 days), pushes in batches of the server's largest size, then pulls
	// from its old cursor.
	phone.relogin()
	var allocs []uint64
	var retainedTotal int64
	for from := 0; from < len(pending); from += longOfflineBatch {
		batch := pending[from:min(from+longOfflineBatch, len(pending))]
		pr, alloc, retained := pushMeasured(t, env, phone.Access, batch)
		allocs = append(allocs, alloc)
		retainedTotal += retained
		t.Logf("push of %d (seq %d–%d): %.1f MB allocated (%.1f KB a mutation), live heap %+.1f MB",
			len(batch), batch[0].Seq, batch[len(batch)-1].Seq, float64(alloc)/1e6, float64(alloc)/float64(len(batch))/1e3, float64(retained)/1e6)
		if pr.LastSeq != batch[len(batch)-1].Seq || len(pr.Results) != len(batch) {
			t.Fatalf("push up to seq %d: last_seq %d, %d results", batch[len(batch)-1].Seq, pr.LastSeq, len(pr.Results))
		}
		for i, r := range pr.Results {
			m := batch[i]
			want := "applied"
			if m.Entity == "accounts" && wantPhone[uuid.MustParse(m.ID)] != "" {
				want = "merged" // the phone number lost to rep2's later one
			}
			if r.Status != want {
				t.Errorf("seq %d (%s %s): %s %+v %v, want %s", r.Seq, m.Op, m.Entity, r.Status, r.Error, conflictStrings(r.Conflicts), want)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		if alloc > longOfflineAllocPerMutation*uint64(len(batch)) {
			t.Errorf("push of %d allocated %.1f MB, over the bound of %.1f MB (%d KiB a mutation)",
				len(batch), float64(alloc)/1e6, float64(longOfflineAllocPerMutation*uint64(len(batch)))/1e6, longOfflineAllocPerMutation>>10)
		}
	}
	if n := len(allocs); n > 2 && allocs[n-1] > allocs[0]*3/2 && allocs[n-2] > allocs[0]*3/2 {
		// Allocation that grows with what the device already stored means
		// a push reads the device's records wholesale.
		t.Errorf("the last pushes allocated %.1f and %.1f MB, over 1.5× the first's %.1f MB", float64(allocs[n-2])/1e6, float64(allocs[n-1])/1e6, float64(allocs[0])/1e6)
	}
	if retainedTotal > longOfflineRetainedBytes {
		t.Errorf("the live heap grew %.1f MB over the pushes, over the bound of %d MiB", float64(retainedTotal)/1e6, longOfflineRetainedBytes>>20)
	}

	page = pullInto(t, env, phone.Access, phoneCursor, local)
	if page.Reset {
		t.Fatal("the phone's 60-day-old cursor was reset; the retention is 90 days")
	}
	if page.LastSeq != int64(len(pending)) {
		t.Errorf("last_seq %d, want %d", page.LastSeq, len(pending))
	}
	full, _ := pullAll(t, env, newDevice(env, "rep1@demo.test").Access)
	sameReplica(t, "the phone after 60 days offline", local, liveOnly(full))
	nVisits, nLive := 0, 0
	for _, c := range local {
		if c.Entity == "visits" {
			nVisits++
		}
	}
	for id, w := range visits {
		c, ok := local[key("visits", id)]
		switch {
		case w.deleted && ok:
			t.Errorf("visit %s deleted offline is still there", id)
		case w.deleted:
		case !ok:
			t.Errorf("visit %s is missing", id)
		case c.str("notes") != w.notes:
			t.Errorf("visit %s: notes %q, want %q", id, c.str("notes"), w.notes)
		default:
			nLive++
		}
	}
	if nVisits != nLive {
		t.Errorf("the phone holds %d visits, want its own %d", nVisits, nLive)
	}
	for _, acc := range edited {
		c := local.live(t, "accounts", acc)
		if c.str("phone") != wantPhone[acc] || c.str("city") != wantCity[acc] {
			t.Errorf("account %s: phone %q, city %q; want %q (rep2's, later) and %q (the phone's)", acc, c.str("phone"), c.str("city"), wantPhone[acc], wantCity[acc])
		}
	}

	// The tablet catches up. Sixty days on, the deletes of the first 30
	// days are past the retention and purged. The drawer phone, whose
	// cursor predates them, is reset and resyncs from scratch — over many
	// pages, most below the purged positions — while the tablet, whose
	// cursor lies above them, carries on.
	if page = pullInto(t, env, tablet.Access, tabletCursor, tabletLocal); page.Reset {
		t.Fatal("the tablet was reset before any purge")
	}
	tabletCursor = page.Cursor
	env.Clock.Advance(tombstoneRetention - 30*24*time.Hour)
	drawer.relogin()
	tablet.relogin()
	purger := engine.New(env.DB.Feed(), sales.Entities(), env.Clock.Now, nil)
	n, err := purger.PurgeTombstones(ctx, phone.orgID(t, d), env.Clock.Now().Add(-tombstoneRetention))
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("nothing was purged: the drawer phone would not be reset")
	}
	page = pullPage(t, env, drawer.Access, drawerCursor, 500)
	if !page.Reset || len(page.Changes) != 0 {
		t.Fatalf("the drawer phone's pull: reset %v, %d changes; want a reset", page.Reset, len(page.Changes))
	}
	resynced := replica{}
	if page = pullInto(t, env, drawer.Access, "", resynced); page.Reset {
		t.Fatal("a pull from scratch answered reset")
	}
	if page = pullInto(t, env, tablet.Access, tabletCursor, tabletLocal); page.Reset {
		t.Fatal("the tablet, which pulled all along, was reset")
	}
	sameReplica(t, "the drawer phone after its reset", resynced, tabletLocal)
	for _, id := range tabletVisits {
		resynced.live(t, "visits", id)
	}
	t.Logf("%d mutations in %d pushes; the phone holds %d records, the drawer phone %d", len(pending), len(allocs), len(local), len(resynced))
}

// relogin signs the device in again, as the app does once its refresh
// token has lapsed: same device, new session.
func (d *device) relogin() {
	d.env.T.Helper()
	d.Session = d.env.LoginDevice(d.email, d.DeviceID)
}

// tombstoneRetention is the server's default (--tombstone-retention).
const tombstoneRetention = 90 * 24 * time.Hour

// orgID is the device's organisation.
func (d *device) orgID(t *testing.T, demo *demoOrg) uuid.UUID {
	t.Helper()
	u, err := demo.env.DB.People().UserByEmail(context.Background(), strings.ToLower(d.email))
	if err != nil {
		t.Fatal(err)
	}
	return u.OrgID
}

// The memory bounds of TestLongOffline, whatever its size.
const (
	// longOfflineAllocPerMutation bounds the bytes a push allocates, per
	// mutation: about twice what a push of 1,000 allocated when measured
	// (23 KB a mutation, December 2026), and the pull JSON each feed row
	// has kept since (migration 00015: encoded once, about 0.7 KB a
	// record, and copied by the driver; under -race a push of 250 went
	// from 48.0 to 49.4 KB a mutation). Reading the organisation's
	// records wholesale (some 11,000 by the last push) would add about
	// 50 KB a mutation; reading the device's own (up to 4,000) breaks
	// the check that the last pushes allocate no more than the first.
	longOfflineAllocPerMutation = 52 << 10
	// longOfflineRetainedBytes bounds the live heap's growth over all the
	// phone's pushes (measured: none).
	longOfflineRetainedBytes = 16 << 20
)
