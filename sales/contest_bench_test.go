package sales_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
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

// The contest benchmarks run a contest of 50 reps in 5 teams over 40 days
// and 100,000 visits (FIELDSYNC_BENCH_VISITS=n makes it n, for a quick
// look). Each benchmark builds its own organisation before its timer
// starts; that takes a while, and only happens under -bench.
//
// Seeded visits are consistent with the verification rules (check-in at
// the account, a new account every 12 minutes from a rotation of 40, so no
// account comes back within the cooldown), so a push never finds old
// verdicts to correct and measures only what the push itself costs.

const (
	cbTeams       = 5
	cbRepsPerTeam = 10
	cbAccounts    = 40 // per team
	cbDays        = 40
	cbPerDay      = 50 // visits per rep per day, one every 12 minutes from 08:00
)

var cbNow = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// cbStart is the contest's first day.
var cbStart = time.Date(2026, 1, 21, 0, 0, 0, 0, time.UTC)

type contestBench struct {
	db       *store.DB
	en       *engine.Engine
	ctx      context.Context
	admin    models.Principal
	reps     []models.Principal // each on its own device
	seqs     []int64
	accounts [][]*engine.Record // by team
	contest  *engine.Record
	visits   int
	scored   time.Duration // the contest's start: its first full scoring
	pushed   int           // pushes made by the incremental benchmark
}

func cbVisitCount(b *testing.B) int {
	n := cbTeams * cbRepsPerTeam * cbDays * cbPerDay
	if s := os.Getenv("FIELDSYNC_BENCH_VISITS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 || v > n {
			b.Fatalf("FIELDSYNC_BENCH_VISITS=%q: want 1…%d", s, n)
		}
		n = v
	}
	return n
}

// newContestBench builds the organisation, seeds the visits in chunks
// straight into the store, and creates the contest, which starts at once
// and scores every visit (reported as initial-score-s).
func newContestBench(b *testing.B) *contestBench {
	b.Helper()
	began := time.Now()
	now := func() time.Time { return cbNow }
	cb := &contestBench{db: storetest.MustOpenDBWith(b, storetest.Options{Now: now}), ctx: context.Background()}
	cb.en = engine.New(cb.db.Feed(), sales.Entities(), now, nil)
	org := models.Org{ID: uuid.New(), Name: "Bench Co", CreatedAt: cbNow}
	user := func(email string, role models.Role, team *uuid.UUID) models.User {
		return models.User{OrgID: org.ID, ID: uuid.New(), Email: email, Name: email, Role: role, TeamID: team, Active: true,
			TimeZone: "UTC", PasswordHash: "x", CreatedAt: cbNow, UpdatedAt: cbNow}
	}
	admin := user("admin@bench.test", models.RoleAdmin, nil)
	if err := cb.db.People().CreateOrg(cb.ctx, org, admin); err != nil {
		b.Fatal(err)
	}
	cb.admin = models.Principal{OrgID: org.ID, UserID: admin.ID, Role: admin.Role, DeviceID: uuid.New()}
	var accounts []*engine.Record
	for t := 0; t < cbTeams; t++ {
		mgr := user(fmt.Sprintf("manager%d@bench.test", t), models.RoleManager, nil)
		if err := cb.db.People().CreateUser(cb.ctx, mgr); err != nil {
			b.Fatal(err)
		}
		team := models.Team{OrgID: org.ID, ID: uuid.New(), Name: fmt.Sprintf("Team %d", t), ManagerID: &mgr.ID, CreatedAt: cbNow}
		if err := cb.db.People().CreateTeam(cb.ctx, team); err != nil {
			b.Fatal(err)
		}
		for r := 0; r < cbRepsPerTeam; r++ {
			rep := user(fmt.Sprintf("rep%d.%d@bench.test", t, r), models.RoleRep, &team.ID)
			if err := cb.db.People().CreateUser(cb.ctx, rep); err != nil {
				b.Fatal(err)
			}
			cb.reps = append(cb.reps, models.Principal{OrgID: org.ID, UserID: rep.ID, Role: rep.Role, TeamID: rep.TeamID, DeviceID: uuid.New()})
		}
		// Accounts on a ring of about 4 km around the team's town.
		var teamAccts []*engine.Record
		lat0, lng0 := 40+float64(t), -90.0
		for a := 0; a < cbAccounts; a++ {
			angle := float64(a) * 2 * math.Pi / cbAccounts
			rec := &engine.Record{ID: uuid.New(), CreatedAt: cbNow, UpdatedAt: cbNow, Clocks: map[string]engine.FieldClock{},
				Values: map[string]any{"name": fmt.Sprintf("Account %d.%d", t, a), "name_key": fmt.Sprintf("account %d %d", t, a),
					"team_id": team.ID, "status": "customer", "lat": lat0 + 0.036*math.Cos(angle), "lng": lng0 + 0.047*math.Sin(angle)}}
			teamAccts = append(teamAccts, rec)
		}
		cb.accounts = append(cb.accounts, teamAccts)
		accounts = append(accounts, teamAccts...)
	}
	cb.seqs = make([]int64, len(cb.reps))
	if err := cb.db.Feed().SeedRecords(cb.ctx, org.ID, sales.Accounts(), accounts); err != nil {
		b.Fatal(err)
	}

	// The visits: rep r, day d, slot k starts at 08:00 + 12k minutes on
	// account (r+k) mod 40 of the rep's team.
	cb.visits = cbVisitCount(b)
	visits := sales.Visits()
	chunk := make([]*engine.Record, 0, 5000)
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		if err := cb.db.Feed().SeedRecords(cb.ctx, org.ID, visits, chunk); err != nil {
			b.Fatal(err)
		}
		chunk = chunk[:0]
	}
	outcomes := []string{"none", "no_answer", "not_interested", "follow_up", "meeting", "demo", "order"}
	n := 0
	for d := 0; d < cbDays && n < cb.visits; d++ {
		for k := 0; k < cbPerDay && n < cb.visits; k++ {
			for r, rep := range cb.reps {
				if n == cb.visits {
					break
				}
				team := r / cbRepsPerTeam
				acct := cb.accounts[team][(r+k)%cbAccounts]
				start := cbStart.Add(time.Duration(d)*24*time.Hour + 8*time.Hour + time.Duration(12*k)*time.Minute)
				outcome := outcomes[(r+k+d)%len(outcomes)]
				v := &engine.Record{ID: uuid.New(), CreatedAt: cbNow, UpdatedAt: cbNow, Clocks: map[string]engine.FieldClock{},
					CreatedBy: rep.DeviceID, Values: map[string]any{
						"account_id": acct.ID, "kind": "unscheduled", "status": "completed", "outcome": outcome,
						"started_at": start, "ended_at": start.Add(10 * time.Minute), "referrals": int64(0),
						"check_in_lat": acct.Values["lat"], "check_in_lng": acct.Values["lng"], "check_in_accuracy_m": 12.0,
						"rep_id": rep.UserID, "team_id": *rep.TeamID, "verification": models.CheckInVerified, "check_in_distance_m": 0.0,
					}}
				if outcome == "order" {
					v.Values["order_value"] = int64(5000 + 100*((r*31+k*17+d)%500))
				}
				chunk = append(chunk, v)
				n++
				if len(chunk) == cap(chunk) {
					flush()
				}
			}
		}
	}
	flush()
	seeded := time.Since(began)

	began = time.Now()
	name, start, end := "Forty days", cbStart, cbStart.Add(cbDays*24*time.Hour)
	err := cb.en.Server(cb.ctx, cb.admin, func(c *engine.Context) error {
		r, err := sales.CreateContest(c, sales.ContestInput{Name: &name, StartsAt: &models.TimeOrDate{At: start}, EndsAt: &models.TimeOrDate{At: end}})
		cb.contest = r
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	cb.scored = time.Since(began)
	// Statistics, as autovacuum would gather them after a load this size:
	// without them PostgreSQL plans the first queries on empty tables.
	for _, table := range []string{"accounts", "visits", "activities", "ride_alongs", "contests", "score_entries", "standings", "notifications", "sync_changes"} {
		if err := cb.db.Gorm().Exec("ANALYZE " + table).Error; err != nil {
			b.Fatal(err)
		}
	}
	entries := cb.countEntries(b)
	b.Logf("%s: %d reps, %d visits seeded in %v; the contest started and wrote %d score entries in %v",
		cb.db.Dialect(), len(cb.reps), cb.visits, seeded.Round(time.Millisecond), entries, cb.scored.Round(time.Millisecond))
	return cb
}

// report adds the contest's size and first scoring to the results (after
// the loop: b.Loop's first call drops metrics reported before it).
func (cb *contestBench) report(b *testing.B) {
	b.ReportMetric(float64(cb.visits), "visits")
	b.ReportMetric(cb.scored.Seconds(), "initial-score-s")
}

func (cb *contestBench) countEntries(b *testing.B) int64 {
	var n int64
	if err := cb.db.Gorm().Raw(`SELECT COUNT(*) FROM score_entries WHERE org_id = ?`, cb.admin.OrgID.String()).Row().Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkContestRecompute rebuilds every score bucket of the contest
// (every rep, every day, every visit read), as a rules change does.
func BenchmarkContestRecompute(b *testing.B) {
	cb := newContestBench(b)
	before := cb.countEntries(b)
	for b.Loop() {
		err := cb.en.Server(cb.ctx, cb.admin, func(c *engine.Context) error {
			cur, err := c.Get("contests", cb.contest.ID)
			if err != nil {
				return err
			}
			return sales.RecomputeContest(c, cur)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if after := cb.countEntries(b); after != before {
		b.Errorf("recomputing an unchanged contest wrote %d score entries", after-before)
	}
	cb.report(b)
}

// BenchmarkIncrementalPush10Visits pushes 10 new visits of one rep into
// the running contest: their verification, the few rep-days they touch,
// the rep's standing and the contest's ranks — never the whole contest.
func BenchmarkIncrementalPush10Visits(b *testing.B) {
	cb := newContestBench(b)
	entries := cb.countEntries(b)
	for b.Loop() {
		r, day := cb.pushed%len(cb.reps), (cb.pushed/len(cb.reps))%cbDays
		cb.push10(b, r, day)
		cb.pushed++
	}
	b.StopTimer()
	// Every call scored at least its order (+10) and order value (+1.2);
	// its call points depend on what is left of the day's cap.
	if got := cb.countEntries(b) - entries; got < int64(20*cb.pushed) {
		b.Errorf("%d pushes of 10 calls wrote %d score entries, want at least %d", cb.pushed, got, 20*cb.pushed)
	}
	cb.report(b)
}

// push10 pushes, as rep r, ten calls on the evening of contest day d, on
// accounts the rep last saw that morning: verified, and outcome orders.
func (cb *contestBench) push10(b *testing.B, r, d int) {
	team := r / cbRepsPerTeam
	evening := cbStart.Add(time.Duration(d)*24*time.Hour + 19*time.Hour)
	muts := make([]engine.Mutation, 10)
	for j := range muts {
		acct := cb.accounts[team][(r+10+j)%cbAccounts]
		start := evening.Add(time.Duration(12*j) * time.Minute)
		cb.seqs[r]++
		muts[j] = engine.Mutation{Seq: cb.seqs[r], Entity: "visits", ID: uuid.New(), Op: engine.OpUpsert,
			HLC: engine.HLC{MS: cbNow.UnixMilli(), Counter: cb.seqs[r]}, Fields: synctest.RawFields(b, map[string]any{
				"account_id": acct.ID, "kind": "unscheduled", "status": "completed", "outcome": "order", "order_value": 120,
				"started_at": start, "ended_at": start.Add(10 * time.Minute),
				"check_in_lat": acct.Values["lat"], "check_in_lng": acct.Values["lng"], "check_in_accuracy_m": 12.0,
			})}
	}
	res, err := cb.en.Push(cb.ctx, cb.reps[r], muts)
	if err != nil {
		b.Fatal(err)
	}
	for _, x := range res.Results {
		if x.Status != engine.StatusApplied {
			b.Fatalf("push: %s %+v", x.Status, x.Error)
		}
	}
}
