package sales_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
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

// The field-sales domain (issue 4) driven through the engine: pushes as
// the seeded users, server work through Engine.Server, pulls to see what
// each user may see. Every test opens its own database (SQLite, or
// PostgreSQL when FIELDSYNC_TEST_DATABASE_URL is set).

func ptr[T any](v T) *T { return &v }

// dom is the demo organisation as the domain tests drive it.
type dom struct {
	*synctest.Fixture
	t     *testing.T
	ctx   context.Context
	org   uuid.UUID
	users map[string]models.Principal // admin, m1, m2, rep1 … rep6
	names map[uuid.UUID]string        // user id → short name
	seqs  map[uuid.UUID]int64         // last seq per device
	hlc   *int64                      // the last HLC counter handed out
	teams map[string]uuid.UUID        // North, South
	north []*engine.Record            // North's accounts by name
	south []*engine.Record
}

var domEmails = map[string]string{
	"admin": "admin@demo.test", "m1": "manager1@demo.test", "m2": "manager2@demo.test",
	"rep1": "rep1@demo.test", "rep2": "rep2@demo.test", "rep3": "rep3@demo.test",
	"rep4": "rep4@demo.test", "rep5": "rep5@demo.test", "rep6": "rep6@demo.test",
}

func newDom(t *testing.T) *dom {
	t.Helper()
	d := &dom{Fixture: synctest.New(t, storetest.Options{}), t: t, ctx: context.Background(),
		users: map[string]models.Principal{}, names: map[uuid.UUID]string{}, seqs: map[uuid.UUID]int64{}, hlc: new(int64), teams: map[string]uuid.UUID{}}
	for name, email := range domEmails {
		d.addUser(name, email)
	}
	d.org = d.users["admin"].OrgID
	d.teams["North"] = *d.users["rep1"].TeamID
	d.teams["South"] = *d.users["rep4"].TeamID
	d.north = d.accounts("North")
	d.south = d.accounts("South")
	return d
}

// sub is d for a subtest: its helpers fail t, not the parent test.
func (d *dom) sub(t *testing.T) *dom {
	c := *d
	c.t = t
	return &c
}

// addUser gives an existing user a principal on a new device.
func (d *dom) addUser(name, email string) models.Principal {
	p := d.Principal(email)
	d.users[name] = p
	d.names[p.UserID] = name
	return p
}

func (d *dom) id(name string) uuid.UUID { return d.users[name].UserID }

func (d *dom) accounts(team string) []*engine.Record {
	d.t.Helper()
	recs, err := d.En.Find(d.ctx, d.users["admin"], "accounts", map[string]any{"team_id": d.teams[team]})
	if err != nil {
		d.t.Fatalf("accounts of %s: %v", team, err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].StringValue("name") < recs[j].StringValue("name") })
	if len(recs) != 20 {
		d.t.Fatalf("%s has %d accounts, want 20", team, len(recs))
	}
	return recs
}

// mutation builders: push numbers and stamps them.

func upsertM(t testing.TB, entity string, id uuid.UUID, fields map[string]any) engine.Mutation {
	return engine.Mutation{Entity: entity, ID: id, Op: engine.OpUpsert, Fields: synctest.RawFields(t, fields)}
}

func deleteM(entity string, id uuid.UUID) engine.Mutation {
	return engine.Mutation{Entity: entity, ID: id, Op: engine.OpDelete}
}

// push pushes muts as who from their device, numbering them after the
// device's last seq and stamping them with the server's clock.
func (d *dom) push(who string, muts ...engine.Mutation) []engine.Result {
	d.t.Helper()
	p, ok := d.users[who]
	if !ok {
		d.t.Fatalf("no user %q", who)
	}
	for i := range muts {
		d.seqs[p.DeviceID]++
		*d.hlc++
		muts[i].Seq = d.seqs[p.DeviceID]
		muts[i].HLC = engine.HLC{MS: d.Now().UnixMilli(), Counter: *d.hlc}
	}
	if err := d.En.CheckBatch(engine.SchemaVersion, muts); err != nil {
		d.t.Fatalf("push as %s: %v", who, err)
	}
	res, err := d.En.Push(d.ctx, p, muts)
	if err != nil {
		d.t.Fatalf("push as %s: %v", who, err)
	}
	return res.Results
}

func (d *dom) pushOne(who string, m engine.Mutation) engine.Result {
	d.t.Helper()
	return d.push(who, m)[0]
}

// up pushes one upsert and requires it applied.
func (d *dom) up(who, entity string, id uuid.UUID, fields map[string]any) {
	d.t.Helper()
	wantResult(d.t, d.pushOne(who, upsertM(d.t, entity, id, fields)), "")
}

// create pushes a new record and returns its id, requiring it applied.
func (d *dom) create(who, entity string, fields map[string]any) uuid.UUID {
	d.t.Helper()
	id := uuid.New()
	d.up(who, entity, id, fields)
	return id
}

// wantResult requires r applied (or merged) when code is "", else rejected
// with that code.
func wantResult(t testing.TB, r engine.Result, code string) {
	t.Helper()
	switch {
	case code == "" && r.Status != engine.StatusApplied && r.Status != engine.StatusMerged:
		t.Fatalf("seq %d: %s %+v, want applied", r.Seq, r.Status, r.Error)
	case code != "" && (r.Status != engine.StatusRejected || r.Error == nil || r.Error.Code != code):
		t.Fatalf("seq %d: %s %+v, want rejected %s", r.Seq, r.Status, r.Error, code)
	}
}

// rec returns a live record as an admin sees it.
func (d *dom) rec(entity string, id uuid.UUID) *engine.Record {
	d.t.Helper()
	r, err := d.En.Get(d.ctx, d.users["admin"], entity, id)
	if err != nil {
		d.t.Fatalf("get %s %s: %v", entity, id, err)
	}
	return r
}

func (d *dom) find(entity string, where map[string]any) []*engine.Record {
	d.t.Helper()
	recs, err := d.En.Find(d.ctx, d.users["admin"], entity, where)
	if err != nil {
		d.t.Fatalf("find %s: %v", entity, err)
	}
	return recs
}

// server runs fn as a server unit of work acting as who ("" for the
// scheduler).
func (d *dom) server(who string, fn func(c *engine.Context) error) error {
	p := models.Principal{OrgID: d.org}
	if who != "" {
		p = d.users[who]
	}
	return d.En.Server(d.ctx, p, fn)
}

// tick runs the scheduled rules once, as the scheduler does.
func (d *dom) tick() {
	d.t.Helper()
	if err := d.server("", sales.Tick); err != nil {
		d.t.Fatalf("tick: %v", err)
	}
}

func (d *dom) createContest(who string, in sales.ContestInput) (*engine.Record, error) {
	var out *engine.Record
	err := d.server(who, func(c *engine.Context) error {
		r, err := sales.CreateContest(c, in)
		out = r
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (d *dom) mustContest(who string, in sales.ContestInput) uuid.UUID {
	d.t.Helper()
	r, err := d.createContest(who, in)
	if err != nil {
		d.t.Fatalf("create contest as %s: %v", who, err)
	}
	return r.ID
}

func (d *dom) updateContest(who string, id uuid.UUID, in sales.ContestInput) error {
	return d.server(who, func(c *engine.Context) error {
		_, err := sales.UpdateContest(c, id, in)
		return err
	})
}

// contestIn is an organisation-wide contest over [start, end) with rules.
func contestIn(name string, start, end time.Time, rules *models.ScoringRules) sales.ContestInput {
	return sales.ContestInput{Name: &name, StartsAt: &models.TimeOrDate{At: start}, EndsAt: &models.TimeOrDate{At: end}, Rules: rules}
}

// standings returns a contest's standings by short user name.
func (d *dom) standings(contest uuid.UUID) map[string]*engine.Record {
	d.t.Helper()
	out := map[string]*engine.Record{}
	for _, r := range d.find("standings", map[string]any{"contest_id": contest}) {
		out[d.names[*r.UUIDValue("rep_id")]] = r
	}
	return out
}

func num(r *engine.Record, field string) float64 {
	switch v := r.Values[field].(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	}
	return 0
}

// entries returns a rep's ledger in a contest, oldest first.
func (d *dom) entries(contest uuid.UUID, rep string) []*engine.Record {
	d.t.Helper()
	recs := d.find("score_entries", map[string]any{"contest_id": contest, "rep_id": d.id(rep)})
	sort.Slice(recs, func(i, j int) bool { return recs[i].Version < recs[j].Version })
	return recs
}

// ledgerTotal sums a rep's ledger: outcome points, activity points, value
// and cost.
func ledgerTotal(es []*engine.Record) (outcome, activity float64, value, cost int64) {
	for _, e := range es {
		if e.StringValue("kind") == models.KindOutcome {
			outcome += num(e, "points")
		} else {
			activity += num(e, "points")
		}
		v, _ := e.Values["value"].(int64)
		c, _ := e.Values["cost"].(int64)
		value += v
		cost += c
	}
	return math.Round(outcome*100) / 100, math.Round(activity*100) / 100, value, cost
}

// wantStanding checks a rep's standing and that the ledger explains it to
// the cent.
func (d *dom) wantStanding(contest uuid.UUID, rep string, outcome, activity float64, value, cost int64) {
	d.t.Helper()
	s := d.standings(contest)[rep]
	if s == nil {
		d.t.Fatalf("%s has no standing in the contest", rep)
	}
	got := fmt.Sprintf("outcome %g activity %g total %g value %d cost %d", num(s, "outcome_points"), num(s, "activity_points"),
		num(s, "total_points"), int64(num(s, "outcome_value")), int64(num(s, "activity_cost")))
	want := fmt.Sprintf("outcome %g activity %g total %g value %d cost %d", outcome, activity, math.Round((outcome+activity)*100)/100, value, cost)
	if got != want {
		d.t.Errorf("standing of %s: got %s, want %s", rep, got, want)
	}
	lo, la, lv, lc := ledgerTotal(d.entries(contest, rep))
	if lo != outcome || la != activity || lv != value || lc != cost {
		d.t.Errorf("ledger of %s sums to outcome %g activity %g value %d cost %d, want the standing's %g %g %d %d", rep, lo, la, lv, lc, outcome, activity, value, cost)
	}
}

// at places a point metres north and east of an account.
func at(acct *engine.Record, north, east float64) (lat, lng float64) {
	lat, lng = *acct.FloatValue("lat"), *acct.FloatValue("lng")
	return lat + north/111195.0, lng + east/(111195.0*math.Cos(lat*math.Pi/180))
}

// visitFields is a completed unscheduled call of 20 minutes, checked in at
// the account with a good fix; extra overrides fields (nil drops one).
func visitFields(acct *engine.Record, start time.Time, extra map[string]any) map[string]any {
	lat, lng := at(acct, 0, 0)
	f := map[string]any{
		"account_id": acct.ID, "kind": "unscheduled", "status": "completed", "outcome": "none",
		"started_at": start, "ended_at": start.Add(20 * time.Minute),
		"check_in_lat": lat, "check_in_lng": lng, "check_in_accuracy_m": 15.0,
	}
	for k, v := range extra {
		if v == nil {
			delete(f, k)
		} else {
			f[k] = v
		}
	}
	return f
}

// farApart returns two accounts of a team at least minM apart.
func farApart(t testing.TB, accts []*engine.Record, minM float64) (*engine.Record, *engine.Record) {
	t.Helper()
	for _, a := range accts {
		for _, b := range accts {
			if sales.DistanceM(*a.FloatValue("lat"), *a.FloatValue("lng"), *b.FloatValue("lat"), *b.FloatValue("lng")) >= minM {
				return a, b
			}
		}
	}
	t.Fatalf("no two accounts %.0f m apart", minM)
	return nil, nil
}

// pulledKeys pulls everything p may see and returns the live records' keys.
func (d *dom) pulledKeys(p models.Principal) map[engine.Key]bool {
	d.t.Helper()
	changes, _ := d.PullAll(p, "", 500)
	out := map[engine.Key]bool{}
	for _, c := range changes {
		k := engine.Key{Entity: c.Entity.Name, ID: c.Record.ID}
		if c.Record.Deleted {
			delete(out, k)
		} else {
			out[k] = true
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Ride-alongs

// TestRideAlongCreate covers who may flag or request a ride-along, and the
// fields the server owns on creation.
func TestRideAlongCreate(t *testing.T) {
	d := newDom(t)
	// A manager who sits in North but does not manage it, and a rep of a
	// team without a manager.
	now := d.Now()
	extra := models.User{OrgID: d.org, ID: uuid.New(), Email: "deputy@demo.test", Name: "Deputy North", Role: models.RoleManager,
		TeamID: ptr(d.teams["North"]), Active: true, TimeZone: "UTC", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}
	if err := d.DB.People().CreateUser(d.ctx, extra); err != nil {
		t.Fatal(err)
	}
	d.addUser("deputy", extra.Email)
	east := models.Team{OrgID: d.org, ID: uuid.New(), Name: "East", CreatedAt: now}
	if err := d.DB.People().CreateTeam(d.ctx, east); err != nil {
		t.Fatal(err)
	}
	lone := models.User{OrgID: d.org, ID: uuid.New(), Email: "lone@demo.test", Name: "Lone Rep", Role: models.RoleRep,
		TeamID: &east.ID, Active: true, TimeZone: "UTC", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}
	if err := d.DB.People().CreateUser(d.ctx, lone); err != nil {
		t.Fatal(err)
	}
	d.addUser("lone", lone.Email)

	planned := map[string]any{"status": "planned", "kind": "scheduled", "planned_at": now.Add(3 * time.Hour)}
	rep1Visit := d.create("rep1", "visits", visitFields(d.north[0], now.Add(-time.Hour), planned))
	rep2Visit := d.create("rep2", "visits", visitFields(d.north[1], now.Add(-time.Hour), planned))

	tests := []struct {
		name      string
		who       string
		fields    map[string]any
		wantCode  string
		wantField string
		// For an applied create: the server-set fields.
		wantRep, wantManager, wantBy string
	}{
		{name: "manager flags a rep of the team they manage", who: "m1",
			fields:  map[string]any{"rep_id": d.id("rep1"), "mode": "visit", "visit_id": rep1Visit, "note": "watch the close"},
			wantRep: "rep1", wantManager: "m1", wantBy: "manager"},
		{name: "manager flags a rep's next unscheduled call", who: "m1",
			fields:  map[string]any{"rep_id": d.id("rep2"), "mode": "next_unscheduled", "scheduled_for": now.Add(24 * time.Hour)},
			wantRep: "rep2", wantManager: "m1", wantBy: "manager"},
		{name: "manager flags a rep of another team", who: "m1",
			fields: map[string]any{"rep_id": d.id("rep4"), "mode": "next_unscheduled"}, wantCode: engine.CodeForbidden, wantField: "rep_id"},
		{name: "manager of the other team flags a North rep", who: "m2",
			fields: map[string]any{"rep_id": d.id("rep1"), "mode": "next_unscheduled"}, wantCode: engine.CodeForbidden, wantField: "rep_id"},
		{name: "manager flags another manager", who: "m1",
			fields: map[string]any{"rep_id": d.id("m2"), "mode": "next_unscheduled"}, wantCode: engine.CodeForbidden, wantField: "rep_id"},
		{name: "manager flags themselves", who: "m1",
			fields: map[string]any{"rep_id": d.id("m1"), "mode": "next_unscheduled"}, wantCode: engine.CodeForbidden, wantField: "rep_id"},
		{name: "a manager in the team who does not manage it", who: "deputy",
			fields: map[string]any{"rep_id": d.id("rep1"), "mode": "next_unscheduled"}, wantCode: engine.CodeForbidden, wantField: "rep_id"},
		{name: "manager names no rep", who: "m1",
			fields: map[string]any{"mode": "next_unscheduled"}, wantCode: engine.CodeMissingRequired, wantField: "rep_id"},
		{name: "rep requests a ride-along from their own manager", who: "rep1",
			fields:  map[string]any{"mode": "next_unscheduled", "note": "help me with walk-ins"},
			wantRep: "rep1", wantManager: "m1", wantBy: "rep"},
		{name: "rep names themselves", who: "rep3",
			fields:  map[string]any{"rep_id": d.id("rep3"), "mode": "next_unscheduled"},
			wantRep: "rep3", wantManager: "m1", wantBy: "rep"},
		{name: "rep requests for another rep", who: "rep1",
			fields: map[string]any{"rep_id": d.id("rep2"), "mode": "next_unscheduled"}, wantCode: engine.CodeForbidden, wantField: "rep_id"},
		{name: "rep picks another manager", who: "rep1",
			fields: map[string]any{"mode": "next_unscheduled", "manager_id": d.id("m2")}, wantCode: engine.CodeServerOwned, wantField: "manager_id"},
		{name: "rep of a team without a manager", who: "lone",
			fields: map[string]any{"mode": "next_unscheduled"}, wantCode: engine.CodeForbidden, wantField: "rep_id"},
		{name: "admin flags a rep", who: "admin",
			fields: map[string]any{"rep_id": d.id("rep1"), "mode": "next_unscheduled"}, wantCode: engine.CodeForbidden, wantField: "rep_id"},
		{name: "created already accepted", who: "m1",
			fields: map[string]any{"rep_id": d.id("rep1"), "mode": "next_unscheduled", "status": "accepted"}, wantCode: sales.CodeInvalidTransition, wantField: "status"},
		{name: "client claims joint verification", who: "m1",
			fields: map[string]any{"rep_id": d.id("rep1"), "mode": "next_unscheduled", "joint_verified": true}, wantCode: engine.CodeServerOwned, wantField: "joint_verified"},
		{name: "client says who requested", who: "rep1",
			fields: map[string]any{"mode": "next_unscheduled", "requested_by": "manager"}, wantCode: engine.CodeServerOwned, wantField: "requested_by"},
		{name: "client sets completed_at", who: "m1",
			fields: map[string]any{"rep_id": d.id("rep1"), "mode": "next_unscheduled", "completed_at": now}, wantCode: engine.CodeServerOwned, wantField: "completed_at"},
		{name: "planned visit mode without a visit", who: "m1",
			fields: map[string]any{"rep_id": d.id("rep1"), "mode": "visit"}, wantCode: engine.CodeMissingRequired, wantField: "visit_id"},
		{name: "visit of another rep", who: "m1",
			fields: map[string]any{"rep_id": d.id("rep1"), "mode": "visit", "visit_id": rep2Visit}, wantCode: engine.CodeInvalidValue, wantField: "visit_id"},
		{name: "next unscheduled call bound by the client", who: "m1",
			fields: map[string]any{"rep_id": d.id("rep1"), "mode": "next_unscheduled", "visit_id": rep1Visit}, wantCode: engine.CodeForbidden, wantField: "visit_id"},
		{name: "unknown mode", who: "m1",
			fields: map[string]any{"rep_id": d.id("rep1"), "mode": "whenever"}, wantCode: engine.CodeInvalidValue, wantField: "mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := d.sub(t)
			id := uuid.New()
			r := d.pushOne(tt.who, upsertM(t, "ride_alongs", id, tt.fields))
			if tt.wantCode != "" {
				wantResult(t, r, tt.wantCode)
				if r.Error.Field != tt.wantField {
					t.Errorf("rejected field %q, want %q (%s)", r.Error.Field, tt.wantField, r.Error.Message)
				}
				if recs := d.find("ride_alongs", map[string]any{"id": id}); len(recs) != 0 {
					t.Errorf("a rejected create left a ride-along behind")
				}
				return
			}
			wantResult(t, r, "")
			ra := d.rec("ride_alongs", id)
			got := fmt.Sprintf("rep %s manager %s by %s status %s team %v", d.names[*ra.UUIDValue("rep_id")], d.names[*ra.UUIDValue("manager_id")],
				ra.StringValue("requested_by"), ra.StringValue("status"), *ra.UUIDValue("team_id") == d.teams["North"])
			want := fmt.Sprintf("rep %s manager %s by %s status requested team true", tt.wantRep, tt.wantManager, tt.wantBy)
			if got != want {
				t.Errorf("created %s, want %s", got, want)
			}
		})
	}
}

// rideFixture makes ride-alongs between m1 and rep1 for the transition
// tests: on a completed visit, flagged by the manager or requested by the
// rep.
type rideFixture struct {
	*dom
	doneVisit uuid.UUID
}

func newRideFixture(t *testing.T) *rideFixture {
	d := newDom(t)
	v := d.create("rep1", "visits", visitFields(d.north[0], d.Now().Add(-2*time.Hour), nil))
	return &rideFixture{dom: d, doneVisit: v}
}

// newRide creates a ride-along on the completed visit, flagged by m1
// (by "manager") or requested by rep1 (by "rep").
func (f *rideFixture) newRide(by string) uuid.UUID {
	f.T.Helper()
	if by == "manager" {
		return f.create("m1", "ride_alongs", map[string]any{"rep_id": f.id("rep1"), "mode": "visit", "visit_id": f.doneVisit})
	}
	return f.create("rep1", "ride_alongs", map[string]any{"mode": "visit", "visit_id": f.doneVisit})
}

func (f *rideFixture) sub(t *testing.T) *rideFixture {
	return &rideFixture{dom: f.dom.sub(t), doneVisit: f.doneVisit}
}

func (f *rideFixture) move(who string, id uuid.UUID, status string) engine.Result {
	f.T.Helper()
	return f.pushOne(who, upsertM(f.T, "ride_alongs", id, map[string]any{"status": status}))
}

func (f *rideFixture) status(id uuid.UUID) string {
	f.T.Helper()
	return f.rec("ride_alongs", id).StringValue("status")
}

// TestRideAlongTransitionRoles: the rep accepts or declines a manager's
// flag, the manager a rep's request; either party cancels; nobody else
// touches it.
func TestRideAlongTransitionRoles(t *testing.T) {
	f := newRideFixture(t)
	tests := []struct {
		name       string
		by         string // who created it: manager or rep
		who        string
		to         string
		wantCode   string
		wantStatus string
		wantMsg    string
	}{
		{name: "rep accepts the manager's flag", by: "manager", who: "rep1", to: "accepted", wantStatus: "accepted"},
		{name: "rep declines the manager's flag", by: "manager", who: "rep1", to: "declined", wantStatus: "declined"},
		{name: "manager accepts their own flag", by: "manager", who: "m1", to: "accepted", wantCode: sales.CodeInvalidTransition, wantStatus: "requested", wantMsg: "only the rep may accept"},
		{name: "manager declines their own flag", by: "manager", who: "m1", to: "declined", wantCode: sales.CodeInvalidTransition, wantStatus: "requested", wantMsg: "only the rep may decline"},
		{name: "manager accepts the rep's request", by: "rep", who: "m1", to: "accepted", wantStatus: "accepted"},
		{name: "manager declines the rep's request", by: "rep", who: "m1", to: "declined", wantStatus: "declined"},
		{name: "rep accepts their own request", by: "rep", who: "rep1", to: "accepted", wantCode: sales.CodeInvalidTransition, wantStatus: "requested", wantMsg: "only the manager may accept"},
		{name: "rep declines their own request", by: "rep", who: "rep1", to: "declined", wantCode: sales.CodeInvalidTransition, wantStatus: "requested", wantMsg: "only the manager may decline"},
		{name: "manager cancels a flag", by: "manager", who: "m1", to: "cancelled", wantStatus: "cancelled"},
		{name: "rep cancels a flag", by: "manager", who: "rep1", to: "cancelled", wantStatus: "cancelled"},
		{name: "rep withdraws a request by cancelling", by: "rep", who: "rep1", to: "cancelled", wantStatus: "cancelled"},
		{name: "a client expires a ride-along", by: "manager", who: "m1", to: "expired", wantCode: sales.CodeInvalidTransition, wantStatus: "requested", wantMsg: "only the server expires"},
		{name: "another rep of the team accepts", by: "manager", who: "rep2", to: "accepted", wantCode: engine.CodeNotFound, wantStatus: "requested"},
		{name: "the other team's manager cancels", by: "manager", who: "m2", to: "cancelled", wantCode: engine.CodeNotFound, wantStatus: "requested"},
		{name: "an admin cancels someone else's ride-along", by: "rep", who: "admin", to: "cancelled", wantCode: engine.CodeForbidden, wantStatus: "requested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := f.sub(t)
			id := f.newRide(tt.by)
			r := f.move(tt.who, id, tt.to)
			wantResult(t, r, tt.wantCode)
			if tt.wantMsg != "" && !strings.Contains(r.Error.Message, tt.wantMsg) {
				t.Errorf("message %q, want it to say %q", r.Error.Message, tt.wantMsg)
			}
			if got := f.status(id); got != tt.wantStatus {
				t.Errorf("status %s, want %s", got, tt.wantStatus)
			}
		})
	}
}

// TestRideAlongStateMachine tries every status from every reachable state.
// A change that is no edge of the state machine is refused with
// invalid_transition — except a change that is an edge from the status
// before, outranking the current one: two people moved the ride-along at
// once, offline, and the rank decides (see models.RideAlongTransition).
func TestRideAlongStateMachine(t *testing.T) {
	f := newRideFixture(t)
	type step struct{ who, to string }
	states := map[string][]step{
		"requested":                 {},
		"accepted":                  {{"rep1", "accepted"}},
		"declined":                  {{"rep1", "declined"}},
		"cancelled while requested": {{"m1", "cancelled"}},
		"cancelled after accepted":  {{"rep1", "accepted"}, {"m1", "cancelled"}},
		"completed":                 {{"rep1", "accepted"}, {"m1", "completed"}},
		"expired":                   nil, // by the scheduler, below
	}
	ok, refused := "", sales.CodeInvalidTransition
	tests := []struct {
		name     string
		from, to string
		wantCode string
	}{
		{"requested → completed", "requested", "completed", refused},
		{"requested → expired (by a client)", "requested", "expired", refused},
		{"requested → accepted", "requested", "accepted", ok},
		{"requested → declined", "requested", "declined", ok},
		{"requested → cancelled", "requested", "cancelled", ok},
		{"accepted → requested", "accepted", "requested", refused},
		{"accepted → expired", "accepted", "expired", refused},
		{"accepted → completed", "accepted", "completed", ok},
		{"accepted → cancelled", "accepted", "cancelled", ok},
		{"accepted → declined (concurrent decline outranks accept)", "accepted", "declined", ok},
		{"declined → requested", "declined", "requested", refused},
		{"declined → accepted", "declined", "accepted", refused},
		{"declined → completed", "declined", "completed", refused},
		{"declined → expired", "declined", "expired", refused},
		{"declined → cancelled (concurrent cancel outranks decline)", "declined", "cancelled", ok},
		{"cancelled while requested → requested", "cancelled while requested", "requested", refused},
		{"cancelled while requested → accepted", "cancelled while requested", "accepted", refused},
		{"cancelled while requested → declined", "cancelled while requested", "declined", refused},
		{"cancelled while requested → completed", "cancelled while requested", "completed", refused},
		{"cancelled while requested → expired", "cancelled while requested", "expired", refused},
		{"cancelled after accepted → requested", "cancelled after accepted", "requested", refused},
		{"cancelled after accepted → accepted", "cancelled after accepted", "accepted", refused},
		{"cancelled after accepted → declined", "cancelled after accepted", "declined", refused},
		{"cancelled after accepted → expired", "cancelled after accepted", "expired", refused},
		{"cancelled after accepted → completed (the call happened)", "cancelled after accepted", "completed", ok},
		{"completed → requested", "completed", "requested", refused},
		{"completed → accepted", "completed", "accepted", refused},
		{"completed → declined", "completed", "declined", refused},
		{"completed → cancelled", "completed", "cancelled", refused},
		{"completed → expired", "completed", "expired", refused},
		{"expired → requested", "expired", "requested", refused},
		{"expired → completed", "expired", "completed", refused},
		{"expired → accepted (a person outranks the expiry)", "expired", "accepted", ok},
		{"expired → declined (a person outranks the expiry)", "expired", "declined", ok},
		{"expired → cancelled (a person outranks the expiry)", "expired", "cancelled", ok},
	}
	// The rep answers a manager's flag; the manager does everything else.
	actor := func(to string) string {
		if to == "accepted" || to == "declined" {
			return "rep1"
		}
		return "m1"
	}
	// Expired ride-alongs first: the scheduler expires what was requested
	// seven days ago.
	ids := make([]uuid.UUID, len(tests))
	for i, tt := range tests {
		if tt.from == "expired" {
			ids[i] = f.newRide("manager")
		}
	}
	f.Advance(models.RideAlongExpiryDays*24*time.Hour + time.Minute)
	f.tick()
	for i, tt := range tests {
		if tt.from == "expired" {
			if got := f.status(ids[i]); got != "expired" {
				t.Fatalf("%s: status %s after a week, want expired", tt.name, got)
			}
			continue
		}
		ids[i] = f.newRide("manager")
		for _, s := range states[tt.from] {
			wantResult(t, f.move(s.who, ids[i], s.to), "")
		}
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := f.sub(t)
			before := f.status(ids[i])
			r := f.move(actor(tt.to), ids[i], tt.to)
			wantResult(t, r, tt.wantCode)
			want := tt.to
			if tt.wantCode != "" {
				want = before
				if r.Error.Field != "status" || r.Error.Message == "" {
					t.Errorf("rejection %+v, want one naming status and saying why", r.Error)
				}
			}
			if got := f.status(ids[i]); got != want {
				t.Errorf("status %s, want %s", got, want)
			}
		})
	}
}

// TestRideAlongConcurrentTransitions: two people change the same
// ride-along offline; whichever phone syncs first, the outcome is the
// same, and the loser that syncs second is told why.
func TestRideAlongConcurrentTransitions(t *testing.T) {
	f := newRideFixture(t)
	type change struct{ who, to string }
	tests := []struct {
		name   string
		setup  []change // from requested
		a, b   change   // the concurrent changes
		winner string
	}{
		{name: "manager cancels while the rep accepts", a: change{"m1", "cancelled"}, b: change{"rep1", "accepted"}, winner: "cancelled"},
		{name: "manager cancels while the rep declines", a: change{"m1", "cancelled"}, b: change{"rep1", "declined"}, winner: "cancelled"},
		{name: "manager completes while the rep cancels", setup: []change{{"rep1", "accepted"}}, a: change{"m1", "completed"}, b: change{"rep1", "cancelled"}, winner: "completed"},
	}
	for _, tt := range tests {
		for _, order := range []string{"a first", "b first"} {
			t.Run(tt.name+", "+order, func(t *testing.T) {
				f := f.sub(t)
				id := f.newRide("manager")
				for _, s := range tt.setup {
					wantResult(t, f.move(s.who, id, s.to), "")
				}
				first, second := tt.a, tt.b
				if order == "b first" {
					first, second = tt.b, tt.a
				}
				r1 := f.move(first.who, id, first.to)
				r2 := f.move(second.who, id, second.to)
				if got := f.status(id); got != tt.winner {
					t.Fatalf("final status %s, want %s", got, tt.winner)
				}
				wantResult(t, r1, "") // the first to arrive always applies
				if second.to == tt.winner {
					wantResult(t, r2, "")
					return
				}
				// The loser arrived second: rejected, and told why.
				wantResult(t, r2, sales.CodeInvalidTransition)
				wantMsg := fmt.Sprintf("already %s; it cannot become %s", tt.winner, second.to)
				if !strings.Contains(r2.Error.Message, wantMsg) {
					t.Errorf("loser told %q, want %q", r2.Error.Message, wantMsg)
				}
				// …and its phone hears of it again on its next pull.
				res, err := f.En.Pull(f.ctx, f.users[second.who], "", 1)
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, rj := range res.Rejections {
					found = found || (rj.RecordID == id && rj.Code == sales.CodeInvalidTransition && rj.Seq == r2.Seq)
				}
				if !found {
					t.Errorf("the loser's pull lists rejections %+v, want its seq %d", res.Rejections, r2.Seq)
				}
			})
		}
	}
	t.Run("rep accepts offline while the server expires the request", func(t *testing.T) {
		f := f.sub(t)
		early := f.newRide("manager") // accepted before the expiry reaches the server
		late := f.newRide("manager")  // accepted offline, synced after the expiry
		f.Advance(3 * 24 * time.Hour)
		wantResult(t, f.move("rep1", early, "accepted"), "")
		f.Advance(5 * 24 * time.Hour)
		f.tick()
		if got := f.status(late); got != "expired" {
			t.Fatalf("late: %s after 8 days, want expired", got)
		}
		wantResult(t, f.move("rep1", late, "accepted"), "")
		for name, id := range map[string]uuid.UUID{"early": early, "late": late} {
			if got := f.status(id); got != "accepted" {
				t.Errorf("%s: status %s, want accepted", name, got)
			}
		}
	})
}

// TestRideAlongWithdrawAndEdits: deleting, changing the mode or the rep,
// and the manager-only fields.
func TestRideAlongWithdrawAndEdits(t *testing.T) {
	f := newRideFixture(t)
	tests := []struct {
		name     string
		setup    []string // statuses moved to first (rep1 accepts, m1 the rest)
		who      string
		m        func(id uuid.UUID) engine.Mutation
		wantCode string
	}{
		{name: "manager withdraws a requested flag", who: "m1", m: func(id uuid.UUID) engine.Mutation { return deleteM("ride_alongs", id) }},
		{name: "rep deletes a requested flag", who: "rep1", m: func(id uuid.UUID) engine.Mutation { return deleteM("ride_alongs", id) }},
		{name: "an accepted ride-along is cancelled, not deleted", setup: []string{"accepted"}, who: "m1",
			m: func(id uuid.UUID) engine.Mutation { return deleteM("ride_alongs", id) }, wantCode: engine.CodeForbidden},
		{name: "an admin cannot delete it", who: "admin", m: func(id uuid.UUID) engine.Mutation { return deleteM("ride_alongs", id) }, wantCode: engine.CodeForbidden},
		{name: "mode cannot change", who: "m1",
			m: func(id uuid.UUID) engine.Mutation {
				return upsertM(f.T, "ride_alongs", id, map[string]any{"mode": "next_unscheduled"})
			}, wantCode: engine.CodeForbidden},
		{name: "rep_id cannot change", who: "m1",
			m: func(id uuid.UUID) engine.Mutation {
				return upsertM(f.T, "ride_alongs", id, map[string]any{"rep_id": f.id("rep2")})
			}, wantCode: engine.CodeServerOwned},
		{name: "rep cannot reschedule", who: "rep1",
			m: func(id uuid.UUID) engine.Mutation {
				return upsertM(f.T, "ride_alongs", id, map[string]any{"scheduled_for": f.Now().Add(time.Hour)})
			}, wantCode: engine.CodeForbidden},
		{name: "rep cannot record the manager's check-in", who: "rep1",
			m: func(id uuid.UUID) engine.Mutation {
				return upsertM(f.T, "ride_alongs", id, map[string]any{"manager_check_in_lat": 44.9, "manager_check_in_lng": -93.2})
			}, wantCode: engine.CodeForbidden},
		{name: "manager reschedules", who: "m1",
			m: func(id uuid.UUID) engine.Mutation {
				return upsertM(f.T, "ride_alongs", id, map[string]any{"scheduled_for": f.Now().Add(time.Hour), "note": "after lunch"})
			}},
		{name: "rep edits the note", who: "rep1",
			m: func(id uuid.UUID) engine.Mutation {
				return upsertM(f.T, "ride_alongs", id, map[string]any{"note": "bring samples"})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := f.sub(t)
			id := f.newRide("manager")
			for _, s := range tt.setup {
				who := "m1"
				if s == "accepted" {
					who = "rep1"
				}
				wantResult(t, f.move(who, id, s), "")
			}
			wantResult(t, f.pushOne(tt.who, tt.m(id)), tt.wantCode)
		})
	}
}

// TestRideAlongNextUnscheduled: a "next unscheduled call" ride-along is
// bound by the server to the rep's first unscheduled visit that starts
// after the flag, however the visits reach the server.
func TestRideAlongNextUnscheduled(t *testing.T) {
	d := newDom(t)
	t0 := d.Now()
	flag := func() uuid.UUID {
		return d.create("m1", "ride_alongs", map[string]any{"rep_id": d.id("rep1"), "mode": "next_unscheduled"})
	}
	bound := func(id uuid.UUID) *uuid.UUID { return d.rec("ride_alongs", id).UUIDValue("visit_id") }

	ra := flag()
	declined := flag()
	wantResult(t, d.pushOne("rep1", upsertM(t, "ride_alongs", declined, map[string]any{"status": "declined"})), "")
	d.Advance(2 * time.Hour)

	before := d.create("rep1", "visits", visitFields(d.north[0], t0.Add(-30*time.Minute), nil))
	scheduled := d.create("rep1", "visits", visitFields(d.north[1], t0.Add(20*time.Minute), map[string]any{"kind": "scheduled"}))
	otherRep := d.create("rep2", "visits", visitFields(d.north[2], t0.Add(25*time.Minute), nil))
	if b := bound(ra); b != nil {
		t.Fatalf("bound to %s by a visit before the flag, a scheduled visit or another rep's", *b)
	}
	_, _, _ = before, scheduled, otherRep

	// Offline, the later call syncs first; then the earlier one arrives.
	later := d.create("rep1", "visits", visitFields(d.north[3], t0.Add(90*time.Minute), nil))
	if b := bound(ra); b == nil || *b != later {
		t.Fatalf("bound to %v, want the only call after the flag %s", b, later)
	}
	next := d.create("rep1", "visits", visitFields(d.north[4], t0.Add(40*time.Minute), nil))
	if b := bound(ra); b == nil || *b != next {
		t.Errorf("bound to %v, want the first unscheduled call after the flag %s (synced late)", b, next)
	}
	if b := bound(declined); b != nil {
		t.Errorf("a declined ride-along was bound to %s", *b)
	}

	// A second flag binds to the first call after it, not to one before.
	ra2 := flag()
	d.Advance(time.Hour)
	after2 := d.create("rep1", "visits", visitFields(d.north[5], d.Now().Add(-10*time.Minute), nil))
	if b := bound(ra2); b == nil || *b != after2 {
		t.Errorf("second flag bound to %v, want %s", b, after2)
	}
	if b := bound(ra); b == nil || *b != next {
		t.Errorf("first flag rebound to %v by a later call, want it to stay on %s", b, next)
	}

	// A completed ride-along keeps its visit whatever syncs later.
	wantResult(t, d.pushOne("rep1", upsertM(t, "ride_alongs", ra, map[string]any{"status": "accepted"})), "")
	wantResult(t, d.pushOne("m1", upsertM(t, "ride_alongs", ra, map[string]any{"status": "completed"})), "")
	d.create("rep1", "visits", visitFields(d.north[6], t0.Add(5*time.Minute), nil))
	if b := bound(ra); b == nil || *b != next {
		t.Errorf("completed ride-along rebound to %v, want it to keep %s", b, next)
	}

	// Completing a ride-along whose call has not happened yet is refused.
	unbound := flag()
	wantResult(t, d.pushOne("rep1", upsertM(t, "ride_alongs", unbound, map[string]any{"status": "accepted"})), "")
	r := d.pushOne("m1", upsertM(t, "ride_alongs", unbound, map[string]any{"status": "completed"}))
	wantResult(t, r, sales.CodeInvalidTransition)
	if !strings.Contains(r.Error.Message, "only once its visit is completed") {
		t.Errorf("message %q, want it to explain the visit must be completed", r.Error.Message)
	}
}

// TestRideAlongJointVerification: the manager's check-in within 300 m of
// the rep's marks the ride-along joint_verified.
func TestRideAlongJointVerification(t *testing.T) {
	d := newDom(t)
	acct := d.north[0]
	visit := d.create("rep1", "visits", visitFields(acct, d.Now().Add(-time.Hour), nil))
	tests := []struct {
		name         string
		north, east  float64 // the manager's check-in from the account
		wantVerified bool
	}{
		{name: "side by side", north: 10, wantVerified: true},
		{name: "across the car park, 290 m", north: 200, east: 209, wantVerified: true},
		{name: "down the road, 320 m", north: 320, wantVerified: false},
		{name: "another town", north: 25000, wantVerified: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := d.sub(t)
			id := d.create("m1", "ride_alongs", map[string]any{"rep_id": d.id("rep1"), "mode": "visit", "visit_id": visit})
			lat, lng := at(acct, tt.north, tt.east)
			d.up("m1", "ride_alongs", id, map[string]any{"manager_check_in_lat": lat, "manager_check_in_lng": lng})
			if got := d.rec("ride_alongs", id).Values["joint_verified"]; got != tt.wantVerified {
				t.Errorf("joint_verified = %v, want %v", got, tt.wantVerified)
			}
		})
	}
	t.Run("bound later to the rep's next call", func(t *testing.T) {
		d := d.sub(t)
		id := d.create("m1", "ride_alongs", map[string]any{"rep_id": d.id("rep2"), "mode": "next_unscheduled"})
		lat, lng := at(d.north[3], 50, 0)
		d.up("m1", "ride_alongs", id, map[string]any{"manager_check_in_lat": lat, "manager_check_in_lng": lng})
		if got := d.rec("ride_alongs", id).Values["joint_verified"]; got != false {
			t.Fatalf("joint_verified = %v before any visit, want false", got)
		}
		d.Advance(time.Minute)
		d.create("rep2", "visits", visitFields(d.north[3], d.Now(), nil))
		if got := d.rec("ride_alongs", id).Values["joint_verified"]; got != true {
			t.Errorf("joint_verified = %v once bound to a call 50 m from the manager, want true", got)
		}
	})
}

// TestRideAlongCompletionMakesDebriefDue: completing a ride-along needs
// its visit completed, and makes a ride-along assessment due within 48 h.
func TestRideAlongCompletionMakesDebriefDue(t *testing.T) {
	d := newDom(t)
	visit := d.create("rep1", "visits", visitFields(d.north[0], d.Now().Add(-time.Hour), map[string]any{"status": "in_progress"}))
	ra := d.create("m1", "ride_alongs", map[string]any{"rep_id": d.id("rep1"), "mode": "visit", "visit_id": visit})
	d.up("rep1", "ride_alongs", ra, map[string]any{"status": "accepted"})

	r := d.pushOne("m1", upsertM(t, "ride_alongs", ra, map[string]any{"status": "completed"}))
	wantResult(t, r, sales.CodeInvalidTransition)
	if got := d.find("assessments", map[string]any{"ride_along_id": ra}); len(got) != 0 {
		t.Fatalf("a refused completion made %d assessments", len(got))
	}

	d.up("rep1", "visits", visit, map[string]any{"status": "completed"})
	d.Advance(time.Minute)
	completedAt := d.Now()
	d.up("m1", "ride_alongs", ra, map[string]any{"status": "completed"})
	got := d.rec("ride_alongs", ra)
	if ts := got.TimeValue("completed_at"); got.StringValue("status") != "completed" || ts == nil || !ts.Equal(completedAt) {
		t.Fatalf("ride-along %s completed at %v, want completed at %v", got.StringValue("status"), ts, completedAt)
	}
	as := d.find("assessments", map[string]any{"ride_along_id": ra})
	if len(as) != 1 {
		t.Fatalf("%d assessments for the ride-along, want 1", len(as))
	}
	a := as[0]
	gotA := fmt.Sprintf("phase %s status %s rep %s assessor %s due %s template %v", a.StringValue("phase"), a.StringValue("status"),
		d.names[*a.UUIDValue("rep_id")], d.names[*a.UUIDValue("assessor_id")], a.TimeValue("due_at").Sub(completedAt), a.Values["template_version"])
	if want := "phase ride_along status draft rep rep1 assessor m1 due 48h0m0s template 1"; gotA != want {
		t.Errorf("debrief: %s, want %s", gotA, want)
	}
	// Completing again changes nothing and makes no second debrief.
	d.up("m1", "ride_alongs", ra, map[string]any{"status": "completed", "note": "great close"})
	if n := len(d.find("assessments", map[string]any{"ride_along_id": ra})); n != 1 {
		t.Errorf("%d debriefs after a repeated completion, want 1", n)
	}
	// The manager pulls the draft; the rep once it is shared; nobody else.
	key := engine.Key{Entity: "assessments", ID: a.ID}
	for who, want := range map[string]bool{"rep1": false, "m1": true, "admin": true, "rep2": false, "m2": false, "rep4": false} {
		if got := d.pulledKeys(d.users[who])[key]; got != want {
			t.Errorf("%s pulls the draft debrief: %v, want %v", who, got, want)
		}
	}
	d.up("m1", "assessments", a.ID, map[string]any{"status": "shared", "behaviours": rawJSON(`[{"key":"handles_objections","result":"done_right"}]`)})
	for who, want := range map[string]bool{"rep1": true, "m1": true, "rep2": false, "m2": false} {
		if got := d.pulledKeys(d.users[who])[key]; got != want {
			t.Errorf("%s pulls the shared debrief: %v, want %v", who, got, want)
		}
	}
}

// TestRideAlongExpiry: a request unanswered for seven days expires when
// the scheduler ticks; an answered one does not.
func TestRideAlongExpiry(t *testing.T) {
	d := newDom(t)
	flagged := d.create("m1", "ride_alongs", map[string]any{"rep_id": d.id("rep1"), "mode": "next_unscheduled"})
	requested := d.create("rep2", "ride_alongs", map[string]any{"mode": "next_unscheduled"})
	accepted := d.create("m1", "ride_alongs", map[string]any{"rep_id": d.id("rep3"), "mode": "next_unscheduled"})
	d.up("rep3", "ride_alongs", accepted, map[string]any{"status": "accepted"})
	d.Advance(24 * time.Hour)
	younger := d.create("m1", "ride_alongs", map[string]any{"rep_id": d.id("rep1"), "mode": "next_unscheduled"})

	status := func() map[string]string {
		out := map[string]string{}
		for name, id := range map[string]uuid.UUID{"flagged": flagged, "requested": requested, "accepted": accepted, "younger": younger} {
			out[name] = d.rec("ride_alongs", id).StringValue("status")
		}
		return out
	}
	tests := []struct {
		name    string
		advance time.Duration // since the first three were created
		want    map[string]string
	}{
		{name: "six days later", advance: 6 * 24 * time.Hour,
			want: map[string]string{"flagged": "requested", "requested": "requested", "accepted": "accepted", "younger": "requested"}},
		{name: "a minute short of seven days", advance: 7*24*time.Hour - time.Minute,
			want: map[string]string{"flagged": "requested", "requested": "requested", "accepted": "accepted", "younger": "requested"}},
		{name: "seven days later", advance: 7 * 24 * time.Hour,
			want: map[string]string{"flagged": "expired", "requested": "expired", "accepted": "accepted", "younger": "requested"}},
		{name: "eight days later", advance: 8 * 24 * time.Hour,
			want: map[string]string{"flagged": "expired", "requested": "expired", "accepted": "accepted", "younger": "expired"}},
	}
	start := synctest.Start
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := d.sub(t)
			d.Clock.Store(start.Add(tt.advance).UnixNano())
			d.tick()
			if got := status(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
		})
	}
	// Ticking again writes nothing new.
	v := d.rec("ride_alongs", flagged).Version
	d.tick()
	if got := d.rec("ride_alongs", flagged).Version; got != v {
		t.Errorf("a second tick rewrote an expired ride-along (version %d → %d)", v, got)
	}
	// The rep's phone pulls the expiry.
	changes, _ := d.PullAll(d.users["rep1"], "", 500)
	for _, c := range changes {
		if c.Record.ID == flagged && c.Record.StringValue("status") != "expired" {
			t.Errorf("rep1 pulled the flag as %s, want expired", c.Record.StringValue("status"))
		}
	}
}

// ---------------------------------------------------------------------------
// Assessments

// TestAssessments walks one assessment through its life, trying at each
// step what each party may and may not do.
func TestAssessments(t *testing.T) {
	d := newDom(t)
	visit := d.create("rep1", "visits", visitFields(d.north[0], d.Now().Add(-time.Hour), nil))
	ra := d.create("m1", "ride_alongs", map[string]any{"rep_id": d.id("rep1"), "mode": "visit", "visit_id": visit})
	open := d.create("m1", "ride_alongs", map[string]any{"rep_id": d.id("rep1"), "mode": "visit", "visit_id": visit})
	d.up("rep1", "ride_alongs", ra, map[string]any{"status": "accepted"})
	d.up("m1", "ride_alongs", ra, map[string]any{"status": "completed"})
	contest := d.mustContest("admin", contestIn("Spring push", d.Now().Add(-time.Hour), d.Now().Add(7*24*time.Hour), nil))
	northOnly := d.mustContest("m1", sales.ContestInput{Name: ptr("North push"), StartsAt: instant(d.Now().Add(-time.Hour)), EndsAt: instant(d.Now().Add(24 * time.Hour)), TeamID: ptr(d.teams["North"])})
	a := uuid.New()
	good := `[{"key":"plans_the_call","result":"done_right","note":"clear agenda"},{"key":"asks_for_the_order","result":"done_wrong"}]`
	steps := []struct {
		name     string
		who      string
		m        engine.Mutation
		wantCode string
		wantMsg  string
	}{
		{name: "rep assesses themselves", who: "rep1", m: upsertM(t, "assessments", a, map[string]any{"rep_id": d.id("rep1"), "phase": "ride_along", "ride_along_id": ra}), wantCode: engine.CodeForbidden},
		{name: "another team's manager assesses", who: "m2", m: upsertM(t, "assessments", a, map[string]any{"rep_id": d.id("rep1"), "phase": "ride_along", "ride_along_id": ra}), wantCode: engine.CodeForbidden},
		{name: "admin assesses a rep", who: "admin", m: upsertM(t, "assessments", a, map[string]any{"rep_id": d.id("rep1"), "phase": "ride_along", "ride_along_id": ra}), wantCode: engine.CodeForbidden},
		{name: "manager assesses themselves", who: "m1", m: upsertM(t, "assessments", uuid.New(), map[string]any{"rep_id": d.id("m1"), "phase": "ride_along", "ride_along_id": ra}), wantCode: engine.CodeForbidden},
		{name: "unknown behaviour key", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"rep_id": d.id("rep1"), "phase": "ride_along", "ride_along_id": ra, "behaviours": rawJSON(`[{"key":"juggles","result":"done_right"}]`)}), wantCode: engine.CodeInvalidValue, wantMsg: `"juggles" is not a behaviour`},
		{name: "behaviour listed twice", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"rep_id": d.id("rep1"), "phase": "ride_along", "ride_along_id": ra, "behaviours": rawJSON(`[{"key":"plans_the_call","result":"done_right"},{"key":"plans_the_call","result":"done_wrong"}]`)}), wantCode: engine.CodeInvalidValue},
		{name: "ride-along phase without the ride-along", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"rep_id": d.id("rep1"), "phase": "ride_along"}), wantCode: engine.CodeMissingRequired},
		{name: "a ride-along not completed yet", who: "m1", m: upsertM(t, "assessments", uuid.New(), map[string]any{"rep_id": d.id("rep1"), "phase": "ride_along", "ride_along_id": open}), wantCode: engine.CodeInvalidValue},
		{name: "another rep's ride-along", who: "m1", m: upsertM(t, "assessments", uuid.New(), map[string]any{"rep_id": d.id("rep2"), "phase": "ride_along", "ride_along_id": ra}), wantCode: engine.CodeInvalidValue},
		{name: "a contest the rep is not in", who: "m2", m: upsertM(t, "assessments", uuid.New(), map[string]any{"rep_id": d.id("rep4"), "phase": "contest_start", "contest_id": northOnly}), wantCode: engine.CodeInvalidValue},
		{name: "contest phase without the contest", who: "m1", m: upsertM(t, "assessments", uuid.New(), map[string]any{"rep_id": d.id("rep1"), "phase": "contest_start"}), wantCode: engine.CodeMissingRequired},
		{name: "client sets the assessor", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"rep_id": d.id("rep1"), "phase": "ride_along", "ride_along_id": ra, "assessor_id": d.id("m2")}), wantCode: engine.CodeServerOwned},
		{name: "client sets the due date", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"rep_id": d.id("rep1"), "phase": "ride_along", "ride_along_id": ra, "due_at": d.Now()}), wantCode: engine.CodeServerOwned},
		{name: "manager drafts the assessment", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"rep_id": d.id("rep1"), "phase": "ride_along", "ride_along_id": ra, "behaviours": rawJSON(good)})},
		// A draft is the assessor's until shared: the rep cannot see it.
		{name: "rep edits a draft's behaviours", who: "rep1", m: upsertM(t, "assessments", a, map[string]any{"behaviours": rawJSON(`[]`)}), wantCode: engine.CodeNotFound},
		{name: "rep shares it", who: "rep1", m: upsertM(t, "assessments", a, map[string]any{"status": "shared"}), wantCode: engine.CodeNotFound},
		{name: "rep acknowledges a draft", who: "rep1", m: upsertM(t, "assessments", a, map[string]any{"status": "acknowledged"}), wantCode: engine.CodeNotFound},
		{name: "manager acknowledges for the rep", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"status": "acknowledged"}), wantCode: sales.CodeInvalidTransition},
		{name: "manager writes the rep's comment", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"rep_comment": "agreed"}), wantCode: engine.CodeForbidden},
		{name: "manager moves it to another rep", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"rep_id": d.id("rep2")}), wantCode: engine.CodeForbidden},
		{name: "another team's manager edits it", who: "m2", m: upsertM(t, "assessments", a, map[string]any{"behaviours": rawJSON(`[]`)}), wantCode: engine.CodeNotFound},
		{name: "manager shares it", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"status": "shared"})},
		{name: "manager acknowledges a shared assessment", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"status": "acknowledged"}), wantCode: sales.CodeInvalidTransition},
		{name: "manager cannot delete a shared assessment", who: "m1", m: deleteM("assessments", a), wantCode: engine.CodeForbidden},
		{name: "rep edits the shared behaviours", who: "rep1", m: upsertM(t, "assessments", a, map[string]any{"behaviours": rawJSON(`[]`)}), wantCode: engine.CodeForbidden},
		{name: "rep shares it again", who: "rep1", m: upsertM(t, "assessments", a, map[string]any{"status": "shared"})}, // no change
		{name: "manager moves it back to draft", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"status": "draft"}), wantCode: sales.CodeInvalidTransition},
		{name: "rep comments and changes a behaviour", who: "rep1", m: upsertM(t, "assessments", a, map[string]any{"rep_comment": "fair", "behaviours": rawJSON(`[]`)}), wantCode: engine.CodeForbidden},
		{name: "rep comments", who: "rep1", m: upsertM(t, "assessments", a, map[string]any{"rep_comment": "fair; I will ask for the order"})},
		{name: "rep acknowledges", who: "rep1", m: upsertM(t, "assessments", a, map[string]any{"status": "acknowledged"})},
		{name: "manager edits an acknowledged assessment", who: "m1", m: upsertM(t, "assessments", a, map[string]any{"behaviours": rawJSON(`[]`)}), wantCode: sales.CodeLocked},
		{name: "rep edits their comment once acknowledged", who: "rep1", m: upsertM(t, "assessments", a, map[string]any{"rep_comment": "changed my mind"}), wantCode: sales.CodeLocked},
		{name: "manager deletes an acknowledged assessment", who: "m1", m: deleteM("assessments", a), wantCode: sales.CodeLocked},
		{name: "manager drafts a contest-start assessment", who: "m1", m: upsertM(t, "assessments", uuid.New(), map[string]any{"rep_id": d.id("rep2"), "phase": "contest_start", "contest_id": contest})},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			d := d.sub(t)
			r := d.pushOne(s.who, s.m)
			wantResult(t, r, s.wantCode)
			if s.wantMsg != "" && !strings.Contains(r.Error.Message, s.wantMsg) {
				t.Errorf("message %q, want it to contain %q", r.Error.Message, s.wantMsg)
			}
		})
	}
	got := d.rec("assessments", a)
	if s := fmt.Sprintf("%s %s %q %s", got.StringValue("status"), d.names[*got.UUIDValue("assessor_id")], got.StringValue("rep_comment"), got.StringValue("behaviours")); s != `acknowledged m1 "fair; I will ask for the order" `+good {
		t.Errorf("final assessment: %s", s)
	}
	t.Run("the assessor deletes a draft", func(t *testing.T) {
		d := d.sub(t)
		id := d.create("m1", "assessments", map[string]any{"rep_id": d.id("rep1"), "phase": "ride_along", "ride_along_id": ra})
		wantResult(t, d.pushOne("rep1", deleteM("assessments", id)), engine.CodeNotFound)
		wantResult(t, d.pushOne("admin", deleteM("assessments", id)), engine.CodeForbidden)
		wantResult(t, d.pushOne("m1", deleteM("assessments", id)), "")
	})
}

// rawJSON is a JSON value sent as is.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// ---------------------------------------------------------------------------
// Verified check-ins

// TestCheckInVerification: the server classifies each check-in; each case
// runs on its own day so that cases do not see each other's visits.
func TestCheckInVerification(t *testing.T) {
	d := newDom(t)
	a := d.north[0]
	x, y := farApart(t, d.north, 15000)
	type v struct {
		acct  *engine.Record
		after time.Duration // from the case's morning
		extra map[string]any
		north float64 // check-in metres north of the account
	}
	tests := []struct {
		name   string
		visits []v
		want   []string // verification of each visit
		dist   []any    // check_in_distance_m of each
	}{
		{name: "at the account", visits: []v{{acct: a}}, want: []string{"verified"}, dist: []any{0.0}},
		{name: "200 m away", visits: []v{{acct: a, north: 200}}, want: []string{"verified"}, dist: []any{200.0}},
		{name: "a kilometre away", visits: []v{{acct: a, north: 1000}}, want: []string{"out_of_range"}, dist: []any{1000.0}},
		{name: "no GPS fix", visits: []v{{acct: a, extra: map[string]any{"check_in_lat": nil, "check_in_lng": nil}}}, want: []string{"unverifiable"}, dist: []any{nil}},
		{name: "poor accuracy", visits: []v{{acct: a, extra: map[string]any{"check_in_accuracy_m": 150.0}}}, want: []string{"unverifiable"}, dist: []any{0.0}},
		{name: "no accuracy reported", visits: []v{{acct: a, extra: map[string]any{"check_in_accuracy_m": nil}}}, want: []string{"unverifiable"}, dist: []any{0.0}},
		{name: "implausible speed from the previous check-in", visits: []v{{acct: x}, {acct: y, after: 3 * time.Minute}}, want: []string{"verified", "suspicious"}},
		{name: "the same trip an hour later is plausible", visits: []v{{acct: x}, {acct: y, after: time.Hour}}, want: []string{"verified", "verified"}},
		{name: "same account again within the cooldown", visits: []v{{acct: a}, {acct: a, after: 2 * time.Hour}}, want: []string{"verified", "suspicious"}},
		{name: "same account again after the cooldown", visits: []v{{acct: a}, {acct: a, after: 5 * time.Hour}}, want: []string{"verified", "verified"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := d.sub(t)
			morning := synctest.Start.Add(-time.Duration(2*(i+1)) * 24 * time.Hour)
			var muts []engine.Mutation
			var ids []uuid.UUID
			for _, vv := range tt.visits {
				extra := map[string]any{}
				for k, val := range vv.extra {
					extra[k] = val
				}
				if vv.north != 0 {
					lat, lng := at(vv.acct, vv.north, 0)
					extra["check_in_lat"], extra["check_in_lng"] = lat, lng
				}
				id := uuid.New()
				ids = append(ids, id)
				muts = append(muts, upsertM(t, "visits", id, visitFields(vv.acct, morning.Add(vv.after), extra)))
			}
			for _, r := range d.push("rep1", muts...) {
				wantResult(t, r, "")
			}
			for j, id := range ids {
				rec := d.rec("visits", id)
				if got := rec.StringValue("verification"); got != tt.want[j] {
					t.Errorf("visit %d: %s, want %s", j, got, tt.want[j])
				}
				if tt.dist != nil {
					got, _ := rec.Values["check_in_distance_m"].(float64)
					want, _ := tt.dist[j].(float64)
					if (rec.Values["check_in_distance_m"] == nil) != (tt.dist[j] == nil) || math.Abs(got-want) > 1 {
						t.Errorf("visit %d: distance %v, want %v", j, rec.Values["check_in_distance_m"], tt.dist[j])
					}
				}
			}
		})
	}
	t.Run("moving the check-in re-verifies", func(t *testing.T) {
		d := d.sub(t)
		start := synctest.Start.Add(-30 * 24 * time.Hour)
		lat, lng := at(a, 2000, 0)
		id := d.create("rep1", "visits", visitFields(a, start, map[string]any{"check_in_lat": lat, "check_in_lng": lng}))
		if got := d.rec("visits", id).StringValue("verification"); got != "out_of_range" {
			t.Fatalf("%s, want out_of_range", got)
		}
		lat, lng = at(a, 20, 0)
		d.up("rep1", "visits", id, map[string]any{"check_in_lat": lat, "check_in_lng": lng})
		if got := d.rec("visits", id).StringValue("verification"); got != "verified" {
			t.Errorf("%s after moving the check-in to the account, want verified", got)
		}
	})
	t.Run("clients cannot write verification", func(t *testing.T) {
		d := d.sub(t)
		for _, field := range []string{"verification", "check_in_distance_m"} {
			val := any("verified")
			if field == "check_in_distance_m" {
				val = 1.0
			}
			lat, lng := at(a, 3000, 0)
			r := d.pushOne("rep1", upsertM(t, "visits", uuid.New(), visitFields(a, synctest.Start.Add(-40*24*time.Hour), map[string]any{
				"check_in_lat": lat, "check_in_lng": lng, field: val})))
			wantResult(t, r, engine.CodeServerOwned)
			if r.Error.Field != field {
				t.Errorf("rejected field %q, want %q", r.Error.Field, field)
			}
		}
	})
}

// TestCheckInVerificationIgnoresArrivalOrder: a suspicious check-in is
// suspicious because of the rep's earlier one, whichever reaches the
// server first — and stops being so when that one is deleted.
func TestCheckInVerificationIgnoresArrivalOrder(t *testing.T) {
	d := newDom(t)
	x, y := farApart(t, d.north, 15000)
	tests := []struct {
		name             string
		first, second    *engine.Record // accounts, in time order
		gap              time.Duration
		wantSecond       string
		wantAfterDeleted string
	}{
		{name: "speed", first: x, second: y, gap: 3 * time.Minute, wantSecond: "suspicious", wantAfterDeleted: "verified"},
		{name: "revisit", first: x, second: x, gap: time.Hour, wantSecond: "suspicious", wantAfterDeleted: "verified"},
	}
	for i, tt := range tests {
		for j, order := range []string{"in order", "later call first"} {
			t.Run(tt.name+", "+order, func(t *testing.T) {
				d := d.sub(t)
				morning := synctest.Start.Add(-time.Duration(3*(2*i+j+1)) * 24 * time.Hour)
				first, second := uuid.New(), uuid.New()
				pushFirst := func() { d.up("rep1", "visits", first, visitFields(tt.first, morning, nil)) }
				pushSecond := func() { d.up("rep1", "visits", second, visitFields(tt.second, morning.Add(tt.gap), nil)) }
				if order == "in order" {
					pushFirst()
					pushSecond()
				} else {
					pushSecond()
					pushFirst()
				}
				got := d.rec("visits", first).StringValue("verification") + " " + d.rec("visits", second).StringValue("verification")
				if want := "verified " + tt.wantSecond; got != want {
					t.Errorf("verifications %q, want %q", got, want)
				}
				wantResult(t, d.pushOne("rep1", deleteM("visits", first)), "")
				if got := d.rec("visits", second).StringValue("verification"); got != tt.wantAfterDeleted {
					t.Errorf("after the earlier call was deleted: %s, want %s", got, tt.wantAfterDeleted)
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------
// Points: the ledger, reversals, caps, the contest lifecycle

// TestScoreLedger follows one visit and one activity through their edits:
// every change of points is a new entry with a reason; nothing already
// written is edited.
func TestScoreLedger(t *testing.T) {
	d := newDom(t)
	t0 := d.Now()
	contest := d.mustContest("admin", contestIn("March madness", t0.Add(-2*24*time.Hour), t0.Add(5*24*time.Hour), nil))
	acct := d.north[0]
	name := acct.StringValue("name")
	visit := d.create("rep1", "visits", visitFields(acct, t0.Add(-3*time.Hour), map[string]any{"outcome": "order", "order_value": 250}))
	act := d.create("rep1", "activities", map[string]any{"type": "crm_update", "occurred_at": t0.Add(-2 * time.Hour), "account_id": acct.ID, "cost": 12.5})

	written := map[uuid.UUID]string{} // every entry as first seen
	snapshot := func(e *engine.Record) string {
		return fmt.Sprintf("v%d %v %s %g %v %v %q %v", e.Version, e.Values["source_id"], e.StringValue("rule"), num(e, "points"),
			e.Values["value"], e.Values["cost"], e.StringValue("reason"), e.Values["reverses"])
	}
	// step checks the ledger entries added since the last step, as
	// "rule points reason [reverses]" lines, and the standing.
	step := func(name string, wantNew []string, outcome, activity float64, value, cost int64) {
		t.Helper()
		var gotNew []string
		for _, e := range d.entries(contest, "rep1") {
			s := snapshot(e)
			if old, seen := written[e.ID]; seen {
				if old != s {
					t.Errorf("%s: entry %s was edited:\n was %s\n now %s", name, e.ID, old, s)
				}
				continue
			}
			written[e.ID] = s
			line := fmt.Sprintf("%s %g %s", e.StringValue("rule"), num(e, "points"), e.StringValue("reason"))
			if rev := e.UUIDValue("reverses"); rev != nil {
				if _, ok := written[*rev]; !ok {
					t.Errorf("%s: %s reverses %s, which is no entry of the ledger", name, e.ID, rev)
				}
				line += " [reversal]"
			}
			if e.Values["rules_version"] != int64(1) {
				t.Errorf("%s: entry rules_version %v, want 1", name, e.Values["rules_version"])
			}
			gotNew = append(gotNew, line)
		}
		sort.Strings(gotNew)
		sort.Strings(wantNew)
		if !reflect.DeepEqual(gotNew, wantNew) {
			t.Errorf("%s: new entries\n got %q\nwant %q", name, gotNew, wantNew)
		}
		d.wantStanding(contest, "rep1", outcome, activity, value, cost)
	}

	step("a verified call with an order and a CRM update", []string{
		"unscheduled_call 5 Unscheduled call at " + name + ", verified: +5",
		"outcome:order 10 Order at " + name + ": +10",
		"order_value 2.5 Order value 250.00 at " + name + ": +2.5",
		"activity:crm_update 1 CRM update at " + name + ": +1",
	}, 12.5, 6, 25000, 1250)
	if s := d.standings(contest)["rep1"]; num(s, "productivity") != 20 || num(s, "rank") != 1 {
		t.Errorf("rep1: productivity %v rank %v, want 20 (250.00 / 12.50) and 1", s.Values["productivity"], s.Values["rank"])
	}

	lat, lng := at(acct, 2000, 0)
	d.up("rep1", "visits", visit, map[string]any{"check_in_lat": lat, "check_in_lng": lng})
	step("the check-in moves 2 km away: un-verified", []string{
		"unscheduled_call -5 Reversed: Unscheduled call at " + name + ", verified: +5 [reversal]",
	}, 12.5, 1, 25000, 1250)

	lat, lng = at(acct, 30, 0)
	d.up("rep1", "visits", visit, map[string]any{"check_in_lat": lat, "check_in_lng": lng})
	step("verified again", []string{"unscheduled_call 5 Unscheduled call at " + name + ", verified: +5"}, 12.5, 6, 25000, 1250)

	d.up("rep1", "visits", visit, map[string]any{"order_value": 400})
	step("the order grows", []string{
		"order_value -2.5 Reversed: Order value 250.00 at " + name + ": +2.5 [reversal]",
		"order_value 4 Order value 400.00 at " + name + ": +4",
	}, 14, 6, 40000, 1250)

	d.up("rep1", "visits", visit, map[string]any{"status": "cancelled"})
	step("the visit is cancelled", []string{
		"unscheduled_call -5 Reversed: Unscheduled call at " + name + ", verified: +5 [reversal]",
		"outcome:order -10 Reversed: Order at " + name + ": +10 [reversal]",
		"order_value -4 Reversed: Order value 400.00 at " + name + ": +4 [reversal]",
	}, 0, 1, 0, 1250)

	d.up("rep1", "visits", visit, map[string]any{"status": "completed"})
	step("and reinstated", []string{
		"unscheduled_call 5 Unscheduled call at " + name + ", verified: +5",
		"outcome:order 10 Order at " + name + ": +10",
		"order_value 4 Order value 400.00 at " + name + ": +4",
	}, 14, 6, 40000, 1250)

	wantResult(t, d.pushOne("rep1", deleteM("visits", visit)), "")
	step("the visit is deleted", []string{
		"unscheduled_call -5 Reversed: Unscheduled call at " + name + ", verified: +5 [reversal]",
		"outcome:order -10 Reversed: Order at " + name + ": +10 [reversal]",
		"order_value -4 Reversed: Order value 400.00 at " + name + ": +4 [reversal]",
	}, 0, 1, 0, 1250)

	wantResult(t, d.pushOne("rep1", deleteM("activities", act)), "")
	step("the activity is deleted", []string{
		"activity:crm_update -1 Reversed: CRM update at " + name + ": +1 [reversal]",
	}, 0, 0, 0, 0)

	// Reversals carry negative value and cost, so the ledger nets to zero.
	if _, _, value, cost := ledgerTotal(d.entries(contest, "rep1")); value != 0 || cost != 0 {
		t.Errorf("ledger nets value %d cost %d, want 0", value, cost)
	}
	// The rep's phone pulls every entry, reasons and all.
	var pulled int
	changes, _ := d.PullAll(d.users["rep1"], "", 500)
	for _, c := range changes {
		if c.Entity.Name == "score_entries" && *c.Record.UUIDValue("contest_id") == contest {
			pulled++
			if c.Record.StringValue("reason") == "" {
				t.Errorf("pulled entry %s without a reason", c.Record.ID)
			}
		}
	}
	if pulled != len(written) {
		t.Errorf("rep1 pulled %d score entries, want %d", pulled, len(written))
	}
}

// TestClientsCannotWritePoints: points, standings, ranks and contests are
// the server's; a phone's write is rejected, never silently taken.
func TestClientsCannotWritePoints(t *testing.T) {
	d := newDom(t)
	contest := d.mustContest("admin", contestIn("Points", d.Now().Add(-time.Hour), d.Now().Add(24*time.Hour), nil))
	d.create("rep1", "visits", visitFields(d.north[0], d.Now().Add(-30*time.Minute), nil))
	standing := d.standings(contest)["rep1"]
	entry := d.entries(contest, "rep1")[0]
	before := fmt.Sprint(standing.Version, entry.Version)
	tests := []struct {
		name     string
		who      string
		m        engine.Mutation
		wantCode string
	}{
		{name: "rep creates a score entry", who: "rep1", m: upsertM(t, "score_entries", uuid.New(), map[string]any{"contest_id": contest, "rep_id": d.id("rep1"), "points": 1000}), wantCode: engine.CodeReadOnly},
		{name: "rep edits their score entry", who: "rep1", m: upsertM(t, "score_entries", entry.ID, map[string]any{"points": 1000}), wantCode: engine.CodeReadOnly},
		{name: "rep deletes their score entry", who: "rep1", m: deleteM("score_entries", entry.ID), wantCode: engine.CodeReadOnly},
		{name: "rep raises their standing", who: "rep1", m: upsertM(t, "standings", standing.ID, map[string]any{"total_points": 1000, "rank": 1}), wantCode: engine.CodeReadOnly},
		{name: "manager edits a standing", who: "m1", m: upsertM(t, "standings", standing.ID, map[string]any{"rank": 1}), wantCode: engine.CodeReadOnly},
		{name: "admin pushes a contest", who: "admin", m: upsertM(t, "contests", contest, map[string]any{"name": "mine"}), wantCode: engine.CodeReadOnly},
		{name: "rep sets a visit's verification", who: "rep1", m: upsertM(t, "visits", uuid.New(), visitFields(d.north[1], d.Now().Add(-time.Hour), map[string]any{"verification": "verified"})), wantCode: engine.CodeServerOwned},
		{name: "rep sends a visit's version", who: "rep1", m: upsertM(t, "visits", uuid.New(), visitFields(d.north[1], d.Now().Add(-time.Hour), map[string]any{"version": 99})), wantCode: engine.CodeServerOwned},
		{name: "rep logs a visit as another rep", who: "rep1", m: upsertM(t, "visits", uuid.New(), visitFields(d.north[1], d.Now().Add(-time.Hour), map[string]any{"rep_id": d.id("rep2")})), wantCode: engine.CodeServerOwned},
		{name: "rep logs an activity for another team", who: "rep1", m: upsertM(t, "activities", uuid.New(), map[string]any{"type": "networking", "occurred_at": d.Now(), "team_id": d.teams["South"]}), wantCode: engine.CodeServerOwned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := d.sub(t)
			r := d.pushOne(tt.who, tt.m)
			wantResult(t, r, tt.wantCode)
			if r.Error.Message == "" {
				t.Errorf("rejection without a message")
			}
		})
	}
	after := fmt.Sprint(d.standings(contest)["rep1"].Version, d.rec("score_entries", entry.ID).Version)
	if after != before {
		t.Errorf("standing and entry versions %s, want unchanged %s", after, before)
	}
}

// TestContestCreateRoles: admins run any contest, managers those of the
// team they manage, nobody else.
func TestContestCreateRoles(t *testing.T) {
	d := newDom(t)
	north, south := d.teams["North"], d.teams["South"]
	tests := []struct {
		name     string
		who      string
		team     *uuid.UUID
		wantCode string
	}{
		{name: "admin, whole organisation", who: "admin"},
		{name: "admin, one team", who: "admin", team: &south},
		{name: "manager, own team", who: "m1", team: &north},
		{name: "manager, other team", who: "m1", team: &south, wantCode: models.CodeForbidden},
		{name: "manager, no team given: the team they manage", who: "m2"},
		{name: "rep", who: "rep1", team: &north, wantCode: models.CodeForbidden},
		{name: "admin, unknown team", who: "admin", team: ptr(uuid.New()), wantCode: models.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := d.sub(t)
			in := contestIn(tt.name, d.Now().Add(time.Hour), d.Now().Add(48*time.Hour), nil)
			in.TeamID = tt.team
			r, err := d.createContest(tt.who, in)
			if got := models.ErrorCode(err); tt.wantCode != "" {
				if got != tt.wantCode {
					t.Fatalf("create: %v, want %s", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			c := d.rec("contests", r.ID)
			if got := fmt.Sprintf("%s v%v owner %s grace %v tz %s", c.StringValue("status"), c.Values["rules_version"], d.names[*c.UUIDValue("owner_id")], c.Values["grace_hours"], c.StringValue("time_zone")); got != fmt.Sprintf("draft v1 owner %s grace 48 tz UTC", tt.who) {
				t.Errorf("created %s", got)
			}
		})
	}
	t.Run("invalid input", func(t *testing.T) {
		d := d.sub(t)
		bad := models.DefaultScoringRules()
		bad.DailyCaps["golf"] = 1
		for name, in := range map[string]sales.ContestInput{
			"ends before it starts": contestIn("Backwards", d.Now().Add(48*time.Hour), d.Now(), nil),
			"unknown rule":          contestIn("Golf", d.Now(), d.Now().Add(time.Hour), &bad),
			"no name":               contestIn(" ", d.Now(), d.Now().Add(time.Hour), nil),
			"over a year":           contestIn("Forever", d.Now(), d.Now().Add(400*24*time.Hour), nil),
			"bad time zone":         {Name: ptr("Zoned"), StartsAt: instant(d.Now()), EndsAt: instant(d.Now().Add(time.Hour)), TimeZone: ptr("Mars/Olympus")},
			"target of a manager":   {Name: ptr("Targets"), StartsAt: instant(d.Now()), EndsAt: instant(d.Now().Add(time.Hour)), HasTargets: true, Targets: map[uuid.UUID]float64{d.id("m1"): 10}},
		} {
			if _, err := d.createContest("admin", in); models.ErrorCode(err) != models.CodeInvalid {
				t.Errorf("%s: %v, want invalid", name, err)
			}
		}
	})
}

// TestContestLifecycle: draft → active → ended → finalized as the
// scheduler ticks; a late-synced visit counts until the end plus the grace
// period, and a finalized contest never changes.
func TestContestLifecycle(t *testing.T) {
	d := newDom(t)
	t0 := d.Now()
	start, end := t0.Add(time.Hour), t0.Add(25*time.Hour)
	contest := d.mustContest("admin", contestIn("Sprint", start, end, nil))
	status := func() string { return d.rec("contests", contest).StringValue("status") }
	points := func(rep string) float64 {
		s := d.standings(contest)[rep]
		if s == nil {
			return -1
		}
		return num(s, "total_points")
	}
	call := func(rep string, acct *engine.Record, at time.Time) uuid.UUID {
		return d.create(rep, "visits", visitFields(acct, at, nil))
	}
	tests := []struct {
		name       string
		at         time.Duration // clock, from t0
		act        func()
		wantStatus string
		wantRep1   float64 // rep1's points (-1: no standing)
	}{
		{name: "before the start: a draft", at: 0, wantStatus: "draft", wantRep1: -1,
			act: func() { call("rep1", d.north[0], t0.Add(-time.Minute)) }}, // before the window: never counts
		{name: "started: every rep has a standing", at: time.Hour, wantStatus: "active", wantRep1: 0},
		{name: "a call during the contest", at: 2 * time.Hour, wantStatus: "active", wantRep1: 5,
			act: func() { call("rep1", d.north[1], t0.Add(90*time.Minute)) }},
		{name: "ended: late syncs still count", at: 26 * time.Hour, wantStatus: "ended", wantRep1: 10,
			act: func() { call("rep1", d.north[2], t0.Add(24*time.Hour)) }},
		{name: "a call after the end never counts", at: 27 * time.Hour, wantStatus: "ended", wantRep1: 10,
			act: func() { call("rep1", d.north[3], t0.Add(25*time.Hour+time.Minute)) }},
		{name: "a minute before the grace period ends, a late sync counts", at: 25*time.Hour + 48*time.Hour - time.Minute, wantStatus: "ended", wantRep1: 15,
			act: func() { call("rep1", d.north[4], t0.Add(23*time.Hour)) }},
		{name: "after the grace period, a late sync does not count", at: 25*time.Hour + 48*time.Hour, wantStatus: "finalized", wantRep1: 15,
			act: func() { call("rep1", d.north[5], t0.Add(22*time.Hour)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := d.sub(t)
			d.Clock.Store(synctest.Start.Add(tt.at).UnixNano())
			d.tick()
			if tt.act != nil {
				tt.act()
			}
			if got := status(); got != tt.wantStatus {
				t.Errorf("status %s, want %s", got, tt.wantStatus)
			}
			if got := points("rep1"); got != tt.wantRep1 {
				t.Errorf("rep1 has %v points, want %v", got, tt.wantRep1)
			}
		})
	}
	t.Run("every rep of the organisation stands, ranked", func(t *testing.T) {
		d := d.sub(t)
		ss := d.standings(contest)
		if len(ss) != 6 {
			t.Fatalf("%d standings, want 6 (every rep)", len(ss))
		}
		ranks := map[int64]bool{}
		for name, s := range ss {
			ranks[s.Values["rank"].(int64)] = true
			if !strings.HasPrefix(name, "rep") {
				t.Errorf("standing for %s, who is no rep", name)
			}
		}
		if len(ranks) != 6 || !ranks[1] || !ranks[6] || num(ss["rep1"], "rank") != 1 {
			t.Errorf("ranks %v (rep1 %v), want 1…6 with rep1 first", ranks, ss["rep1"].Values["rank"])
		}
	})
	t.Run("start and end each made an assessment due for every participant", func(t *testing.T) {
		d := d.sub(t)
		for _, phase := range []string{"contest_start", "contest_end"} {
			as := d.find("assessments", map[string]any{"contest_id": contest, "phase": phase})
			got := map[string]string{}
			for _, a := range as {
				got[d.names[*a.UUIDValue("rep_id")]] = d.names[*a.UUIDValue("assessor_id")] + " " + a.StringValue("status")
			}
			want := map[string]string{"rep1": "m1 draft", "rep2": "m1 draft", "rep3": "m1 draft", "rep4": "m2 draft", "rep5": "m2 draft", "rep6": "m2 draft"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s assessments %v, want %v", phase, got, want)
			}
		}
	})
	t.Run("a finalized contest never changes", func(t *testing.T) {
		d := d.sub(t)
		v := d.rec("contests", contest).Version
		err := d.updateContest("admin", contest, sales.ContestInput{Rules: &models.ScoringRules{PerVerifiedUnscheduledCall: 100}})
		if models.ErrorCode(err) != models.CodeConflict {
			t.Errorf("update of a finalized contest: %v, want conflict", err)
		}
		call("rep2", d.north[6], t0.Add(3*time.Hour))
		d.tick()
		if got := d.rec("contests", contest).Version; got != v || points("rep2") != 0 {
			t.Errorf("contest version %d → %d, rep2 %v points: want no change", v, got, points("rep2"))
		}
	})
}

// TestContestLateSyncWithoutTick: the grace period is judged at the push,
// not by the scheduler: a contest the scheduler has not finalized yet
// still takes nothing after its end plus grace.
func TestContestLateSyncWithoutTick(t *testing.T) {
	d := newDom(t)
	t0 := d.Now()
	grace := 2
	in := contestIn("Short grace", t0.Add(-3*time.Hour), t0.Add(-time.Hour), nil)
	in.GraceHours = &grace
	contest := d.mustContest("admin", in)
	d.create("rep1", "visits", visitFields(d.north[0], t0.Add(-2*time.Hour), nil))
	d.Advance(59 * time.Minute) // the grace period ends at t0 + 1h
	d.create("rep2", "visits", visitFields(d.north[1], t0.Add(-2*time.Hour), nil))
	d.Advance(time.Minute)
	d.create("rep3", "visits", visitFields(d.north[2], t0.Add(-2*time.Hour), nil))
	got := fmt.Sprint(num(d.standings(contest)["rep1"], "total_points"), num(d.standings(contest)["rep2"], "total_points"), num(d.standings(contest)["rep3"], "total_points"))
	if got != "5 5 0" {
		t.Errorf("points of rep1 rep2 rep3: %s, want 5 5 0 (rep3 synced at the end of the grace period)", got)
	}
}

// TestContestRulesChangeAfterStart: rules freeze at the start; a later
// edit makes a new rules version, is audited and recomputes every point.
func TestContestRulesChangeAfterStart(t *testing.T) {
	d := newDom(t)
	t0 := d.Now()
	rules := models.DefaultScoringRules()
	draft := d.mustContest("admin", contestIn("Later", t0.Add(24*time.Hour), t0.Add(48*time.Hour), &rules))
	contest := d.mustContest("m1", sales.ContestInput{Name: ptr("North sprint"), StartsAt: instant(t0.Add(-24 * time.Hour)), EndsAt: instant(t0.Add(24 * time.Hour)), TeamID: ptr(d.teams["North"]), Rules: &rules})
	d.create("rep1", "visits", visitFields(d.north[0], t0.Add(-2*time.Hour), nil))
	d.create("rep2", "activities", map[string]any{"type": "referral", "occurred_at": t0.Add(-time.Hour)})
	d.wantStanding(contest, "rep1", 0, 5, 0, 0)
	d.wantStanding(contest, "rep2", 0, 3, 0, 0)

	t.Run("an edit of a draft is no new version", func(t *testing.T) {
		d := d.sub(t)
		r := rules
		r.PerVerifiedUnscheduledCall = 7
		if err := d.updateContest("admin", draft, sales.ContestInput{Rules: &r}); err != nil {
			t.Fatal(err)
		}
		vs, err := d.DB.Feed().RuleVersions(d.ctx, d.org, draft)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.rec("contests", draft).Values["rules_version"]; got != int64(1) || len(vs) != 0 {
			t.Errorf("rules_version %v, %d audited versions; want 1 and none", got, len(vs))
		}
	})
	t.Run("another team's manager cannot edit it", func(t *testing.T) {
		d := d.sub(t)
		if err := d.updateContest("m2", contest, sales.ContestInput{Name: ptr("mine")}); models.ErrorCode(err) != models.CodeNotFound {
			t.Errorf("update by m2: %v, want not_found (the contest is out of sight)", err)
		}
		if err := d.updateContest("rep1", contest, sales.ContestInput{Name: ptr("mine")}); models.ErrorCode(err) != models.CodeForbidden {
			t.Errorf("update by rep1: %v, want forbidden", err)
		}
	})
	t.Run("a renamed contest keeps its rules version", func(t *testing.T) {
		d := d.sub(t)
		if err := d.updateContest("m1", contest, sales.ContestInput{Name: ptr("North spring sprint")}); err != nil {
			t.Fatal(err)
		}
		if got := d.rec("contests", contest).Values["rules_version"]; got != int64(1) {
			t.Errorf("rules_version %v after a rename, want 1", got)
		}
	})
	t.Run("the start and time zone are frozen", func(t *testing.T) {
		d := d.sub(t)
		err := d.updateContest("m1", contest, sales.ContestInput{StartsAt: instant(t0)})
		if models.ErrorCode(err) != models.CodeInvalid {
			t.Errorf("moving the start of a running contest: %v, want invalid", err)
		}
	})
	t.Run("new rules: version 2, audited, recomputed", func(t *testing.T) {
		d := d.sub(t)
		d.Advance(time.Minute)
		r := rules
		r.PerVerifiedUnscheduledCall = 8
		r.PerActivity = map[string]float64{"referral": 4}
		if err := d.updateContest("m1", contest, sales.ContestInput{Rules: &r}); err != nil {
			t.Fatal(err)
		}
		c := d.rec("contests", contest)
		if got := c.Values["rules_version"]; got != int64(2) {
			t.Errorf("rules_version %v, want 2", got)
		}
		vs, err := d.DB.Feed().RuleVersions(d.ctx, d.org, contest)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 1 || vs[0].Version != 2 || vs[0].ChangedBy != d.id("m1") || !vs[0].ChangedAt.Equal(d.Now()) || vs[0].Rules != c.StringValue("rules") {
			t.Fatalf("audit %+v, want version 2 by m1 at %v with the new rules", vs, d.Now())
		}
		if !strings.Contains(vs[0].Rules, `"per_verified_unscheduled_call":8`) {
			t.Errorf("audited rules %s, want the new call points", vs[0].Rules)
		}
		d.wantStanding(contest, "rep1", 0, 8, 0, 0)
		d.wantStanding(contest, "rep2", 0, 4, 0, 0)
		var lines []string
		for _, e := range d.entries(contest, "rep1") {
			lines = append(lines, fmt.Sprintf("%g v%v", num(e, "points"), e.Values["rules_version"]))
		}
		if want := []string{"5 v1", "-5 v2", "8 v2"}; !reflect.DeepEqual(lines, want) {
			t.Errorf("rep1's ledger %q, want %q", lines, want)
		}
	})
	t.Run("targets set after the start rank by progress", func(t *testing.T) {
		d := d.sub(t)
		targets := map[uuid.UUID]float64{d.id("rep1"): 80, d.id("rep2"): 8, d.id("rep3"): 10}
		if err := d.updateContest("m1", contest, sales.ContestInput{HasTargets: true, Targets: targets}); err != nil {
			t.Fatal(err)
		}
		if got := d.rec("contests", contest).Values["rules_version"]; got != int64(3) {
			t.Errorf("rules_version %v, want 3", got)
		}
		ss := d.standings(contest)
		got := fmt.Sprintf("rep1 %g%% #%v, rep2 %g%% #%v (was #%v)", num(ss["rep1"], "progress")*100, ss["rep1"].Values["rank"],
			num(ss["rep2"], "progress")*100, ss["rep2"].Values["rank"], ss["rep2"].Values["previous_rank"])
		if want := "rep1 10% #2, rep2 50% #1 (was #2)"; got != want {
			t.Errorf("standings: %s, want %s", got, want)
		}
	})
}

// TestContestDailyCaps: caps bound the items that score per rep per local
// day of the contest's time zone, and pick the earliest items whatever
// order they sync in.
func TestContestDailyCaps(t *testing.T) {
	d := newDom(t)
	t0 := d.Now()
	rules := models.DefaultScoringRules()
	rules.DailyCaps = map[string]int{"unscheduled_call": 2, "activity:crm_update": 1}
	tz := "America/Chicago"
	contest := d.mustContest("admin", sales.ContestInput{Name: ptr("Capped"), StartsAt: instant(t0.Add(-5 * 24 * time.Hour)),
		EndsAt: instant(t0.Add(24 * time.Hour)), TimeZone: &tz, Rules: &rules})
	chicago, _ := time.LoadLocation(tz)
	day := time.Date(2026, 2, 26, 0, 0, 0, 0, chicago) // a Thursday, local
	// Four calls on the same local day, synced latest first, and one at
	// 00:30 the next local day (06:30 UTC): a new day, a new cap.
	times := []time.Duration{17 * time.Hour, 14 * time.Hour, 11 * time.Hour, 8 * time.Hour}
	ids := make([]uuid.UUID, len(times))
	for i, h := range times {
		ids[i] = d.create("rep1", "visits", visitFields(d.north[i], day.Add(h), nil))
	}
	next := d.create("rep1", "visits", visitFields(d.north[5], day.Add(24*time.Hour+30*time.Minute), nil))
	for i := 0; i < 3; i++ {
		d.create("rep1", "activities", map[string]any{"type": "crm_update", "occurred_at": day.Add(time.Duration(9+i) * time.Hour)})
	}
	scored := func() map[uuid.UUID]bool {
		out := map[uuid.UUID]float64{}
		for _, e := range d.entries(contest, "rep1") {
			if e.StringValue("rule") == "unscheduled_call" {
				out[*e.UUIDValue("source_id")] += num(e, "points")
			}
		}
		set := map[uuid.UUID]bool{}
		for id, p := range out {
			if p > 0 {
				set[id] = true
			}
		}
		return set
	}
	if got, want := scored(), map[uuid.UUID]bool{ids[3]: true, ids[2]: true, next: true}; !reflect.DeepEqual(got, want) {
		t.Errorf("scored calls %v, want the two earliest of the day (%s, %s) and the next day's %s", got, ids[3], ids[2], next)
	}
	d.wantStanding(contest, "rep1", 0, 16, 0, 0) // 3 calls × 5 + 1 CRM update
	// Deleting a scored call frees its place for the next one of the day.
	wantResult(t, d.pushOne("rep1", deleteM("visits", ids[2])), "")
	if got, want := scored(), map[uuid.UUID]bool{ids[3]: true, ids[1]: true, next: true}; !reflect.DeepEqual(got, want) {
		t.Errorf("after deleting %s, scored %v, want %v", ids[2], got, want)
	}
	d.wantStanding(contest, "rep1", 0, 16, 0, 0)
}

// TestContestScope: a team contest counts its team only.
func TestContestScope(t *testing.T) {
	d := newDom(t)
	t0 := d.Now()
	north := d.mustContest("m1", sales.ContestInput{Name: ptr("North only"), StartsAt: instant(t0.Add(-time.Hour)), EndsAt: instant(t0.Add(time.Hour)), TeamID: ptr(d.teams["North"])})
	d.create("rep1", "visits", visitFields(d.north[0], t0.Add(-30*time.Minute), nil))
	d.create("rep4", "visits", visitFields(d.south[0], t0.Add(-30*time.Minute), nil))
	ss := d.standings(north)
	var names []string
	for n := range ss {
		names = append(names, n)
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, []string{"rep1", "rep2", "rep3"}) {
		t.Errorf("standings of %v, want North's reps", names)
	}
	if n := len(d.find("score_entries", map[string]any{"contest_id": north, "rep_id": d.id("rep4")})); n != 0 {
		t.Errorf("rep4 has %d entries in North's contest", n)
	}
	d.wantStanding(north, "rep1", 0, 5, 0, 0)
}

// ---------------------------------------------------------------------------
// Standings do not depend on the order of arrival

// shuffleEvent is one visit or activity of the arrival-order test, in
// terms that hold in every fixture (account indexes, not ids).
type shuffleEvent struct {
	rep    string
	id     uuid.UUID
	at     time.Time
	acct   int // index into the rep's team's accounts
	visit  bool
	fields map[string]any // besides account, times and check-in
	north  float64        // check-in metres north of the account; <0: no fix
	minute int            // visit length
}

func (d *dom) repAccounts(rep string) []*engine.Record {
	if *d.users[rep].TeamID == d.teams["North"] {
		return d.north
	}
	return d.south
}

func (e shuffleEvent) mutation(d *dom) engine.Mutation {
	acct := d.repAccounts(e.rep)[e.acct]
	if !e.visit {
		f := map[string]any{"occurred_at": e.at, "account_id": acct.ID}
		for k, v := range e.fields {
			f[k] = v
		}
		return upsertM(d.t, "activities", e.id, f)
	}
	extra := map[string]any{"ended_at": e.at.Add(time.Duration(e.minute) * time.Minute)}
	for k, v := range e.fields {
		extra[k] = v
	}
	if e.north < 0 {
		extra["check_in_lat"], extra["check_in_lng"] = nil, nil
	} else {
		lat, lng := at(acct, e.north, 0)
		extra["check_in_lat"], extra["check_in_lng"] = lat, lng
	}
	return upsertM(d.t, "visits", e.id, visitFields(acct, e.at, extra))
}

// shuffleEvents generates a few days of busy reps: more calls and CRM
// updates than the caps allow, calls out of range, without a fix, too
// short, too fast after the previous one, and back at the same account.
func shuffleEvents(accts map[string][]*engine.Record, loc *time.Location) []shuffleEvent {
	rng := rand.New(rand.NewPCG(7, 11))
	newID := func() uuid.UUID {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		id, _ := uuid.FromBytes(b[:])
		id[6] = id[6]&0x0f | 0x40
		id[8] = id[8]&0x3f | 0x80
		return id
	}
	outcomes := []string{"none", "no_answer", "not_interested", "follow_up", "meeting", "demo", "order"}
	var out []shuffleEvent
	for r := 1; r <= 6; r++ {
		rep := fmt.Sprintf("rep%d", r)
		as := accts[rep]
		for dayN := 0; dayN < 3; dayN++ {
			day := time.Date(2026, 2, 24+dayN, 8, 0, 0, 0, loc)
			t := day
			prev := -1
			var prevAt time.Time
			for v, n := 0, 3+rng.IntN(4); v < n; v++ {
				t = t.Add(time.Duration(40+rng.IntN(60)) * time.Minute)
				e := shuffleEvent{rep: rep, id: newID(), visit: true, acct: rng.IntN(len(as)), minute: 3 + rng.IntN(50), fields: map[string]any{}}
				switch p := rng.IntN(10); {
				case p == 0: // out of range
					e.north = 700
				case p == 1: // no fix
					e.north = -1
				case p == 2 && prev >= 0: // back at the previous account within the cooldown
					e.acct = prev
				case p == 3 && prev >= 0: // implausibly fast from the previous call
					for i := range as {
						if sales.DistanceM(*as[i].FloatValue("lat"), *as[i].FloatValue("lng"), *as[prev].FloatValue("lat"), *as[prev].FloatValue("lng")) > 15000 {
							e.acct = i
							break
						}
					}
					t = prevAt.Add(2 * time.Minute)
				}
				e.at = t
				prevAt = t
				if rng.IntN(5) == 0 {
					e.fields["kind"] = "scheduled"
				}
				o := outcomes[rng.IntN(len(outcomes))]
				e.fields["outcome"] = o
				if o == "order" {
					e.fields["order_value"] = float64(50+rng.IntN(2000)) + 0.25
				}
				prev = e.acct
				out = append(out, e)
			}
			for a, n := 0, rng.IntN(5)+r%3; a < n; a++ {
				types := []string{"crm_update", "crm_update", "referral", "expense_report", "networking", "other"}
				e := shuffleEvent{rep: rep, id: newID(), acct: rng.IntN(len(as)), at: day.Add(time.Duration(rng.IntN(600)) * time.Minute),
					fields: map[string]any{"type": types[rng.IntN(len(types))]}}
				if rng.IntN(2) == 0 {
					e.fields["cost"] = float64(rng.IntN(5000)) / 100
				}
				out = append(out, e)
			}
		}
		// Spread the totals so that ranks are not decided by random ids.
		for k := 0; k < r; k++ {
			out = append(out, shuffleEvent{rep: rep, id: newID(), acct: 0, at: time.Date(2026, 2, 27, 9+k, 0, 0, 0, loc),
				fields: map[string]any{"type": "referral", "notes": "spread"}})
		}
	}
	return out
}

// scoreboard is what the arrival-order test compares: each rep's standing
// and net ledger, and each visit's verification.
type scoreboard struct {
	standings     map[string]string
	totals        map[string]float64
	ranks         map[string]int64
	ledger        map[string]map[string]float64 // rep → "source rule" → net points
	verifications map[uuid.UUID]string
}

func (d *dom) scoreboard(contest uuid.UUID, events []shuffleEvent) scoreboard {
	d.t.Helper()
	sb := scoreboard{standings: map[string]string{}, totals: map[string]float64{}, ranks: map[string]int64{}, ledger: map[string]map[string]float64{}, verifications: map[uuid.UUID]string{}}
	for name, s := range d.standings(contest) {
		sb.standings[name] = fmt.Sprintf("outcome %g activity %g total %g value %v cost %v productivity %g", num(s, "outcome_points"),
			num(s, "activity_points"), num(s, "total_points"), s.Values["outcome_value"], s.Values["activity_cost"], num(s, "productivity"))
		sb.ranks[name] = s.Values["rank"].(int64)
		sb.totals[name] = num(s, "total_points")
		net := map[string]float64{}
		for _, e := range d.entries(contest, name) {
			net[e.UUIDValue("source_id").String()+" "+e.StringValue("rule")] += num(e, "points")
		}
		for k, p := range net {
			if math.Abs(p) < 0.005 {
				delete(net, k)
			} else {
				net[k] = math.Round(p*100) / 100
			}
		}
		sb.ledger[name] = net
	}
	for _, e := range events {
		if e.visit {
			sb.verifications[e.id] = d.rec("visits", e.id).StringValue("verification")
		}
	}
	return sb
}

// TestStandingsIgnoreArrivalOrder pushes the same visits and activities in
// time order and in several random orders and batchings, each into a fresh
// organisation, and once before the contest exists; the standings, the
// ledgers and the verifications must come out the same.
func TestStandingsIgnoreArrivalOrder(t *testing.T) {
	loc, _ := time.LoadLocation("America/Chicago")
	rules := models.DefaultScoringRules()
	rules.DailyCaps = map[string]int{"unscheduled_call": 3, "activity:crm_update": 2, "activity:networking": 1}
	tz := "America/Chicago"
	var events []shuffleEvent
	run := func(t *testing.T, order func([]shuffleEvent, *rand.Rand) []shuffleEvent, contestFirst bool, seed uint64) scoreboard {
		d := newDom(t)
		if events == nil {
			accts := map[string][]*engine.Record{}
			for r := 1; r <= 6; r++ {
				rep := fmt.Sprintf("rep%d", r)
				accts[rep] = d.repAccounts(rep)
			}
			events = shuffleEvents(accts, loc)
		}
		in := sales.ContestInput{Name: ptr("Order does not matter"), StartsAt: instant(time.Date(2026, 2, 23, 0, 0, 0, 0, loc)),
			EndsAt: instant(time.Date(2026, 3, 5, 0, 0, 0, 0, loc)), TimeZone: &tz, Rules: &rules}
		var contest uuid.UUID
		if contestFirst {
			contest = d.mustContest("admin", in)
		}
		rng := rand.New(rand.NewPCG(seed, seed))
		evs := order(append([]shuffleEvent(nil), events...), rng)
		for len(evs) > 0 {
			// A batch is the next 1–8 events of the rep whose event comes
			// next, in the order they come.
			rep, n := evs[0].rep, 1+rng.IntN(8)
			var muts []engine.Mutation
			rest := evs[:0:0]
			for _, e := range evs {
				if e.rep == rep && len(muts) < n {
					muts = append(muts, e.mutation(d))
				} else {
					rest = append(rest, e)
				}
			}
			evs = rest
			for _, r := range d.push(rep, muts...) {
				wantResult(t, r, "")
			}
		}
		if !contestFirst {
			contest = d.mustContest("admin", in)
		}
		return d.scoreboard(contest, events)
	}
	inOrder := func(evs []shuffleEvent, _ *rand.Rand) []shuffleEvent {
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
		return evs
	}
	shuffled := func(evs []shuffleEvent, rng *rand.Rand) []shuffleEvent {
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		return evs
	}
	var want scoreboard
	t.Run("in time order", func(t *testing.T) { want = run(t, inOrder, true, 1) })
	if t.Failed() {
		return
	}
	// The data must exercise what it claims to: every verdict, capped days.
	verdicts := map[string]int{}
	for _, v := range want.verifications {
		verdicts[v]++
	}
	for _, v := range []string{"verified", "out_of_range", "unverifiable", "suspicious"} {
		if verdicts[v] == 0 {
			t.Errorf("the generated data has no %s check-in: %v", v, verdicts)
		}
	}
	t.Logf("%d events; verifications %v", len(events), verdicts)
	totals := map[float64]bool{}
	for _, s := range want.totals {
		totals[s] = true
	}
	distinct := len(totals) == len(want.totals)
	t.Logf("totals %v (distinct: %v)", want.totals, distinct)
	compare := func(t *testing.T, got scoreboard) {
		for _, rep := range []string{"rep1", "rep2", "rep3", "rep4", "rep5", "rep6"} {
			if got.standings[rep] != want.standings[rep] {
				t.Errorf("%s: %s\n   in time order: %s", rep, got.standings[rep], want.standings[rep])
			}
			if distinct && got.ranks[rep] != want.ranks[rep] {
				t.Errorf("%s: rank %d, in time order %d", rep, got.ranks[rep], want.ranks[rep])
			}
			for _, k := range unionKeysOf(got.ledger[rep], want.ledger[rep]) {
				if g, w := got.ledger[rep][k], want.ledger[rep][k]; g != w {
					t.Errorf("%s: %s nets %g points, in time order %g", rep, k, g, w)
				}
			}
		}
		for id, v := range want.verifications {
			if got.verifications[id] != v {
				t.Errorf("visit %s: %s, in time order %s", id, got.verifications[id], v)
			}
		}
	}
	for _, seed := range []uint64{2, 3, 4} {
		t.Run(fmt.Sprintf("shuffled, seed %d", seed), func(t *testing.T) { compare(t, run(t, shuffled, true, seed)) })
	}
	t.Run("shuffled, before the contest existed", func(t *testing.T) { compare(t, run(t, shuffled, false, 5)) })
}

func unionKeysOf(a, b map[string]float64) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]float64{a, b} {
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

// ---------------------------------------------------------------------------
// Visibility

// TestDomainVisibility: a rep sees their own ride-alongs, assessments and
// points; their manager sees the team's; another team and another
// organisation see none of it.
func TestDomainVisibility(t *testing.T) {
	d := newDom(t)
	t0 := d.Now()
	orgContest := d.mustContest("admin", contestIn("Everyone", t0.Add(-time.Hour), t0.Add(24*time.Hour), nil))
	northContest := d.mustContest("m1", sales.ContestInput{Name: ptr("North"), StartsAt: instant(t0.Add(-time.Hour)), EndsAt: instant(t0.Add(24 * time.Hour)), TeamID: ptr(d.teams["North"])})
	visit := d.create("rep1", "visits", visitFields(d.north[0], t0.Add(-30*time.Minute), nil))
	ra := d.create("m1", "ride_alongs", map[string]any{"rep_id": d.id("rep1"), "mode": "visit", "visit_id": visit})
	d.up("rep1", "ride_alongs", ra, map[string]any{"status": "accepted"})
	d.up("m1", "ride_alongs", ra, map[string]any{"status": "completed"})
	debriefs := d.find("assessments", map[string]any{"ride_along_id": ra})
	if len(debriefs) != 1 {
		t.Fatalf("%d debriefs, want 1", len(debriefs))
	}
	assessment := debriefs[0].ID
	d.up("m1", "assessments", assessment, map[string]any{"status": "shared"})
	kudos := d.create("rep1", "recognitions", map[string]any{"to_user_id": d.id("rep2"), "message": "nice close"})
	entry := d.entries(northContest, "rep1")[0].ID
	orgEntry := d.entries(orgContest, "rep1")[0].ID
	northStanding := d.standings(northContest)["rep1"].ID
	orgStanding := d.standings(orgContest)["rep1"].ID

	// Another organisation, with a team, a manager and a rep.
	other := models.Org{ID: uuid.New(), Name: "Other Co", CreatedAt: t0}
	user := func(email string, role models.Role, team *uuid.UUID) models.User {
		return models.User{OrgID: other.ID, ID: uuid.New(), Email: email, Name: email, Role: role, TeamID: team, Active: true,
			TimeZone: "UTC", PasswordHash: "x", CreatedAt: t0, UpdatedAt: t0}
	}
	if err := d.DB.People().CreateOrg(d.ctx, other, user("admin@other.test", models.RoleAdmin, nil)); err != nil {
		t.Fatal(err)
	}
	otherMgr := user("manager@other.test", models.RoleManager, nil)
	if err := d.DB.People().CreateUser(d.ctx, otherMgr); err != nil {
		t.Fatal(err)
	}
	otherTeam := models.Team{OrgID: other.ID, ID: uuid.New(), Name: "West", ManagerID: &otherMgr.ID, CreatedAt: t0}
	if err := d.DB.People().CreateTeam(d.ctx, otherTeam); err != nil {
		t.Fatal(err)
	}
	if err := d.DB.People().CreateUser(d.ctx, user("rep@other.test", models.RoleRep, &otherTeam.ID)); err != nil {
		t.Fatal(err)
	}
	for name, email := range map[string]string{"oadmin": "admin@other.test", "omgr": "manager@other.test", "orep": "rep@other.test"} {
		d.addUser(name, email)
	}

	keys := map[string]engine.Key{
		"org contest":       {Entity: "contests", ID: orgContest},
		"North contest":     {Entity: "contests", ID: northContest},
		"ride-along":        {Entity: "ride_alongs", ID: ra},
		"assessment":        {Entity: "assessments", ID: assessment},
		"score entry":       {Entity: "score_entries", ID: entry},
		"org contest entry": {Entity: "score_entries", ID: orgEntry},
		"North standing":    {Entity: "standings", ID: northStanding},
		"org standing":      {Entity: "standings", ID: orgStanding},
		"kudos":             {Entity: "recognitions", ID: kudos},
		"rep1's visit":      {Entity: "visits", ID: visit},
	}
	all := []string{"org contest", "North contest", "ride-along", "assessment", "score entry", "org contest entry", "North standing", "org standing", "kudos", "rep1's visit"}
	tests := []struct {
		who  string
		sees []string
	}{
		{who: "rep1", sees: all},
		{who: "m1", sees: all},
		{who: "admin", sees: all},
		{who: "rep2", sees: []string{"org contest", "North contest", "North standing", "org standing", "kudos"}},
		{who: "rep4", sees: []string{"org contest", "org standing", "kudos"}},
		{who: "m2", sees: []string{"org contest", "org standing", "kudos"}},
		{who: "oadmin"},
		{who: "omgr"},
		{who: "orep"},
	}
	for _, tt := range tests {
		t.Run(tt.who, func(t *testing.T) {
			d := d.sub(t)
			pulled := d.pulledKeys(d.users[tt.who])
			sees := map[string]bool{}
			for _, s := range tt.sees {
				sees[s] = true
			}
			for _, name := range all {
				if got := pulled[keys[name]]; got != sees[name] {
					t.Errorf("pulls %s: %v, want %v", name, got, sees[name])
				}
				_, err := d.En.Get(d.ctx, d.users[tt.who], keys[name].Entity, keys[name].ID)
				if got := err == nil; got != sees[name] {
					t.Errorf("gets %s: %v (%v), want %v", name, got, err, sees[name])
				}
			}
			if strings.HasPrefix(tt.who, "o") {
				for k := range pulled {
					if k.Entity != "accounts" {
						t.Errorf("another organisation pulls %s %s", k.Entity, k.ID)
					}
				}
			}
		})
	}
	t.Run("another organisation cannot reach in", func(t *testing.T) {
		d := d.sub(t)
		wantResult(t, d.pushOne("orep", upsertM(t, "recognitions", uuid.New(), map[string]any{"to_user_id": d.id("rep1"), "message": "hi"})), engine.CodeInvalidValue)
		if _, err := d.createContest("omgr", sales.ContestInput{Name: ptr("Raid"), StartsAt: instant(t0), EndsAt: instant(t0.Add(time.Hour)), TeamID: ptr(d.teams["North"])}); models.ErrorCode(err) != models.CodeForbidden {
			t.Errorf("other org's manager creates a contest for North: %v, want forbidden", err)
		}
		if err := d.updateContest("oadmin", northContest, sales.ContestInput{Name: ptr("Raid")}); models.ErrorCode(err) != models.CodeNotFound {
			t.Errorf("other org's admin updates North's contest: %v, want not_found", err)
		}
		d.pushOne("omgr", upsertM(t, "ride_alongs", ra, map[string]any{"status": "cancelled"}))
		if got := d.rec("ride_alongs", ra).StringValue("status"); got != "completed" {
			t.Errorf("another organisation's push made a Demo ride-along %s", got)
		}
	})
}

// ---------------------------------------------------------------------------
// Recognition and productivity

func TestRecognitions(t *testing.T) {
	d := newDom(t)
	kudos := func(to uuid.UUID, extra map[string]any) map[string]any {
		f := map[string]any{"to_user_id": to, "message": "great work"}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}
	given := uuid.New()
	tests := []struct {
		name     string
		who      string
		m        engine.Mutation
		wantCode string
	}{
		{name: "rep thanks a rep of another team", who: "rep1", m: upsertM(t, "recognitions", given, kudos(d.id("rep4"), map[string]any{"badge": "team_player"}))},
		{name: "rep thanks their manager", who: "rep1", m: upsertM(t, "recognitions", uuid.New(), kudos(d.id("m1"), nil))},
		{name: "kudos to yourself", who: "rep1", m: upsertM(t, "recognitions", uuid.New(), kudos(d.id("rep1"), nil)), wantCode: engine.CodeInvalidValue},
		{name: "kudos to nobody we know", who: "rep1", m: upsertM(t, "recognitions", uuid.New(), kudos(uuid.New(), nil)), wantCode: engine.CodeInvalidValue},
		{name: "a server badge: first verified call", who: "m1", m: upsertM(t, "recognitions", uuid.New(), kudos(d.id("rep1"), map[string]any{"badge": "first_verified_call"})), wantCode: engine.CodeInvalidValue},
		{name: "a server badge: top 3", who: "m1", m: upsertM(t, "recognitions", uuid.New(), kudos(d.id("rep1"), map[string]any{"badge": "top_3"})), wantCode: engine.CodeInvalidValue},
		{name: "a server badge: target reached", who: "admin", m: upsertM(t, "recognitions", uuid.New(), kudos(d.id("rep1"), map[string]any{"badge": "target_reached"})), wantCode: engine.CodeInvalidValue},
		{name: "kudos in someone else's name", who: "rep2", m: upsertM(t, "recognitions", uuid.New(), kudos(d.id("rep3"), map[string]any{"from_user_id": d.id("rep1")})), wantCode: engine.CodeServerOwned},
		{name: "a client says it is a badge", who: "rep2", m: upsertM(t, "recognitions", uuid.New(), kudos(d.id("rep3"), map[string]any{"kind": "badge"})), wantCode: engine.CodeServerOwned},
		{name: "a client dates it", who: "rep2", m: upsertM(t, "recognitions", uuid.New(), kudos(d.id("rep3"), map[string]any{"sent_at": d.Now().Add(-time.Hour)})), wantCode: engine.CodeServerOwned},
		{name: "no message", who: "rep2", m: upsertM(t, "recognitions", uuid.New(), map[string]any{"to_user_id": d.id("rep3")}), wantCode: engine.CodeMissingRequired},
		{name: "the giver edits it", who: "rep1", m: upsertM(t, "recognitions", given, map[string]any{"message": "edited"}), wantCode: sales.CodeLocked},
		{name: "the recipient deletes it", who: "rep4", m: deleteM("recognitions", given), wantCode: sales.CodeLocked},
		{name: "the giver withdraws it", who: "rep1", m: deleteM("recognitions", given)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := d.sub(t)
			wantResult(t, d.pushOne(tt.who, tt.m), tt.wantCode)
		})
	}
	t.Run("the server fills in giver, kind and time", func(t *testing.T) {
		d := d.sub(t)
		id := d.create("rep5", "recognitions", kudos(d.id("rep6"), nil))
		r := d.rec("recognitions", id)
		if got := fmt.Sprintf("%s %s %v", d.names[*r.UUIDValue("from_user_id")], r.StringValue("kind"), r.TimeValue("sent_at").Equal(d.Now())); got != "rep5 kudos true" {
			t.Errorf("recognition: %s, want rep5 kudos true", got)
		}
	})
}

// TestKudosMonthlyCap: a giver gives at most 20 kudos a calendar month,
// whether they sync them one by one or in one batch.
func TestKudosMonthlyCap(t *testing.T) {
	d := newDom(t)
	one := func(who, to string) engine.Mutation {
		return upsertM(t, "recognitions", uuid.New(), map[string]any{"to_user_id": d.id(to), "message": "thanks"})
	}
	t.Run("one by one", func(t *testing.T) {
		d := d.sub(t)
		for i := 0; i < sales.MonthlyKudosCap; i++ {
			wantResult(t, d.pushOne("rep1", one("rep1", "rep2")), "")
		}
		r := d.pushOne("rep1", one("rep1", "rep3"))
		wantResult(t, r, sales.CodeLimitReached)
		if !strings.Contains(r.Error.Message, "this month") {
			t.Errorf("message %q, want it to say the cap is monthly", r.Error.Message)
		}
	})
	t.Run("in one batch", func(t *testing.T) {
		d := d.sub(t)
		muts := make([]engine.Mutation, sales.MonthlyKudosCap+2)
		for i := range muts {
			muts[i] = one("rep4", "rep5")
		}
		var got []string
		for _, r := range d.push("rep4", muts...) {
			got = append(got, r.Status)
		}
		want := make([]string, len(muts))
		for i := range want {
			want[i] = engine.StatusApplied
			if i >= sales.MonthlyKudosCap {
				want[i] = engine.StatusRejected
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("statuses %v, want %d applied then rejected", got, sales.MonthlyKudosCap)
		}
	})
	t.Run("others are not capped by it", func(t *testing.T) {
		d := d.sub(t)
		wantResult(t, d.pushOne("rep2", one("rep2", "rep1")), "")
	})
	t.Run("a new month, a new allowance", func(t *testing.T) {
		d := d.sub(t)
		d.Clock.Store(time.Date(2026, 4, 1, 0, 0, 1, 0, time.UTC).UnixNano())
		wantResult(t, d.pushOne("rep1", one("rep1", "rep2")), "")
	})
}

// TestProductivityReport: per rep, outcome value against activity cost and
// the verified-call rate, from the store's grouped queries.
func TestProductivityReport(t *testing.T) {
	d := newDom(t)
	t0 := d.Now()
	from, to := t0.Add(-7*24*time.Hour), t0.Add(time.Hour)
	x, y := farApart(t, d.north, 5000)
	// rep1: three completed unscheduled calls (two verified), one scheduled
	// visit with an order, one cancelled call with an order that does not
	// count, and two activities costing 50.00.
	base := t0.Add(-3 * 24 * time.Hour)
	lat, lng := at(x, 1500, 0)
	d.create("rep1", "visits", visitFields(x, base, map[string]any{"outcome": "order", "order_value": 250}))
	d.create("rep1", "visits", visitFields(y, base.Add(2*time.Hour), nil))
	d.create("rep1", "visits", visitFields(x, base.Add(24*time.Hour), map[string]any{"check_in_lat": lat, "check_in_lng": lng}))
	d.create("rep1", "visits", visitFields(y, base.Add(26*time.Hour), map[string]any{"kind": "scheduled", "outcome": "order", "order_value": 100}))
	d.create("rep1", "visits", visitFields(y, base.Add(30*time.Hour), map[string]any{"status": "cancelled", "outcome": "order", "order_value": 999}))
	d.create("rep1", "activities", map[string]any{"type": "networking", "occurred_at": base, "cost": 30})
	d.create("rep1", "activities", map[string]any{"type": "expense_report", "occurred_at": base, "cost": 20})
	d.create("rep1", "activities", map[string]any{"type": "networking", "occurred_at": from.Add(-time.Hour), "cost": 500}) // before the period
	// rep2: a call, no cost; rep4 (South): an activity only.
	d.create("rep2", "visits", visitFields(d.north[2], base, nil))
	d.create("rep4", "activities", map[string]any{"type": "crm_update", "occurred_at": base, "cost": 5})

	row := func(r models.ProductivityRow) string {
		return fmt.Sprintf("visits %d calls %d verified %d (%g) orders %d value %d activities %v cost %d productivity %g",
			r.Visits, r.UnscheduledCalls, r.VerifiedCalls, r.VerifiedCallRate(), r.Orders, r.OutcomeValueCents, r.ActivityCounts, r.ActivityCostCents, r.Productivity())
	}
	want := map[string]string{
		"rep1": "visits 5 calls 3 verified 2 (0.6667) orders 2 value 35000 activities map[expense_report:1 networking:1] cost 5000 productivity 7",
		"rep2": "visits 1 calls 1 verified 1 (1) orders 0 value 0 activities map[] cost 0 productivity 0",
		"rep4": "visits 0 calls 0 verified 0 (0) orders 0 value 0 activities map[crm_update:1] cost 500 productivity 0",
	}
	tests := []struct {
		name string
		team *uuid.UUID
		want []string
	}{
		{name: "the organisation", want: []string{"rep1", "rep2", "rep4"}},
		{name: "North", team: ptr(d.teams["North"]), want: []string{"rep1", "rep2"}},
		{name: "South", team: ptr(d.teams["South"]), want: []string{"rep4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := d.sub(t)
			rows, err := d.DB.Reports().Productivity(d.ctx, d.org, tt.team, from, to)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, r := range rows {
				got[d.names[r.RepID]] = row(r)
			}
			wantRows := map[string]string{}
			for _, rep := range tt.want {
				wantRows[rep] = want[rep]
			}
			if !reflect.DeepEqual(got, wantRows) {
				t.Errorf("rows:\n got %v\nwant %v", got, wantRows)
			}
		})
	}
}

// instant is a contest bound given as an instant.
func instant(t time.Time) *models.TimeOrDate { return &models.TimeOrDate{At: t} }
