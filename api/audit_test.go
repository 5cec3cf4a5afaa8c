package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

type wireAudit struct {
	ID         uuid.UUID                  `json:"id"`
	ActorID    *uuid.UUID                 `json:"actor_id"`
	Action     string                     `json:"action"`
	ObjectType string                     `json:"object_type"`
	ObjectID   uuid.UUID                  `json:"object_id"`
	Before     map[string]json.RawMessage `json:"before"`
	After      map[string]json.RawMessage `json:"after"`
	At         time.Time                  `json:"at"`
}

func (a wireAudit) String() string {
	actor := "-"
	if a.ActorID != nil {
		actor = a.ActorID.String()
	}
	return fmt.Sprintf("%s %s/%s by %s", a.Action, a.ObjectType, a.ObjectID, actor)
}

type auditPage struct {
	Entries    []wireAudit `json:"entries"`
	NextCursor string      `json:"next_cursor"`
}

// auditLog reads every page of GET /v1/audit?query as token.
func auditLog(t *testing.T, env *apitest.Env, token string, q url.Values) []wireAudit {
	t.Helper()
	var out []wireAudit
	q = cloneValues(q)
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatal("the audit log does not end")
		}
		res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/audit?" + q.Encode(), Token: token})
		apitest.Expect(t, res, http.StatusOK)
		var p auditPage
		res.JSON(t, &p)
		out = append(out, p.Entries...)
		if p.NextCursor == "" {
			return out
		}
		q.Set("cursor", p.NextCursor)
	}
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	return out
}

// auditWant is an entry a change must write: its action, object and actor
// (uuid.Nil for none).
type auditWant struct {
	action, objectType string
	objectID, actor    uuid.UUID
	// lazy, when set, is where the change leaves the object's id.
	lazy *uuid.UUID
}

func wantAudit(action, objectType string, id, actor uuid.UUID) auditWant {
	return auditWant{action: action, objectType: objectType, objectID: id, actor: actor}
}

// wantAuditOf is an entry about the object whose id the change leaves in
// *id.
func wantAuditOf(action, objectType string, id *uuid.UUID, actor uuid.UUID) auditWant {
	return auditWant{action: action, objectType: objectType, actor: actor, lazy: id}
}

// expectNewAudit runs change and requires that it appended exactly the
// wanted entries to the organisation's log, and returns them in the order
// wanted.
func expectNewAudit(t *testing.T, env *apitest.Env, adminToken string, change func(), want ...auditWant) []wireAudit {
	t.Helper()
	seen := map[uuid.UUID]bool{}
	for _, e := range auditLog(t, env, adminToken, nil) {
		seen[e.ID] = true
	}
	change()
	for i := range want {
		if want[i].lazy != nil {
			want[i].objectID = *want[i].lazy
		}
	}
	var added []wireAudit
	for _, e := range auditLog(t, env, adminToken, nil) {
		if !seen[e.ID] {
			added = append(added, e)
		}
	}
	out := make([]wireAudit, len(want))
	used := make([]bool, len(added))
	for i, w := range want {
		found := false
		for j, e := range added {
			actor := uuid.Nil
			if e.ActorID != nil {
				actor = *e.ActorID
			}
			if !used[j] && e.Action == w.action && e.ObjectType == w.objectType && e.ObjectID == w.objectID && actor == w.actor {
				used[j], out[i], found = true, e, true
				break
			}
		}
		if !found {
			t.Errorf("no new entry %s %s/%s by %s among %v", w.action, w.objectType, w.objectID, w.actor, added)
		}
	}
	for j, e := range added {
		if !used[j] {
			t.Errorf("unexpected new entry %v", e)
		}
	}
	return out
}

// field decodes one audited field of an entry's before or after.
func field[T any](t *testing.T, m map[string]json.RawMessage, name string) T {
	t.Helper()
	var v T
	raw, ok := m[name]
	if !ok {
		t.Fatalf("audited state %v has no %s", m, name)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s = %s: %v", name, raw, err)
	}
	return v
}

// TestAuditRecordsChanges: each audited change writes exactly one entry
// per object it changes, with the caller as actor, in the transaction of
// the change; changes that are not audited write none.
func TestAuditRecordsChanges(t *testing.T) {
	o := newFieldOrg(t)
	env, admin := o.env, o.dev["admin"].Access
	adminID, m1 := o.user("admin"), o.user("m1")
	north, south := o.teams["North"], o.teams["South"]

	var newRep uuid.UUID
	t.Run("user created", func(t *testing.T) {
		got := expectNewAudit(t, env, admin, func() {
			res := o.do("admin", http.MethodPost, "/v1/users", map[string]any{
				"email": "audited@demo.test", "name": "Audited Rep", "role": "rep", "team_id": north.String(), "password": "a long passphrase 1",
			})
			apitest.Expect(t, res, http.StatusCreated)
			var u struct {
				ID uuid.UUID `json:"id"`
			}
			res.JSON(t, &u)
			newRep = u.ID
		}, wantAuditOf(models.ActionUserCreate, models.AuditUser, &newRep, adminID))
		if len(got) == 1 {
			if r := field[string](t, got[0].After, "role"); r != "rep" {
				t.Errorf("after.role %q, want rep", r)
			}
			if got[0].Before != nil {
				t.Errorf("a creation has before %v, want null", got[0].Before)
			}
		}
	})

	t.Run("role and team changed", func(t *testing.T) {
		got := expectNewAudit(t, env, admin, func() {
			res := o.do("admin", http.MethodPatch, "/v1/users/"+newRep.String(), map[string]any{"role": "manager", "team_id": south.String()})
			apitest.Expect(t, res, http.StatusOK)
		}, wantAudit(models.ActionUserUpdate, models.AuditUser, newRep, adminID))
		if len(got) == 1 {
			e := got[0]
			if b, a := field[string](t, e.Before, "role"), field[string](t, e.After, "role"); b != "rep" || a != "manager" {
				t.Errorf("role %q → %q, want rep → manager", b, a)
			}
			if b, a := field[uuid.UUID](t, e.Before, "team_id"), field[uuid.UUID](t, e.After, "team_id"); b != north || a != south {
				t.Errorf("team %s → %s, want North %s → South %s", b, a, north, south)
			}
			if _, ok := e.After["name"]; ok {
				t.Errorf("after %v names a field that did not change", e.After)
			}
		}
	})

	t.Run("name only: not audited", func(t *testing.T) {
		expectNewAudit(t, env, admin, func() {
			apitest.Expect(t, o.do("admin", http.MethodPatch, "/v1/users/"+newRep.String(), map[string]any{"name": "Renamed"}), http.StatusOK)
		})
	})

	t.Run("a refused change: nothing", func(t *testing.T) {
		expectNewAudit(t, env, admin, func() {
			res := o.do("admin", http.MethodPatch, "/v1/users/"+newRep.String(), map[string]any{"role": "rep", "team_id": uuid.NewString()})
			apitest.Expect(t, res, http.StatusUnprocessableEntity)
			apitest.Expect(t, o.do("m1", http.MethodPatch, "/v1/users/"+o.user("rep1").String(), map[string]any{"role": "admin"}), http.StatusForbidden)
		})
	})

	t.Run("deactivated", func(t *testing.T) {
		got := expectNewAudit(t, env, admin, func() {
			apitest.Expect(t, o.do("admin", http.MethodPatch, "/v1/users/"+newRep.String(), map[string]any{"active": false}), http.StatusOK)
		}, wantAudit(models.ActionUserUpdate, models.AuditUser, newRep, adminID))
		if len(got) == 1 && field[bool](t, got[0].After, "active") {
			t.Errorf("after.active true, want false")
		}
	})

	t.Run("team created with its manager", func(t *testing.T) {
		var team uuid.UUID
		res := o.do("admin", http.MethodPost, "/v1/users", map[string]any{
			"email": "newmgr@demo.test", "name": "New Manager", "role": "manager", "password": "a long passphrase 2",
		})
		apitest.Expect(t, res, http.StatusCreated)
		var mgr struct {
			ID uuid.UUID `json:"id"`
		}
		res.JSON(t, &mgr)
		got := expectNewAudit(t, env, admin, func() {
			res := o.do("admin", http.MethodPost, "/v1/teams", map[string]any{"name": "East", "manager_id": mgr.ID.String()})
			apitest.Expect(t, res, http.StatusCreated)
			var tm struct {
				ID uuid.UUID `json:"id"`
			}
			res.JSON(t, &tm)
			team = tm.ID
		}, wantAuditOf(models.ActionTeamCreate, models.AuditTeam, &team, adminID),
			wantAudit(models.ActionUserUpdate, models.AuditUser, mgr.ID, adminID))
		if len(got) == 2 {
			if n := field[string](t, got[0].After, "name"); n != "East" {
				t.Errorf("team after.name %q, want East", n)
			}
			if tm := field[uuid.UUID](t, got[1].After, "team_id"); tm != team {
				t.Errorf("manager's after.team_id %s, want the new team %s", tm, team)
			}
		}
	})

	now := env.Clock.Now()
	var contest wireContest
	t.Run("contest created", func(t *testing.T) {
		got := expectNewAudit(t, env, admin, func() {
			contest = o.createContest(t, "admin", contestBody("Audited", now.Add(-time.Hour), now.Add(7*24*time.Hour), &north))
		}, wantAuditOf(models.ActionContestCreate, models.AuditContest, &contest.ID, adminID))
		if len(got) == 1 {
			r := field[models.ScoringRules](t, got[0].After, "rules")
			if r.PerVerifiedUnscheduledCall != models.DefaultScoringRules().PerVerifiedUnscheduledCall {
				t.Errorf("after.rules %+v, want the default rules", r)
			}
		}
	})

	t.Run("rules and targets changed by the team's manager", func(t *testing.T) {
		rules := models.DefaultScoringRules()
		rules.PerVerifiedUnscheduledCall = 9
		got := expectNewAudit(t, env, admin, func() {
			res := o.do("m1", http.MethodPatch, "/v1/contests/"+contest.ID.String(), map[string]any{
				"rules": rules, "targets": map[string]float64{o.user("rep1").String(): 100},
			})
			apitest.Expect(t, res, http.StatusOK)
		}, wantAudit(models.ActionContestRules, models.AuditContest, contest.ID, m1))
		if len(got) == 1 {
			e := got[0]
			if b, a := field[models.ScoringRules](t, e.Before, "rules"), field[models.ScoringRules](t, e.After, "rules"); b.PerVerifiedUnscheduledCall != 5 || a.PerVerifiedUnscheduledCall != 9 {
				t.Errorf("rules per call %g → %g, want 5 → 9", b.PerVerifiedUnscheduledCall, a.PerVerifiedUnscheduledCall)
			}
			if tg := field[map[string]float64](t, e.After, "targets"); tg[o.user("rep1").String()] != 100 {
				t.Errorf("after.targets %v, want rep1: 100", tg)
			}
			if v := field[int64](t, e.After, "rules_version"); v != 2 {
				t.Errorf("after.rules_version %d, want 2", v)
			}
		}
	})

	t.Run("contest renamed: not audited", func(t *testing.T) {
		expectNewAudit(t, env, admin, func() {
			apitest.Expect(t, o.do("admin", http.MethodPatch, "/v1/contests/"+contest.ID.String(), map[string]any{"name": "Renamed"}), http.StatusOK)
		})
	})

	t.Run("rules of a draft contest changed", func(t *testing.T) {
		draft := o.createContest(t, "m1", contestBody("Next month", now.Add(30*24*time.Hour), now.Add(40*24*time.Hour), nil))
		got := expectNewAudit(t, env, admin, func() {
			res := o.do("m1", http.MethodPatch, "/v1/contests/"+draft.ID.String(), map[string]any{"targets": map[string]float64{o.user("rep2").String(): 50}})
			apitest.Expect(t, res, http.StatusOK)
		}, wantAudit(models.ActionContestRules, models.AuditContest, draft.ID, m1))
		if len(got) == 1 {
			if v := field[int64](t, got[0].After, "rules_version"); v != 1 {
				t.Errorf("a draft's after.rules_version %d, want 1", v)
			}
			if tg := got[0].Before["targets"]; string(tg) != "null" {
				t.Errorf("before.targets %s, want null", tg)
			}
		}
	})

	// The contest's start made an assessment of rep1 due, a draft of
	// manager1's.
	assessment := engine.NameID(o.org, fmt.Sprintf("assessment:%s:%s:%s", models.PhaseContestStart, contest.ID, o.user("rep1")))
	t.Run("assessment: draft edits and sharing are not audited", func(t *testing.T) {
		expectNewAudit(t, env, admin, func() {
			o.pushApplied(t, "m1", o.up("assessments", assessment, map[string]any{
				"behaviours": json.RawMessage(`[{"key":"plans_the_call","result":"done_right"}]`),
			}))
			o.pushApplied(t, "m1", o.up("assessments", assessment, map[string]any{"status": "shared"}))
		})
	})
	t.Run("assessment edited after sharing", func(t *testing.T) {
		got := expectNewAudit(t, env, admin, func() {
			o.pushApplied(t, "m1", o.up("assessments", assessment, map[string]any{
				"behaviours": json.RawMessage(`[{"key":"plans_the_call","result":"done_wrong"}]`),
			}))
		}, wantAudit(models.ActionAssessmentEdit, models.AuditAssessment, assessment, m1))
		if len(got) == 1 {
			b := field[[]models.BehaviourScore](t, got[0].Before, "behaviours")
			a := field[[]models.BehaviourScore](t, got[0].After, "behaviours")
			if len(b) != 1 || len(a) != 1 || b[0].Result != "done_right" || a[0].Result != "done_wrong" {
				t.Errorf("behaviours %v → %v, want done_right → done_wrong", b, a)
			}
		}
	})
	t.Run("assessment acknowledged by the rep", func(t *testing.T) {
		got := expectNewAudit(t, env, admin, func() {
			o.pushApplied(t, "rep1", o.up("assessments", assessment, map[string]any{"status": "acknowledged", "rep_comment": "Fair"}))
		}, wantAudit(models.ActionAssessmentEdit, models.AuditAssessment, assessment, o.user("rep1")))
		if len(got) == 1 {
			if s := field[string](t, got[0].After, "status"); s != "acknowledged" {
				t.Errorf("after.status %q, want acknowledged", s)
			}
		}
	})
}

// TestAuditAdminOnly: managers and reps are refused whatever they ask,
// and nobody reads the log without a token.
func TestAuditAdminOnly(t *testing.T) {
	o := newFieldOrg(t)
	for _, who := range []string{"m1", "m2", "rep1", "rep4"} {
		t.Run(who, func(t *testing.T) {
			expectProblem(t, o.do(who, http.MethodGet, "/v1/audit", nil), http.StatusForbidden, "forbidden")
			expectProblem(t, o.do(who, http.MethodGet, "/v1/audit?actor="+o.user(who).String(), nil), http.StatusForbidden, "forbidden")
			expectProblem(t, o.do(who, http.MethodGet, "/v1/audit?limit=0", nil), http.StatusForbidden, "forbidden")
		})
	}
	expectProblem(t, o.env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/audit"}), http.StatusUnauthorized, "unauthorized")
	apitest.Expect(t, o.do("admin", http.MethodGet, "/v1/audit", nil), http.StatusOK)
}

// TestAuditFiltersAndPaging: each filter keeps exactly the entries it
// names; pages follow each other newest first without gaps or repeats.
func TestAuditFiltersAndPaging(t *testing.T) {
	o := newFieldOrg(t)
	env := o.env
	north := o.teams["North"]
	start := env.Clock.Now()

	// Seven entries over seven minutes: three by the admin (contests),
	// four by manager1 (rule changes), one contest's and the others'.
	var contests []wireContest
	for i := range 3 {
		contests = append(contests, o.createContest(t, "admin", contestBody(fmt.Sprint("C", i), start.Add(time.Hour), start.Add(48*time.Hour), &north)))
		env.Clock.Advance(time.Minute)
	}
	for i := range 4 {
		rules := models.DefaultScoringRules()
		rules.PerVerifiedUnscheduledCall = float64(10 + i)
		apitest.Expect(t, o.do("m1", http.MethodPatch, "/v1/contests/"+contests[i%2].ID.String(), map[string]any{"rules": rules}), http.StatusOK)
		env.Clock.Advance(time.Minute)
	}
	o.relogin() // the clock moved: fresh tokens
	admin := o.dev["admin"].Access

	all := auditLog(t, env, admin, nil)
	mine := all[:0:0]
	for _, e := range all {
		if e.ObjectType == models.AuditContest {
			mine = append(mine, e)
		}
	}
	if len(mine) != 7 {
		t.Fatalf("%d contest entries, want 7: %v", len(mine), mine)
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.At.Before(b.At) || (a.At.Equal(b.At) && a.ID.String() < b.ID.String()) {
			t.Errorf("entries %d and %d out of order: %v at %s, then %v at %s", i-1, i, a, a.At, b, b.At)
		}
	}

	count := func(keep func(wireAudit) bool) int {
		n := 0
		for _, e := range all {
			if keep(e) {
				n++
			}
		}
		return n
	}
	is := func(id uuid.UUID) func(wireAudit) bool {
		return func(e wireAudit) bool { return e.ActorID != nil && *e.ActorID == id }
	}
	cases := []struct {
		name string
		q    url.Values
		keep func(wireAudit) bool
		want int // the entries expected, as a check on keep
	}{
		{"actor manager1", url.Values{"actor": {o.user("m1").String()}}, is(o.user("m1")), 4},
		{"actor admin, contests", url.Values{"actor": {o.user("admin").String()}, "object_type": {"contest"}},
			func(e wireAudit) bool { return is(o.user("admin"))(e) && e.ObjectType == "contest" }, 3},
		{"actor without entries", url.Values{"actor": {o.user("rep1").String()}}, func(wireAudit) bool { return false }, 0},
		{"object_type team", url.Values{"object_type": {"team"}}, func(e wireAudit) bool { return e.ObjectType == "team" }, -1},
		{"object_id", url.Values{"object_id": {contests[0].ID.String()}}, func(e wireAudit) bool { return e.ObjectID == contests[0].ID }, 3},
		{"object_type and another type's id", url.Values{"object_type": {"user"}, "object_id": {contests[0].ID.String()}}, func(wireAudit) bool { return false }, 0},
		{"from (inclusive)", url.Values{"from": {start.Add(3 * time.Minute).Format(time.RFC3339)}},
			func(e wireAudit) bool { return !e.At.Before(start.Add(3 * time.Minute)) }, 4},
		{"to (exclusive)", url.Values{"to": {start.Add(3 * time.Minute).Format(time.RFC3339)}},
			func(e wireAudit) bool { return e.At.Before(start.Add(3 * time.Minute)) }, -1},
		{"from and to", url.Values{"from": {start.Add(time.Minute).Format(time.RFC3339)}, "to": {start.Add(4 * time.Minute).Format(time.RFC3339)}},
			func(e wireAudit) bool {
				return !e.At.Before(start.Add(time.Minute)) && e.At.Before(start.Add(4*time.Minute))
			}, 3},
		{"bare dates: the day of the entries, whole", url.Values{"from": {all[len(all)-1].At.Format(time.DateOnly)}, "to": {all[0].At.Format(time.DateOnly)}},
			func(wireAudit) bool { return true }, -1},
		{"bare date: the day before", url.Values{"to": {all[len(all)-1].At.AddDate(0, 0, -1).Format(time.DateOnly)}}, func(wireAudit) bool { return false }, 0},
		{"bare date read in a time zone", url.Values{"from": {all[0].At.AddDate(0, 0, 1).Format(time.DateOnly)}, "time_zone": {"Pacific/Kiritimati"}},
			func(e wireAudit) bool {
				kiri, _ := time.LoadLocation("Pacific/Kiritimati")
				y, m, d := all[0].At.AddDate(0, 0, 1).Date()
				return !e.At.Before(time.Date(y, m, d, 0, 0, 0, 0, kiri))
			}, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := auditLog(t, env, admin, tc.q)
			if n := count(tc.keep); len(got) != n || (tc.want >= 0 && n != tc.want) {
				t.Fatalf("%d entries %v, want %d (expected %d)", len(got), got, n, tc.want)
			}
			for _, e := range got {
				if !tc.keep(e) {
					t.Errorf("entry %v at %s does not match the filter", e, e.At)
				}
			}
		})
	}

	t.Run("pages of 2", func(t *testing.T) {
		q := url.Values{"limit": {"2"}}
		var got []wireAudit
		pages := 0
		for {
			res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/audit?" + q.Encode(), Token: admin})
			apitest.Expect(t, res, http.StatusOK)
			var p auditPage
			res.JSON(t, &p)
			if len(p.Entries) > 2 {
				t.Fatalf("page of %d entries, limit 2", len(p.Entries))
			}
			got = append(got, p.Entries...)
			pages++
			if p.NextCursor == "" {
				break
			}
			q.Set("cursor", p.NextCursor)
		}
		if want := (len(all) + 1) / 2; pages != want {
			t.Errorf("%d pages, want %d", pages, want)
		}
		if !slices.EqualFunc(got, all, func(a, b wireAudit) bool { return a.ID == b.ID }) {
			t.Errorf("paged %v, want %v", got, all)
		}
	})

	t.Run("pages of a filter", func(t *testing.T) {
		q := url.Values{"actor": {o.user("m1").String()}, "limit": {"3"}}
		got := auditLog(t, env, admin, q)
		if len(got) != 4 {
			t.Errorf("%d of manager1's entries in pages of 3, want 4: %v", len(got), got)
		}
	})

	for _, bad := range []struct {
		q     string
		field string
	}{
		{"limit=0", "limit"}, {"limit=501", "limit"}, {"cursor=nope", "cursor"}, {"cursor=e30", "cursor"},
		{"actor=42", "actor"}, {"object_id=x", "object_id"}, {"from=20/12/2026", "from"}, {"to=tomorrow", "to"},
		{"time_zone=Mars/Olympus&from=2026-01-01", "time_zone"},
		{"from=2026-02-01&to=2026-01-01", "to"},
		{"object_type=" + strings.Repeat("x", 65), "object_type"},
	} {
		t.Run("invalid "+bad.field, func(t *testing.T) {
			p := expectProblem(t, o.do("admin", http.MethodGet, "/v1/audit?"+bad.q, nil), http.StatusUnprocessableEntity, "invalid")
			expectFields(t, p, bad.field)
		})
	}
}

// TestAuditOrgIsolation: an organisation's admin never sees another's
// entries, not even by naming their actor or object.
func TestAuditOrgIsolation(t *testing.T) {
	o := newFieldOrg(t)
	env := o.env
	otherAdmin := o.addOtherOrg(t)
	theirs := o.dev["other"].Access
	env.Clock.Advance(time.Second) // newest first: the team after the org
	res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/teams", Token: theirs, Body: map[string]any{"name": "North"}})
	apitest.Expect(t, res, http.StatusCreated)
	var team struct {
		ID uuid.UUID `json:"id"`
	}
	res.JSON(t, &team)
	apitest.Expect(t, o.do("admin", http.MethodPost, "/v1/teams", map[string]any{"name": "West"}), http.StatusCreated)

	ours := auditLog(t, env, o.dev["admin"].Access, nil)
	for _, e := range ours {
		if e.ObjectID == team.ID || e.ObjectID == otherAdmin.ID || (e.ActorID != nil && *e.ActorID == otherAdmin.ID) {
			t.Errorf("our log shows the other organisation's %v", e)
		}
	}
	if len(ours) == 0 {
		t.Fatal("our log is empty")
	}
	for _, q := range []url.Values{{"object_id": {team.ID.String()}}, {"actor": {otherAdmin.ID.String()}}, {"object_id": {otherAdmin.ID.String()}}} {
		if got := auditLog(t, env, o.dev["admin"].Access, q); len(got) != 0 {
			t.Errorf("?%s in our log: %v, want nothing", q.Encode(), got)
		}
	}

	got := auditLog(t, env, theirs, nil)
	want := []auditWant{
		wantAudit(models.ActionTeamCreate, models.AuditTeam, team.ID, otherAdmin.ID),
		wantAudit(models.ActionUserCreate, models.AuditUser, otherAdmin.ID, uuid.Nil), // CreateOrg: no actor
	}
	if len(got) != len(want) {
		t.Fatalf("their log %v, want %d entries", got, len(want))
	}
	for i, w := range want {
		e := got[i]
		actor := uuid.Nil
		if e.ActorID != nil {
			actor = *e.ActorID
		}
		if e.Action != w.action || e.ObjectID != w.objectID || actor != w.actor {
			t.Errorf("their entry %d: %v, want %s %s by %s", i, e, w.action, w.objectID, w.actor)
		}
	}
}
