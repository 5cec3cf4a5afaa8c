package models_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/models"
)

func TestDefaultTemplate(t *testing.T) {
	tpl := models.DefaultTemplate()
	var got []string
	for _, b := range tpl.Behaviours {
		got = append(got, b.Key)
		if b.Label == "" {
			t.Errorf("behaviour %q has no label", b.Key)
		}
	}
	want := []string{"plans_the_call", "networks_productively", "secures_qualified_referrals", "follows_up_crm_leads",
		"keeps_crm_current", "files_expenses_on_time", "handles_objections", "asks_for_the_order"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("default behaviours %q, want %q", got, want)
	}
	if tpl.Version != 1 {
		t.Errorf("version %d, want 1", tpl.Version)
	}
}

func TestParseBehaviours(t *testing.T) {
	tpl := models.DefaultTemplate()
	tests := []struct {
		name    string
		raw     string
		want    []models.BehaviourScore
		wantErr string
	}{
		{name: "empty", raw: ""},
		{name: "null", raw: "null"},
		{name: "empty list", raw: "[]", want: []models.BehaviourScore{}},
		{
			name: "every result",
			raw:  `[{"key":"plans_the_call","result":"done_right","note":"clear agenda"},{"key":"asks_for_the_order","result":"done_wrong"},{"key":"handles_objections","result":"not_observed"}]`,
			want: []models.BehaviourScore{{Key: "plans_the_call", Result: models.DoneRight, Note: "clear agenda"},
				{Key: "asks_for_the_order", Result: models.DoneWrong}, {Key: "handles_objections", Result: models.NotObserved}},
		},
		{name: "unknown key", raw: `[{"key":"juggles","result":"done_right"}]`, wantErr: `"juggles" is not a behaviour of template version 1`},
		{name: "key twice", raw: `[{"key":"plans_the_call","result":"done_right"},{"key":"plans_the_call","result":"done_wrong"}]`, wantErr: `"plans_the_call" is listed twice`},
		{name: "bad result", raw: `[{"key":"plans_the_call","result":"meh"}]`, wantErr: "result of \"plans_the_call\" must be done_right, done_wrong or not_observed"},
		{name: "unknown property", raw: `[{"key":"plans_the_call","result":"done_right","score":5}]`, wantErr: "must be a list of {key, result, note}"},
		{name: "not a list", raw: `{"key":"plans_the_call"}`, wantErr: "must be a list"},
		{name: "note too long", raw: `[{"key":"plans_the_call","result":"done_right","note":"` + strings.Repeat("é", 1001) + `"}]`, wantErr: "note of \"plans_the_call\" must be at most 1000 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := models.ParseBehaviours(tt.raw, tpl)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseBehaviours: nil error, want one containing %q", tt.wantErr)
				}
				var fe []models.FieldError
				if me, ok := err.(*models.Error); ok {
					fe = me.Fields
				}
				if len(fe) != 1 || fe[0].Field != "behaviours" || !strings.Contains(fe[0].Message, tt.wantErr) {
					t.Errorf("error fields %+v, want behaviours: …%s…", fe, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBehaviours: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseBehaviours = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTally(t *testing.T) {
	right, wrong := models.Tally([]models.BehaviourScore{{Result: models.DoneRight}, {Result: models.DoneWrong}, {Result: models.DoneRight}, {Result: models.NotObserved}})
	if right != 2 || wrong != 1 {
		t.Errorf("Tally = %d right, %d wrong; want 2, 1", right, wrong)
	}
}
