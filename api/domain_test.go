package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// The field-sales domain (issue 4) through the real router and database:
// contests, standings and the points ledger, ride-alongs, the
// productivity report, and what another team or organisation can see.

// fieldOrg is the demo organisation with a phone for each user the tests
// drive, and the accounts' coordinates.
type fieldOrg struct {
	*demoOrg
	t      *testing.T
	dev    map[string]*device // admin, m1, m2, rep1 … rep6
	coords map[uuid.UUID][2]float64
	org    uuid.UUID
	ms     int64 // the last HLC millisecond handed out
}

func newFieldOrg(t *testing.T) *fieldOrg {
	t.Helper()
	o := &fieldOrg{demoOrg: newDemo(t), t: t, dev: map[string]*device{}, coords: map[uuid.UUID][2]float64{}}
	for name, email := range map[string]string{"admin": "admin@demo.test", "m1": "manager1@demo.test", "m2": "manager2@demo.test",
		"rep1": "rep1@demo.test", "rep2": "rep2@demo.test", "rep4": "rep4@demo.test"} {
		o.dev[name] = newDevice(o.env, email)
	}
	all, _ := pullAll(t, o.env, o.dev["admin"].Access)
	for _, c := range all {
		if c.Entity != "accounts" {
			continue
		}
		var lat, lng float64
		_ = json.Unmarshal(c.Data["lat"], &lat)
		_ = json.Unmarshal(c.Data["lng"], &lng)
		o.coords[c.ID] = [2]float64{lat, lng}
	}
	admin, err := o.env.DB.People().UserByEmail(context.Background(), "admin@demo.test")
	if err != nil {
		t.Fatal(err)
	}
	o.org = admin.OrgID
	o.ms = o.demoOrg.ms
	return o
}

func (o *fieldOrg) user(name string) uuid.UUID { return o.users[o.dev[name].email] }

// call is a completed unscheduled call of 20 minutes checked in metres
// north of the account with a good fix; extra overrides fields.
func (o *fieldOrg) call(acct uuid.UUID, start time.Time, north float64, extra map[string]any) map[string]any {
	c := o.coords[acct]
	f := map[string]any{
		"account_id": acct.String(), "kind": "unscheduled", "status": "completed", "outcome": "none",
		"started_at": start.UTC().Format(time.RFC3339), "ended_at": start.Add(20 * time.Minute).UTC().Format(time.RFC3339),
		"check_in_lat": c[0] + north/111195.0, "check_in_lng": c[1], "check_in_accuracy_m": 15,
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

// up is an upsert stamped after every earlier one.
func (o *fieldOrg) up(entity string, id uuid.UUID, fields map[string]any) mutation {
	o.ms++
	return upsertOf(entity, id, o.ms, fields)
}

func (o *fieldOrg) del(entity string, id uuid.UUID) mutation {
	o.ms++
	return deleteOf(entity, id, o.ms)
}

// pushApplied pushes muts as who and requires every one applied.
func (o *fieldOrg) pushApplied(t *testing.T, who string, muts ...mutation) {
	t.Helper()
	for i, r := range o.dev[who].push(t, muts...).Results {
		if r.Status != "applied" && r.Status != "merged" {
			t.Fatalf("mutation %d (%s %s) as %s: %s %+v", i, muts[i].Entity, muts[i].Op, who, r.Status, r.Error)
		}
	}
}

func (o *fieldOrg) do(who, method, path string, body any) *apitest.Response {
	o.t.Helper()
	return o.env.Do(apitest.Request{Method: method, Path: path, Token: o.dev[who].Access, Body: body})
}

// tick runs the scheduler's work once, at the test clock's time.
func (o *fieldOrg) tick(t *testing.T) {
	t.Helper()
	en := engine.New(o.env.DB.Feed(), sales.Entities(), o.env.Clock.Now, nil)
	if err := en.Server(context.Background(), models.Principal{OrgID: o.org}, sales.Tick); err != nil {
		t.Fatalf("tick: %v", err)
	}
}

type wireContest struct {
	ID           uuid.UUID  `json:"id"`
	Name         string     `json:"name"`
	Status       string     `json:"status"`
	RulesVersion int64      `json:"rules_version"`
	TeamID       *uuid.UUID `json:"team_id"`
	OwnerID      uuid.UUID  `json:"owner_id"`
	GraceHours   int64      `json:"grace_hours"`
	TimeZone     string     `json:"time_zone"`
	Rules        json.RawMessage
}

type wireStanding struct {
	RepID          uuid.UUID `json:"rep_id"`
	Rank           int64     `json:"rank"`
	PreviousRank   int64     `json:"previous_rank"`
	OutcomePoints  float64   `json:"outcome_points"`
	ActivityPoints float64   `json:"activity_points"`
	TotalPoints    float64   `json:"total_points"`
	OutcomeValue   float64   `json:"outcome_value"`
	ActivityCost   float64   `json:"activity_cost"`
	Productivity   float64   `json:"productivity"`
	AsOf           *string   `json:"as_of"`
}

type wireEntry struct {
	ID           uuid.UUID  `json:"id"`
	RepID        uuid.UUID  `json:"rep_id"`
	SourceEntity string     `json:"source_entity"`
	SourceID     uuid.UUID  `json:"source_id"`
	Rule         string     `json:"rule"`
	Kind         string     `json:"kind"`
	Points       float64    `json:"points"`
	Value        *float64   `json:"value"`
	Cost         *float64   `json:"cost"`
	Reason       string     `json:"reason"`
	Reverses     *uuid.UUID `json:"reverses"`
	RulesVersion int64      `json:"rules_version"`
}

func (e wireEntry) String() string {
	f := func(p *float64) string {
		if p == nil {
			return "null"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("%s %s %s/%s %s %s %g value %s cost %s %q reverses %v v%d", e.ID, e.RepID, e.SourceEntity, e.SourceID, e.Rule, e.Kind,
		e.Points, f(e.Value), f(e.Cost), e.Reason, e.Reverses, e.RulesVersion)
}

func (s wireStanding) String() string {
	return fmt.Sprintf("#%d (was #%d) outcome %g activity %g total %g value %g cost %g productivity %g", s.Rank, s.PreviousRank,
		s.OutcomePoints, s.ActivityPoints, s.TotalPoints, s.OutcomeValue, s.ActivityCost, s.Productivity)
}

// relogin gives every phone a fresh access token on the same device, after
// the test clock moved past the tokens' lifetime.
func (o *fieldOrg) relogin() {
	o.t.Helper()
	for name, d := range o.dev {
		fresh := newDeviceWithID(o.env, d.email, d.DeviceID)
		fresh.seq = d.seq
		o.dev[name] = fresh
	}
}

func contestBody(name string, start, end time.Time, team *uuid.UUID) map[string]any {
	b := map[string]any{"name": name, "starts_at": start.UTC().Format(time.RFC3339), "ends_at": end.UTC().Format(time.RFC3339)}
	if team != nil {
		b["team_id"] = team.String()
	}
	return b
}

func (o *fieldOrg) createContest(t *testing.T, who string, body map[string]any) wireContest {
	t.Helper()
	res := o.do(who, http.MethodPost, "/v1/contests", body)
	apitest.Expect(t, res, http.StatusCreated)
	var c wireContest
	res.JSON(t, &c)
	return c
}

func (o *fieldOrg) standings(t *testing.T, who string, contest uuid.UUID) map[uuid.UUID]wireStanding {
	t.Helper()
	res := o.do(who, http.MethodGet, "/v1/contests/"+contest.String()+"/standings", nil)
	apitest.Expect(t, res, http.StatusOK)
	var body struct {
		Standings []wireStanding `json:"standings"`
	}
	res.JSON(t, &body)
	out := map[uuid.UUID]wireStanding{}
	for i, s := range body.Standings {
		if i > 0 && s.Rank < body.Standings[i-1].Rank {
			t.Errorf("standings not by rank: %d after %d", s.Rank, body.Standings[i-1].Rank)
		}
		out[s.RepID] = s
	}
	return out
}

func (o *fieldOrg) entries(t *testing.T, who string, contest uuid.UUID, rep string) []wireEntry {
	t.Helper()
	path := "/v1/contests/" + contest.String() + "/score-entries"
	if rep != "" {
		path += "?rep_id=" + o.user(rep).String()
	}
	res := o.do(who, http.MethodGet, path, nil)
	apitest.Expect(t, res, http.StatusOK)
	var body struct {
		Entries []wireEntry `json:"entries"`
	}
	res.JSON(t, &body)
	return body.Entries
}

func sumPoints(es []wireEntry) float64 {
	var s float64
	for _, e := range es {
		s += e.Points
	}
	return math.Round(s*100) / 100
}

// TestContestsCreate: admins create any contest, managers one for the team
// they manage, nobody else.
func TestContestsCreate(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	north, south := o.teams["North"], o.teams["South"]
	later, end := now.Add(time.Hour), now.Add(48*time.Hour)
	tests := []struct {
		name   string
		who    string
		body   any
		status int
		code   string
		field  string
	}{
		// 201
		{name: "admin, the whole organisation", who: "admin", body: contestBody("Org", later, end, nil), status: http.StatusCreated},
		{name: "admin, one team", who: "admin", body: contestBody("South", later, end, &south), status: http.StatusCreated},
		{name: "manager, the team they manage", who: "m1", body: contestBody("North", later, end, &north), status: http.StatusCreated},
		// 403
		{name: "manager, another team", who: "m1", body: contestBody("Raid", later, end, &south), status: http.StatusForbidden, code: "forbidden"},
		{name: "rep", who: "rep1", body: contestBody("Mine", later, end, &north), status: http.StatusForbidden, code: "forbidden"},
		// 422
		{name: "ends before it starts", who: "admin", body: contestBody("Backwards", end, later, nil), status: http.StatusUnprocessableEntity, code: "invalid", field: "ends_at"},
		{name: "unknown capped rule", who: "admin", body: func() map[string]any {
			b := contestBody("Golf", later, end, nil)
			b["rules"] = map[string]any{"per_verified_unscheduled_call": 5, "daily_caps": map[string]int{"golf": 1}}
			return b
		}(), status: http.StatusUnprocessableEntity, code: "invalid", field: "rules"},
		{name: "no name", who: "admin", body: contestBody("", later, end, nil), status: http.StatusUnprocessableEntity, code: "invalid", field: "name"},
		{name: "a target for a manager", who: "admin", body: func() map[string]any {
			b := contestBody("Targets", later, end, nil)
			b["targets"] = map[string]float64{o.user("m1").String(): 10}
			return b
		}(), status: http.StatusUnprocessableEntity, code: "invalid", field: "targets"},
		{name: "a time that is not RFC 3339", who: "admin", body: map[string]any{"name": "When", "starts_at": "tomorrow", "ends_at": end.Format(time.RFC3339)}, status: http.StatusUnprocessableEntity, code: "invalid", field: "starts_at"},
		// 400
		{name: "not a JSON object", who: "admin", body: `["Org"]`, status: http.StatusBadRequest, code: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := o.do(tt.who, http.MethodPost, "/v1/contests", tt.body)
			if tt.status != http.StatusCreated {
				p := expectProblem(t, res, tt.status, tt.code)
				if tt.field != "" {
					expectFields(t, p, tt.field)
				}
				return
			}
			apitest.Expect(t, res, http.StatusCreated)
			var c wireContest
			res.JSON(t, &c)
			got := fmt.Sprintf("%s %s v%d grace %d %s owner %v", c.Name, c.Status, c.RulesVersion, c.GraceHours, c.TimeZone, c.OwnerID == o.user(tt.who))
			if want := fmt.Sprintf("%s draft v1 grace 48 UTC owner true", tt.body.(map[string]any)["name"]); got != want {
				t.Errorf("created %s, want %s", got, want)
			}
			get := o.do(tt.who, http.MethodGet, "/v1/contests/"+c.ID.String(), nil)
			apitest.Expect(t, get, http.StatusOK)
		})
	}
	// A manager runs contests only for the team they manage, so leaving
	// team_id out means that team, not the whole organisation.
	t.Run("manager without team_id: the team they manage", func(t *testing.T) {
		c := o.createContest(t, "m2", contestBody("South, by default", later, end, nil))
		if c.TeamID == nil || *c.TeamID != south {
			t.Errorf("team_id %v, want the manager's team %s", c.TeamID, south)
		}
	})
	t.Run("no token", func(t *testing.T) {
		res := o.env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/contests", Body: contestBody("Anon", later, end, nil)})
		expectProblem(t, res, http.StatusUnauthorized, "unauthorized")
	})
}

// TestContestsScoring: standings and the ledger as phones push, reversal on
// delete, what each user may read, and that points cannot be written.
func TestContestsScoring(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	north := o.teams["North"]
	live := o.createContest(t, "admin", contestBody("Live", now.Add(-48*time.Hour), now.Add(24*time.Hour), nil))
	if live.Status != "active" {
		t.Fatalf("a contest whose start has passed is %s, want active", live.Status)
	}
	team := o.createContest(t, "m1", contestBody("North only", now.Add(-48*time.Hour), now.Add(24*time.Hour), &north))

	acct, far := o.north[0], o.north[1]
	visit, missed, crm := uuid.New(), uuid.New(), uuid.New()
	o.pushApplied(t, "rep1",
		o.up("visits", visit, o.call(acct, now.Add(-3*time.Hour), 0, map[string]any{"outcome": "order", "order_value": 250})),
		o.up("activities", crm, map[string]any{"type": "crm_update", "occurred_at": now.Add(-2 * time.Hour).Format(time.RFC3339), "account_id": acct.String(), "cost": 12.5}),
		o.up("visits", missed, o.call(far, now.Add(-time.Hour), 2000, nil)),
	)
	name := o.names[acct]

	t.Run("the rep's standing, outcome and activity points apart", func(t *testing.T) {
		ss := o.standings(t, "rep1", live.ID)
		if len(ss) != 6 {
			t.Fatalf("%d standings, want one per rep (6)", len(ss))
		}
		s := ss[o.user("rep1")]
		got := fmt.Sprintf("#%d outcome %g activity %g total %g value %g cost %g productivity %g", s.Rank, s.OutcomePoints, s.ActivityPoints,
			s.TotalPoints, s.OutcomeValue, s.ActivityCost, s.Productivity)
		if want := "#1 outcome 12.5 activity 6 total 18.5 value 250 cost 12.5 productivity 20"; got != want {
			t.Errorf("rep1: %s, want %s", got, want)
		}
		if s.AsOf == nil {
			t.Errorf("standing without as_of")
		}
	})
	t.Run("the ledger explains every point", func(t *testing.T) {
		es := o.entries(t, "rep1", live.ID, "")
		var reasons []string
		for _, e := range es {
			reasons = append(reasons, e.Reason)
			if e.RulesVersion != 1 || e.RepID != o.user("rep1") {
				t.Errorf("entry %+v", e)
			}
		}
		sort.Strings(reasons)
		want := []string{
			"CRM update at " + name + ": +1",
			"Order at " + name + ": +10",
			"Order value 250.00 at " + name + ": +2.5",
			"Unscheduled call at " + name + ", verified: +5",
		}
		if strings.Join(reasons, "\n") != strings.Join(want, "\n") {
			t.Errorf("reasons:\n%s\nwant:\n%s", strings.Join(reasons, "\n"), strings.Join(want, "\n"))
		}
		if got := sumPoints(es); got != 18.5 {
			t.Errorf("entries sum to %v, want the standing's 18.5", got)
		}
	})
	t.Run("who may read the ledger", func(t *testing.T) {
		all := len(o.entries(t, "rep1", live.ID, ""))
		tests := []struct {
			who  string
			want int
		}{
			{"rep1", all}, {"m1", all}, {"admin", all}, {"rep2", 0}, {"m2", 0}, {"rep4", 0},
		}
		for _, tt := range tests {
			if got := len(o.entries(t, tt.who, live.ID, "rep1")); got != tt.want {
				t.Errorf("%s reads %d of rep1's entries, want %d", tt.who, got, tt.want)
			}
		}
		res := o.do("rep1", http.MethodGet, "/v1/contests/"+live.ID.String()+"/score-entries?rep_id=nobody", nil)
		expectProblem(t, res, http.StatusUnprocessableEntity, "invalid")
	})
	t.Run("a deleted visit is reversed, never edited", func(t *testing.T) {
		before := o.entries(t, "rep1", live.ID, "")
		o.pushApplied(t, "rep1", o.del("visits", visit))
		after := o.entries(t, "rep1", live.ID, "")
		if len(after) != len(before)+3 {
			t.Fatalf("%d entries after the delete, want %d (+3 reversals)", len(after), len(before)+3)
		}
		for i, e := range before {
			if after[i].String() != e.String() {
				t.Errorf("entry %d changed:\n was %s\n now %s", i, e, after[i])
			}
		}
		for _, e := range after[len(before):] {
			if e.Reverses == nil || e.Points >= 0 || !strings.HasPrefix(e.Reason, "Reversed: ") || e.SourceID != visit {
				t.Errorf("reversal %+v", e)
			}
		}
		if got, want := sumPoints(after), 1.0; got != want {
			t.Errorf("ledger sums to %v, want %v", got, want)
		}
		if s := o.standings(t, "rep2", live.ID)[o.user("rep1")]; s.TotalPoints != 1 || s.OutcomeValue != 0 {
			t.Errorf("rep1's standing after the delete: %+v, want 1 point and no outcome value", s)
		}
	})
	t.Run("phones cannot write points", func(t *testing.T) {
		ss := o.standings(t, "rep1", live.ID)
		entry := o.entries(t, "rep1", live.ID, "")[0]
		tests := []struct {
			name string
			m    mutation
			code string
		}{
			{"a new score entry", o.up("score_entries", uuid.New(), map[string]any{"points": 1000}), "read_only_entity"},
			{"an edited score entry", o.up("score_entries", entry.ID, map[string]any{"points": 1000}), "read_only_entity"},
			{"a deleted score entry", o.del("score_entries", entry.ID), "read_only_entity"},
			{"a better standing", o.up("standings", uuid.New(), map[string]any{"total_points": 1000, "rank": 1}), "read_only_entity"},
			{"a contest", o.up("contests", live.ID, map[string]any{"name": "Mine"}), "read_only_entity"},
			{"a verified check-in", o.up("visits", uuid.New(), o.call(acct, now.Add(-30*time.Minute), 5000, map[string]any{"verification": "verified"})), "server_owned_field"},
		}
		for _, tt := range tests {
			r := o.dev["rep1"].pushOne(t, tt.m)
			if r.Status != "rejected" || r.Error == nil || r.Error.Code != tt.code {
				t.Errorf("%s: %s %+v, want rejected %s", tt.name, r.Status, r.Error, tt.code)
			}
		}
		if after := o.standings(t, "rep1", live.ID); fmt.Sprint(after) != fmt.Sprint(ss) { // by String
			t.Errorf("standings changed:\n was %v\n now %v", ss, after)
		}
	})
	t.Run("another team pulls nothing of rep1's but the shared board", func(t *testing.T) {
		for _, who := range []string{"rep4", "m2", "rep2"} {
			all, _ := pullAll(t, o.env, o.dev[who].Access)
			var leaked []string
			for _, c := range all {
				if c.str("rep_id") == o.user("rep1").String() && c.Entity != "standings" {
					leaked = append(leaked, c.Entity)
				}
				if c.ID == team.ID && who != "rep2" {
					leaked = append(leaked, "North's contest")
				}
			}
			if len(leaked) > 0 {
				t.Errorf("%s pulls %v", who, leaked)
			}
		}
	})
	t.Run("another team sees neither the team contest nor its board", func(t *testing.T) {
		for _, who := range []string{"rep4", "m2"} {
			res := o.do(who, http.MethodGet, "/v1/contests", nil)
			apitest.Expect(t, res, http.StatusOK)
			var list struct {
				Contests []wireContest `json:"contests"`
			}
			res.JSON(t, &list)
			var names []string
			for _, c := range list.Contests {
				names = append(names, c.Name)
			}
			if fmt.Sprint(names) != "[Live]" {
				t.Errorf("%s lists %v, want [Live]", who, names)
			}
			for _, path := range []string{"", "/standings", "/score-entries"} {
				expectProblem(t, o.do(who, http.MethodGet, "/v1/contests/"+team.ID.String()+path, nil), http.StatusNotFound, "not_found")
			}
			expectProblem(t, o.do(who, http.MethodPatch, "/v1/contests/"+team.ID.String(), map[string]any{"name": "Ours"}), http.StatusNotFound, "not_found")
		}
		for _, who := range []string{"rep1", "rep2", "m1", "admin"} {
			if n := len(o.standings(t, who, team.ID)); n != 3 {
				t.Errorf("%s sees %d standings of North's contest, want 3", who, n)
			}
		}
	})
}

// TestContestsRulesAndGrace: rules edited after the start make a new,
// audited version and rescore; a late sync counts until the end plus the
// grace period; a finalized contest does not change.
func TestContestsRulesAndGrace(t *testing.T) {
	o := newFieldOrg(t)
	t0 := o.env.Clock.Now()
	body := contestBody("Two hours", t0.Add(-time.Hour), t0.Add(time.Hour), nil)
	body["grace_hours"] = 2
	c := o.createContest(t, "admin", body)
	path := "/v1/contests/" + c.ID.String()
	total := func() float64 { return o.standings(t, "rep1", c.ID)[o.user("rep1")].TotalPoints }
	o.pushApplied(t, "rep1", o.up("visits", uuid.New(), o.call(o.north[0], t0.Add(-50*time.Minute), 0, nil)))
	if got := total(); got != 5 {
		t.Fatalf("rep1 has %v points, want 5", got)
	}

	t.Run("who may change it", func(t *testing.T) {
		expectProblem(t, o.do("rep1", http.MethodPatch, path, map[string]any{"name": "Mine"}), http.StatusForbidden, "forbidden")
		expectProblem(t, o.do("m1", http.MethodPatch, path, map[string]any{"name": "Mine"}), http.StatusForbidden, "forbidden")
		p := expectProblem(t, o.do("admin", http.MethodPatch, path, map[string]any{"starts_at": t0.Format(time.RFC3339)}), http.StatusUnprocessableEntity, "invalid")
		expectFields(t, p, "starts_at")
	})
	t.Run("new rules: version 2, audited, rescored", func(t *testing.T) {
		rules := models.DefaultScoringRules()
		rules.PerVerifiedUnscheduledCall = 8
		res := o.do("admin", http.MethodPatch, path, map[string]any{"rules": rules})
		apitest.Expect(t, res, http.StatusOK)
		var got wireContest
		res.JSON(t, &got)
		if got.RulesVersion != 2 {
			t.Errorf("rules_version %d, want 2", got.RulesVersion)
		}
		vs, err := o.env.DB.Feed().RuleVersions(context.Background(), o.org, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 1 || vs[0].Version != 2 || vs[0].ChangedBy != o.user("admin") || !strings.Contains(vs[0].Rules, `"per_verified_unscheduled_call":8`) {
			t.Errorf("audit %+v, want version 2 by the admin with the new rules", vs)
		}
		if got := total(); got != 8 {
			t.Errorf("rep1 has %v points after the change, want 8", got)
		}
		var lines []string
		for _, e := range o.entries(t, "rep1", c.ID, "") {
			lines = append(lines, fmt.Sprintf("%g v%d", e.Points, e.RulesVersion))
		}
		if want := "[5 v1 -5 v2 8 v2]"; fmt.Sprint(lines) != want {
			t.Errorf("ledger %v, want %s", lines, want)
		}
	})
	steps := []struct {
		name       string
		advance    time.Duration
		start      time.Duration // the late call's start, from t0
		wantStatus string
		wantPoints float64
	}{
		{name: "ended, within the grace period: a late call counts", advance: 2 * time.Hour, start: 10 * time.Minute, wantStatus: "ended", wantPoints: 16},
		{name: "a call after the end does not", advance: 0, start: 70 * time.Minute, wantStatus: "ended", wantPoints: 16},
		{name: "finalized: a late call no longer counts", advance: time.Hour, start: 50 * time.Minute, wantStatus: "finalized", wantPoints: 16},
	}
	accts := []uuid.UUID{o.north[1], o.north[2], o.north[3]}
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			o.env.Clock.Advance(s.advance)
			o.relogin()
			o.tick(t)
			o.pushApplied(t, "rep1", o.up("visits", uuid.New(), o.call(accts[i], t0.Add(s.start), 0, nil)))
			res := o.do("rep1", http.MethodGet, path, nil)
			apitest.Expect(t, res, http.StatusOK)
			var got wireContest
			res.JSON(t, &got)
			if got.Status != s.wantStatus {
				t.Errorf("status %s, want %s", got.Status, s.wantStatus)
			}
			if p := total(); p != s.wantPoints {
				t.Errorf("rep1 has %v points, want %v", p, s.wantPoints)
			}
		})
	}
	t.Run("a finalized contest does not change", func(t *testing.T) {
		expectProblem(t, o.do("admin", http.MethodPatch, path, map[string]any{"name": "Again"}), http.StatusConflict, "conflict")
	})
}

// TestRideAlongsConcurrentTransitions: the manager cancels while the rep
// accepts, offline; whichever syncs first, the ride-along ends cancelled,
// and the rep's accept, arriving second, is rejected with the reason.
func TestRideAlongsConcurrentTransitions(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	visit := uuid.New()
	o.pushApplied(t, "rep1", o.up("visits", visit, o.call(o.north[0], now.Add(-time.Hour), 0, nil)))
	for _, order := range []string{"rep first", "manager first"} {
		t.Run(order, func(t *testing.T) {
			ra := uuid.New()
			o.pushApplied(t, "m1", o.up("ride_alongs", ra, map[string]any{"rep_id": o.user("rep1").String(), "mode": "visit", "visit_id": visit.String()}))
			accept := o.up("ride_alongs", ra, map[string]any{"status": "accepted"})
			cancel := o.up("ride_alongs", ra, map[string]any{"status": "cancelled"})
			var repResult pushResult
			if order == "rep first" {
				repResult = o.dev["rep1"].pushOne(t, accept)
				o.pushApplied(t, "m1", cancel)
			} else {
				o.pushApplied(t, "m1", cancel)
				repResult = o.dev["rep1"].pushOne(t, accept)
			}
			all, last := pullAll(t, o.env, o.dev["rep1"].Access)
			if got := all.live(t, "ride_alongs", ra).str("status"); got != "cancelled" {
				t.Errorf("final status %s, want cancelled", got)
			}
			if order == "rep first" {
				if repResult.Status != "applied" {
					t.Errorf("the rep's accept, first to arrive: %s %+v, want applied", repResult.Status, repResult.Error)
				}
				return
			}
			if repResult.Status != "rejected" || repResult.Error == nil || repResult.Error.Code != "invalid_transition" ||
				repResult.Error.Message != "the ride-along is already cancelled; it cannot become accepted" {
				t.Fatalf("the rep's accept, arriving second: %s %+v, want rejected invalid_transition with the reason", repResult.Status, repResult.Error)
			}
			found := false
			for _, rj := range last.Rejections {
				found = found || (rj.ID == ra && rj.Seq == repResult.Seq && rj.Code == "invalid_transition")
			}
			if !found {
				t.Errorf("the rep's pull lists rejections %+v, want seq %d", last.Rejections, repResult.Seq)
			}
		})
	}
	t.Run("only the counterparty answers", func(t *testing.T) {
		ra := uuid.New()
		o.pushApplied(t, "m1", o.up("ride_alongs", ra, map[string]any{"rep_id": o.user("rep1").String(), "mode": "next_unscheduled"}))
		r := o.dev["m1"].pushOne(t, o.up("ride_alongs", ra, map[string]any{"status": "accepted"}))
		if r.Status != "rejected" || r.Error.Code != "invalid_transition" {
			t.Errorf("the manager accepting their own flag: %s %+v, want rejected invalid_transition", r.Status, r.Error)
		}
		r = o.dev["m2"].pushOne(t, o.up("ride_alongs", uuid.New(), map[string]any{"rep_id": o.user("rep1").String(), "mode": "next_unscheduled"}))
		if r.Status != "rejected" || r.Error.Code != "forbidden" {
			t.Errorf("another team's manager flagging rep1: %s %+v, want rejected forbidden", r.Status, r.Error)
		}
	})
}

type wireProductivity struct {
	RepID            uuid.UUID        `json:"rep_id"`
	Visits           int64            `json:"visits"`
	UnscheduledCalls int64            `json:"unscheduled_calls"`
	VerifiedCalls    int64            `json:"verified_calls"`
	VerifiedCallRate float64          `json:"verified_call_rate"`
	Orders           int64            `json:"orders"`
	OutcomeValue     float64          `json:"outcome_value"`
	Activities       map[string]int64 `json:"activities"`
	ActivityCost     float64          `json:"activity_cost"`
	Productivity     float64          `json:"productivity"`
}

// TestProductivityReport: outcome value against activity cost per rep,
// with the verified-call rate; managers see their team, admins the org.
func TestProductivityReport(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	ts := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339) }
	o.pushApplied(t, "rep1",
		o.up("visits", uuid.New(), o.call(o.north[0], now.Add(-5*time.Hour), 0, map[string]any{"outcome": "order", "order_value": 250})),
		o.up("visits", uuid.New(), o.call(o.north[1], now.Add(-3*time.Hour), 3000, nil)),
		o.up("visits", uuid.New(), o.call(o.north[2], now.Add(-time.Hour), 0, map[string]any{"kind": "scheduled", "outcome": "order", "order_value": 100.5})),
		o.up("activities", uuid.New(), map[string]any{"type": "networking", "occurred_at": ts(-2 * time.Hour), "cost": 40}),
		o.up("activities", uuid.New(), map[string]any{"type": "expense_report", "occurred_at": ts(-2 * time.Hour), "cost": 10.25}),
	)
	o.pushApplied(t, "rep4",
		o.up("visits", uuid.New(), o.call(o.south[0], now.Add(-2*time.Hour), 0, nil)),
		o.up("activities", uuid.New(), map[string]any{"type": "crm_update", "occurred_at": ts(-time.Hour), "cost": 5}),
	)
	rep1 := "visits 3 calls 2 verified 1 rate 0.5 orders 2 value 350.5 activities map[expense_report:1 networking:1] cost 50.25 productivity 6.98"
	rep4 := "visits 1 calls 1 verified 1 rate 1 orders 0 value 0 activities map[crm_update:1] cost 5 productivity 0"
	q := url.Values{"from": {now.Add(-24 * time.Hour).Format(time.DateOnly)}, "to": {ts(time.Hour)}}
	tests := []struct {
		name   string
		who    string
		team   string
		status int
		want   map[string]string
	}{
		{name: "admin: the organisation", who: "admin", status: http.StatusOK, want: map[string]string{"rep1": rep1, "rep4": rep4}},
		{name: "admin: one team", who: "admin", team: o.teams["South"].String(), status: http.StatusOK, want: map[string]string{"rep4": rep4}},
		{name: "manager: their team", who: "m1", status: http.StatusOK, want: map[string]string{"rep1": rep1}},
		{name: "manager: their team by id", who: "m2", team: o.teams["South"].String(), status: http.StatusOK, want: map[string]string{"rep4": rep4}},
		{name: "rep: their own row", who: "rep1", status: http.StatusOK, want: map[string]string{"rep1": rep1}},
		{name: "rep without activity: nothing", who: "rep2", status: http.StatusOK, want: map[string]string{}},
		{name: "manager: another team", who: "m1", team: o.teams["South"].String(), status: http.StatusNotFound},
	}
	byID := map[uuid.UUID]string{o.user("rep1"): "rep1", o.user("rep4"): "rep4"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qq := url.Values{"from": q["from"], "to": q["to"]}
			if tt.team != "" {
				qq.Set("team_id", tt.team)
			}
			res := o.do(tt.who, http.MethodGet, "/v1/reports/productivity?"+qq.Encode(), nil)
			if tt.status != http.StatusOK {
				expectProblem(t, res, tt.status, "not_found")
				return
			}
			apitest.Expect(t, res, http.StatusOK)
			var body struct {
				Reps []wireProductivity `json:"reps"`
			}
			res.JSON(t, &body)
			got := map[string]string{}
			for _, r := range body.Reps {
				got[byID[r.RepID]] = fmt.Sprintf("visits %d calls %d verified %d rate %g orders %d value %g activities %v cost %g productivity %g",
					r.Visits, r.UnscheduledCalls, r.VerifiedCalls, r.VerifiedCallRate, r.Orders, r.OutcomeValue, r.Activities, r.ActivityCost, r.Productivity)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("rows:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
	t.Run("the period is required", func(t *testing.T) {
		p := expectProblem(t, o.do("admin", http.MethodGet, "/v1/reports/productivity?to="+q.Get("to"), nil), http.StatusUnprocessableEntity, "invalid")
		expectFields(t, p, "from")
	})
}

// TestDomainOtherOrganisation: nothing of the demo organisation reaches
// another one, by pull or by HTTP.
func TestDomainOtherOrganisation(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	c := o.createContest(t, "admin", contestBody("Demo only", now.Add(-time.Hour), now.Add(time.Hour), nil))
	visit := uuid.New()
	o.pushApplied(t, "rep1", o.up("visits", visit, o.call(o.north[0], now.Add(-30*time.Minute), 0, nil)))
	o.pushApplied(t, "m1", o.up("ride_alongs", uuid.New(), map[string]any{"rep_id": o.user("rep1").String(), "mode": "visit", "visit_id": visit.String()}))
	o.pushApplied(t, "rep1", o.up("recognitions", uuid.New(), map[string]any{"to_user_id": o.user("rep2").String(), "message": "thanks"}))

	hash, err := o.env.Passwords.Hash(demo.Password)
	if err != nil {
		t.Fatal(err)
	}
	other := models.Org{ID: uuid.New(), Name: "Other Co", CreatedAt: now}
	admin := models.User{OrgID: other.ID, ID: uuid.New(), Email: "admin@other.test", Name: "Olive Other", Role: models.RoleAdmin,
		Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := o.env.DB.People().CreateOrg(context.Background(), other, admin); err != nil {
		t.Fatal(err)
	}
	o.dev["other"] = newDevice(o.env, "admin@other.test")

	all, _ := pullAll(t, o.env, o.dev["other"].Access)
	if len(all) != 0 {
		var kinds []string
		for k := range all {
			kinds = append(kinds, k)
		}
		t.Errorf("another organisation pulls %d records: %v", len(all), kinds)
	}
	res := o.do("other", http.MethodGet, "/v1/contests", nil)
	apitest.Expect(t, res, http.StatusOK)
	var list struct {
		Contests []wireContest `json:"contests"`
	}
	res.JSON(t, &list)
	if len(list.Contests) != 0 {
		t.Errorf("another organisation lists %d contests", len(list.Contests))
	}
	for _, p := range []string{"", "/standings", "/score-entries"} {
		expectProblem(t, o.do("other", http.MethodGet, "/v1/contests/"+c.ID.String()+p, nil), http.StatusNotFound, "not_found")
	}
	expectProblem(t, o.do("other", http.MethodPatch, "/v1/contests/"+c.ID.String(), map[string]any{"name": "Ours"}), http.StatusNotFound, "not_found")
	res = o.do("other", http.MethodGet, "/v1/reports/productivity?from="+now.Add(-30*24*time.Hour).Format(time.DateOnly)+"&to="+now.Add(48*time.Hour).Format(time.DateOnly), nil)
	apitest.Expect(t, res, http.StatusOK)
	if !strings.Contains(string(res.Body), `"reps":[]`) {
		t.Errorf("another organisation's report: %s", res.Body)
	}
	r := o.dev["other"].pushOne(t, o.up("recognitions", uuid.New(), map[string]any{"to_user_id": o.user("rep1").String(), "message": "hello"}))
	if r.Status != "rejected" || r.Error.Code != "invalid_value" {
		t.Errorf("kudos to another organisation's rep: %s %+v, want rejected invalid_value", r.Status, r.Error)
	}
}

// TestRecognitionsPush: kudos over the wire, none to yourself, badges the
// server awards refused.
func TestRecognitionsPush(t *testing.T) {
	o := newFieldOrg(t)
	tests := []struct {
		name   string
		fields map[string]any
		code   string
	}{
		{name: "to a colleague, with a badge", fields: map[string]any{"to_user_id": o.user("rep4").String(), "message": "great demo", "badge": "closer"}},
		{name: "to yourself", fields: map[string]any{"to_user_id": o.user("rep1").String(), "message": "me"}, code: "invalid_value"},
		{name: "a server badge", fields: map[string]any{"to_user_id": o.user("rep2").String(), "message": "top", "badge": "top_3"}, code: "invalid_value"},
		{name: "in someone else's name", fields: map[string]any{"to_user_id": o.user("rep2").String(), "message": "hi", "from_user_id": o.user("m1").String()}, code: "server_owned_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := o.dev["rep1"].pushOne(t, o.up("recognitions", uuid.New(), tt.fields))
			switch {
			case tt.code == "" && r.Status != "applied":
				t.Errorf("%s %+v, want applied", r.Status, r.Error)
			case tt.code != "" && (r.Status != "rejected" || r.Error.Code != tt.code):
				t.Errorf("%s %+v, want rejected %s", r.Status, r.Error, tt.code)
			}
		})
	}
}
