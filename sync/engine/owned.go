package engine

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// Server-derived columns a client sends back.
//
// Apps mirror the records they pull, server-owned columns included, and
// client libraries give every column of a local schema a value: WatermelonDB
// sends "" for an unset string, 0 for an unset number, false for an unset
// boolean; ORMs echo the whole row on every update. Such a value is not an
// attempt to write the column, and refusing it would refuse the rep's real
// edits in the same record. So a server-owned field (Access ServerOwned or
// SelfOnly, and the audit fields id, version, created_at, updated_at,
// deleted) is ignored, never merged, when it carries
//
//   - a client library's empty default: null, "", 0 or false;
//   - the value the server holds for the record; or
//   - the value the server sets for it in this very write (Prepare and
//     Validate ran: a rep's ride-along request names the rep's own manager
//     and requested_by "rep").
//
// Any other value is a real attempt to set it and rejects the mutation
// (server_owned_field). Times are compared to the millisecond, the
// precision WatermelonDB keeps.

// isEmptyDefault reports whether raw is a client library's empty value.
func isEmptyDefault(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "", "null", `""`, "false":
		return true
	}
	if n, err := ParseNumber(raw); err == nil && n == 0 {
		return true
	}
	return false
}

// ownedValue parses a server-owned field's value for comparison; ok is
// false when it cannot be parsed, which can equal nothing the server sets.
func ownedValue(f *Field, raw json.RawMessage, now time.Time) (any, bool) {
	g := *f
	g.Required = false
	v, err := g.Parse(raw, now)
	return v, err == nil
}

// sameOwned compares a sent server-owned value with a server value.
func sameOwned(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.UnixMilli() == tb.UnixMilli()
	}
	return Equal(a, b)
}

// auditValue is the value of an audit field the client may echo: what the
// stored record holds (nothing before it exists).
func auditValue(name string, id uuid.UUID, cur *Record) (any, bool) {
	if name == "id" {
		return id, true
	}
	if cur == nil {
		return nil, false
	}
	switch name {
	case "version":
		return cur.Version, true
	case "created_at":
		return cur.CreatedAt, true
	case "updated_at":
		return cur.UpdatedAt, true
	case "deleted":
		return cur.Deleted, true
	}
	return nil, false
}

// sentAudit reports whether raw echoes the audit field's held value.
func sentAudit(name string, raw json.RawMessage, id uuid.UUID, cur *Record) bool {
	held, ok := auditValue(name, id, cur)
	if !ok {
		return false
	}
	switch h := held.(type) {
	case uuid.UUID:
		var s string
		return json.Unmarshal(raw, &s) == nil && s == h.String()
	case int64:
		n, err := ParseNumber(raw)
		return err == nil && n == float64(h)
	case bool:
		var b bool
		return json.Unmarshal(raw, &b) == nil && b == h
	case time.Time:
		var s string
		if json.Unmarshal(raw, &s) == nil {
			t, err := time.Parse(time.RFC3339Nano, s)
			return err == nil && t.UnixMilli() == h.UnixMilli()
		}
		n, err := ParseNumber(raw) // Unix milliseconds, as WatermelonDB keeps them
		return err == nil && int64(n) == h.UnixMilli()
	}
	return false
}

// checkOwned rejects the server-owned values a mutation sent that are
// neither held by cur nor set in next (see above).
func checkOwned(owned map[string]any, cur, next *Record) error {
	for _, name := range sortedKeys(owned) {
		v := owned[name]
		if cur != nil && sameOwned(v, cur.Values[name]) {
			continue
		}
		if next != nil && sameOwned(v, next.Values[name]) {
			continue
		}
		return ownedErr(name)
	}
	return nil
}

func ownedErr(name string) error {
	return models.FieldErr(CodeServerOwned, name+" is set by the server", name, "is set by the server")
}
