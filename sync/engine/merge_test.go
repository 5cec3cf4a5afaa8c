package engine_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Device ids, ordered: devA < devB < devC, so exact ties go to the later
// letter.
const (
	devA = "device-a"
	devB = "device-b"
	devC = "device-c"
)

func stamp(ms, counter int64, dev string) engine.HLC {
	return engine.HLC{MS: ms, Counter: counter, Device: dev}
}

func fclock(ms, counter int64, dev string, version int64) engine.FieldClock {
	return engine.FieldClock{HLC: stamp(ms, counter, dev), Version: version}
}

func ptr[T any](v T) *T { return &v }

// storedVisit is a visit as stored at version 5: created by devA at ms 1000
// (version 1), notes and outcome last written by devA at ms 2000 (version 5).
func storedVisit() *engine.Record {
	return &engine.Record{
		ID:      uuid.MustParse("6f1c1f3e-6a8f-4c43-9d35-0d3c8c0b0a01"),
		Version: 5,
		Values: map[string]any{
			"account_id": uuid.MustParse("0b8a7c9e-1d2f-4a3b-8c4d-5e6f7a8b9c0d"),
			"kind":       "unscheduled",
			"status":     "completed",
			"outcome":    "meeting",
			"referrals":  int64(0),
			"notes":      "server notes",
		},
		Clocks: map[string]engine.FieldClock{
			"account_id": fclock(1000, 0, devA, 1),
			"kind":       fclock(1000, 0, devA, 1),
			"status":     fclock(1000, 0, devA, 1),
			"referrals":  fclock(1000, 0, devA, 1),
			"outcome":    fclock(2000, 0, devA, 5),
			"notes":      fclock(2000, 0, devA, 5),
		},
	}
}

func deletedVisit() *engine.Record {
	r := storedVisit()
	r.Deleted = true
	return r
}

// conflictString renders a conflict for comparison and failure messages.
func conflictString(c engine.Conflict) string {
	return c.Field + " kept=" + c.Kept + " server=" + string(c.ServerValue) + " client=" + string(c.ClientValue)
}

func conflictStrings(cs []engine.Conflict) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, conflictString(c))
	}
	return out
}

// TestMergeUpsert holds the conflict policy for upserts to every case in
// DESIGN.md's "Sync protocol".
func TestMergeUpsert(t *testing.T) {
	const newVersion = 9
	tests := []struct {
		name string
		cur  *engine.Record
		vals map[string]any
		h    engine.HLC
		base *int64
		// wantValues are checked on the merged record (other values must be
		// as stored).
		wantValues map[string]any
		// wantWon lists the fields whose clock must become h at newVersion.
		wantWon       []string
		wantConflicts []string
		// wantSame means the merged record must be cur itself, untouched.
		wantSame bool
	}{
		{
			// A create: every sent field is a first write.
			name:       "create",
			cur:        nil,
			vals:       map[string]any{"notes": "hello", "referrals": int64(2)},
			h:          stamp(3000, 0, devB),
			wantValues: map[string]any{"notes": "hello", "referrals": int64(2)},
			wantWon:    []string{"notes", "referrals"},
		},
		{
			// Concurrent edits of different fields both survive, whatever
			// the order of their stamps: the client's older stamp only
			// competes with the clock of the field it wrote.
			name:       "different fields concurrently both survive",
			cur:        storedVisit(),
			vals:       map[string]any{"referrals": int64(3)},
			h:          stamp(1500, 0, devB),
			wantValues: map[string]any{"referrals": int64(3), "notes": "server notes", "outcome": "meeting"},
			wantWon:    []string{"referrals"},
		},
		{
			name:       "same field, client later: client wins without a conflict",
			cur:        storedVisit(),
			vals:       map[string]any{"notes": "client notes"},
			h:          stamp(2001, 0, devB),
			wantValues: map[string]any{"notes": "client notes"},
			wantWon:    []string{"notes"},
		},
		{
			name:          "same field, client earlier: server kept and the conflict reported",
			cur:           storedVisit(),
			vals:          map[string]any{"notes": "client notes"},
			h:             stamp(1999, 0, devB),
			wantValues:    map[string]any{"notes": "server notes"},
			wantConflicts: []string{`notes kept=server server="server notes" client="client notes"`},
		},
		{
			name:       "tie on ms, higher counter wins",
			cur:        storedVisit(),
			vals:       map[string]any{"notes": "client notes"},
			h:          stamp(2000, 1, devA),
			wantValues: map[string]any{"notes": "client notes"},
			wantWon:    []string{"notes"},
		},
		{
			name:          "tie on ms, lower counter loses",
			cur:           func() *engine.Record { r := storedVisit(); r.Clocks["notes"] = fclock(2000, 4, devA, 5); return r }(),
			vals:          map[string]any{"notes": "client notes"},
			h:             stamp(2000, 3, devC),
			wantValues:    map[string]any{"notes": "server notes"},
			wantConflicts: []string{`notes kept=server server="server notes" client="client notes"`},
		},
		{
			name:       "tie on ms and counter, higher device id wins",
			cur:        func() *engine.Record { r := storedVisit(); r.Clocks["notes"] = fclock(2000, 0, devB, 5); return r }(),
			vals:       map[string]any{"notes": "client notes"},
			h:          stamp(2000, 0, devC),
			wantValues: map[string]any{"notes": "client notes"},
			wantWon:    []string{"notes"},
		},
		{
			name:          "tie on ms and counter, lower device id loses",
			cur:           func() *engine.Record { r := storedVisit(); r.Clocks["notes"] = fclock(2000, 0, devB, 5); return r }(),
			vals:          map[string]any{"notes": "client notes"},
			h:             stamp(2000, 0, devA),
			wantValues:    map[string]any{"notes": "server notes"},
			wantConflicts: []string{`notes kept=server server="server notes" client="client notes"`},
		},
		{
			// Losing with the value already stored is no conflict: nobody's
			// edit was lost.
			name:       "equal values are not a conflict",
			cur:        storedVisit(),
			vals:       map[string]any{"notes": "server notes", "outcome": "meeting"},
			h:          stamp(1500, 0, devB),
			wantValues: map[string]any{"notes": "server notes", "outcome": "meeting"},
		},
		{
			// The client saw version 3; devA wrote notes at version 5
			// since. The client's later stamp wins, and devA's lost edit is
			// reported.
			name:          "base_version older than another device's write: kept client",
			cur:           storedVisit(),
			vals:          map[string]any{"notes": "client notes"},
			h:             stamp(2500, 0, devB),
			base:          ptr(int64(3)),
			wantValues:    map[string]any{"notes": "client notes"},
			wantWon:       []string{"notes"},
			wantConflicts: []string{`notes kept=client server="server notes" client="client notes"`},
		},
		{
			name:       "base_version older, but the same device wrote the field: no conflict",
			cur:        storedVisit(),
			vals:       map[string]any{"notes": "client notes"},
			h:          stamp(2500, 0, devA),
			base:       ptr(int64(3)),
			wantValues: map[string]any{"notes": "client notes"},
			wantWon:    []string{"notes"},
		},
		{
			name:       "base_version covers the other device's write: no conflict",
			cur:        storedVisit(),
			vals:       map[string]any{"notes": "client notes"},
			h:          stamp(2500, 0, devB),
			base:       ptr(int64(5)),
			wantValues: map[string]any{"notes": "client notes"},
			wantWon:    []string{"notes"},
		},
		{
			name:          "base_version older and equal values: no conflict",
			cur:           storedVisit(),
			vals:          map[string]any{"notes": "server notes"},
			h:             stamp(2500, 0, devB),
			base:          ptr(int64(3)),
			wantValues:    map[string]any{"notes": "server notes"},
			wantWon:       []string{"notes"},
			wantConflicts: nil,
		},
		{
			// Delete wins: the update changes nothing and is reported on
			// the pseudo-field, listing the fields it carried.
			name:          "update after delete: record unchanged, DeletedField conflict",
			cur:           deletedVisit(),
			vals:          map[string]any{"notes": "client notes", "outcome": "order"},
			h:             stamp(9000, 0, devB),
			wantSame:      true,
			wantConflicts: []string{`_deleted kept=server server=true client=["notes","outcome"]`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sales.Visits()
			var before *engine.Record
			if tt.cur != nil {
				before = tt.cur.Clone()
			}
			next, conflicts := engine.MergeUpsert(e, tt.cur, tt.vals, tt.h, tt.base, newVersion)

			got, want := conflictStrings(conflicts), tt.wantConflicts
			if want == nil {
				want = []string{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("conflicts %q, want %q", got, want)
			}
			if tt.cur != nil && !reflect.DeepEqual(tt.cur, before) {
				t.Errorf("MergeUpsert modified cur:\ngot  %+v\nwant %+v", tt.cur, before)
			}
			if tt.wantSame {
				if next != tt.cur {
					t.Errorf("merged record is a new record %+v, want cur unchanged", next)
				}
				return
			}
			if next.Deleted {
				t.Errorf("merged record is deleted")
			}
			for name, want := range tt.wantValues {
				if got := next.Values[name]; !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", name, got, want)
				}
			}
			won := map[string]bool{}
			for _, name := range tt.wantWon {
				won[name] = true
				if got, want := next.Clocks[name], (engine.FieldClock{HLC: tt.h, Version: newVersion}); got != want {
					t.Errorf("clock of %s = %+v, want %+v", name, got, want)
				}
			}
			if tt.cur == nil {
				return
			}
			// Every field the client did not win is as stored, clock included.
			for name, v := range tt.cur.Values {
				if won[name] {
					continue
				}
				if got := next.Values[name]; !reflect.DeepEqual(got, v) {
					t.Errorf("%s = %#v, want the stored %#v", name, got, v)
				}
			}
			for name, c := range tt.cur.Clocks {
				if won[name] {
					continue
				}
				if got := next.Clocks[name]; got != c {
					t.Errorf("clock of %s = %+v, want the stored %+v", name, got, c)
				}
			}
		})
	}
}

// TestMergeDelete holds the delete side of the policy: delete always wins,
// and edits it erased that its device never saw are reported.
func TestMergeDelete(t *testing.T) {
	tests := []struct {
		name          string
		cur           func() *engine.Record
		h             engine.HLC
		base          *int64
		wantConflicts []string
	}{
		{
			name: "delete after every write: no conflict",
			cur:  storedVisit,
			h:    stamp(3000, 0, devB),
		},
		{
			// devA edited notes and outcome at ms 2000; devB's delete is
			// stamped earlier. The delete still wins, and the lost fields
			// are reported with the delete kept.
			name: "delete against a later concurrent update: delete wins, lost fields reported",
			cur:  storedVisit,
			h:    stamp(1500, 0, devB),
			wantConflicts: []string{
				`notes kept=client server="server notes" client=null`,
				`outcome kept=client server="meeting" client=null`,
			},
		},
		{
			name: "the deleting device's own later edits are no conflict",
			cur:  storedVisit,
			h:    stamp(1500, 0, devA),
		},
		{
			name: "base_version older than another device's writes: reported",
			cur:  storedVisit,
			h:    stamp(3000, 0, devB),
			base: ptr(int64(3)),
			wantConflicts: []string{
				`notes kept=client server="server notes" client=null`,
				`outcome kept=client server="meeting" client=null`,
			},
		},
		{
			name: "base_version covering every write: no conflict",
			cur:  storedVisit,
			h:    stamp(3000, 0, devB),
			base: ptr(int64(5)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := tt.cur()
			before := cur.Clone()
			next, conflicts := engine.MergeDelete(sales.Visits(), cur, tt.h, tt.base)
			if !next.Deleted {
				t.Errorf("Deleted = false, want true: delete always wins")
			}
			if !reflect.DeepEqual(cur, before) {
				t.Errorf("MergeDelete modified cur")
			}
			if !reflect.DeepEqual(next.Values, cur.Values) {
				t.Errorf("values %v, want the stored %v", next.Values, cur.Values)
			}
			got := conflictStrings(conflicts)
			want := tt.wantConflicts
			if want == nil {
				want = []string{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("conflicts %q, want %q", got, want)
			}
		})
	}
}

func TestHLCCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b engine.HLC
		want int
	}{
		{"earlier ms", stamp(1, 9, devC), stamp(2, 0, devA), -1},
		{"later ms", stamp(3, 0, devA), stamp(2, 9, devC), 1},
		{"same ms, lower counter", stamp(2, 0, devC), stamp(2, 1, devA), -1},
		{"same ms and counter, lower device", stamp(2, 1, devA), stamp(2, 1, devB), -1},
		{"same ms and counter, higher device", stamp(2, 1, devC), stamp(2, 1, devB), 1},
		{"equal", stamp(2, 1, devB), stamp(2, 1, devB), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := tt.b.Compare(tt.a); got != -tt.want {
				t.Errorf("%v.Compare(%v) = %d, want %d", tt.b, tt.a, got, -tt.want)
			}
		})
	}
}

func TestHLCClamp(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	ms := now.UnixMilli()
	limit := now.Add(engine.MaxSkew).UnixMilli()
	tests := []struct {
		name        string
		in          engine.HLC
		want        engine.HLC
		wantClamped bool
	}{
		{"in the past", stamp(ms-60_000, 2, devA), stamp(ms-60_000, 2, devA), false},
		{"now", stamp(ms, 0, devA), stamp(ms, 0, devA), false},
		{"exactly 5 minutes ahead is trusted", stamp(limit, 1, devA), stamp(limit, 1, devA), false},
		{"1 ms beyond 5 minutes is clamped to now", stamp(limit+1, 1, devA), stamp(ms, 1, devA), true},
		{"a year ahead is clamped to now", stamp(now.AddDate(1, 0, 0).UnixMilli(), 7, devB), stamp(ms, 7, devB), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, clamped := tt.in.Clamp(now)
			if got != tt.want || clamped != tt.wantClamped {
				t.Errorf("Clamp(%v) = %v, %t; want %v, %t", tt.in, got, clamped, tt.want, tt.wantClamped)
			}
		})
	}
}

func TestFieldParse(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	visits, activities := sales.Visits(), sales.Activities()
	id := uuid.MustParse("0b8a7c9e-1d2f-4a3b-8c4d-5e6f7a8b9c0d")
	boolField := &engine.Field{Name: "flag", Type: engine.Bool}
	tests := []struct {
		name  string
		field *engine.Field
		raw   string
		want  any
		// wantErr, when set, is a fragment of the error message; the error
		// must name the field.
		wantErr string
	}{
		{name: "money with one decimal", field: visits.Field("order_value"), raw: `1250.5`, want: int64(125050)},
		{name: "money with trailing zero", field: visits.Field("order_value"), raw: `1250.50`, want: int64(125050)},
		{name: "money 0.1 stays 10 cents", field: visits.Field("order_value"), raw: `0.1`, want: int64(10)},
		{name: "money 0.2 stays 20 cents", field: visits.Field("order_value"), raw: `0.2`, want: int64(20)},
		{name: "money whole", field: visits.Field("order_value"), raw: `12`, want: int64(1200)},
		{name: "money zero", field: visits.Field("order_value"), raw: `0`, want: int64(0)},
		{name: "money with exponent", field: visits.Field("order_value"), raw: `1e3`, want: int64(100000)},
		{name: "money with exponent and decimals", field: visits.Field("order_value"), raw: `1.25E2`, want: int64(12500)},
		{name: "money with three decimals", field: visits.Field("order_value"), raw: `1.234`, wantErr: "two decimals"},
		{name: "money with three decimals by exponent", field: visits.Field("order_value"), raw: `1e-3`, wantErr: "two decimals"},
		{name: "money negative", field: visits.Field("order_value"), raw: `-5`, wantErr: "negative"},
		{name: "money above the field's maximum", field: visits.Field("order_value"), raw: `10000000000.01`, wantErr: "at most"},
		{name: "money absurdly large", field: visits.Field("order_value"), raw: `1e30`, wantErr: "too large"},
		{name: "money as text", field: visits.Field("order_value"), raw: `"lots"`, wantErr: "number"},
		{name: "money as boolean", field: visits.Field("order_value"), raw: `true`, wantErr: "number"},
		{name: "money null on an optional field", field: visits.Field("order_value"), raw: `null`, want: nil},
		{name: "cost on another entity", field: activities.Field("cost"), raw: `19.99`, want: int64(1999)},

		{name: "latitude", field: visits.Field("check_in_lat"), raw: `44.9778`, want: 44.9778},
		{name: "latitude at the pole", field: visits.Field("check_in_lat"), raw: `-90`, want: -90.0},
		{name: "latitude 91", field: visits.Field("check_in_lat"), raw: `91`, wantErr: "between -90 and 90"},
		{name: "longitude -181", field: visits.Field("check_in_lng"), raw: `-181`, wantErr: "between -180 and 180"},
		{name: "latitude as text", field: visits.Field("check_in_lat"), raw: `"north"`, wantErr: "number"},

		{name: "int", field: visits.Field("referrals"), raw: `2`, want: int64(2)},
		{name: "int written with exponent", field: visits.Field("referrals"), raw: `1e2`, want: int64(100)},
		{name: "int with a fraction", field: visits.Field("referrals"), raw: `1.5`, wantErr: "whole number"},
		{name: "int negative", field: visits.Field("referrals"), raw: `-1`, wantErr: "between 0 and 1000"},
		{name: "int above max", field: visits.Field("referrals"), raw: `1001`, wantErr: "between 0 and 1000"},
		{name: "required int null", field: visits.Field("referrals"), raw: `null`, wantErr: "required"},

		{name: "uuid", field: visits.Field("account_id"), raw: `"` + id.String() + `"`, want: id},
		{name: "uuid upper case", field: visits.Field("account_id"), raw: `"` + strings.ToUpper(id.String()) + `"`, want: id},
		{name: "bad uuid", field: visits.Field("account_id"), raw: `"not-a-uuid"`, wantErr: "UUID"},
		{name: "uuid in braces", field: visits.Field("account_id"), raw: `"{` + id.String() + `}"`, wantErr: "UUID"},
		{name: "uuid as urn", field: visits.Field("account_id"), raw: `"urn:uuid:` + id.String() + `"`, wantErr: "UUID"},
		{name: "uuid as number", field: visits.Field("account_id"), raw: `42`, wantErr: "UUID"},
		{name: "required uuid null", field: visits.Field("account_id"), raw: `null`, wantErr: "required"},

		{name: "time in UTC", field: visits.Field("started_at"), raw: `"2026-11-27T08:12:00Z"`, want: time.Date(2026, 11, 27, 8, 12, 0, 0, time.UTC)},
		{name: "time with offset is stored in UTC", field: visits.Field("started_at"), raw: `"2026-11-27T09:12:00.5+01:00"`, want: time.Date(2026, 11, 27, 8, 12, 0, 5e8, time.UTC)},
		{name: "time not RFC 3339", field: visits.Field("started_at"), raw: `"2026-11-27 09:12:00"`, wantErr: "RFC 3339"},
		{name: "time as unix seconds", field: visits.Field("started_at"), raw: `1795770720`, wantErr: "RFC 3339"},
		{name: "started_at 2 days in the future", field: visits.Field("started_at"), raw: `"` + now.Add(48*time.Hour).Format(time.RFC3339) + `"`, wantErr: "future"},
		{name: "started_at 23 hours ahead (time zones, bad clocks)", field: visits.Field("started_at"), raw: `"` + now.Add(23*time.Hour).Format(time.RFC3339) + `"`, want: now.Add(23 * time.Hour)},
		{name: "planned_at may be in the future", field: visits.Field("planned_at"), raw: `"` + now.Add(48*time.Hour).Format(time.RFC3339) + `"`, want: now.Add(48 * time.Hour)},
		{name: "time before 2000", field: visits.Field("planned_at"), raw: `"1970-01-01T00:00:00Z"`, wantErr: "2000"},

		{name: "enum", field: visits.Field("kind"), raw: `"scheduled"`, want: "scheduled"},
		{name: "enum not in the list", field: visits.Field("kind"), raw: `"walk_in"`, wantErr: "one of scheduled, unscheduled"},
		{name: "enum in the wrong case", field: visits.Field("outcome"), raw: `"Order"`, wantErr: "one of"},
		{name: "enum as number", field: visits.Field("outcome"), raw: `1`, wantErr: "string"},

		{name: "text", field: visits.Field("notes"), raw: `"Met the owner; \"call back\" on Friday"`, want: `Met the owner; "call back" on Friday`},
		{name: "text at its limit", field: visits.Field("notes"), raw: `"` + strings.Repeat("é", 4000) + `"`, want: strings.Repeat("é", 4000)},
		{name: "text over its limit", field: visits.Field("notes"), raw: `"` + strings.Repeat("a", 4001) + `"`, wantErr: "at most 4000"},
		{name: "text with NUL", field: visits.Field("notes"), raw: `"a\u0000b"`, wantErr: "UTF-8"},
		{name: "optional text null", field: visits.Field("notes"), raw: `null`, want: nil},
		{name: "optional text absent", field: visits.Field("notes"), raw: ``, want: nil},

		{name: "bool", field: boolField, raw: `true`, want: true},
		{name: "bool as text", field: boolField, raw: `"yes"`, wantErr: "true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.field == nil {
				t.Fatal("no such field")
			}
			got, err := tt.field.Parse(json.RawMessage(tt.raw), now)
			if tt.wantErr != "" {
				var me *models.Error
				if !errors.As(err, &me) {
					t.Fatalf("Parse(%s) = %#v, %v; want a *models.Error containing %q", tt.raw, got, err, tt.wantErr)
				}
				if !strings.Contains(me.Message, tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", me.Message, tt.wantErr)
				}
				if len(me.Fields) != 1 || me.Fields[0].Field != tt.field.Name {
					t.Errorf("error fields %+v, want one naming %q", me.Fields, tt.field.Name)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%s): %v", tt.raw, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%s) = %#v, want %#v", tt.raw, got, tt.want)
			}
		})
	}
}

// TestFieldValueJSON holds values' wire form: money leaves as the decimal
// it came in as, never through floating point.
func TestFieldValueJSON(t *testing.T) {
	visits := sales.Visits()
	tests := []struct {
		name  string
		field string
		value any
		want  string
	}{
		{"money with one decimal", "order_value", int64(125050), `1250.5`},
		{"money 0.1", "order_value", int64(10), `0.1`},
		{"money 0.1 + 0.2", "order_value", int64(10 + 20), `0.3`},
		{"money 5 cents", "order_value", int64(5), `0.05`},
		{"money 99 cents", "order_value", int64(99), `0.99`},
		{"money whole", "order_value", int64(100000), `1000`},
		{"money zero", "order_value", int64(0), `0`},
		{"null", "order_value", nil, `null`},
		{"time in UTC", "started_at", time.Date(2026, 11, 27, 9, 12, 0, 0, time.FixedZone("CET", 3600)), `"2026-11-27T08:12:00Z"`},
		{"string escaped", "notes", `say "hi" & <bye>`, `"say \"hi\" \u0026 \u003cbye\u003e"`},
		{"int", "referrals", int64(3), `3`},
		{"float", "check_in_lat", 44.9778, `44.9778`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(visits.Field(tt.field).ValueJSON(tt.value))
			if got != tt.want {
				t.Errorf("ValueJSON(%#v) = %s, want %s", tt.value, got, tt.want)
			}
		})
	}
	// Every amount of cents round-trips exactly through the wire form.
	f := visits.Field("order_value")
	now := time.Now()
	for cents := int64(0); cents < 100_000; cents += 7 {
		got, err := f.Parse(f.ValueJSON(cents), now)
		if err != nil || got != any(cents) {
			t.Fatalf("round trip of %d cents via %s = %v, %v", cents, f.ValueJSON(cents), got, err)
		}
	}
}

// TestMarshalRecordIsJSON: a pulled record, encoded by hand for speed,
// is the JSON encoding/json would write — whatever its strings hold — and
// every field name it writes unescaped is a plain identifier.
func TestMarshalRecordIsJSON(t *testing.T) {
	ident := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	for _, e := range sales.Entities() {
		for _, f := range e.Fields {
			if !ident.MatchString(f.Name) {
				t.Errorf("%s.%s is not a plain identifier", e.Name, f.Name)
			}
		}
	}
	visits := sales.Visits()
	for _, notes := range []string{"Plain notes, 42 units.", "Café Müller ☕", "tab\tnew\nline", `quote " and \ slash`, "<b>&amp;</b>", "\u2028 separator", "bad \xff utf-8", ""} {
		id, account := uuid.New(), uuid.New()
		r := &engine.Record{ID: id, Version: 7, CreatedAt: time.Unix(1, 0), UpdatedAt: time.Unix(2, 0),
			Values: map[string]any{"notes": notes, "account_id": account, "kind": "unscheduled"}}
		b := visits.MarshalRecord(nil, r)
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("notes %q: invalid JSON %s: %v", notes, b, err)
		}
		want, _ := json.Marshal(notes)
		if !strings.Contains(string(b), `"notes":`+string(want)) {
			t.Errorf("notes %q encoded as %s, want %s as encoding/json writes it", notes, b, want)
		}
		if got["id"] != id.String() || got["account_id"] != account.String() {
			t.Errorf("ids encoded as %v / %v, want %s / %s", got["id"], got["account_id"], id, account)
		}
	}
}

func TestNameKey(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"case and punctuation", "Stone Arch Coffee Co.", "stone arch coffee"},
		{"legal suffix and article", "The Lakeside Hardware, Inc.", "lakeside hardware"},
		{"ampersand and extra spaces", "Smith  &  Sons   LLC", "smith sons"},
		{"and counts as punctuation", "Smith and Sons", "smith sons"},
		{"digits kept", "7-Eleven #1234", "7 eleven 1234"},
		{"accents kept", "Café Müller GmbH", "café müller"},
		{"empty", "", ""},
		{"only suffixes", "The Co. Inc", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sales.NameKey(tt.in); got != tt.want {
				t.Errorf("NameKey(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if a, b := sales.NameKey("Mill City Bakery LLC"), sales.NameKey("mill-city bakery"); a != b {
		t.Errorf("NameKey: %q and %q differ, want the same key", a, b)
	}
}

func TestDistanceM(t *testing.T) {
	tests := []struct {
		name                   string
		lat1, lng1, lat2, lng2 float64
		want, tolerance        float64
	}{
		{"same point", 44.9778, -93.2650, 44.9778, -93.2650, 0, 1e-6},
		{"one degree of latitude", 10, 20, 11, 20, 111195, 1},
		{"one degree of longitude at the equator", 0, 0, 0, 1, 111195, 1},
		{"one degree of longitude at 60°N is half", 60, 0, 60, 1, 55597, 2},
		{"across the dateline", 0, 179.5, 0, -179.5, 111195, 1},
		{"antipodes", 0, 0, 0, 180, math.Pi * 6371000, 1},
		{"within the duplicate radius", 44.9778, -93.2650, 44.9787, -93.2650, 100, 1},
		{"Minneapolis to Austin", 44.9778, -93.2650, 30.2672, -97.7431, 1682000, 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sales.DistanceM(tt.lat1, tt.lng1, tt.lat2, tt.lng2)
			if math.Abs(got-tt.want) > tt.tolerance {
				t.Errorf("DistanceM = %.1f m, want %.1f ± %.1f", got, tt.want, tt.tolerance)
			}
			if back := sales.DistanceM(tt.lat2, tt.lng2, tt.lat1, tt.lng1); math.Abs(back-got) > 1e-6 {
				t.Errorf("DistanceM is not symmetric: %.3f and %.3f", got, back)
			}
		})
	}
}

// TestAppendValueNonFinite holds that a NaN or ±Inf that reached storage
// anyway is sent as null, never as text JSON cannot parse.
func TestAppendValueNonFinite(t *testing.T) {
	f := engine.Field{Name: "progress", Type: engine.Float}
	for _, x := range []float64{math.Inf(1), math.Inf(-1), math.NaN()} {
		if got := string(f.AppendValue(nil, x)); got != "null" {
			t.Errorf("AppendValue(%v) = %s, want null", x, got)
		}
	}
}
