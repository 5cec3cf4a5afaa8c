package api_test

import (
	"context"
	"encoding/json"
	"net/http"
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

// Location privacy and personal data (issue 13) through the real router
// and database.

// num returns a number field of a pulled record, or nil when null.
func (c syncChange) num(field string) *float64 {
	var f *float64
	_ = json.Unmarshal(c.Data[field], &f)
	return f
}

// engine returns an engine over the test's database and clock, as the
// scheduler runs one.
func (o *fieldOrg) engine() *engine.Engine {
	return engine.New(o.env.DB.Feed(), sales.Entities(), o.env.Clock.Now, nil)
}

// pullSince pulls every page after cursor as who and returns the changes
// by entity/id and the new cursor.
func (o *fieldOrg) pullSince(t *testing.T, who, cursor string) (replica, string) {
	t.Helper()
	out := replica{}
	for {
		pr := pullPage(t, o.env, o.dev[who].Access, cursor, 1000)
		if pr.Reset {
			t.Fatalf("pull as %s answered reset", who)
		}
		for _, c := range pr.Changes {
			out[key(c.Entity, c.ID)] = c
		}
		cursor = pr.Cursor
		if !pr.HasMore {
			return out, cursor
		}
	}
}

func wantCoords(t *testing.T, c syncChange, want map[string]float64) {
	t.Helper()
	for f, w := range want {
		if got := c.num(f); got == nil || *got != w {
			t.Errorf("%s %s.%s = %v, want %v", c.Entity, c.ID, f, got, w)
		}
	}
}

// TestLocationPrivacyJob: positions dated before the retention are
// coarsened to 2 decimals by the job, in bounded transactions, once; a pull
// delivers the coarse values; recent positions, notes and every verdict
// made on the precise positions are kept, also when the record is edited
// afterwards; a position pushed back into a coarsened record is coarsened
// again.
func TestLocationPrivacyJob(t *testing.T) {
	ctx := context.Background()
	o := newFieldOrg(t)
	en := o.engine()
	const retention = 180 * 24 * time.Hour

	// An account placed so that rounding moves a check-in on it about
	// 600 m: were a coarsened check-in judged again it would be
	// out_of_range, and the ride-along no longer joint-verified.
	acct := uuid.New()
	o.pushApplied(t, "rep1", o.up("accounts", acct, map[string]any{"name": "Privacy Hardware", "lat": 44.9745, "lng": -93.2645}))
	now := o.env.Clock.Now()
	old, fresh, ra := uuid.New(), uuid.New(), uuid.New()
	visit := func(start time.Time) map[string]any {
		return map[string]any{"account_id": acct.String(), "kind": "unscheduled", "status": "completed",
			"started_at": start.UTC().Format(time.RFC3339), "check_in_lat": 44.9745, "check_in_lng": -93.2645, "check_in_accuracy_m": 10,
			"check_out_lat": 44.97461, "check_out_lng": -93.26449, "notes": "Buyer likes the red ones"}
	}
	o.pushApplied(t, "rep1", o.up("visits", old, visit(now.Add(-10*24*time.Hour))))
	o.pushApplied(t, "m1", o.up("ride_alongs", ra, map[string]any{"rep_id": o.user("rep1").String(), "mode": "visit", "visit_id": old.String(),
		"manager_check_in_lat": 44.9751, "manager_check_in_lng": -93.2644}))
	o.env.Clock.Advance(181 * 24 * time.Hour)
	o.relogin() // the sessions expired meanwhile
	now = o.env.Clock.Now()
	o.pushApplied(t, "rep1", o.up("visits", fresh, visit(now.Add(-time.Hour))))

	before, _ := pullAll(t, o.env, o.dev["rep1"].Access)
	if v := before.live(t, "visits", old).str("verification"); v != models.CheckInVerified {
		t.Fatalf("old visit before the job: verification %q, want verified", v)
	}
	var joint bool
	_ = json.Unmarshal(before.live(t, "ride_alongs", ra).Data["joint_verified"], &joint)
	if !joint {
		t.Fatal("ride-along before the job: not joint-verified")
	}
	_, cursor := o.pullSince(t, "rep1", "")
	cutoff := now.Add(-retention)

	t.Run("one transaction rewrites at most its limit", func(t *testing.T) {
		var n int
		err := en.Server(ctx, models.Principal{OrgID: o.org}, func(c *engine.Context) error {
			var err error
			n, err = sales.RedactLocations(c, cutoff, 1)
			return err
		})
		if err != nil || n != 1 {
			t.Fatalf("RedactLocations with limit 1: %d, %v; want 1", n, err)
		}
		got, _ := o.pullSince(t, "rep1", cursor)
		if len(got) != 1 {
			t.Fatalf("pull after one bounded run: %d changes, want 1", len(got))
		}
	})
	t.Run("the rest in batches, then nothing", func(t *testing.T) {
		n, err := sales.RedactAllLocations(ctx, en, o.org, cutoff, 1)
		if err != nil || n != 1 {
			t.Fatalf("RedactAllLocations: %d, %v; want the 1 record left", n, err)
		}
	})

	got, after := o.pullSince(t, "rep1", cursor)
	t.Run("a pull delivers the coarse positions, verdicts kept", func(t *testing.T) {
		v := got.live(t, "visits", old)
		wantCoords(t, v, map[string]float64{"check_in_lat": 44.97, "check_in_lng": -93.26, "check_out_lat": 44.97, "check_out_lng": -93.26})
		if s := v.str("verification"); s != models.CheckInVerified {
			t.Errorf("verification after the job = %q, want verified", s)
		}
		if d := v.num("check_in_distance_m"); d == nil || *d != 0 {
			t.Errorf("check_in_distance_m after the job = %v, want 0 (as judged on the precise position)", d)
		}
		if s := v.str("notes"); s != "Buyer likes the red ones" {
			t.Errorf("notes after the job = %q, want them kept", s)
		}
		r := got.live(t, "ride_alongs", ra)
		wantCoords(t, r, map[string]float64{"manager_check_in_lat": 44.98, "manager_check_in_lng": -93.26})
		if _, ok := got[key("visits", fresh)]; ok {
			t.Error("the recent visit changed")
		}
		if len(got) != 2 {
			t.Errorf("pull after the job: %d changes, want the 2 coarsened records", len(got))
		}
	})
	t.Run("recent positions are untouched", func(t *testing.T) {
		all, _ := pullAll(t, o.env, o.dev["rep1"].Access)
		wantCoords(t, all.live(t, "visits", fresh), map[string]float64{"check_in_lat": 44.9745, "check_in_lng": -93.2645, "check_out_lat": 44.97461})
	})
	t.Run("idempotent", func(t *testing.T) {
		n, err := sales.RedactAllLocations(ctx, en, o.org, cutoff, sales.RedactBatch)
		if err != nil || n != 0 {
			t.Fatalf("second run: %d, %v; want 0", n, err)
		}
		if again, _ := o.pullSince(t, "rep1", after); len(again) != 0 {
			t.Errorf("a second run changed %d records", len(again))
		}
	})
	t.Run("later edits keep the verdicts", func(t *testing.T) {
		o.pushApplied(t, "m1", o.up("ride_alongs", ra, map[string]any{"note": "Good close"}))
		o.pushApplied(t, "rep1", o.up("visits", old, map[string]any{"notes": "Buyer likes the blue ones", "started_at": now.Add(-191 * 24 * time.Hour).Format(time.RFC3339)}))
		all, _ := pullAll(t, o.env, o.dev["rep1"].Access)
		var joint bool
		_ = json.Unmarshal(all.live(t, "ride_alongs", ra).Data["joint_verified"], &joint)
		if !joint {
			t.Error("editing a coarsened ride-along lost its joint verification")
		}
		if s := all.live(t, "visits", old).str("verification"); s != models.CheckInVerified {
			t.Errorf("editing a coarsened visit's start: verification %q, want verified", s)
		}
	})
	t.Run("a precise position pushed back is coarsened again", func(t *testing.T) {
		o.pushApplied(t, "rep1", o.up("visits", old, map[string]any{"check_in_lat": 44.9745, "check_in_lng": -93.2645}))
		if n, err := sales.RedactAllLocations(ctx, en, o.org, cutoff, sales.RedactBatch); err != nil || n != 1 {
			t.Fatalf("run after the push: %d, %v; want 1", n, err)
		}
		all, _ := pullAll(t, o.env, o.dev["rep1"].Access)
		wantCoords(t, all.live(t, "visits", old), map[string]float64{"check_in_lat": 44.97, "check_in_lng": -93.26})
	})
}

// personalOrg is the demo organisation with personal data of rep1 and,
// beside it, of rep2: a visit with position and notes each, rep1's
// activity and push token, a ride-along of m1 with rep1, kudos between
// them, and a live contest rep1 scored an order in.
type personalOrg struct {
	*fieldOrg
	rep1Visit, rep2Visit, activity, rideAlong, kudos uuid.UUID
	contest                                          uuid.UUID
	token                                            string
}

func newPersonalOrg(t *testing.T) *personalOrg {
	t.Helper()
	o := &personalOrg{fieldOrg: newFieldOrg(t), rep1Visit: uuid.New(), rep2Visit: uuid.New(), activity: uuid.New(), rideAlong: uuid.New(), kudos: uuid.New()}
	now := o.env.Clock.Now()
	o.contest = o.createContest(t, "admin", contestBody("Live", now.Add(-48*time.Hour), now.Add(24*time.Hour), nil)).ID
	o.pushApplied(t, "rep1",
		o.up("visits", o.rep1Visit, o.call(o.north[0], now.Add(-3*time.Hour), 0, map[string]any{"outcome": "order", "order_value": 250, "notes": "rep1 private note"})),
		o.up("activities", o.activity, map[string]any{"type": "crm_update", "occurred_at": now.Add(-2 * time.Hour).Format(time.RFC3339), "notes": "rep1 activity note"}),
	)
	o.pushApplied(t, "rep2", o.up("visits", o.rep2Visit, o.call(o.north[1], now.Add(-time.Hour), 0, map[string]any{"notes": "rep2 private note"})))
	o.pushApplied(t, "m1", o.up("ride_alongs", o.rideAlong, map[string]any{"rep_id": o.user("rep1").String(), "mode": "visit", "visit_id": o.rep1Visit.String(), "note": "coach rep1 on closing"}))
	o.pushApplied(t, "rep2", o.up("recognitions", o.kudos, map[string]any{"to_user_id": o.user("rep1").String(), "message": "rep2 thanks rep1"}))
	o.token = "fcm-token-of-rep1-" + strings.Repeat("x", 40)
	apitest.Expect(t, putToken(o.env, o.dev["rep1"].Access, map[string]any{"token": o.token, "platform": "android"}), http.StatusNoContent)
	return o
}

type wireExport struct {
	User struct {
		ID    uuid.UUID `json:"id"`
		Email string    `json:"email"`
	} `json:"user"`
	Sessions []struct {
		DeviceID uuid.UUID `json:"device_id"`
	} `json:"sessions"`
	PushTokens []struct {
		DeviceID uuid.UUID `json:"device_id"`
		Token    string    `json:"token"`
	} `json:"push_tokens"`
	Records map[string][]map[string]json.RawMessage `json:"records"`
}

func exportIDs(e wireExport, entity string) map[uuid.UUID]map[string]json.RawMessage {
	out := map[uuid.UUID]map[string]json.RawMessage{}
	for _, r := range e.Records[entity] {
		var id uuid.UUID
		_ = json.Unmarshal(r["id"], &id)
		out[id] = r
	}
	return out
}

// TestPersonalDataExport: an admin's export of rep1 holds rep1's profile,
// sessions, push token (redacted) and records — the visit with its
// position and notes, the activity, the ride-along, the kudos, the points
// — and nothing of rep2's.
func TestPersonalDataExport(t *testing.T) {
	o := newPersonalOrg(t)
	res := o.do("admin", http.MethodGet, "/v1/users/"+o.user("rep1").String()+"/export", nil)
	apitest.Expect(t, res, http.StatusOK)
	var e wireExport
	res.JSON(t, &e)

	if e.User.ID != o.user("rep1") || e.User.Email != "rep1@demo.test" {
		t.Errorf("profile: %+v, want rep1's", e.User)
	}
	if len(e.Sessions) != 1 || e.Sessions[0].DeviceID != o.dev["rep1"].DeviceID {
		t.Errorf("sessions: %+v, want rep1's one device %s", e.Sessions, o.dev["rep1"].DeviceID)
	}
	if len(e.PushTokens) != 1 || e.PushTokens[0].Token != "[redacted]" || e.PushTokens[0].DeviceID != o.dev["rep1"].DeviceID {
		t.Errorf("push tokens: %+v, want rep1's device with the token redacted", e.PushTokens)
	}
	if strings.Contains(string(res.Body), o.token) {
		t.Error("the export holds the push token itself")
	}
	visits := exportIDs(e, "visits")
	v, ok := visits[o.rep1Visit]
	if !ok || len(visits) != 1 {
		t.Fatalf("visits: %d exported, want rep1's one", len(visits))
	}
	if !strings.Contains(string(v["notes"]), "rep1 private note") || string(v["check_in_lat"]) == "null" {
		t.Errorf("rep1's visit without its notes or position: notes %s, check_in_lat %s", v["notes"], v["check_in_lat"])
	}
	for entity, id := range map[string]uuid.UUID{"activities": o.activity, "ride_alongs": o.rideAlong, "recognitions": o.kudos} {
		if _, ok := exportIDs(e, entity)[id]; !ok {
			t.Errorf("%s: %s missing", entity, id)
		}
	}
	if len(e.Records["score_entries"]) == 0 || len(e.Records["standings"]) != 1 {
		t.Errorf("%d score entries and %d standings, want rep1's points and their one standing", len(e.Records["score_entries"]), len(e.Records["standings"]))
	}
	for _, entity := range []string{"score_entries", "standings"} {
		for _, r := range e.Records[entity] {
			if string(r["rep_id"]) != `"`+o.user("rep1").String()+`"` {
				t.Errorf("%s of rep %s exported", entity, r["rep_id"])
			}
		}
	}
	for _, leak := range []string{"rep2 private note", o.rep2Visit.String(), "rep2@demo.test"} {
		if strings.Contains(string(res.Body), leak) {
			t.Errorf("the export of rep1 holds %q", leak)
		}
	}
}

// TestPersonalDataErase: erasing rep1 anonymises their profile and
// records, signs them out and drops their push token, keeps their order,
// points and standing, reaches phones through pull, leaves rep2 alone and
// is idempotent.
func TestPersonalDataErase(t *testing.T) {
	o := newPersonalOrg(t)
	rep1 := o.user("rep1")
	standingBefore := o.standings(t, "admin", o.contest)[rep1]
	pointsBefore := sumPoints(o.entries(t, "admin", o.contest, "rep1"))
	if standingBefore.TotalPoints == 0 || pointsBefore == 0 {
		t.Fatalf("rep1 scored nothing before the erasure: %+v", standingBefore)
	}
	_, m1Cursor := o.pullSince(t, "m1", "")

	res := o.do("admin", http.MethodDelete, "/v1/users/"+rep1.String()+"/personal-data", nil)
	apitest.Expect(t, res, http.StatusOK)
	var out struct {
		User struct {
			Name   string `json:"name"`
			Email  string `json:"email"`
			Active bool   `json:"active"`
		} `json:"user"`
		RecordsAnonymised int `json:"records_anonymised"`
	}
	res.JSON(t, &out)
	if out.User.Name != models.ErasedName || out.User.Email != models.ErasedEmail(rep1) || out.User.Active {
		t.Errorf("erased user: %+v, want name %q, email %q, inactive", out.User, models.ErasedName, models.ErasedEmail(rep1))
	}
	if out.RecordsAnonymised != 4 {
		t.Errorf("records anonymised: %d, want 4 (visit, activity, ride-along, kudos)", out.RecordsAnonymised)
	}

	t.Run("signed out, token gone, cannot sign in", func(t *testing.T) {
		expectProblem(t, o.do("rep1", http.MethodGet, "/v1/me", nil), http.StatusUnauthorized, "unauthorized")
		if toks, err := o.env.DB.Outbox().PushTokens(context.Background(), o.org, rep1); err != nil || len(toks) != 0 {
			t.Errorf("push tokens after the erasure: %v, %v; want none", toks, err)
		}
		for _, email := range []string{"rep1@demo.test", models.ErasedEmail(rep1)} {
			res := o.env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/login", Body: map[string]any{
				"email": email, "password": demo.Password, "device_id": uuid.NewString()}})
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("login as %s after the erasure: %d, want 401", email, res.StatusCode)
			}
		}
	})
	t.Run("the manager's phone pulls the anonymised records", func(t *testing.T) {
		got, _ := o.pullSince(t, "m1", m1Cursor)
		v := got.live(t, "visits", o.rep1Visit)
		for _, f := range []string{"notes", "check_in_lat", "check_in_lng"} {
			if string(v.Data[f]) != "null" {
				t.Errorf("visit %s after the erasure: %s, want null", f, v.Data[f])
			}
		}
		if v.str("outcome") != "order" || string(v.Data["order_value"]) != "250" || v.str("verification") != models.CheckInVerified {
			t.Errorf("visit outcome %q, order_value %s, verification %q; want order, 250, verified kept", v.str("outcome"), v.Data["order_value"], v.str("verification"))
		}
		if s := got.live(t, "activities", o.activity).Data["notes"]; string(s) != "null" {
			t.Errorf("activity notes after the erasure: %s", s)
		}
		if s := got.live(t, "ride_alongs", o.rideAlong).Data["note"]; string(s) != "null" {
			t.Errorf("ride-along note after the erasure: %s", s)
		}
		if s := got.live(t, "recognitions", o.kudos).str("message"); s != sales.ErasedText {
			t.Errorf("kudos message after the erasure: %q, want %q", s, sales.ErasedText)
		}
		if _, ok := got[key("visits", o.rep2Visit)]; ok {
			t.Error("rep2's visit changed")
		}
	})
	t.Run("totals kept", func(t *testing.T) {
		after := o.standings(t, "admin", o.contest)[rep1]
		if after.TotalPoints != standingBefore.TotalPoints || after.OutcomeValue != standingBefore.OutcomeValue || after.Rank != standingBefore.Rank {
			t.Errorf("rep1's standing: %s, want %s", after, standingBefore)
		}
		if got := sumPoints(o.entries(t, "admin", o.contest, "rep1")); got != pointsBefore {
			t.Errorf("rep1's points: %g, want %g", got, pointsBefore)
		}
	})
	t.Run("the export shows the anonymised data", func(t *testing.T) {
		res := o.do("admin", http.MethodGet, "/v1/users/"+rep1.String()+"/export", nil)
		apitest.Expect(t, res, http.StatusOK)
		for _, gone := range []string{"rep1 private note", "rep1 activity note", "coach rep1", "rep2 thanks rep1", "rep1@demo.test", "Riley Park"} {
			if strings.Contains(string(res.Body), gone) {
				t.Errorf("the export after the erasure still holds %q", gone)
			}
		}
	})
	t.Run("idempotent", func(t *testing.T) {
		res := o.do("admin", http.MethodDelete, "/v1/users/"+rep1.String()+"/personal-data", nil)
		apitest.Expect(t, res, http.StatusOK)
		res.JSON(t, &out)
		if out.RecordsAnonymised != 0 {
			t.Errorf("a second erasure rewrote %d records, want 0", out.RecordsAnonymised)
		}
	})
	t.Run("rep2 untouched", func(t *testing.T) {
		all, _ := pullAll(t, o.env, o.dev["rep2"].Access)
		if s := all.live(t, "visits", o.rep2Visit).str("notes"); s != "rep2 private note" {
			t.Errorf("rep2's notes: %q", s)
		}
		apitest.Expect(t, o.do("rep2", http.MethodGet, "/v1/me", nil), http.StatusOK)
	})
}

// TestPersonalDataAuthz: only an admin, only in their organisation, not
// on themselves for erasure; nothing is erased by a refused request.
func TestPersonalDataAuthz(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	hash, err := o.env.Passwords.Hash(demo.Password)
	if err != nil {
		t.Fatal(err)
	}
	other := models.Org{ID: uuid.New(), Name: "Other Co", CreatedAt: now}
	otherAdmin := models.User{OrgID: other.ID, ID: uuid.New(), Email: "admin@other.test", Name: "Olive Other", Role: models.RoleAdmin,
		Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := o.env.DB.People().CreateOrg(context.Background(), other, otherAdmin); err != nil {
		t.Fatal(err)
	}
	o.dev["other"] = newDevice(o.env, "admin@other.test")

	rep1, rep4 := o.user("rep1").String(), o.user("rep4").String()
	tests := []struct {
		name, who, target string
		status            int
		code              string
	}{
		{"a rep on themselves", "rep1", rep1, http.StatusForbidden, "forbidden"},
		{"a rep on a teammate", "rep2", rep1, http.StatusForbidden, "forbidden"},
		{"a manager on their rep", "m1", rep1, http.StatusForbidden, "forbidden"},
		{"a manager on another team's rep", "m1", rep4, http.StatusNotFound, "not_found"},
		{"another organisation's admin", "other", rep1, http.StatusNotFound, "not_found"},
		{"an admin on an unknown id", "admin", uuid.NewString(), http.StatusNotFound, "not_found"},
		{"an id that is not a UUID", "admin", "rep1", http.StatusUnprocessableEntity, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectProblem(t, o.do(tt.who, http.MethodGet, "/v1/users/"+tt.target+"/export", nil), tt.status, tt.code)
			expectProblem(t, o.do(tt.who, http.MethodDelete, "/v1/users/"+tt.target+"/personal-data", nil), tt.status, tt.code)
		})
	}
	t.Run("an admin erasing themselves", func(t *testing.T) {
		expectProblem(t, o.do("admin", http.MethodDelete, "/v1/users/"+o.user("admin").String()+"/personal-data", nil), http.StatusUnprocessableEntity, "invalid")
	})
	t.Run("the other admin sees the own organisation only", func(t *testing.T) {
		apitest.Expect(t, o.do("other", http.MethodGet, "/v1/users/"+otherAdmin.ID.String()+"/export", nil), http.StatusOK)
	})
	// Every refused request left rep1 as they were.
	apitest.Expect(t, o.do("rep1", http.MethodGet, "/v1/me", nil), http.StatusOK)
	u, err := o.env.DB.People().User(context.Background(), o.org, o.user("rep1"))
	if err != nil || u.Email != "rep1@demo.test" || !u.Active {
		t.Errorf("rep1 after refused erasures: %+v, %v", u, err)
	}
}
