package models_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

func TestScoringRulesValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(r *models.ScoringRules)
		wantErr string // substring of the message; "" for valid
	}{
		{name: "defaults are valid", edit: func(*models.ScoringRules) {}},
		{name: "zero rules are valid", edit: func(r *models.ScoringRules) { *r = models.ScoringRules{} }},
		{name: "negative call points", edit: func(r *models.ScoringRules) { r.PerVerifiedUnscheduledCall = -1 }, wantErr: "per_verified_unscheduled_call must be between 0 and 1000000"},
		{name: "huge order value points", edit: func(r *models.ScoringRules) { r.PerOrderValueUnit = 2e6 }, wantErr: "per_order_value_unit"},
		{name: "order value points without a unit", edit: func(r *models.ScoringRules) { r.OrderValueUnit = 0 }, wantErr: "order_value_unit must be positive"},
		{name: "unknown outcome", edit: func(r *models.ScoringRules) { r.PerOutcome["sold_the_farm"] = 1 }, wantErr: `unknown outcome "sold_the_farm"`},
		{name: "negative outcome points", edit: func(r *models.ScoringRules) { r.PerOutcome["order"] = -3 }, wantErr: "per_outcome.order"},
		{name: "unknown activity", edit: func(r *models.ScoringRules) { r.PerActivity["golf"] = 1 }, wantErr: `unknown activity type "golf"`},
		{name: "unknown cap rule", edit: func(r *models.ScoringRules) { r.DailyCaps["visits"] = 3 }, wantErr: `unknown rule "visits"`},
		{name: "cap on an unknown activity", edit: func(r *models.ScoringRules) { r.DailyCaps["activity:golf"] = 3 }, wantErr: `unknown rule "activity:golf"`},
		{name: "negative cap", edit: func(r *models.ScoringRules) { r.DailyCaps["unscheduled_call"] = -1 }, wantErr: "daily_caps.unscheduled_call"},
		{name: "cap of zero is valid", edit: func(r *models.ScoringRules) { r.DailyCaps["activity:other"] = 0 }},
		{name: "negative minimum visit", edit: func(r *models.ScoringRules) { r.MinVisitMinutes = -5 }, wantErr: "min_visit_minutes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := models.DefaultScoringRules()
			tt.edit(&r)
			err := r.Validate("rules")
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate: nil, want an error containing %q", tt.wantErr)
			case tt.wantErr != "":
				if got := models.ErrorCode(err); got != models.CodeInvalid {
					t.Errorf("code = %q, want %q", got, models.CodeInvalid)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
				}
			}
		})
	}
}

var day = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// seqID returns a fixed id whose string order follows n.
func seqID(n int) uuid.UUID {
	return uuid.MustParse(fmt.Sprintf("00000000-0000-4000-8000-%012d", n))
}

func call(n int, at time.Duration, verification string) models.ScoreSource {
	return models.ScoreSource{Entity: "visits", ID: seqID(n), At: day.Add(at), AccountName: "Acme Hardware",
		Kind: "unscheduled", Status: "completed", Outcome: "none", Verification: verification, Minutes: 20}
}

// entryStrings renders entries as "rule points value cost reason" lines.
func entryStrings(es []models.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s %s %g v%d c%d %q", e.SourceID.String()[24:], e.Rule, e.Points, e.ValueCents, e.CostCents, e.Reason))
	}
	return out
}

func unscoredStrings(us []models.Unscored) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.SourceID.String()[24:]+" "+u.Reason)
	}
	return out
}

func TestScoreDay(t *testing.T) {
	rules := models.DefaultScoringRules()
	order := call(1, 9*time.Hour, models.CheckInVerified)
	order.Outcome, order.OrderCents = "order", 25000
	scheduled := call(2, 10*time.Hour, models.CheckInVerified)
	scheduled.Kind, scheduled.Outcome = "scheduled", "demo"
	planned := call(3, 11*time.Hour, models.CheckInVerified)
	planned.Status = "planned"
	far := call(4, 12*time.Hour, models.CheckInOutOfRange)
	far.DistanceM, far.Outcome = 1234, "meeting"
	short := call(5, 13*time.Hour, models.CheckInVerified)
	short.Minutes = 3
	unknownLength := call(6, 14*time.Hour, models.CheckInVerified)
	unknownLength.Minutes = -1
	crm := models.ScoreSource{Entity: "activities", ID: seqID(7), At: day.Add(15 * time.Hour), Kind: "crm_update", AccountName: "Acme Hardware", CostCents: 1250}
	other := models.ScoreSource{Entity: "activities", ID: seqID(8), At: day.Add(16 * time.Hour), Kind: "other", CostCents: 500}
	otherFree := models.ScoreSource{Entity: "activities", ID: seqID(9), At: day.Add(17 * time.Hour), Kind: "other"}
	suspicious := call(10, 18*time.Hour, models.CheckInSuspicious)
	noFix := call(11, 19*time.Hour, models.CheckInUnverifiable)
	farNoName := call(12, 20*time.Hour, models.CheckInOutOfRange)
	farNoName.AccountName, farNoName.DistanceM = "", 310
	review := func(n int, state string) models.ScoreSource {
		s := call(n, 21*time.Hour, models.CheckInVerified)
		s.Outcome, s.OrderCents, s.OrderReview = "order", 1_000_000_000_000, state
		return s
	}

	tests := []struct {
		name         string
		rules        models.ScoringRules
		sources      []models.ScoreSource
		wantEntries  []string
		wantUnscored []string
	}{
		{
			name: "verified call with an order", rules: rules, sources: []models.ScoreSource{order},
			wantEntries: []string{
				`000000000001 unscheduled_call 5 v0 c0 "Unscheduled call at Acme Hardware, verified: +5"`,
				`000000000001 outcome:order 10 v0 c0 "Order at Acme Hardware: +10"`,
				`000000000001 order_value 2.5 v25000 c0 "Order value 250.00 at Acme Hardware: +2.5"`,
			},
		},
		{
			name: "scheduled visit scores its outcome, not a call", rules: rules, sources: []models.ScoreSource{scheduled},
			wantEntries: []string{`000000000002 outcome:demo 4 v0 c0 "Demo at Acme Hardware: +4"`},
		},
		{name: "a visit not completed scores nothing", rules: rules, sources: []models.ScoreSource{planned}},
		{
			name: "out of range call: no call points, the outcome counts", rules: rules, sources: []models.ScoreSource{far},
			wantEntries:  []string{`000000000004 outcome:meeting 3 v0 c0 "Meeting at Acme Hardware: +3"`},
			wantUnscored: []string{"000000000004 check-in 1.2 km from Acme Hardware"},
		},
		{
			name: "out of range without an account name", rules: rules, sources: []models.ScoreSource{farNoName},
			wantUnscored: []string{"000000000012 check-in 310 m from the account"},
		},
		{
			name: "suspicious and unverifiable calls are explained", rules: rules, sources: []models.ScoreSource{noFix, suspicious},
			wantUnscored: []string{
				"000000000010 check-in flagged as implausible (speed or repeat visit)",
				"000000000011 check-in could not be verified (no GPS fix or poor accuracy)",
			},
		},
		{
			name: "a call under the minimum length", rules: rules, sources: []models.ScoreSource{short},
			wantUnscored: []string{"000000000005 visit at Acme Hardware lasted 3 min, under the 5 min minimum"},
		},
		{
			name: "a call of unknown length scores", rules: rules, sources: []models.ScoreSource{unknownLength},
			wantEntries: []string{`000000000006 unscheduled_call 5 v0 c0 "Unscheduled call at Acme Hardware, verified: +5"`},
		},
		{
			name: "activities carry their cost; an unscored one is kept for its cost only", rules: rules, sources: []models.ScoreSource{otherFree, other, crm},
			wantEntries: []string{
				`000000000007 activity:crm_update 1 v0 c1250 "CRM update at Acme Hardware: +1"`,
				`000000000008 activity:other 0 v0 c500 "Activity: +0"`,
			},
		},
		{
			name: "an order value awaiting review or rejected holds the whole visit back", rules: rules,
			sources: []models.ScoreSource{review(13, models.OrderValuePending), review(14, models.OrderValueRejected)},
			wantUnscored: []string{
				"000000000013 order value at Acme Hardware awaits a manager's review",
				"000000000014 order value at Acme Hardware was rejected by a manager",
			},
		},
		{
			name: "an approved order value scores in full", rules: rules, sources: []models.ScoreSource{review(15, models.OrderValueApproved)},
			wantEntries: []string{
				`000000000015 unscheduled_call 5 v0 c0 "Unscheduled call at Acme Hardware, verified: +5"`,
				`000000000015 outcome:order 10 v0 c0 "Order at Acme Hardware: +10"`,
				`000000000015 order_value 1e+08 v1000000000000 c0 "Order value 10000000000.00 at Acme Hardware: +100000000"`,
			},
		},
		{
			name: "fractional points are rounded to cents", rules: models.ScoringRules{PerOrderValueUnit: 1, OrderValueUnit: 300},
			sources:     []models.ScoreSource{order},
			wantEntries: []string{`000000000001 order_value 0.83 v25000 c0 "Order value 250.00 at Acme Hardware: +0.83"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, unscored := models.ScoreDay(tt.rules, tt.sources)
			if got := entryStrings(entries); !reflect.DeepEqual(got, tt.wantEntries) {
				t.Errorf("entries:\n got %q\nwant %q", got, tt.wantEntries)
			}
			if got := unscoredStrings(unscored); !reflect.DeepEqual(got, tt.wantUnscored) {
				t.Errorf("unscored:\n got %q\nwant %q", got, tt.wantUnscored)
			}
		})
	}
}

// TestScoreDayCapsIgnoreArrivalOrder gives a day of more calls and CRM
// updates than the caps allow in many orders: the same, earliest items
// (ties by id) always score.
func TestScoreDayCapsIgnoreArrivalOrder(t *testing.T) {
	rules := models.DefaultScoringRules()
	rules.DailyCaps = map[string]int{models.RuleUnscheduledCall: 3, "activity:crm_update": 2, "activity:networking": 0}
	var sources []models.ScoreSource
	// Calls 101 and 102 share a time: the smaller id comes first.
	for i, h := range []int{9, 8, 8, 10, 12, 11} {
		sources = append(sources, call(100+i, time.Duration(h)*time.Hour, models.CheckInVerified))
	}
	for i := 0; i < 4; i++ {
		sources = append(sources, models.ScoreSource{Entity: "activities", ID: seqID(200 + i), At: day.Add(time.Duration(20-i) * time.Hour), Kind: "crm_update"})
	}
	sources = append(sources, models.ScoreSource{Entity: "activities", ID: seqID(300), At: day.Add(time.Hour), Kind: "networking"})

	want, wantUnscored := models.ScoreDay(rules, sources)
	var calls, crm int
	for _, e := range want {
		switch e.Rule {
		case models.RuleUnscheduledCall:
			calls++
		case "activity:crm_update":
			crm++
		case "activity:networking":
			t.Errorf("networking scored %v under a cap of 0", e.Points)
		}
	}
	if calls != 3 || crm != 2 {
		t.Fatalf("scored %d calls and %d CRM updates, want 3 and 2 (the caps)", calls, crm)
	}
	// The earliest three calls: 101 and 102 (both 8:00, by id), then 100 (9:00).
	var scoredCalls []string
	for _, e := range want {
		if e.Rule == models.RuleUnscheduledCall {
			scoredCalls = append(scoredCalls, e.SourceID.String()[33:])
		}
	}
	if got, wantCalls := scoredCalls, []string{"101", "102", "100"}; !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("scored calls %v, want %v", got, wantCalls)
	}
	// CRM updates 203 (17:00) and 202 (18:00) are the earliest.
	var scoredCRM []string
	for _, e := range want {
		if e.Rule == "activity:crm_update" {
			scoredCRM = append(scoredCRM, e.SourceID.String()[33:])
		}
	}
	if got, wantCRM := scoredCRM, []string{"203", "202"}; !reflect.DeepEqual(got, wantCRM) {
		t.Errorf("scored CRM updates %v, want %v", got, wantCRM)
	}
	if len(wantUnscored) != 3+2+1 {
		t.Errorf("%d unscored, want 6: %q", len(wantUnscored), unscoredStrings(wantUnscored))
	}

	rng := rand.New(rand.NewPCG(4, 4))
	for i := 0; i < 50; i++ {
		shuffled := append([]models.ScoreSource(nil), sources...)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		got, gotUnscored := models.ScoreDay(rules, shuffled)
		if !reflect.DeepEqual(entryStrings(got), entryStrings(want)) || !reflect.DeepEqual(unscoredStrings(gotUnscored), unscoredStrings(wantUnscored)) {
			t.Fatalf("permutation %d scored differently:\n got %q\nwant %q", i, entryStrings(got), entryStrings(want))
		}
	}
	if !reflect.DeepEqual(sources[0].ID, seqID(100)) {
		t.Errorf("ScoreDay reordered its caller's slice")
	}
}

func TestRank(t *testing.T) {
	a, b, c, d := seqID(1), seqID(2), seqID(3), seqID(4)
	tests := []struct {
		name       string
		in         []models.Standing
		byProgress bool
		want       []uuid.UUID // in rank order
	}{
		{
			name: "by total points",
			in:   []models.Standing{{RepID: a, OutcomePoints: 1}, {RepID: b, ActivityPoints: 9}, {RepID: c, OutcomePoints: 3, ActivityPoints: 3}},
			want: []uuid.UUID{b, c, a},
		},
		{
			name: "ties by rep id, whatever the input order",
			in:   []models.Standing{{RepID: d, OutcomePoints: 5}, {RepID: b, ActivityPoints: 5}, {RepID: c}, {RepID: a, OutcomePoints: 2.5, ActivityPoints: 2.5}},
			want: []uuid.UUID{a, b, d, c},
		},
		{
			name: "by progress against each rep's own target",
			in: []models.Standing{{RepID: a, OutcomePoints: 50, Target: 100}, {RepID: b, OutcomePoints: 30, Target: 40},
				{RepID: c, OutcomePoints: 80, Target: 200}, {RepID: d}},
			byProgress: true,
			want:       []uuid.UUID{b, a, c, d},
		},
		{
			name:       "equal progress ranks by points",
			in:         []models.Standing{{RepID: a, OutcomePoints: 10, Target: 20}, {RepID: b, OutcomePoints: 50, Target: 100}},
			byProgress: true,
			want:       []uuid.UUID{b, a},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := append([]models.Standing(nil), tt.in...)
			models.Rank(ss, tt.byProgress)
			var got []uuid.UUID
			for i, s := range ss {
				got = append(got, s.RepID)
				if s.Rank != i+1 {
					t.Errorf("%s at position %d has rank %d", s.RepID, i, s.Rank)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("order %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStandingFigures(t *testing.T) {
	tests := []struct {
		name             string
		s                models.Standing
		wantTotal        float64
		wantProgress     float64
		wantProductivity float64
	}{
		{name: "empty", s: models.Standing{}},
		{name: "points add up to the cent", s: models.Standing{OutcomePoints: 0.1, ActivityPoints: 0.2}, wantTotal: 0.3},
		{name: "progress to target", s: models.Standing{OutcomePoints: 30, ActivityPoints: 10, Target: 120}, wantTotal: 40, wantProgress: 0.3333},
		{name: "beyond target", s: models.Standing{OutcomePoints: 150, Target: 100}, wantTotal: 150, wantProgress: 1.5},
		{name: "value per unit of cost", s: models.Standing{ValueCents: 125000, CostCents: 20000}, wantProductivity: 6.25},
		{name: "no cost, no productivity", s: models.Standing{ValueCents: 5000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Total(); got != tt.wantTotal {
				t.Errorf("Total = %v, want %v", got, tt.wantTotal)
			}
			if got := tt.s.Progress(); got != tt.wantProgress {
				t.Errorf("Progress = %v, want %v", got, tt.wantProgress)
			}
			if got := tt.s.Productivity(); got != tt.wantProductivity {
				t.Errorf("Productivity = %v, want %v", got, tt.wantProductivity)
			}
		})
	}
}

func TestParseTargets(t *testing.T) {
	rep := seqID(7)
	tests := []struct {
		name    string
		raw     string
		want    models.ContestTargets
		wantErr string
	}{
		{name: "empty", raw: "", want: models.ContestTargets{}},
		{name: "null", raw: "null", want: models.ContestTargets{}},
		{name: "one rep", raw: `{"` + rep.String() + `": 150}`, want: models.ContestTargets{rep: 150}},
		{name: "not an object", raw: `[1]`, wantErr: "must be an object"},
		{name: "key not a rep id", raw: `{"rep1": 10}`, wantErr: `key "rep1" is not a rep id`},
		{name: "zero target", raw: `{"` + rep.String() + `": 0}`, wantErr: "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := models.ParseTargets(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTargets(%q) error = %v, want one containing %q", tt.raw, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTargets(%q): %v", tt.raw, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseTargets(%q) = %v, want %v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestProductivityRow(t *testing.T) {
	tests := []struct {
		name             string
		r                models.ProductivityRow
		wantProductivity float64
		wantRate         float64
	}{
		{name: "nothing yet", r: models.ProductivityRow{}},
		{name: "value over cost", r: models.ProductivityRow{OutcomeValueCents: 35000, ActivityCostCents: 5000}, wantProductivity: 7},
		{name: "rounded to two decimals", r: models.ProductivityRow{OutcomeValueCents: 10000, ActivityCostCents: 3000}, wantProductivity: 3.33},
		{name: "value without cost", r: models.ProductivityRow{OutcomeValueCents: 10000}},
		{name: "two of three calls verified", r: models.ProductivityRow{UnscheduledCalls: 3, VerifiedCalls: 2}, wantRate: 0.6667},
		{name: "all calls verified", r: models.ProductivityRow{UnscheduledCalls: 4, VerifiedCalls: 4}, wantRate: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Productivity(); got != tt.wantProductivity {
				t.Errorf("Productivity = %v, want %v", got, tt.wantProductivity)
			}
			if got := tt.r.VerifiedCallRate(); got != tt.wantRate {
				t.Errorf("VerifiedCallRate = %v, want %v", got, tt.wantRate)
			}
		})
	}
}

// TestNothingComputedIsNonFinite holds that stored inputs from before
// their minimums were enforced never compute NaN or ±Inf.
func TestNothingComputedIsNonFinite(t *testing.T) {
	s := models.Standing{OutcomePoints: 1e18, Target: 5e-324}
	if got := s.Progress(); got != 0 {
		t.Errorf("progress against a 5e-324 target: got %v, want 0", got)
	}
	rules := models.DefaultScoringRules()
	rules.OrderValueUnit = 5e-324
	if err := rules.Validate("rules"); err == nil {
		t.Errorf("order_value_unit 5e-324: got no error")
	}
}
