package engine_test

// Fuzz targets of the engine's parsers and of its conflict policy. Seed
// corpora live in testdata/fuzz/<FuzzName>/; `go test` runs them as
// ordinary tests, and `go test -fuzz '^FuzzName$' -fuzztime 15s` explores
// from them (.ci/run does, for each target). A crasher the fuzzer finds is
// written there too: fix the code and keep the file.

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// fuzzNow is the server's clock in the fuzz targets.
var fuzzNow = time.Date(2026, 12, 6, 9, 30, 0, 0, time.UTC)

// parseFields is every field the field-sales entities declare, then fields
// of each type with the widest bounds Parse must still handle.
func parseFields() []*engine.Field {
	var out []*engine.Field
	for _, e := range sales.Entities() {
		for i := range e.Fields {
			out = append(out, &e.Fields[i])
		}
	}
	for _, f := range []engine.Field{
		{Name: "s", Type: engine.String},
		{Name: "s_required", Type: engine.String, Required: true, MaxLen: 3},
		{Name: "t", Type: engine.Text},
		{Name: "e", Type: engine.Enum, Enum: []string{"a", "b", "Ünïcode"}},
		{Name: "u", Type: engine.UUID},
		{Name: "at", Type: engine.Time},
		{Name: "at_past", Type: engine.Time, NotFuture: true},
		{Name: "x", Type: engine.Float, Min: -math.MaxFloat64, Max: math.MaxFloat64},
		{Name: "n", Type: engine.Int, Min: -(1 << 53), Max: 1 << 53},
		{Name: "m", Type: engine.Money, Max: 1e12},
		{Name: "b", Type: engine.Bool},
		{Name: "j", Type: engine.JSON},
		{Name: "j_small", Type: engine.JSON, MaxLen: 8},
	} {
		out = append(out, &f)
	}
	return out
}

// FuzzFieldParse feeds any JSON (or not) to Field.Parse of every declared
// field. Properties: no panic; a refusal is a *models.Error naming the
// field; an accepted value has the Go type of its field type and obeys the
// field's bounds; and it survives the wire: encoding it (AppendValue, as a
// pull does) and parsing that again gives the same value.
func FuzzFieldParse(f *testing.F) {
	fields := parseFields()
	f.Fuzz(func(t *testing.T, pick uint16, raw []byte) {
		fd := fields[int(pick)%len(fields)]
		v, err := fd.Parse(json.RawMessage(raw), fuzzNow)
		if err != nil {
			var me *models.Error
			if !errors.As(err, &me) {
				t.Fatalf("%s: Parse(%q) error %T %v, want *models.Error", fd.Name, raw, err, err)
			}
			if len(me.Fields) == 0 || me.Fields[0].Field != fd.Name {
				t.Fatalf("%s: Parse(%q) error %v does not name the field", fd.Name, raw, err)
			}
			return
		}
		if v == nil {
			if fd.Required {
				t.Fatalf("%s: Parse(%q) = nil for a required field", fd.Name, raw)
			}
			return
		}
		checkParsed(t, fd, raw, v)
		if got, ok := v.(string); ok && (fd.Type == engine.String || fd.Type == engine.Text || fd.Type == engine.Enum) {
			// Strings are read without encoding/json when they can be:
			// the text must be the one it reads.
			var want string
			if err := json.Unmarshal(raw, &want); err != nil || got != want {
				t.Fatalf("%s: Parse(%q) = %q, encoding/json reads %q (%v)", fd.Name, raw, got, want, err)
			}
		}
		wire := fd.ValueJSON(v)
		if !json.Valid(wire) {
			t.Fatalf("%s: Parse(%q) = %#v encodes as invalid JSON %q", fd.Name, raw, v, wire)
		}
		again, err := fd.Parse(wire, fuzzNow)
		if err != nil {
			t.Fatalf("%s: Parse(%q) = %#v, encoded %s, which Parse refuses: %v", fd.Name, raw, v, wire, err)
		}
		if !sameValue(v, again) {
			t.Fatalf("%s: Parse(%q) = %#v, encoded %s, parsed back as %#v", fd.Name, raw, v, wire, again)
		}
	})
}

// checkParsed holds an accepted value to its field's declaration.
func checkParsed(t *testing.T, fd *engine.Field, raw []byte, v any) {
	t.Helper()
	bad := func(why string) { t.Fatalf("%s: Parse(%q) = %#v: %s", fd.Name, raw, v, why) }
	switch fd.Type {
	case engine.String, engine.Text, engine.Enum:
		s, ok := v.(string)
		if !ok {
			bad("not a string")
		}
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			bad("invalid UTF-8 or NUL")
		}
		if fd.Type == engine.Enum && !slices.Contains(fd.Enum, s) {
			bad("not one of the enum")
		}
		if fd.MaxLen > 0 && utf8.RuneCountInString(s) > fd.MaxLen {
			bad("longer than MaxLen")
		}
	case engine.UUID:
		if _, ok := v.(uuid.UUID); !ok {
			bad("not a uuid.UUID")
		}
	case engine.Time:
		tm, ok := v.(time.Time)
		if !ok || tm.Location() != time.UTC || tm.Year() < 2000 || tm.Year() > 2100 {
			bad("not a UTC time between 2000 and 2100")
		}
		if fd.NotFuture && tm.After(fuzzNow.Add(24*time.Hour)) {
			bad("in the future")
		}
	case engine.Float:
		x, ok := v.(float64)
		if !ok || math.IsNaN(x) || math.IsInf(x, 0) || x < fd.Min || x > fd.Max {
			bad("not a finite float64 within bounds")
		}
	case engine.Int:
		n, ok := v.(int64)
		if !ok || float64(n) < fd.Min || float64(n) > fd.Max {
			bad("not an int64 within bounds")
		}
	case engine.Money:
		c, ok := v.(int64)
		if !ok || c < 0 || float64(c) > fd.Max*100 {
			bad("not non-negative int64 cents within bounds")
		}
	case engine.Bool:
		if _, ok := v.(bool); !ok {
			bad("not a bool")
		}
	case engine.JSON:
		s, ok := v.(string)
		if !ok || !json.Valid([]byte(s)) || !utf8.ValidString(s) {
			bad("not a JSON text in valid UTF-8")
		}
	}
}

func sameValue(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return reflect.DeepEqual(a, b)
}

// The principal the cursor fuzz issues cursors to, and another user of the
// same organisation and team.
var (
	cursorTeam  = uuid.MustParse("2c1f7a51-8e0e-4d6c-9b55-0e1f2a3b4c5d")
	cursorOwner = models.Principal{OrgID: uuid.MustParse("0a7b5c3d-1e2f-4a5b-8c9d-0e1f2a3b4c5d"),
		UserID: uuid.MustParse("7d9e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a"), Role: models.RoleRep, TeamID: &cursorTeam}
	cursorOther = models.Principal{OrgID: cursorOwner.OrgID,
		UserID: uuid.MustParse("8e0f2a3b-4c5d-4e6f-9a7b-8c9d0e1f2a3b"), Role: models.RoleRep, TeamID: &cursorTeam}
)

// FuzzDecodeCursor feeds any string to the pull cursor parser, with a
// position to issue a cursor at. Properties: no panic; a cursor it accepts
// has a position of non-negative numbers, is refused to any other user and
// re-encodes to a cursor that decodes to the same position; a cursor
// EncodeCursor issued decodes to its position for its owner alone.
func FuzzDecodeCursor(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string, txid, ver int64) {
		if pos, ok := engine.DecodeCursor(cursorOwner, s); ok {
			if pos.Txid < 0 || pos.Version < 0 {
				t.Fatalf("DecodeCursor(%q) = %+v, a negative position", s, pos)
			}
			if _, ok := engine.DecodeCursor(cursorOther, s); ok {
				t.Fatalf("DecodeCursor(%q) is accepted from another user", s)
			}
			again, ok := engine.DecodeCursor(cursorOwner, engine.EncodeCursor(cursorOwner, pos))
			if !ok || again != pos {
				t.Fatalf("DecodeCursor(%q) = %+v, re-encoded decodes to %+v, %v", s, pos, again, ok)
			}
		}
		if txid < 0 || ver < 0 {
			return
		}
		pos := engine.Position{Txid: txid, Version: ver}
		c := engine.EncodeCursor(cursorOwner, pos)
		if got, ok := engine.DecodeCursor(cursorOwner, c); !ok || got != pos {
			t.Fatalf("EncodeCursor(%+v) = %q decodes to %+v, %v", pos, c, got, ok)
		}
		if _, ok := engine.DecodeCursor(cursorOther, c); ok {
			t.Fatalf("EncodeCursor(%+v) = %q is accepted from another user", pos, c)
		}
	})
}

// FuzzHLC feeds any bytes to the parser of stored field clocks (a field's
// stamp [ms, counter, device, version]) and to a record's stored clocks,
// and checks the order of stamps. Properties: no panic; a clock that
// parses encodes back to itself; stored clocks that decode re-encode to
// the same clocks; Compare is a total order (reflexive, antisymmetric,
// consistent with equality, transitive); Clamp never leaves a stamp beyond
// now+MaxSkew and keeps its counter and device.
func FuzzHLC(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte, ms, counter int64, device string, nowMS int64) {
		var fc engine.FieldClock
		parsed := fc.UnmarshalJSON(raw) == nil
		if parsed {
			b, err := json.Marshal(fc)
			if err != nil {
				t.Fatalf("Marshal(%+v): %v", fc, err)
			}
			var again engine.FieldClock
			if err := again.UnmarshalJSON(b); err != nil || again != fc {
				t.Fatalf("clock %q = %+v encodes as %s, which parses as %+v, %v", raw, fc, b, again, err)
			}
		}
		var r engine.Record
		r.SetRawClocks(raw)
		clocks := r.FieldClocks()
		b, err := r.ClocksJSON()
		if err != nil {
			t.Fatalf("ClocksJSON: %v", err)
		}
		var back engine.Record
		back.SetRawClocks(b)
		if got := back.FieldClocks(); !reflect.DeepEqual(got, clocks) {
			t.Fatalf("stored clocks %q = %+v re-encode as %s, which decode as %+v", raw, clocks, b, got)
		}

		a, z := engine.HLC{MS: ms, Counter: counter, Device: device}, engine.HLC{}
		stamps := []engine.HLC{a, z, fc.HLC}
		for _, x := range stamps {
			if x.Compare(x) != 0 {
				t.Fatalf("%v.Compare(itself) = %d", x, x.Compare(x))
			}
			for _, y := range stamps {
				if x.Compare(y) != -y.Compare(x) {
					t.Fatalf("%v.Compare(%v) = %d but %v.Compare(%v) = %d", x, y, x.Compare(y), y, x, y.Compare(x))
				}
				if (x.Compare(y) == 0) != (x == y) {
					t.Fatalf("%v.Compare(%v) = %d for stamps that are equal: %v", x, y, x.Compare(y), x == y)
				}
				for _, w := range stamps {
					if x.Compare(y) <= 0 && y.Compare(w) <= 0 && x.Compare(w) > 0 {
						t.Fatalf("not transitive: %v <= %v <= %v but %v > %v", x, y, w, x, w)
					}
				}
			}
		}

		// The server's clock: any instant a server may have.
		now := time.UnixMilli(nowMS % (1 << 53)).UTC()
		if now.UnixMilli() < 0 {
			now = time.UnixMilli(-now.UnixMilli()).UTC()
		}
		limit := now.Add(engine.MaxSkew).UnixMilli()
		for _, x := range stamps {
			out, clamped := x.Clamp(now)
			switch {
			case out.MS > limit:
				t.Fatalf("%v.Clamp(%d) = %v, beyond now+MaxSkew", x, now.UnixMilli(), out)
			case out.Counter != x.Counter || out.Device != x.Device:
				t.Fatalf("%v.Clamp(%d) = %v changed the counter or device", x, now.UnixMilli(), out)
			case clamped != (out != x) || (clamped && out.MS != now.UnixMilli()):
				t.Fatalf("%v.Clamp(%d) = %v, %v", x, now.UnixMilli(), out, clamped)
			}
		}
	})
}

// mergeEntity is a small entity with a field of each kind of value the
// merge compares.
var mergeEntity = &engine.Entity{Name: "things", Fields: []engine.Field{
	{Name: "notes", Type: engine.Text},
	{Name: "outcome", Type: engine.Enum, Enum: []string{"none", "follow_up", "order"}},
	{Name: "referrals", Type: engine.Int, Min: 0, Max: 1000},
	{Name: "order_value", Type: engine.Money, Max: 1e10},
	{Name: "joint", Type: engine.Bool},
}}

// mergeValues is what a writer whose value is val writes to the fields in
// mask: the same val makes the same values.
func mergeValues(mask uint8, val string) map[string]any {
	vals := map[string]any{}
	for i, f := range mergeEntity.Fields {
		if mask&(1<<i) == 0 {
			continue
		}
		switch f.Type {
		case engine.Text:
			vals[f.Name] = val
		case engine.Enum:
			vals[f.Name] = f.Enum[len(val)%len(f.Enum)]
		case engine.Int:
			vals[f.Name] = int64(len(val))
		case engine.Money:
			vals[f.Name] = int64(len(val)) * 100
		case engine.Bool:
			vals[f.Name] = len(val)%2 == 1
		}
	}
	return vals
}

// mergeStored is the record as stored: the fields in mask written by dev
// at ms (each later field one millisecond earlier), at versions 1 to 5; with
// unclocked, their values carry no clock (set by the server).
func mergeStored(mask uint8, ms int64, dev string, deleted, unclocked bool) *engine.Record {
	r := &engine.Record{ID: uuid.MustParse("6f1c1f3e-6a8f-4c43-9d35-0d3c8c0b0a01"), Version: 5, Deleted: deleted,
		Values: mergeValues(mask, "stored value"), Clocks: map[string]engine.FieldClock{}}
	for i, f := range mergeEntity.Fields {
		if _, ok := r.Values[f.Name]; ok && !unclocked {
			r.Clocks[f.Name] = engine.FieldClock{HLC: engine.HLC{MS: ms - int64(i), Device: dev}, Version: int64(i + 1)}
		}
	}
	return r
}

// FuzzMerge checks the conflict policy's properties on any stored record
// and any two writes, each an upsert or a delete:
//
//   - deterministic: the same inputs give the same record and conflicts,
//     and the stored record is not modified;
//   - never loses a field: every stored field is still there, every field
//     a write sent is either taken or, if its value differs from the one
//     kept, reported as a conflict (kept: server) with the value sent;
//     a write to a deleted record changes nothing and is reported; a
//     delete keeps the values;
//   - the later stamp wins each field, and a field's clock is the later of
//     the stored one and the write's;
//   - commutative: two upserts with different stamps, applied in either
//     order, leave the same values and clocks; a delete wins in either
//     order.
func FuzzMerge(f *testing.F) {
	f.Fuzz(func(t *testing.T, storedMask uint8, storedMS int64, storedDev string, deleted, unclocked bool,
		aMS, aCounter int64, aDev string, aMask uint8, aVal string, aDelete bool,
		bMS, bCounter int64, bDev string, bMask uint8, bVal string, bDelete bool, base int64) {
		var cur *engine.Record
		if storedMask != 0 {
			cur = mergeStored(storedMask, storedMS, storedDev, deleted, unclocked)
		}
		var baseVersion *int64
		if base >= 0 {
			baseVersion = &base
		}
		type write struct {
			h      engine.HLC
			vals   map[string]any
			delete bool
		}
		a := write{engine.HLC{MS: aMS, Counter: aCounter, Device: aDev}, mergeValues(aMask, aVal), aDelete}
		b := write{engine.HLC{MS: bMS, Counter: bCounter, Device: bDev}, mergeValues(bMask, bVal), bDelete}
		apply := func(cur *engine.Record, w write, version int64) (*engine.Record, []engine.Conflict) {
			t.Helper()
			if w.delete {
				if cur == nil {
					return nil, nil // the engine answers a delete of nothing itself
				}
				before := snapshotMerge(cur)
				next, cs := engine.MergeDelete(mergeEntity, cur, w.h, baseVersion)
				if !reflect.DeepEqual(snapshotMerge(cur), before) {
					t.Fatalf("MergeDelete modified the stored record")
				}
				if !next.Deleted || !reflect.DeepEqual(next.Values, cur.Values) {
					t.Fatalf("MergeDelete = %+v, want the stored values, deleted", next)
				}
				again, cs2 := engine.MergeDelete(mergeEntity, cur, w.h, baseVersion)
				if !reflect.DeepEqual(snapshotMerge(again), snapshotMerge(next)) || !reflect.DeepEqual(cs, cs2) {
					t.Fatalf("MergeDelete is not deterministic")
				}
				return next, cs
			}
			var before mergeSnapshot
			if cur != nil {
				before = snapshotMerge(cur)
			}
			next, cs := engine.MergeUpsert(mergeEntity, cur, w.vals, w.h, baseVersion, version)
			if cur != nil && !reflect.DeepEqual(snapshotMerge(cur), before) {
				t.Fatalf("MergeUpsert modified the stored record")
			}
			again, cs2 := engine.MergeUpsert(mergeEntity, cur, w.vals, w.h, baseVersion, version)
			if !reflect.DeepEqual(snapshotMerge(again), snapshotMerge(next)) || !reflect.DeepEqual(cs, cs2) {
				t.Fatalf("MergeUpsert is not deterministic")
			}
			checkUpsert(t, cur, w.vals, w.h, next, cs)
			return next, cs
		}

		ab, _ := apply(cur, a, 6)
		ab, _ = apply(ab, b, 7)
		ba, _ := apply(cur, b, 6)
		ba, _ = apply(ba, a, 7)
		if ab == nil || ba == nil || (cur == nil && (a.delete || b.delete)) {
			// A delete of a record that does not exist yet is the
			// engine's to answer, not the merge's.
			return
		}
		if a.delete || b.delete {
			if !ab.Deleted || !ba.Deleted {
				t.Fatalf("a delete lost: deleted %v in one order, %v in the other", ab.Deleted, ba.Deleted)
			}
			return
		}
		if a.h == b.h {
			return // one stamp is one edit: two different edits never share it
		}
		if !reflect.DeepEqual(ab.Values, ba.Values) {
			t.Fatalf("not commutative: a then b = %v, b then a = %v", ab.Values, ba.Values)
		}
		for name, fc := range ab.FieldClocks() {
			if other := ba.FieldClocks()[name]; other.HLC != fc.HLC {
				t.Fatalf("not commutative: %s's clock is %v after a then b, %v after b then a", name, fc.HLC, other.HLC)
			}
		}
	})
}

// checkUpsert holds one MergeUpsert to the policy.
func checkUpsert(t *testing.T, cur *engine.Record, vals map[string]any, h engine.HLC, next *engine.Record, cs []engine.Conflict) {
	t.Helper()
	if cur != nil && cur.Deleted {
		if next != cur || len(cs) != 1 || cs[0].Field != engine.DeletedField || cs[0].Kept != engine.KeptServer {
			t.Fatalf("an upsert of a deleted record = %+v, %+v; want it unchanged and one conflict on %s", next, cs, engine.DeletedField)
		}
		return
	}
	conflict := map[string]engine.Conflict{}
	for _, c := range cs {
		if _, dup := conflict[c.Field]; dup {
			t.Fatalf("two conflicts on %s", c.Field)
		}
		conflict[c.Field] = c
	}
	if cur != nil {
		for name := range cur.Values {
			if _, ok := next.Values[name]; !ok {
				t.Fatalf("field %s was lost", name)
			}
		}
	}
	for name, cv := range vals {
		f := mergeEntity.Field(name)
		var sv any
		var sc engine.FieldClock
		known := false
		if cur != nil {
			sv = cur.Values[name]
			sc, known = cur.FieldClocks()[name]
		}
		clientWins := !known || h.Compare(sc.HLC) >= 0
		got := next.Values[name]
		switch {
		case clientWins:
			if !reflect.DeepEqual(got, cv) {
				t.Fatalf("%s: the write stamped %v beats %v but the value is %#v, not %#v", name, h, sc.HLC, got, cv)
			}
			if next.FieldClocks()[name].HLC != h {
				t.Fatalf("%s: the winning write's clock is %v, not %v", name, next.FieldClocks()[name].HLC, h)
			}
			if c, ok := conflict[name]; ok && c.Kept != engine.KeptClient {
				t.Fatalf("%s: the client won but the conflict says kept %s", name, c.Kept)
			}
		default:
			if !reflect.DeepEqual(got, sv) || next.FieldClocks()[name] != sc {
				t.Fatalf("%s: the stored write %v beats %v but the field changed to %#v", name, sc.HLC, h, got)
			}
			c, ok := conflict[name]
			if reflect.DeepEqual(sv, cv) {
				if ok {
					t.Fatalf("%s: a conflict for equal values", name)
				}
				break
			}
			if !ok || c.Kept != engine.KeptServer || string(c.ClientValue) != string(f.ValueJSON(cv)) || string(c.ServerValue) != string(f.ValueJSON(sv)) {
				t.Fatalf("%s: the write's value %#v lost to %#v without a conflict that says so (%+v)", name, cv, sv, c)
			}
		}
	}
	for name := range conflict {
		if _, sent := vals[name]; !sent {
			t.Fatalf("a conflict on %s, which the write did not send", name)
		}
	}
}

// mergeSnapshot is what a merge may change of a record.
type mergeSnapshot struct {
	Deleted bool
	Values  map[string]any
	Clocks  map[string]engine.FieldClock
}

func snapshotMerge(r *engine.Record) mergeSnapshot {
	if r == nil {
		return mergeSnapshot{}
	}
	s := mergeSnapshot{Deleted: r.Deleted, Values: map[string]any{}, Clocks: map[string]engine.FieldClock{}}
	for k, v := range r.Values {
		s.Values[k] = v
	}
	for k, v := range r.FieldClocks() {
		s.Clocks[k] = v
	}
	return s
}
