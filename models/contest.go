package models

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Contest statuses, in order.
const (
	ContestStatusDraft     = "draft"
	ContestStatusActive    = "active"
	ContestStatusEnded     = "ended"
	ContestStatusFinalized = "finalized"
)

// DefaultGraceHours is how long after a contest ends late syncs still count.
const DefaultGraceHours = 48

// ScoringRules weigh outcomes and the activities behind them. Points are
// per item; caps bound how many items of one rule score per rep per day,
// so a rep cannot farm points by logging fifty CRM updates in an evening.
type ScoringRules struct {
	PerVerifiedUnscheduledCall float64            `json:"per_verified_unscheduled_call"`
	PerOutcome                 map[string]float64 `json:"per_outcome,omitempty"`
	PerActivity                map[string]float64 `json:"per_activity,omitempty"`
	// PerOrderValueUnit points are given for every OrderValueUnit of order
	// value (e.g. 1 point per 100).
	PerOrderValueUnit float64 `json:"per_order_value_unit"`
	OrderValueUnit    float64 `json:"order_value_unit"`
	// DailyCaps maps a rule ("unscheduled_call", "activity:crm_update", …)
	// to the most items that score per rep per local day.
	DailyCaps map[string]int `json:"daily_caps,omitempty"`
	// MinVisitMinutes is the shortest visit whose call scores.
	MinVisitMinutes float64 `json:"min_visit_minutes"`
}

// DefaultScoringRules is what a contest gets when it names none.
func DefaultScoringRules() ScoringRules {
	return ScoringRules{
		PerVerifiedUnscheduledCall: 5,
		PerOutcome:                 map[string]float64{"order": 10, "demo": 4, "meeting": 3, "follow_up": 1},
		PerActivity:                map[string]float64{"crm_update": 1, "referral": 3, "expense_report": 1, "networking": 2},
		PerOrderValueUnit:          1,
		OrderValueUnit:             100,
		DailyCaps:                  map[string]int{"unscheduled_call": 15, "activity:crm_update": 10, "activity:expense_report": 2, "activity:networking": 5},
		MinVisitMinutes:            5,
	}
}

// Validate checks rules from a client.
func (r ScoringRules) Validate(field string) error {
	bad := func(format string, args ...any) error { return FieldInvalid(field, format, args...) }
	check := func(name string, v float64) error {
		if math.IsNaN(v) || v < 0 || v > 1e6 {
			return bad("%s must be between 0 and 1000000", name)
		}
		return nil
	}
	for name, v := range map[string]float64{"per_verified_unscheduled_call": r.PerVerifiedUnscheduledCall, "per_order_value_unit": r.PerOrderValueUnit, "min_visit_minutes": r.MinVisitMinutes} {
		if err := check(name, v); err != nil {
			return err
		}
	}
	if r.PerOrderValueUnit > 0 && !(r.OrderValueUnit > 0) {
		return bad("order_value_unit must be positive when per_order_value_unit is set")
	}
	if r.OrderValueUnit != 0 && !(r.OrderValueUnit >= MinOrderValueUnit && r.OrderValueUnit <= MaxOrderValueUnit) {
		return bad("order_value_unit must be between %g and %g", float64(MinOrderValueUnit), float64(MaxOrderValueUnit))
	}
	for k, v := range r.PerOutcome {
		if !oneOf(k, "none", "no_answer", "not_interested", "follow_up", "meeting", "demo", "order") {
			return bad("per_outcome has unknown outcome %q", k)
		}
		if err := check("per_outcome."+k, v); err != nil {
			return err
		}
	}
	for k, v := range r.PerActivity {
		if !oneOf(k, ActivityTypes...) {
			return bad("per_activity has unknown activity type %q", k)
		}
		if err := check("per_activity."+k, v); err != nil {
			return err
		}
	}
	for k, v := range r.DailyCaps {
		if k != RuleUnscheduledCall && !(strings.HasPrefix(k, "activity:") && oneOf(strings.TrimPrefix(k, "activity:"), ActivityTypes...)) {
			return bad("daily_caps has unknown rule %q", k)
		}
		if v < 0 || v > 10000 {
			return bad("daily_caps.%s must be between 0 and 10000", k)
		}
	}
	return nil
}

// ActivityTypes are the kinds of activity a rep logs.
var ActivityTypes = []string{"crm_update", "referral", "expense_report", "networking", "other"}

func oneOf(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// Rules of score entries.
const (
	RuleUnscheduledCall = "unscheduled_call"
	RuleOrderValue      = "order_value"
	RuleOutcomePrefix   = "outcome:"
	RuleActivityPrefix  = "activity:"
)

// RuleOrderValueReview is the rule of the ledger entries that record a
// manager's decision on an order value above the organisation's ceiling:
// zero points, with the decision and its reason.
const RuleOrderValueReview = "order_value_review"

// Review of an order value above the organisation's ceiling
// (Org.OrderValueCeilingCents). Such a visit is flagged suspicious with
// reason SuspiciousOrderValue and its review is pending; it scores nothing
// until a manager of the rep's team or an admin approves it. A rejected
// one keeps scoring nothing, until the rep changes the order value.
const (
	SuspiciousOrderValue = "order_value"
	OrderValuePending    = "pending"
	OrderValueApproved   = "approved"
	OrderValueRejected   = "rejected"
)

// Entry kinds: one eye on outcomes, one on activities.
const (
	KindOutcome  = "outcome"
	KindActivity = "activity"
)

// ScoreSource is a visit or activity as scoring sees it.
type ScoreSource struct {
	Entity       string // "visits" or "activities"
	ID           uuid.UUID
	At           time.Time // when it happened: a visit's start, an activity's occurrence
	AccountName  string
	Kind         string // visit kind, or activity type
	Status       string // visit status
	Outcome      string
	OrderCents   int64
	OrderReview  string // a visit's order value review (OrderValuePending…), "" when none is needed
	CostCents    int64
	Verification string  // visit check-in verification
	DistanceM    float64 // visit check-in to account, when known
	Minutes      float64 // visit length, -1 when unknown
}

// Entry is one scored item: points a rule gives a source, with the reason
// a rep reads.
type Entry struct {
	SourceEntity string
	SourceID     uuid.UUID
	Rule         string
	Kind         string
	Points       float64
	ValueCents   int64 // outcome value it carries (order value)
	CostCents    int64 // activity cost it carries
	Reason       string
	At           time.Time
}

// Unscored explains why a source earned nothing, for the rep.
type Unscored struct {
	SourceID uuid.UUID
	Reason   string
}

// ScoreDay computes the entries one rep's sources of one local day earn
// under rules. It is the whole scoring policy and does no I/O. Sources are
// considered in (time, id) order, so daily caps pick the same items
// whatever order the phone synced them in.
func ScoreDay(rules ScoringRules, sources []ScoreSource) ([]Entry, []Unscored) {
	sorted := append([]ScoreSource(nil), sources...)
	sort.Slice(sorted, func(i, j int) bool {
		if !sorted[i].At.Equal(sorted[j].At) {
			return sorted[i].At.Before(sorted[j].At)
		}
		return sorted[i].ID.String() < sorted[j].ID.String()
	})
	used := map[string]int{}
	capped := func(rule string) bool {
		limit, ok := rules.DailyCaps[rule]
		if !ok {
			return false
		}
		if used[rule] >= limit {
			return true
		}
		used[rule]++
		return false
	}
	var out []Entry
	var unscored []Unscored
	for _, s := range sorted {
		add := func(rule, kind string, pts float64, value, cost int64, reason string) {
			pts = math.Round(pts*100) / 100
			if pts == 0 && value == 0 && cost == 0 {
				return
			}
			out = append(out, Entry{SourceEntity: s.Entity, SourceID: s.ID, Rule: rule, Kind: kind, Points: pts,
				ValueCents: value, CostCents: cost, Reason: fmt.Sprintf("%s: %s", reason, signed(pts)), At: s.At})
		}
		where := ""
		if s.AccountName != "" {
			where = " at " + s.AccountName
		}
		switch s.Entity {
		case "visits":
			if s.Status != "completed" {
				continue
			}
			// An order value above the ceiling holds the whole visit
			// back: its call, outcome and value score only once a
			// manager approved it.
			switch s.OrderReview {
			case OrderValuePending:
				unscored = append(unscored, Unscored{s.ID, fmt.Sprintf("order value%s awaits a manager's review", where)})
				continue
			case OrderValueRejected:
				unscored = append(unscored, Unscored{s.ID, fmt.Sprintf("order value%s was rejected by a manager", where)})
				continue
			}
			if s.Kind == "unscheduled" {
				switch {
				case s.Verification != CheckInVerified:
					unscored = append(unscored, Unscored{s.ID, callReason(s)})
				case s.Minutes >= 0 && s.Minutes < rules.MinVisitMinutes:
					unscored = append(unscored, Unscored{s.ID, fmt.Sprintf("visit%s lasted %.0f min, under the %.0f min minimum", where, s.Minutes, rules.MinVisitMinutes)})
				case capped(RuleUnscheduledCall):
					unscored = append(unscored, Unscored{s.ID, "daily cap of unscheduled calls reached"})
				default:
					add(RuleUnscheduledCall, KindActivity, rules.PerVerifiedUnscheduledCall, 0, 0, "Unscheduled call"+where+", verified")
				}
			}
			if p := rules.PerOutcome[s.Outcome]; p > 0 {
				add(RuleOutcomePrefix+s.Outcome, KindOutcome, p, 0, 0, strings.ToUpper(s.Outcome[:1])+strings.ReplaceAll(s.Outcome[1:], "_", " ")+where)
			}
			if s.OrderCents > 0 {
				pts := 0.0
				if rules.PerOrderValueUnit > 0 && rules.OrderValueUnit > 0 {
					pts = finite(float64(s.OrderCents) / 100 / rules.OrderValueUnit * rules.PerOrderValueUnit)
				}
				add(RuleOrderValue, KindOutcome, pts, s.OrderCents, 0, fmt.Sprintf("Order value %.2f%s", float64(s.OrderCents)/100, where))
			}
		case "activities":
			rule := RuleActivityPrefix + s.Kind
			pts := rules.PerActivity[s.Kind]
			if pts > 0 && capped(rule) {
				unscored = append(unscored, Unscored{s.ID, "daily cap of " + strings.ToLower(activityLabel(s.Kind)) + "s reached"})
				pts = 0
			}
			add(rule, KindActivity, pts, 0, s.CostCents, activityLabel(s.Kind)+where)
		}
	}
	return out, unscored
}

func activityLabel(kind string) string {
	switch kind {
	case "crm_update":
		return "CRM update"
	case "expense_report":
		return "Expense report"
	case "referral":
		return "Referral"
	case "networking":
		return "Networking"
	}
	return "Activity"
}

func callReason(s ScoreSource) string {
	switch s.Verification {
	case CheckInOutOfRange:
		if s.AccountName != "" {
			return fmt.Sprintf("check-in %s from %s", humanDistance(s.DistanceM), s.AccountName)
		}
		return fmt.Sprintf("check-in %s from the account", humanDistance(s.DistanceM))
	case CheckInSuspicious:
		return "check-in flagged as implausible (speed or repeat visit)"
	}
	return "check-in could not be verified (no GPS fix or poor accuracy)"
}

func humanDistance(m float64) string {
	if m >= 1000 {
		return fmt.Sprintf("%.1f km", m/1000)
	}
	return fmt.Sprintf("%.0f m", m)
}

func signed(p float64) string {
	s := fmt.Sprintf("%+.2f", p)
	return strings.TrimSuffix(strings.TrimSuffix(s, "0"), ".0")
}

// Standing is one rep's place in a contest.
type Standing struct {
	RepID          uuid.UUID
	OutcomePoints  float64
	ActivityPoints float64
	ValueCents     int64
	CostCents      int64
	Target         float64
	Rank, Previous int
}

// Total is the points that rank a rep.
func (s Standing) Total() float64 { return math.Round((s.OutcomePoints+s.ActivityPoints)*100) / 100 }

// Progress is the share of the rep's own target reached (0 when none, or
// when a target stored before MinTarget was enforced is below it).
func (s Standing) Progress() float64 {
	if !(s.Target >= MinTarget) {
		return 0
	}
	return finite(math.Round(s.Total()/s.Target*10000) / 10000)
}

// finite returns x, or 0 when it is NaN or ±Inf, which JSON cannot carry.
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// Productivity is outcome value per unit of activity cost (0 when there is
// no cost yet).
func (s Standing) Productivity() float64 {
	if s.CostCents <= 0 {
		return 0
	}
	return math.Round(float64(s.ValueCents)/float64(s.CostCents)*100) / 100
}

// Rank orders standings: reps scored against their own targets rank by
// progress, others by points; ties by points, then rep id, so the order is
// the same on every replica. Rank is 1-based and ties share no rank.
func Rank(ss []Standing, byProgress bool) {
	sort.SliceStable(ss, func(i, j int) bool {
		a, b := ss[i], ss[j]
		if byProgress && a.Progress() != b.Progress() {
			return a.Progress() > b.Progress()
		}
		if a.Total() != b.Total() {
			return a.Total() > b.Total()
		}
		return a.RepID.String() < b.RepID.String()
	})
	for i := range ss {
		ss[i].Rank = i + 1
	}
}

// Bounds of a rep's points target and of the order value unit. A target
// below a point, or a unit below a cent, is no real goal; both are
// divisors, and a tiny one (5e-324) makes progress or points +Inf, which
// JSON cannot carry: one such value would make every pull of the team fail
// to parse.
const (
	MinTarget         = 1
	MaxTarget         = 1e9
	MinOrderValueUnit = 0.01
	MaxOrderValueUnit = 1e9
)

// ContestTargets maps a rep to their own points target.
type ContestTargets map[uuid.UUID]float64

// ParseTargets reads a targets JSON object of rep id → points.
func ParseTargets(raw string) (ContestTargets, error) {
	t := ContestTargets{}
	if raw == "" || raw == "null" {
		return t, nil
	}
	var m map[string]float64
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, FieldInvalid("targets", "must be an object of rep id to points")
	}
	for k, v := range m {
		id, err := uuid.Parse(k)
		if err != nil {
			return nil, FieldInvalid("targets", "key %q is not a rep id", k)
		}
		if v <= 0 || v > 1e9 || math.IsNaN(v) {
			return nil, FieldInvalid("targets", "target of %s must be positive", k)
		}
		t[id] = v
	}
	return t, nil
}

// ProductivityRow is one rep's productivity over a period: the outcome
// value they produced against the activities behind it.
type ProductivityRow struct {
	RepID             uuid.UUID
	TeamID            *uuid.UUID
	Visits            int64
	UnscheduledCalls  int64 // completed unscheduled visits
	VerifiedCalls     int64 // of which the check-in was verified
	Orders            int64
	OutcomeValueCents int64
	ActivityCounts    map[string]int64
	ActivityCostCents int64
}

// Productivity is outcome value per unit of activity cost (0 without cost).
func (r ProductivityRow) Productivity() float64 {
	if r.ActivityCostCents <= 0 {
		return 0
	}
	return math.Round(float64(r.OutcomeValueCents)/float64(r.ActivityCostCents)*100) / 100
}

// VerifiedCallRate is the share of unscheduled calls whose check-in was
// verified (0 without calls).
func (r ProductivityRow) VerifiedCallRate() float64 {
	if r.UnscheduledCalls == 0 {
		return 0
	}
	return math.Round(float64(r.VerifiedCalls)/float64(r.UnscheduledCalls)*10000) / 10000
}

// RuleVersion is one audited version of a contest's rules.
type RuleVersion struct {
	ContestID uuid.UUID
	Version   int64
	Rules     string
	Targets   string
	ChangedBy uuid.UUID
	ChangedAt time.Time
}
