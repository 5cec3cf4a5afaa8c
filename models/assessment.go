package models

import (
	"encoding/json"
	"strings"
)

// Assessment phases and statuses.
const (
	PhaseContestStart = "contest_start"
	PhaseContestEnd   = "contest_end"
	PhaseRideAlong    = "ride_along"

	AssessDraft        = "draft"
	AssessShared       = "shared"
	AssessAcknowledged = "acknowledged"
)

// Behaviour results.
const (
	DoneRight   = "done_right"
	DoneWrong   = "done_wrong"
	NotObserved = "not_observed"
)

// Behaviour is one behaviour of a template.
type Behaviour struct {
	Key   string `json:"key"`
	Label string `json:"label"`
}

// Template is a versioned list of the behaviours managers assess.
type Template struct {
	Version    int         `json:"version"`
	Behaviours []Behaviour `json:"behaviours"`
}

// DefaultTemplate holds the behaviours of the trade.
func DefaultTemplate() Template {
	return Template{Version: 1, Behaviours: []Behaviour{
		{"plans_the_call", "Plans the call"},
		{"networks_productively", "Networks productively"},
		{"secures_qualified_referrals", "Secures qualified referrals"},
		{"follows_up_crm_leads", "Follows up CRM leads"},
		{"keeps_crm_current", "Keeps CRM current"},
		{"files_expenses_on_time", "Files expense reports on time"},
		{"handles_objections", "Handles objections"},
		{"asks_for_the_order", "Asks for the order"},
	}}
}

// BehaviourScore is one assessed behaviour.
type BehaviourScore struct {
	Key    string `json:"key"`
	Result string `json:"result"`
	Note   string `json:"note,omitempty"`
}

// ParseBehaviours reads and checks an assessment's behaviours against a
// template: known keys, each at most once, a valid result, short notes.
func ParseBehaviours(raw string, t Template) ([]BehaviourScore, error) {
	if raw == "" || raw == "null" {
		return nil, nil
	}
	var bs []BehaviourScore
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bs); err != nil {
		return nil, FieldInvalid("behaviours", "must be a list of {key, result, note}")
	}
	known := map[string]bool{}
	for _, b := range t.Behaviours {
		known[b.Key] = true
	}
	seen := map[string]bool{}
	for _, b := range bs {
		switch {
		case !known[b.Key]:
			return nil, FieldInvalid("behaviours", "%q is not a behaviour of template version %d", b.Key, t.Version)
		case seen[b.Key]:
			return nil, FieldInvalid("behaviours", "%q is listed twice", b.Key)
		case b.Result != DoneRight && b.Result != DoneWrong && b.Result != NotObserved:
			return nil, FieldInvalid("behaviours", "result of %q must be done_right, done_wrong or not_observed", b.Key)
		case len([]rune(b.Note)) > 1000:
			return nil, FieldInvalid("behaviours", "note of %q must be at most 1000 characters", b.Key)
		}
		seen[b.Key] = true
	}
	return bs, nil
}

// Tally counts behaviours done right and done wrong.
func Tally(bs []BehaviourScore) (right, wrong int) {
	for _, b := range bs {
		switch b.Result {
		case DoneRight:
			right++
		case DoneWrong:
			wrong++
		}
	}
	return right, wrong
}
