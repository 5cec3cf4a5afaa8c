package engine_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// snapshot is a replica: every live record's field values by key.
type snapshot map[engine.Key]map[string]any

// snapshotOf pulls everything p may see from the beginning.
func snapshotOf(f *synctest.Fixture, p models.Principal) snapshot {
	f.T.Helper()
	changes, _ := f.PullAll(p, "", 97)
	s := snapshot{}
	for _, c := range changes {
		s.apply(c)
	}
	return s
}

func (s snapshot) apply(c engine.Change) {
	k := engine.Key{Entity: c.Entity.Name, ID: c.Record.ID}
	if c.Record.Deleted {
		delete(s, k)
		return
	}
	vals := make(map[string]any, len(c.Record.Values))
	for name, v := range c.Record.Values {
		vals[name] = v
	}
	s[k] = vals
}

// keys returns the snapshot's keys of one entity in a stable order: by
// name where records have one (the seeded accounts' ids are random), then
// by id.
func (s snapshot) keys(entity string) []engine.Key {
	var out []engine.Key
	for k := range s {
		if k.Entity == entity {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		ni, _ := s[out[i]]["name"].(string)
		nj, _ := s[out[j]]["name"].(string)
		if ni != nj {
			return ni < nj
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out
}

// diffSnapshots describes, field by field, how got differs from want.
func diffSnapshots(got, want snapshot) []string {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s %s: missing", k.Entity, k.ID))
			continue
		}
		for _, name := range unionKeys(g, w) {
			if !reflect.DeepEqual(g[name], w[name]) {
				diffs = append(diffs, fmt.Sprintf("%s %s .%s: got %#v, want %#v", k.Entity, k.ID, name, g[name], w[name]))
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s %s: present, want absent", k.Entity, k.ID))
		}
	}
	sort.Strings(diffs)
	return diffs
}

func unionKeys(a, b map[string]any) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]any{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// simMutation is a mutation as a simulated device made it, with the values
// the server will parse from it.
type simMutation struct {
	dev  int
	m    engine.Mutation
	vals map[string]any // parsed values: string, int64, uuid.UUID
}

// simDevice is a phone: a local replica, a queue of mutations not yet
// acknowledged, a hybrid logical clock, and its pull cursor.
type simDevice struct {
	name    string
	p       models.Principal
	offset  time.Duration // how far its wall clock is from the server's
	clock   engine.HLC
	seq     int64
	queue   []simMutation
	cursor  string
	replica snapshot
	// repID is the rep a visit created on this device belongs to.
	repID uuid.UUID
}

// stamp returns the next HLC stamp: the wall clock when it moved past the
// last stamp, else the last stamp's time with the counter bumped.
func (d *simDevice) stamp(serverNow time.Time) engine.HLC {
	wall := serverNow.Add(d.offset).UnixMilli()
	if wall > d.clock.MS {
		d.clock = engine.HLC{MS: wall}
	} else {
		d.clock.Counter++
	}
	return engine.HLC{MS: d.clock.MS, Counter: d.clock.Counter, Device: d.p.DeviceID.String()}
}

// dropAcked removes the queued mutations the server has processed.
func (d *simDevice) dropAcked(lastSeq int64) {
	i := 0
	for i < len(d.queue) && d.queue[i].m.Seq <= lastSeq {
		i++
	}
	d.queue = d.queue[i:]
}

// sim is one randomized run.
type sim struct {
	t    *testing.T
	f    *synctest.Fixture
	rng  *rand.Rand
	devs []*simDevice
	// accepted lists the mutations the server applied or merged, in the
	// order it processed them; processed marks every (device, seq) it
	// processed, rejections included.
	accepted  []simMutation
	processed map[string]bool
	creator   map[engine.Key]uuid.UUID // rep a created visit must belong to
	stats     map[string]int
	nextName  int
}

// uuid returns a version 4 UUID drawn from the run's seeded generator, so
// that a seed replays the same run (ids decide tie-breaks and orders).
func (s *sim) uuid() uuid.UUID {
	var id uuid.UUID
	for i := 0; i < 16; i += 8 {
		binary.LittleEndian.PutUint64(id[i:], s.rng.Uint64())
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

func devSeq(dev int, seq int64) string { return strconv.Itoa(dev) + "/" + strconv.FormatInt(seq, 10) }

// TestConvergence simulates one rep with three phones and their manager
// with one, editing offline, pushing over a network that loses responses,
// and pulling in small pages. At the end every replica must equal the
// server, and every field must hold the value of the accepted write with
// the greatest (HLC, device) — computed here from the log of accepted
// mutations, independently of the engine's merge code.
//
// FIELDSYNC_SIM_SEED=n runs only seed n. A seed replays exactly on SQLite;
// on PostgreSQL what a pull returns mid-run also depends on the other
// transactions then running in the cluster, so a seed replays only roughly
// there (the end state must converge all the same).
func TestConvergence(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if s := os.Getenv("FIELDSYNC_SIM_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FIELDSYNC_SIM_SEED=%q: %v", s, err)
		}
		seeds = []uint64{n}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			t.Logf("seed %d (rerun with FIELDSYNC_SIM_SEED=%d)", seed, seed)
			runSim(t, seed, 140)
		})
	}
}

func runSim(t *testing.T, seed uint64, steps int) {
	f := synctest.New(t, storetest.Options{})
	s := &sim{t: t, f: f, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		processed: map[string]bool{}, creator: map[engine.Key]uuid.UUID{}, stats: map[string]int{}}
	rep := f.Principal("rep1@demo.test")
	offsets := func() time.Duration { return time.Duration(s.rng.IntN(13)-6) * 500 * time.Millisecond }
	for i := range 3 {
		p := rep
		p.DeviceID, p.SessionID = s.uuid(), s.uuid()
		s.devs = append(s.devs, &simDevice{name: fmt.Sprintf("rep1/phone%d", i), p: p, offset: offsets(), replica: snapshot{}, repID: rep.UserID})
	}
	mgr := f.Principal("manager1@demo.test")
	mgr.DeviceID, mgr.SessionID = s.uuid(), s.uuid()
	s.devs = append(s.devs, &simDevice{name: "manager1/phone", p: mgr, offset: offsets(), replica: snapshot{}, repID: rep.UserID})
	admin := f.Principal("admin@demo.test")
	seeded := snapshotOf(f, admin)

	// Every device starts with a full pull.
	for _, d := range s.devs {
		s.pull(d, 1000, 100)
	}
	for range steps {
		f.Advance(time.Duration(s.rng.IntN(300)) * time.Millisecond)
		d := s.devs[s.rng.IntN(len(s.devs))]
		switch r := s.rng.IntN(100); {
		case r < 50:
			s.edit(d)
		case r < 72:
			s.push(d, s.rng.IntN(100) < 25)
		case r < 97:
			s.pull(d, 1+s.rng.IntN(4), 2+s.rng.IntN(7))
		default:
			f.Advance(time.Duration(1+s.rng.IntN(5)) * time.Second)
		}
	}

	// Quiesce: everyone pushes everything, then everyone pulls to the end,
	// until a round changes nothing.
	for round := 0; ; round++ {
		if round == 5 {
			t.Fatalf("no quiescence after %d rounds", round)
		}
		busy := false
		for _, d := range s.devs {
			for len(d.queue) > 0 {
				busy = true
				s.push(d, false)
			}
		}
		for _, d := range s.devs {
			if s.pull(d, 1<<30, 2+s.rng.IntN(7)) > 0 {
				busy = true
			}
		}
		if !busy {
			break
		}
	}
	t.Logf("stats: %v", s.stats)

	// Every replica equals what its user sees from scratch.
	for _, d := range s.devs {
		fresh := d.p
		fresh.DeviceID = uuid.New()
		want := snapshotOf(f, fresh)
		if diffs := diffSnapshots(d.replica, want); len(diffs) > 0 {
			t.Errorf("%s: replica differs from the server in %d places:\n%s", d.name, len(diffs), joinFirst(diffs, 20))
		}
	}

	// The server holds, for every field, the accepted write with the
	// greatest stamp.
	server := clientFields(snapshotOf(f, admin))
	want := clientFields(s.expected(seeded))
	if diffs := diffSnapshots(server, want); len(diffs) > 0 {
		t.Errorf("server state differs from the last-writer-wins model in %d places:\n%s", len(diffs), joinFirst(diffs, 20))
		t.Logf("accepted writes of the records that differ:\n%s", s.history(diffs))
	}
}

// history lists the accepted mutations of the records named in diffs.
func (s *sim) history(diffs []string) string {
	out := ""
	for _, sm := range s.accepted {
		for _, d := range diffs {
			if strings.Contains(d, sm.m.ID.String()) {
				out += fmt.Sprintf("  %s %s seq=%d %s %s hlc=%d:%d:%s %v\n", sm.m.Entity, sm.m.ID, sm.m.Seq, s.devs[sm.dev].name,
					sm.m.Op, sm.m.HLC.MS, sm.m.HLC.Counter, s.devs[sm.dev].p.DeviceID, sm.vals)
				break
			}
		}
	}
	return out
}

func joinFirst(lines []string, n int) string {
	out := ""
	for i, l := range lines {
		if i == n {
			return out + fmt.Sprintf("  … and %d more\n", len(lines)-n)
		}
		out += "  " + l + "\n"
	}
	return out
}

var (
	simOutcomes      = []string{"none", "no_answer", "not_interested", "follow_up", "meeting", "demo", "order"}
	simVisitStatus   = []string{"planned", "in_progress", "completed", "cancelled"}
	simAccountStatus = []string{"prospect", "customer"}
)

// randomVisitFields returns a random non-empty subset of the visit fields
// devices edit, with random values from small domains, so that equal and
// different concurrent values both occur.
func (s *sim) randomVisitFields() map[string]any {
	vals := map[string]any{}
	for len(vals) == 0 {
		if s.rng.IntN(2) == 0 {
			vals["notes"] = fmt.Sprintf("note %d", s.rng.IntN(6))
		}
		if s.rng.IntN(3) == 0 {
			vals["outcome"] = simOutcomes[s.rng.IntN(len(simOutcomes))]
		}
		if s.rng.IntN(3) == 0 {
			vals["referrals"] = int64(s.rng.IntN(4))
		}
		if s.rng.IntN(3) == 0 {
			vals["status"] = simVisitStatus[s.rng.IntN(len(simVisitStatus))]
		}
	}
	return vals
}

func (s *sim) randomAccountFields() map[string]any {
	vals := map[string]any{}
	for len(vals) == 0 {
		if s.rng.IntN(2) == 0 {
			vals["notes"] = fmt.Sprintf("account note %d", s.rng.IntN(5))
		}
		if s.rng.IntN(3) == 0 {
			vals["phone"] = fmt.Sprintf("+1 612 555 %04d", s.rng.IntN(3))
		}
		if s.rng.IntN(3) == 0 {
			vals["status"] = simAccountStatus[s.rng.IntN(2)]
		}
	}
	return vals
}

// edit makes one local change on d and queues it.
func (s *sim) edit(d *simDevice) {
	visits, accounts := d.replica.keys("visits"), d.replica.keys("accounts")
	r := s.rng.IntN(100)
	switch {
	case len(accounts) > 0 && (r < 20 || len(visits) == 0):
		vals := s.randomVisitFields()
		vals["account_id"] = accounts[s.rng.IntN(len(accounts))].ID
		if d.p.Role == models.RoleManager && s.rng.IntN(5) > 0 {
			vals["rep_id"] = d.repID // a manager logging a call for their rep
		}
		k := engine.Key{Entity: "visits", ID: s.uuid()}
		s.creator[k] = d.p.UserID
		if id, ok := vals["rep_id"].(uuid.UUID); ok {
			s.creator[k] = id
		}
		s.queue(d, k, engine.OpUpsert, vals)
		s.stats["create visit"]++
	case r < 65:
		k := visits[s.rng.IntN(len(visits))]
		s.queue(d, k, engine.OpUpsert, s.randomVisitFields())
		s.stats["update visit"]++
	case r < 88 && len(accounts) > 0:
		k := accounts[s.rng.IntN(len(accounts))]
		s.queue(d, k, engine.OpUpsert, s.randomAccountFields())
		s.stats["update account"]++
	case r < 93:
		s.nextName++
		vals := s.randomAccountFields()
		vals["name"] = fmt.Sprintf("Sim Prospect %d %s", s.nextName, d.name)
		s.queue(d, engine.Key{Entity: "accounts", ID: s.uuid()}, engine.OpUpsert, vals)
		s.stats["create account"]++
	default:
		k := visits[s.rng.IntN(len(visits))]
		s.queue(d, k, engine.OpDelete, nil)
		s.stats["delete visit"]++
	}
}

// queue stamps a mutation, applies it to the local replica and queues it.
func (s *sim) queue(d *simDevice, k engine.Key, op string, vals map[string]any) {
	d.seq++
	m := engine.Mutation{Seq: d.seq, Entity: k.Entity, ID: k.ID, Op: op, HLC: d.stamp(s.f.Now())}
	if op == engine.OpUpsert {
		m.Fields = synctest.RawFields(s.t, vals)
		rec := d.replica[k]
		if rec == nil {
			rec = map[string]any{}
			d.replica[k] = rec
		}
		for name, v := range vals {
			rec[name] = v
		}
	} else {
		delete(d.replica, k)
	}
	d.queue = append(d.queue, simMutation{dev: s.devIndex(d), m: m, vals: vals})
}

func (s *sim) devIndex(d *simDevice) int {
	for i, x := range s.devs {
		if x == d {
			return i
		}
	}
	panic("unknown device")
}

// push sends the front of d's queue. When lost, the device never sees the
// response and keeps its queue, to send it again later.
func (s *sim) push(d *simDevice, lost bool) {
	if len(d.queue) == 0 {
		return
	}
	n := min(len(d.queue), 1+s.rng.IntN(8))
	if !lost && s.rng.IntN(4) == 0 {
		n = len(d.queue)
	}
	batch := d.queue[:n]
	muts := make([]engine.Mutation, n)
	for i, sm := range batch {
		muts[i] = sm.m
	}
	res, err := s.f.En.Push(context.Background(), d.p, muts)
	if err != nil {
		s.t.Fatalf("%s: push: %v", d.name, err)
	}
	if res.LastSeq < muts[n-1].Seq {
		s.t.Fatalf("%s: push of seqs %d..%d: last_seq %d", d.name, muts[0].Seq, muts[n-1].Seq, res.LastSeq)
	}
	for i, r := range res.Results {
		sm := batch[i]
		key := devSeq(sm.dev, sm.m.Seq)
		s.stats[r.Status]++
		switch r.Status {
		case engine.StatusApplied, engine.StatusMerged:
			if s.processed[key] {
				s.t.Fatalf("%s: seq %d applied twice", d.name, sm.m.Seq)
			}
			s.processed[key] = true
			s.accepted = append(s.accepted, sm)
		case engine.StatusDuplicate:
			if !s.processed[key] {
				s.t.Fatalf("%s: seq %d answered duplicate but was never processed: it is lost", d.name, sm.m.Seq)
			}
		default:
			s.t.Fatalf("%s: seq %d %s %s: %s %+v", d.name, sm.m.Seq, sm.m.Op, sm.m.Entity, r.Status, r.Error)
		}
	}
	if lost {
		s.stats["lost response"]++
		return
	}
	d.dropAcked(res.LastSeq)
}

// pull reads up to pages pages of at most limit changes and applies them,
// and learns the device's last processed seq (a lost push response is
// acknowledged this way). It returns how many changes arrived.
func (s *sim) pull(d *simDevice, pages, limit int) int {
	n := 0
	var prev engine.Position
	if d.cursor != "" {
		var ok bool
		if prev, ok = engine.DecodeCursor(d.p, d.cursor); !ok {
			s.t.Fatalf("%s: own cursor does not decode", d.name)
		}
	}
	for range pages {
		res, err := s.f.En.Pull(context.Background(), d.p, d.cursor, limit)
		if err != nil {
			s.t.Fatalf("%s: pull: %v", d.name, err)
		}
		if res.Reset {
			s.t.Fatalf("%s: unexpected reset", d.name)
		}
		if len(res.Changes) > limit {
			s.t.Fatalf("%s: pull returned %d changes, limit %d", d.name, len(res.Changes), limit)
		}
		for _, c := range res.Changes {
			if !positionAfter(c.Pos, prev) {
				s.t.Fatalf("%s: change at %+v does not follow %+v", d.name, c.Pos, prev)
			}
			prev = c.Pos
			d.replica.apply(c)
			n++
		}
		d.cursor = res.Cursor
		d.dropAcked(res.LastSeq)
		if !res.HasMore {
			break
		}
	}
	s.stats["pulled"] += n
	return n
}

func positionAfter(a, b engine.Position) bool {
	return a.Txid > b.Txid || (a.Txid == b.Txid && a.Version > b.Version)
}

// clientFields keeps the accounts and visits (what the devices edit) and,
// of each, the fields clients write (the ones the last-writer-wins model
// predicts) and the ownership fields rep_id and team_id. Values the server
// derives (duplicate flags, check-in verification, …) and records its
// rules write follow rules of their own and are left out.
func clientFields(s snapshot) snapshot {
	keep := map[string]map[string]bool{}
	for _, e := range sales.Entities() {
		if e.Name != "accounts" && e.Name != "visits" {
			continue
		}
		keep[e.Name] = map[string]bool{"rep_id": true, "team_id": true}
		for _, f := range e.Fields {
			if !f.Hidden && f.Access != engine.ServerOwned {
				keep[e.Name][f.Name] = true
			}
		}
	}
	out := snapshot{}
	for k, vals := range s {
		if keep[k.Entity] == nil {
			continue
		}
		kept := map[string]any{}
		for name, v := range vals {
			if keep[k.Entity][name] {
				kept[name] = v
			}
		}
		out[k] = kept
	}
	return out
}

// fieldWrite is the winning write of a field so far.
type fieldWrite struct {
	hlc engine.HLC
	val any
}

// expected computes the server state the accepted mutations must produce,
// by the rules of DESIGN.md and nothing of the engine: a deleted record is
// gone whatever was written to it; otherwise each field holds the value of
// the accepted write with the greatest (HLC, device) — the record's create
// counting as a write of every defaulted field — and a field nobody wrote
// keeps its seeded value (or null).
func (s *sim) expected(seeded snapshot) snapshot {
	ents := map[string]*engine.Entity{}
	for _, e := range sales.Entities() {
		ents[e.Name] = e
	}
	writes := map[engine.Key]map[string]fieldWrite{}
	live := map[engine.Key]bool{}
	deleted := map[engine.Key]bool{}
	for k := range seeded {
		live[k] = true
	}
	for _, sm := range s.accepted {
		k := engine.Key{Entity: sm.m.Entity, ID: sm.m.ID}
		h := sm.m.HLC
		h.Device = s.devs[sm.dev].p.DeviceID.String()
		if sm.m.Op == engine.OpDelete {
			deleted[k] = true
			continue
		}
		w := writes[k]
		if w == nil {
			w = map[string]fieldWrite{}
			writes[k] = w
		}
		if !live[k] {
			live[k] = true // the first accepted upsert creates the record
			for _, f := range ents[k.Entity].Fields {
				if f.Default != nil {
					w[f.Name] = fieldWrite{hlc: h, val: f.Default}
				}
			}
		}
		for name, v := range sm.vals {
			// >= : the create's own values replace its defaults.
			if cur, ok := w[name]; !ok || h.Compare(cur.hlc) >= 0 {
				w[name] = fieldWrite{hlc: h, val: v}
			}
		}
	}
	rep, _ := s.f.DB.People().UserByEmail(context.Background(), "rep1@demo.test")
	out := snapshot{}
	for k := range live {
		if deleted[k] {
			continue
		}
		vals := map[string]any{}
		for name, v := range seeded[k] {
			vals[name] = v
		}
		for name, w := range writes[k] {
			vals[name] = w.val
		}
		// Server-owned values of new records: visits belong to the rep
		// they were logged for and to the rep's team; accounts to the
		// creator's team.
		if _, ok := seeded[k]; !ok {
			vals["team_id"] = *rep.TeamID
			if k.Entity == "visits" {
				vals["rep_id"] = s.creator[k]
			}
		}
		out[k] = vals
	}
	return out
}
