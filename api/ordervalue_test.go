package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
)

// Order values above the organisation's ceiling (issue 13, item 3): one
// visit with order_value 10,000,000,000 took a rep to first place with
// 100,000,000 points. Such a visit is flagged for the manager and scores
// nothing until approved; approval and rejection go into the ledger with
// their reason; the ceiling is an organisation setting.

const hugeOrder = 10_000_000_000

// visitOf pulls one visit as who sees it.
func (o *fieldOrg) visitOf(t *testing.T, who string, id uuid.UUID) syncChange {
	t.Helper()
	all, _ := pullAll(t, o.env, o.dev[who].Access)
	return all.live(t, "visits", id)
}

// flags is a visit's order value review as "suspicious_reason/order_value_review".
func flags(v syncChange) string {
	return v.str("suspicious_reason") + "/" + v.str("order_value_review")
}

// review posts an approval or rejection of a visit's order value.
func (o *fieldOrg) review(who, action string, visit uuid.UUID, reason string) *apitest.Response {
	o.t.Helper()
	return o.do(who, http.MethodPost, "/v1/visits/"+visit.String()+"/order-value/"+action, map[string]any{"reason": reason})
}

// entriesOf keeps the ledger entries of one source.
func entriesOf(es []wireEntry, source uuid.UUID) []wireEntry {
	var out []wireEntry
	for _, e := range es {
		if e.SourceID == source {
			out = append(out, e)
		}
	}
	return out
}

func standingString(s wireStanding) string {
	return fmt.Sprintf("outcome %g activity %g total %g value %g", s.OutcomePoints, s.ActivityPoints, s.TotalPoints, s.OutcomeValue)
}

// addUser creates a user of the demo organisation with the demo password
// and logs them in as name.
func (o *fieldOrg) addUser(t *testing.T, name, email string, role models.Role, team *uuid.UUID) {
	t.Helper()
	hash, err := o.env.Passwords.Hash(demo.Password)
	if err != nil {
		t.Fatal(err)
	}
	now := o.env.Clock.Now()
	u := models.User{OrgID: o.org, ID: uuid.New(), Email: email, Name: name, Role: role, TeamID: team,
		Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := o.env.DB.People().CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	o.dev[name] = newDevice(o.env, email)
}

// addOtherOrg creates another organisation with an admin, logged in as
// "other".
func (o *fieldOrg) addOtherOrg(t *testing.T) models.User {
	t.Helper()
	hash, err := o.env.Passwords.Hash(demo.Password)
	if err != nil {
		t.Fatal(err)
	}
	now := o.env.Clock.Now()
	other := models.Org{ID: uuid.New(), Name: "Other Co", CreatedAt: now}
	admin := models.User{OrgID: other.ID, ID: uuid.New(), Email: "admin@other.test", Name: "Olive Other", Role: models.RoleAdmin,
		Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := o.env.DB.People().CreateOrg(context.Background(), other, admin); err != nil {
		t.Fatal(err)
	}
	o.dev["other"] = newDevice(o.env, "admin@other.test")
	return admin
}

// TestOrderValueReview: a visit whose order value is above the ceiling is
// flagged and scores nothing, the standings stay as they were until the
// rep's manager or an admin approves it; approval adds its points with a
// ledger entry giving the reason, rejection takes them away again with
// another; and only those reviewers may decide.
func TestOrderValueReview(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	north := o.teams["North"]
	live := o.createContest(t, "admin", contestBody("Live", now.Add(-48*time.Hour), now.Add(24*time.Hour), nil))
	o.addUser(t, "deputy", "deputy@demo.test", models.RoleManager, &north) // a manager in North who does not manage it
	o.addOtherOrg(t)

	// rep1 earns points the ordinary way first.
	o.pushApplied(t, "rep1", o.up("visits", uuid.New(), o.call(o.north[0], now.Add(-6*time.Hour), 0, map[string]any{"outcome": "order", "order_value": 250})))
	before := o.standings(t, "rep1", live.ID)[o.user("rep1")]
	if before.TotalPoints != 17.5 {
		t.Fatalf("rep1 before the big order: %s, want 17.5 points", standingString(before))
	}

	big := uuid.New()
	o.pushApplied(t, "rep1", o.up("visits", big, o.call(o.north[1], now.Add(-time.Hour), 0, map[string]any{"outcome": "order", "order_value": hugeOrder})))
	name := o.names[o.north[1]]

	t.Run("flagged and scores nothing", func(t *testing.T) {
		for _, who := range []string{"rep1", "m1"} {
			if got := flags(o.visitOf(t, who, big)); got != "order_value/pending" {
				t.Errorf("%s pulls the visit flagged %q, want order_value/pending", who, got)
			}
		}
		if got := o.standings(t, "rep1", live.ID)[o.user("rep1")]; standingString(got) != standingString(before) {
			t.Errorf("rep1 after the big order: %s, want unchanged %s", standingString(got), standingString(before))
		}
		if es := entriesOf(o.entries(t, "m1", live.ID, "rep1"), big); len(es) != 0 {
			t.Errorf("the flagged visit has ledger entries %v, want none", es)
		}
	})

	t.Run("the manager is told", func(t *testing.T) {
		res := o.do("m1", http.MethodGet, "/v1/notifications", nil)
		apitest.Expect(t, res, http.StatusOK)
		var inbox wireNotificationList
		res.JSON(t, &inbox)
		var got []string
		for _, n := range inbox.Notifications {
			if n.Type == models.NotificationOrderValueReview {
				got = append(got, n.Data["visit_id"]+" "+n.Body)
			}
		}
		rep1, err := o.env.DB.People().User(context.Background(), o.org, o.user("rep1"))
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%s %s logged an order of 10000000000.00 at %s, above your organisation's ceiling. It scores nothing until you approve it.", big, rep1.Name, name)
		if len(got) != 1 || got[0] != want {
			t.Errorf("m1's order value notifications %q, want [%q]", got, want)
		}
	})

	t.Run("who may decide", func(t *testing.T) {
		tests := []struct {
			name   string
			who    string
			visit  uuid.UUID
			reason string
			status int
			code   string
		}{
			// 403: they can see the visit, but may not decide.
			{name: "the rep themselves", who: "rep1", visit: big, reason: "trust me", status: http.StatusForbidden, code: "forbidden"},
			{name: "a manager in the team who does not manage it", who: "deputy", visit: big, reason: "ok", status: http.StatusForbidden, code: "forbidden"},
			// 404: outside their scope, as if absent.
			{name: "a teammate", who: "rep2", visit: big, reason: "ok", status: http.StatusNotFound, code: "not_found"},
			{name: "another team's manager", who: "m2", visit: big, reason: "ok", status: http.StatusNotFound, code: "not_found"},
			{name: "another organisation's admin", who: "other", visit: big, reason: "ok", status: http.StatusNotFound, code: "not_found"},
			{name: "no such visit", who: "m1", visit: uuid.New(), reason: "ok", status: http.StatusNotFound, code: "not_found"},
			// 422
			{name: "no reason", who: "m1", visit: big, reason: "  ", status: http.StatusUnprocessableEntity, code: "invalid"},
			{name: "a reason over 500 characters", who: "m1", visit: big, reason: strings.Repeat("x", 501), status: http.StatusUnprocessableEntity, code: "invalid"},
		}
		for _, tt := range tests {
			for _, action := range []string{"approve", "reject"} {
				t.Run(tt.name+"/"+action, func(t *testing.T) {
					p := expectProblem(t, o.review(tt.who, action, tt.visit, tt.reason), tt.status, tt.code)
					if tt.status == http.StatusUnprocessableEntity {
						expectFields(t, p, "reason")
					}
				})
			}
		}
		t.Run("no token", func(t *testing.T) {
			res := o.env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/visits/" + big.String() + "/order-value/approve", Body: map[string]any{"reason": "ok"}})
			expectProblem(t, res, http.StatusUnauthorized, "unauthorized")
		})
		t.Run("nothing changed", func(t *testing.T) {
			if got := flags(o.visitOf(t, "m1", big)); got != "order_value/pending" {
				t.Errorf("after the refusals the visit is %q, want order_value/pending", got)
			}
			if es := entriesOf(o.entries(t, "m1", live.ID, "rep1"), big); len(es) != 0 {
				t.Errorf("refused reviews wrote ledger entries %v", es)
			}
		})
	})

	t.Run("a visit under the ceiling awaits no review", func(t *testing.T) {
		small := uuid.New()
		o.pushApplied(t, "rep2", o.up("visits", small, o.call(o.north[2], now.Add(-time.Hour), 0, map[string]any{"outcome": "order", "order_value": 1_000_000})))
		if got := flags(o.visitOf(t, "rep2", small)); got != "/" {
			t.Errorf("an order value at the default ceiling (1,000,000) is flagged %q, want not", got)
		}
		expectProblem(t, o.review("m1", "approve", small, "fine"), http.StatusConflict, "conflict")
	})

	const approval = "Confirmed the purchase order with the buyer"
	t.Run("approval adds the points, with a ledger entry and its reason", func(t *testing.T) {
		var res *apitest.Response
		expectNewAudit(t, o.env, o.dev["admin"].Access, func() { res = o.review("m1", "approve", big, approval) },
			wantAudit(models.ActionOrderValue, models.AuditVisit, big, o.user("m1")))
		apitest.Expect(t, res, http.StatusOK)
		var v struct {
			ID               uuid.UUID `json:"id"`
			SuspiciousReason *string   `json:"suspicious_reason"`
			OrderValueReview string    `json:"order_value_review"`
		}
		res.JSON(t, &v)
		if v.ID != big || v.OrderValueReview != models.OrderValueApproved || v.SuspiciousReason == nil || *v.SuspiciousReason != "order_value" {
			t.Errorf("approved visit %+v, want %s approved, still naming its reason order_value", v, big)
		}
		after := o.standings(t, "rep1", live.ID)[o.user("rep1")]
		want := before
		want.OutcomePoints += 10 + hugeOrder/100
		want.ActivityPoints += 5
		want.TotalPoints += 5 + 10 + hugeOrder/100
		want.OutcomeValue += hugeOrder
		if standingString(after) != standingString(want) {
			t.Errorf("rep1 after approval: %s, want %s", standingString(after), standingString(want))
		}
		m1, err := o.env.DB.People().User(context.Background(), o.org, o.user("m1"))
		if err != nil {
			t.Fatal(err)
		}
		var reasons []string
		for _, e := range entriesOf(o.entries(t, "rep1", live.ID, ""), big) {
			reasons = append(reasons, fmt.Sprintf("%s %g %s", e.Rule, e.Points, e.Reason))
		}
		wantReasons := []string{
			fmt.Sprintf("order_value_review 0 Order value 10000000000.00 at %s approved by %s: %s", name, m1.Name, approval),
			fmt.Sprintf("order_value 1e+08 Order value 10000000000.00 at %s: +100000000", name),
			fmt.Sprintf("outcome:order 10 Order at %s: +10", name),
			fmt.Sprintf("unscheduled_call 5 Unscheduled call at %s, verified: +5", name),
		}
		if !sameSet(reasons, wantReasons) {
			t.Errorf("ledger of the visit:\n%s\nwant:\n%s", strings.Join(reasons, "\n"), strings.Join(wantReasons, "\n"))
		}
		if got := flags(o.visitOf(t, "rep1", big)); got != "order_value/approved" {
			t.Errorf("rep1 pulls the visit %q, want order_value/approved", got)
		}
		expectProblem(t, o.review("m1", "approve", big, "again"), http.StatusConflict, "conflict")
	})

	t.Run("an admin's rejection takes the points away again, with a ledger entry", func(t *testing.T) {
		expectNewAudit(t, o.env, o.dev["admin"].Access, func() {
			apitest.Expect(t, o.review("admin", "reject", big, "Typo: the buyer ordered 10,000"), http.StatusOK)
		}, wantAudit(models.ActionOrderValue, models.AuditVisit, big, o.user("admin")))
		if got := o.standings(t, "rep1", live.ID)[o.user("rep1")]; standingString(got) != standingString(before) {
			t.Errorf("rep1 after rejection: %s, want back to %s", standingString(got), standingString(before))
		}
		es := entriesOf(o.entries(t, "rep1", live.ID, ""), big)
		if got := sumPoints(es); got != 0 {
			t.Errorf("the rejected visit's entries sum to %v, want 0", got)
		}
		found := false
		for _, e := range es {
			if e.Rule == models.RuleOrderValueReview && strings.Contains(e.Reason, " rejected by ") && strings.HasSuffix(e.Reason, ": Typo: the buyer ordered 10,000") {
				found = true
			}
		}
		if !found {
			t.Errorf("no ledger entry of the rejection among %v", es)
		}
	})

	t.Run("a corrected order value is judged afresh", func(t *testing.T) {
		o.pushApplied(t, "rep1", o.up("visits", big, map[string]any{"order_value": 10_000}))
		if got := flags(o.visitOf(t, "rep1", big)); got != "/" {
			t.Errorf("corrected to 10,000 the visit is flagged %q, want not", got)
		}
		if got, want := o.standings(t, "rep1", live.ID)[o.user("rep1")].TotalPoints, before.TotalPoints+5+10+100; got != want {
			t.Errorf("rep1 after the correction: %v points, want %v", got, want)
		}
		o.pushApplied(t, "rep1", o.up("visits", big, map[string]any{"order_value": 2_000_000}))
		if got := flags(o.visitOf(t, "rep1", big)); got != "order_value/pending" {
			t.Errorf("raised above the ceiling again the visit is %q, want order_value/pending", got)
		}
		if got := o.standings(t, "rep1", live.ID)[o.user("rep1")]; standingString(got) != standingString(before) {
			t.Errorf("rep1 with the raised order pending: %s, want %s", standingString(got), standingString(before))
		}
	})

	t.Run("a phone cannot approve its own order value", func(t *testing.T) {
		r := o.dev["rep1"].pushOne(t, o.up("visits", big, map[string]any{"order_value_review": "approved"}))
		if r.Status != "rejected" || r.Error == nil || r.Error.Code != "server_owned_field" {
			t.Errorf("pushing order_value_review: %s %+v, want rejected server_owned_field", r.Status, r.Error)
		}
	})

	t.Run("an approval retried with its Idempotency-Key happens once", func(t *testing.T) {
		key := uuid.NewString()
		post := func() *apitest.Response {
			return o.env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/visits/" + big.String() + "/order-value/approve",
				Token: o.dev["m1"].Access, Body: map[string]any{"reason": "PO 2,000,000 confirmed"},
				Header: http.Header{"Idempotency-Key": {key}}})
		}
		first := post()
		apitest.Expect(t, first, http.StatusOK)
		again := post()
		if again.StatusCode != http.StatusOK || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry: %d replayed %q, want the first answer replayed", again.StatusCode, again.Header.Get("Idempotent-Replayed"))
		}
		n := 0
		for _, e := range entriesOf(o.entries(t, "rep1", live.ID, ""), big) {
			if strings.HasSuffix(e.Reason, ": PO 2,000,000 confirmed") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d ledger entries of the approval, want 1", n)
		}
	})
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
		if seen[s] < 0 {
			return false
		}
	}
	return true
}

// TestOrderValueReviewWatermelonDB: a visit pushed through the WatermelonDB
// protocol gets the same treatment as a native push: flagged, scoring
// nothing, and a rejection keeps it at zero with a ledger entry.
func TestOrderValueReviewWatermelonDB(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	live := o.createContest(t, "admin", contestBody("Live", now.Add(-48*time.Hour), now.Add(24*time.Hour), nil))
	phone := newWMDevice(o.env, "rep4@demo.test")
	phone.pull(t)

	visit := uuid.New()
	acct := o.south[0]
	started := now.Add(-time.Hour).UnixMilli()
	phone.pushOK(t, wmTables("visits", wmCreated(wmVisit(visit, acct, started, map[string]any{
		"outcome": "order", "order_value": hugeOrder, "ended_at": started + 20*60*1000,
	}))))

	row, _ := phone.pull(t).row("visits", visit.String())
	if row["suspicious_reason"] != "order_value" || row["order_value_review"] != "pending" {
		t.Errorf("the phone pulls the visit with suspicious_reason %v, order_value_review %v; want order_value, pending",
			row["suspicious_reason"], row["order_value_review"])
	}
	zero := o.standings(t, "rep4", live.ID)[o.user("rep4")]
	if zero.TotalPoints != 0 || zero.OutcomeValue != 0 {
		t.Errorf("rep4 with the flagged visit: %s, want nothing", standingString(zero))
	}

	expectProblem(t, o.review("m1", "reject", visit, "not mine to judge"), http.StatusNotFound, "not_found")
	apitest.Expect(t, o.review("m2", "reject", visit, "No such order in the ERP"), http.StatusOK)
	if got := o.standings(t, "rep4", live.ID)[o.user("rep4")]; standingString(got) != standingString(zero) {
		t.Errorf("rep4 after rejection: %s, want still %s", standingString(got), standingString(zero))
	}
	es := entriesOf(o.entries(t, "rep4", live.ID, ""), visit)
	if len(es) != 1 || es[0].Rule != models.RuleOrderValueReview || es[0].Points != 0 ||
		!strings.Contains(es[0].Reason, " rejected by ") || !strings.HasSuffix(es[0].Reason, ": No such order in the ERP") {
		t.Errorf("ledger of the rejected visit: %v, want one order_value_review entry with the reason", es)
	}
	row, _ = phone.pull(t).row("visits", visit.String())
	if row["order_value_review"] != "rejected" {
		t.Errorf("the phone pulls order_value_review %v, want rejected", row["order_value_review"])
	}
}

// TestOrderValueCeiling: the ceiling is an organisation setting, 1,000,000
// by default, that only an admin changes; visits written after a change
// are judged by the new ceiling.
func TestOrderValueCeiling(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	o.addOtherOrg(t)

	ceiling := func(t *testing.T, who string) float64 {
		t.Helper()
		res := o.do(who, http.MethodGet, "/v1/org", nil)
		apitest.Expect(t, res, http.StatusOK)
		var org struct {
			ID                uuid.UUID `json:"id"`
			OrderValueCeiling float64   `json:"order_value_ceiling"`
		}
		res.JSON(t, &org)
		return org.OrderValueCeiling
	}
	if got := ceiling(t, "rep1"); got != 1_000_000 {
		t.Errorf("default ceiling %v, want 1000000", got)
	}

	t.Run("who may change it", func(t *testing.T) {
		for _, who := range []string{"rep1", "m1"} {
			expectProblem(t, o.do(who, http.MethodPatch, "/v1/org", map[string]any{"order_value_ceiling": 1}), http.StatusForbidden, "forbidden")
		}
	})
	t.Run("bad values", func(t *testing.T) {
		for _, v := range []any{0, -5, 10_000_000_001, 12.345, "lots", nil} {
			p := expectProblem(t, o.do("admin", http.MethodPatch, "/v1/org", map[string]any{"order_value_ceiling": v}), http.StatusUnprocessableEntity, "invalid")
			expectFields(t, p, "order_value_ceiling")
		}
		if got := ceiling(t, "admin"); got != 1_000_000 {
			t.Errorf("after refused changes the ceiling is %v, want 1000000", got)
		}
	})

	var res *apitest.Response
	entries := expectNewAudit(t, o.env, o.dev["admin"].Access, func() {
		res = o.do("admin", http.MethodPatch, "/v1/org", map[string]any{"order_value_ceiling": 500.5})
	}, wantAudit(models.ActionOrgSettings, models.AuditOrg, o.org, o.user("admin")))
	apitest.Expect(t, res, http.StatusOK)
	if len(entries) == 1 {
		if b, a := string(entries[0].Before["order_value_ceiling"]), string(entries[0].After["order_value_ceiling"]); b != "1000000" || a != "500.5" {
			t.Errorf("audited ceiling change %s → %s, want 1000000 → 500.5", b, a)
		}
	}
	if got := ceiling(t, "m1"); got != 500.5 {
		t.Errorf("ceiling after the change %v, want 500.5", got)
	}
	if got := ceiling(t, "other"); got != 1_000_000 {
		t.Errorf("another organisation's ceiling %v, want its own default 1000000", got)
	}

	tests := []struct {
		value float64
		want  string
	}{
		{500.5, "/"},
		{500.51, "order_value/pending"},
		{20_000, "order_value/pending"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(tt.value), func(t *testing.T) {
			id := uuid.New()
			o.pushApplied(t, "rep1", o.up("visits", id, o.call(o.north[i], now.Add(-time.Duration(1+5*i)*time.Hour), 0,
				map[string]any{"outcome": "order", "order_value": tt.value})))
			if got := flags(o.visitOf(t, "rep1", id)); got != tt.want {
				t.Errorf("order value %v under a ceiling of 500.5: %q, want %q", tt.value, got, tt.want)
			}
		})
	}
}
