package watermelondb

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// TestWatermelonTimestamp holds the timestamp encoding: a JS-safe positive
// integer that decodes to the feed horizon it was made from, in the form
// of the store's current horizon, and to nothing this server never issued.
func TestWatermelonTimestamp(t *testing.T) {
	team := uuid.New()
	p := models.Principal{OrgID: uuid.New(), UserID: uuid.New(), Role: models.RoleRep, TeamID: &team}
	scope := wmScope(p)
	tests := []struct {
		name    string
		horizon engine.Position // when issued
		now     engine.Position // the horizon when it comes back
		want    engine.Position
		ok      bool
	}{
		{"SQLite, empty feed", engine.Position{}, engine.Position{Version: 10}, engine.Position{}, true},
		{"SQLite", engine.Position{Version: 41}, engine.Position{Version: 41}, engine.Position{Version: 41}, true},
		{"SQLite, restored from an older backup", engine.Position{Version: 41}, engine.Position{Version: 7}, engine.Position{Version: 41}, false},
		{"PostgreSQL", engine.Position{Txid: 9_000_000, Version: math.MaxInt64}, engine.Position{Txid: 9_500_000, Version: math.MaxInt64}, engine.Position{Txid: 9_000_000, Version: math.MaxInt64}, true},
		{"PostgreSQL, past 2^32 transactions", engine.Position{Txid: 5<<32 | 17, Version: math.MaxInt64}, engine.Position{Txid: 6 << 32, Version: math.MaxInt64}, engine.Position{Txid: 5<<32 | 17, Version: math.MaxInt64}, true},
		{"largest position", engine.Position{Version: 1<<wmValueBits - 1}, engine.Position{Version: 1<<wmValueBits - 1}, engine.Position{Version: 1<<wmValueBits - 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := encodeTimestamp(tt.horizon, scope)
			if err != nil {
				t.Fatal(err)
			}
			if ts <= 0 || ts > MaxTimestamp {
				t.Fatalf("timestamp %d is not a positive JS-safe integer", ts)
			}
			got, sc, ok := decodeTimestamp(ts, tt.now)
			if ok != tt.ok || sc != scope || (ok && got != tt.want) {
				t.Errorf("decode(%d) = %+v, scope %d, ok %t; want %+v, %d, %t", ts, got, sc, ok, tt.want, scope, tt.ok)
			}
		})
	}
	if _, err := encodeTimestamp(engine.Position{Version: 1 << wmValueBits}, scope); err == nil {
		t.Error("a position beyond 2^40 encoded without error")
	}
	// Timestamps grow with the horizon for a given scope.
	a, _ := encodeTimestamp(engine.Position{Version: 100}, scope)
	b, _ := encodeTimestamp(engine.Position{Version: 101}, 1<<wmScopeBits-1)
	c, _ := encodeTimestamp(engine.Position{Version: 101}, 1)
	if !(a < b && a < c) {
		t.Errorf("timestamps %d, %d, %d do not grow with the position", a, b, c)
	}
}

// TestWatermelonScopeFingerprint holds that the fingerprint changes with role and
// team, and stays within its bits.
func TestWatermelonScopeFingerprint(t *testing.T) {
	north, south := uuid.New(), uuid.New()
	base := models.Principal{OrgID: uuid.New(), UserID: uuid.New(), Role: models.RoleRep, TeamID: &north, DeviceID: uuid.New()}
	same := base
	same.DeviceID, same.SessionID = uuid.New(), uuid.New()
	if wmScope(base) != wmScope(same) {
		t.Error("the fingerprint depends on the device or session")
	}
	for name, p := range map[string]models.Principal{
		"team":    {OrgID: base.OrgID, UserID: base.UserID, Role: models.RoleRep, TeamID: &south},
		"no team": {OrgID: base.OrgID, UserID: base.UserID, Role: models.RoleRep},
		"role":    {OrgID: base.OrgID, UserID: base.UserID, Role: models.RoleManager, TeamID: &north},
		"user":    {OrgID: base.OrgID, UserID: uuid.New(), Role: models.RoleRep, TeamID: &north},
	} {
		s := wmScope(p)
		if s < 1 || s >= 1<<wmScopeBits {
			t.Errorf("%s: fingerprint %d out of range", name, s)
		}
		if s == wmScope(base) {
			t.Errorf("a change of %s keeps the fingerprint", name)
		}
	}
}

// TestWatermelonClassify holds which list of a pull a change goes to.
func TestWatermelonClassify(t *testing.T) {
	device := uuid.New()
	p := models.Principal{DeviceID: device}
	e := sales.Visits()
	id := uuid.New()
	change := func(createdBy uuid.UUID, version int64, deleted bool) engine.Change {
		return engine.Change{Entity: e, Record: &engine.Record{ID: id, Version: version, CreatedBy: createdBy, Deleted: deleted}}
	}
	other := uuid.New()
	pg := engine.Position{Txid: 500, Version: math.MaxInt64}
	lite := engine.Position{Version: 50}
	tests := []struct {
		name     string
		mode     wmMode
		since    engine.Position
		ch       engine.Change
		created  int64 // the record's creating version; 0: unknown
		want     Kind
		wantSend bool
	}{
		{"first sync: another's record", wmInitial, engine.Position{}, change(other, 7, false), 0, Created, true},
		{"first sync: own record", wmInitial, engine.Position{}, change(device, 7, false), 0, Updated, true},
		{"first sync: tombstone skipped", wmInitial, engine.Position{}, change(other, 7, true), 0, Deleted, false},
		{"tombstone", wmIncremental, lite, change(device, 70, true), 70, Deleted, true},
		{"own create echoed", wmIncremental, lite, change(device, 70, false), 70, Updated, true},
		{"another's create, written once", wmIncremental, pg, change(other, 70, false), 70, Created, true},
		{"another's create, written again (PostgreSQL)", wmIncremental, pg, change(other, 71, false), 70, Updated, true},
		{"another's create after since, written again (SQLite)", wmIncremental, lite, change(other, 71, false), 60, Created, true},
		{"created before since, updated after (SQLite)", wmIncremental, lite, change(other, 71, false), 40, Updated, true},
		{"server record, no creator", wmIncremental, lite, change(uuid.Nil, 60, false), 60, Created, true},
		{"creating version unknown", wmIncremental, lite, change(other, 60, false), 0, Updated, true},
		{"replacement: another's record", wmReplace, engine.Position{}, change(other, 7, false), 0, Updated, true},
		{"replacement: tombstone", wmReplace, engine.Position{}, change(other, 7, true), 0, Deleted, true},
		{"migration: another's record", wmFull, engine.Position{}, change(other, 7, false), 0, Updated, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created := map[engine.Key]int64{}
			if tt.created != 0 {
				created[engine.Key{Entity: "visits", ID: id}] = tt.created
			}
			got, send := wmClassify(tt.mode, p, tt.since, tt.ch, created)
			if send != tt.wantSend || (send && got != tt.want) {
				t.Errorf("got %v (send %t), want %v (send %t)", got, send, tt.want, tt.wantSend)
			}
		})
	}
}

// TestWatermelonNative holds the conversion of WatermelonDB column values.
func TestWatermelonNative(t *testing.T) {
	e := sales.Visits()
	notes := &engine.Field{Name: "data", Type: engine.JSON}
	tests := []struct {
		name    string
		field   *engine.Field
		in      string
		want    string
		wantErr bool
	}{
		{"ms to RFC 3339", e.Field("started_at"), "1795770000123", `"2026-11-27T09:00:00.123Z"`, false},
		{"0 ms is null", e.Field("started_at"), "0", "null", false},
		{"RFC 3339 kept", e.Field("started_at"), `"2026-11-27T05:00:00Z"`, `"2026-11-27T05:00:00Z"`, false},
		{"fractional ms", e.Field("started_at"), "1.5", "", true},
		{"empty UUID is null", e.Field("account_id"), `""`, "null", false},
		{"JSON text", notes, `"{\"a\":[1,2]}"`, `{"a":[1,2]}`, false},
		{"JSON value", notes, `{"a":1}`, `{"a":1}`, false},
		{"empty JSON text is null", notes, `""`, "null", false},
		{"not JSON text", notes, `"{a"`, "", true},
		{"string kept", e.Field("notes"), `"hi"`, `"hi"`, false},
		{"nothing is null", e.Field("notes"), ``, "null", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rej := wmNative(tt.field, json.RawMessage(tt.in))
			if (rej != nil) != tt.wantErr {
				t.Fatalf("rejection %v, want error %t", rej, tt.wantErr)
			}
			if rej != nil {
				if rej.Field != tt.field.Name {
					t.Errorf("rejection names %q, want %q", rej.Field, tt.field.Name)
				}
				return
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestWatermelonStamp holds that a WatermelonDB write is stamped at receipt
// time, or after every clock of the stored record.
func TestWatermelonStamp(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	rec := func(clocks ...engine.HLC) *engine.Record {
		r := &engine.Record{Clocks: map[string]engine.FieldClock{}}
		for i, c := range clocks {
			r.Clocks[string(rune('a'+i))] = engine.FieldClock{HLC: c}
		}
		return r
	}
	tests := []struct {
		name string
		cur  *engine.Record
		want engine.HLC
	}{
		{"new record", nil, engine.HLC{MS: 1_000_000}},
		{"older clocks", rec(engine.HLC{MS: 999_000, Counter: 4}), engine.HLC{MS: 1_000_000}},
		{"same millisecond", rec(engine.HLC{MS: 1_000_000, Counter: 2, Device: "x"}), engine.HLC{MS: 1_000_000, Counter: 3}},
		{"a clock ahead", rec(engine.HLC{MS: 999_000}, engine.HLC{MS: 1_200_000, Counter: 1}), engine.HLC{MS: 1_200_000, Counter: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wmStamp(tt.cur, now)
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if tt.cur != nil {
				for _, fc := range tt.cur.Clocks {
					if got.Compare(fc.HLC) <= 0 {
						t.Errorf("stamp %v is not after %v", got, fc.HLC)
					}
				}
			}
		})
	}
}

// TestWatermelonOrder holds that a push applies referenced tables first.
func TestWatermelonOrder(t *testing.T) {
	en := engine.New(nil, sales.Entities(), nil, nil)
	entities := en.Entities()
	pos := map[string]int{}
	for i, e := range New(en, nil).order() {
		pos[e.Name] = i
	}
	if len(pos) != len(entities) {
		t.Fatalf("order lists %d of %d entities", len(pos), len(entities))
	}
	for _, e := range entities {
		for _, f := range e.Fields {
			if f.Ref != "" && f.Ref != e.Name && entities[f.Ref] != nil && pos[f.Ref] > pos[e.Name] {
				t.Errorf("%s comes before %s, which %s.%s references", e.Name, f.Ref, e.Name, f.Name)
			}
		}
	}
}

// TestWatermelonLastWrittenBy holds the rule that exempts a device's own
// latest write from the stale-push check.
func TestWatermelonLastWrittenBy(t *testing.T) {
	me, other := uuid.New(), uuid.New()
	r := &engine.Record{Version: 9, Clocks: map[string]engine.FieldClock{
		"notes":   {HLC: engine.HLC{MS: 1, Device: me.String()}, Version: 9},
		"outcome": {HLC: engine.HLC{MS: 1, Device: other.String()}, Version: 5},
	}}
	if !engine.LastWrittenBy(r, me) {
		t.Error("my write of version 9 not recognised")
	}
	if engine.LastWrittenBy(r, other) {
		t.Error("another device's older write taken for the latest")
	}
	r.Version = 10 // written since by a hook or server job
	if engine.LastWrittenBy(r, me) {
		t.Error("a later server write taken for mine")
	}
}
