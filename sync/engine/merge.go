package engine

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"time"
)

// Conflict reports one field on which two writers disagreed. Kept says whose
// value survived: "server" (the value already stored) or "client" (the
// value in the mutation).
type Conflict struct {
	Field       string          `json:"field"`
	Kept        string          `json:"kept"`
	ServerValue json.RawMessage `json:"server_value"`
	ClientValue json.RawMessage `json:"client_value"`
	// The stored value's last accepted write: the device that made it and
	// when, by that device's clock. Empty for a value no device wrote.
	ServerDevice string    `json:"-"`
	ServerAt     time.Time `json:"-"`
}

// wroteServerSide notes on cf who last wrote the stored value, from its
// field clock.
func (cf Conflict) wroteServerSide(fc FieldClock, known bool) Conflict {
	if known && fc.MS > 0 {
		cf.ServerDevice, cf.ServerAt = fc.Device, time.UnixMilli(fc.MS).UTC()
	}
	return cf
}

// Kept values.
const (
	KeptServer = "server"
	KeptClient = "client"
)

// DeletedField is the pseudo-field a conflict names when an update lost to
// a delete.
const DeletedField = "_deleted"

// FieldClock is what the server remembers of a field's last accepted
// write: its stamp, and the record version that write produced.
type FieldClock struct {
	HLC
	Version int64
}

// MergeUpsert merges a client's field values, stamped h, into cur, the
// record as stored (nil when it does not exist yet), and returns the new
// state and the conflicts. It is the whole conflict policy for upserts and
// does no I/O:
//
//   - A field the client did not send keeps the stored value: concurrent
//     edits of different fields both survive.
//   - For a field both sides wrote, the later stamp wins; equal times are
//     ordered by counter, then device id, so every replica agrees.
//   - The client's value losing to a later stored one is a conflict
//     (kept: server), unless both values are equal.
//   - The client's value overwriting a value written by another device
//     since baseVersion (the version the client last saw) is a conflict
//     too (kept: client): the other device's edit was lost. Without a
//     baseVersion such an overwrite cannot be told from an ordinary
//     sequential edit, and is not reported.
//   - An update of a deleted record changes nothing: delete wins, and the
//     update is reported as a conflict on DeletedField.
//
// version is the version the merged record will get, recorded in the
// clocks of the fields the client won. cur is not modified.
func MergeUpsert(e *Entity, cur *Record, vals map[string]any, h HLC, baseVersion *int64, version int64) (*Record, []Conflict) {
	if cur != nil && cur.Deleted {
		client, _ := json.Marshal(sortedKeys(vals))
		return cur, []Conflict{{Field: DeletedField, Kept: KeptServer, ServerValue: json.RawMessage("true"), ClientValue: client}}
	}
	next := &Record{Values: map[string]any{}, Clocks: map[string]FieldClock{}}
	if cur != nil {
		next = cur.Clone()
	}
	var conflicts []Conflict
	for _, name := range sortedKeys(vals) {
		f := e.Field(name)
		cv := vals[name]
		sv := next.Values[name]
		fc, known := next.FieldClocks()[name]
		switch {
		case !known:
			// First write of this field.
		case h.Compare(fc.HLC) < 0:
			if !reflect.DeepEqual(sv, cv) {
				conflicts = append(conflicts, Conflict{Field: name, Kept: KeptServer, ServerValue: f.ValueJSON(sv), ClientValue: f.ValueJSON(cv)}.wroteServerSide(fc, known))
			}
			continue
		case baseVersion != nil && fc.Version > *baseVersion && fc.Device != h.Device && !reflect.DeepEqual(sv, cv):
			conflicts = append(conflicts, Conflict{Field: name, Kept: KeptClient, ServerValue: f.ValueJSON(sv), ClientValue: f.ValueJSON(cv)}.wroteServerSide(fc, known))
		}
		next.Values[name] = cv
		next.Clocks[name] = FieldClock{HLC: h, Version: version}
	}
	return next, conflicts
}

// MergeDelete applies a delete stamped h to cur. Delete always wins; fields
// that another device wrote later than h, or since baseVersion, lost their
// edit and are reported (kept: client, the delete).
func MergeDelete(e *Entity, cur *Record, h HLC, baseVersion *int64) (*Record, []Conflict) {
	next := cur.Clone()
	next.Deleted = true
	var conflicts []Conflict
	clocks := cur.FieldClocks()
	for _, name := range sortedKeys(clocks) {
		fc := clocks[name]
		if fc.Device == h.Device {
			continue
		}
		if fc.HLC.Compare(h) > 0 || (baseVersion != nil && fc.Version > *baseVersion) {
			f := e.Field(name)
			if f == nil {
				continue
			}
			conflicts = append(conflicts, Conflict{Field: name, Kept: KeptClient, ServerValue: f.ValueJSON(cur.Values[name]), ClientValue: json.RawMessage("null")}.wroteServerSide(fc, true))
		}
	}
	return next, conflicts
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// MarshalJSON stores a clock compactly as [ms, counter, device, version]:
// every record carries one per field written.
func (fc FieldClock) MarshalJSON() ([]byte, error) {
	return fc.appendJSON(make([]byte, 0, 64)), nil
}

func (fc FieldClock) appendJSON(b []byte) []byte {
	b = append(b, '[')
	b = strconv.AppendInt(b, fc.MS, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, fc.Counter, 10)
	b = append(b, ',')
	b = AppendString(b, fc.Device)
	b = append(b, ',')
	b = strconv.AppendInt(b, fc.Version, 10)
	return append(b, ']')
}

// UnmarshalJSON reads the form MarshalJSON writes.
func (fc *FieldClock) UnmarshalJSON(b []byte) error {
	var a [4]json.RawMessage
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("field clock: %w", err)
	}
	for i, dst := range []any{&fc.MS, &fc.Counter, &fc.Device, &fc.Version} {
		if err := json.Unmarshal(a[i], dst); err != nil {
			return fmt.Errorf("field clock: %w", err)
		}
	}
	return nil
}
