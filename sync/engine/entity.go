package engine

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// FieldType is the type of a field on the wire and in storage.
type FieldType int

const (
	String FieldType = iota // a short string (MaxLen, default 200 characters)
	Text                    // free text (MaxLen, default 4000 characters)
	Enum                    // a string from Field.Enum
	UUID                    // a UUID (stored as uuid / TEXT)
	Time                    // an RFC 3339 instant, stored in UTC
	Float                   // a number within [Min, Max]
	Int                     // an integer within [Min, Max]
	Money                   // a non-negative amount with at most two decimals, stored as integer cents
	Bool                    // true or false
	JSON                    // any JSON value in valid UTF-8, stored as text; entities validate its shape
)

// Access says who may write a field.
type Access int

const (
	// ClientWritable fields are written by clients and merged per field.
	ClientWritable Access = iota
	// ServerOwned fields are set by the server. A client that sends one
	// with the value the server holds or sets, or with an empty default
	// (null, "", 0, false), has it ignored; any other value rejects its
	// mutation (server_owned_field). See owned.go.
	ServerOwned
	// SelfOnly fields are set by the server to the caller; a client may
	// send the value the server would set (its own id) or an empty
	// default, nothing else.
	SelfOnly
)

// Field declares one field of an entity. Its Name is the wire name and the
// column name.
type Field struct {
	Name     string
	Type     FieldType
	Access   Access
	Required bool // a create must supply it (after Default)
	Default  any  // the value a create that omits the field takes
	Enum     []string
	MaxLen   int
	Min, Max float64
	// NotFuture bounds a Time to now plus a day: a visit cannot start next
	// week, whatever the phone's clock says.
	NotFuture bool
	// Ref names the entity a UUID field points at; pushes prefetch the
	// referenced records in one query.
	Ref string
	// Hidden fields are stored for the server's own queries and never sent
	// or accepted on the wire.
	Hidden bool
}

// Visibility says how widely a record is shared.
type Visibility int

const (
	// VisOrg records are visible to everyone in the organisation.
	VisOrg Visibility = 0
	// VisTeam records are visible to everyone in their team and admins.
	VisTeam Visibility = 1
	// VisOwner records are visible to their owner, the owner's team's
	// manager and admins.
	VisOwner Visibility = 2
	// VisPrivate records are visible to their owner alone.
	VisPrivate Visibility = 3
)

// Scope names who may see a record.
type Scope struct {
	TeamID     *uuid.UUID
	UserID     *uuid.UUID
	Visibility Visibility
}

// Visible reports whether p may see a record with scope s.
func (s Scope) Visible(p models.Principal) bool {
	own := s.UserID != nil && *s.UserID == p.UserID
	team := s.TeamID != nil && p.TeamID != nil && *s.TeamID == *p.TeamID
	switch s.Visibility {
	case VisOrg:
		return true
	case VisPrivate:
		return own
	case VisTeam:
		return own || team || p.Role == models.RoleAdmin
	}
	return own || p.Role == models.RoleAdmin || (team && p.Role == models.RoleManager)
}

// Entity declares a synced record type.
type Entity struct {
	Name   string // wire name and table name
	Fields []Field
	// ReadOnly entities are computed by the server; pushes are rejected.
	ReadOnly bool
	// Scope says who may see r. It must depend only on server-owned fields.
	Scope func(r *Record) Scope
	// Prepare runs before a create or an update is merged: it authorises
	// the caller (not_found for records they may not see) and sets
	// server-owned fields of new records (r.Values). old is nil on create.
	Prepare func(c *Context, old, r *Record) error
	// Validate checks the merged record as a whole (cross-field rules,
	// references). It runs after field values were parsed and defaulted.
	Validate func(c *Context, old, r *Record) error
	// AfterWrite hooks run after a record was written, by a push or by the
	// server, inside the same transaction: domain rules put the records
	// that follow from the change (score entries, standings, notifications)
	// with c.Put. old is nil on create; r.Deleted is set on delete. Each
	// concern adds its own hook (see OnWrite).
	AfterWrite []Hook
	// Owner names the UUID field that says whose a record is, if one
	// does: a batch indexes its writes by it, so that hooks reading one
	// owner's records back see the batch's own writes without scanning
	// all of them.
	Owner string

	byName map[string]*Field
}

// Hook is a rule that runs after a record is written.
type Hook func(c *Context, old, r *Record) error

// OnWrite adds a hook to the named entity of a set.
func OnWrite(entities []*Entity, name string, h Hook) {
	for _, e := range entities {
		if e.Name == name {
			e.AfterWrite = append(e.AfterWrite, h)
			return
		}
	}
	panic("OnWrite: no entity " + name)
}

// Field returns the named field, or nil.
func (e *Entity) Field(name string) *Field {
	if e.byName == nil {
		e.byName = make(map[string]*Field, len(e.Fields))
		for i := range e.Fields {
			e.byName[e.Fields[i].Name] = &e.Fields[i]
		}
	}
	return e.byName[name]
}

// Record is one stored record of an entity.
type Record struct {
	ID        uuid.UUID
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
	Deleted   bool
	// Values holds field values by name as Go values: string, int64,
	// float64, bool, time.Time, uuid.UUID (Money is int64 cents). A missing
	// or nil value is null.
	Values map[string]any
	// Clocks holds the stamp of the last accepted write of each field.
	Clocks map[string]FieldClock
	// CreatedBy is the device that created the record: the WatermelonDB
	// endpoint never sends a device its own creates back as "created".
	CreatedBy uuid.UUID

	// rawClocks holds the stored clocks until someone needs them: pulls
	// and the domain's range reads never do, and decoding them was most of
	// their cost.
	rawClocks []byte
}

// SetRawClocks gives a loaded record its stored clocks, decoded on first
// use.
func (r *Record) SetRawClocks(b []byte) { r.rawClocks, r.Clocks = b, nil }

// FieldClocks returns the record's clocks, decoding them if needed.
func (r *Record) FieldClocks() map[string]FieldClock {
	if r.Clocks == nil {
		r.Clocks = map[string]FieldClock{}
		if len(r.rawClocks) > 0 {
			// A clock that does not decode is treated as never written:
			// the next write of that field simply wins.
			_ = json.Unmarshal(r.rawClocks, &r.Clocks)
		}
		if r.Clocks == nil {
			// Stored clocks "null" decode to a nil map: callers write
			// into the map, and a nil one would panic (FuzzHLC found it).
			r.Clocks = map[string]FieldClock{}
		}
		r.rawClocks = nil
	}
	return r.Clocks
}

// ClocksJSON is the stored form of the record's clocks.
func (r *Record) ClocksJSON() ([]byte, error) {
	if r.Clocks == nil && r.rawClocks != nil {
		return r.rawClocks, nil
	}
	// Written by hand: encoding/json's reflection over the map was a
	// visible share of a push's CPU.
	b := make([]byte, 0, 2+len(r.Clocks)*80)
	b = append(b, '{')
	first := true
	for name, fc := range r.Clocks {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = AppendString(b, name)
		b = append(b, ':')
		b = fc.appendJSON(b)
	}
	return append(b, '}'), nil
}

// Clone returns a deep enough copy to merge into.
func (r *Record) Clone() *Record {
	c := *r
	c.Values = make(map[string]any, len(r.Values))
	for k, v := range r.Values {
		c.Values[k] = v
	}
	src := r.FieldClocks()
	c.Clocks = make(map[string]FieldClock, len(src))
	for k, v := range src {
		c.Clocks[k] = v
	}
	c.rawClocks = nil
	return &c
}

// UUIDValue returns a UUID field's value, or nil when null.
func (r *Record) UUIDValue(name string) *uuid.UUID {
	if id, ok := r.Values[name].(uuid.UUID); ok {
		return &id
	}
	return nil
}

// StringValue returns a string field's value, or "".
func (r *Record) StringValue(name string) string {
	s, _ := r.Values[name].(string)
	return s
}

// TimeAt returns a time field's value and whether it is set, without
// allocating: for sorts and loops over many records.
func (r *Record) TimeAt(name string) (time.Time, bool) {
	t, ok := r.Values[name].(time.Time)
	return t, ok
}

// TimeValue returns a time field's value, or nil.
func (r *Record) TimeValue(name string) *time.Time {
	if t, ok := r.Values[name].(time.Time); ok {
		return &t
	}
	return nil
}

// FloatValue returns a float field's value, or nil.
func (r *Record) FloatValue(name string) *float64 {
	if f, ok := r.Values[name].(float64); ok {
		return &f
	}
	return nil
}

// Parse turns a field's JSON value into its Go value, or explains why it
// cannot (a *models.Error naming the field).
func (f *Field) Parse(raw json.RawMessage, now time.Time) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		if f.Required {
			return nil, models.FieldInvalid(f.Name, "is required and cannot be null")
		}
		return nil, nil
	}
	switch f.Type {
	case String, Text, Enum:
		s, err := decodeString(raw)
		if err != nil {
			return nil, models.FieldInvalid(f.Name, "must be a string")
		}
		max := f.MaxLen
		if max == 0 {
			max = map[FieldType]int{String: 200, Text: 4000, Enum: 50}[f.Type]
		}
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			return nil, models.FieldInvalid(f.Name, "must be valid UTF-8 text")
		}
		if utf8.RuneCountInString(s) > max {
			return nil, models.FieldInvalid(f.Name, "must be at most %d characters", max)
		}
		if f.Type == Enum && !slices.Contains(f.Enum, s) {
			return nil, models.FieldInvalid(f.Name, "must be one of %s", strings.Join(f.Enum, ", "))
		}
		return s, nil
	case UUID:
		s, err := decodeString(raw)
		if err != nil {
			return nil, models.FieldInvalid(f.Name, "must be a UUID string")
		}
		id, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			return nil, models.FieldInvalid(f.Name, "must be a UUID")
		}
		return id, nil
	case Time:
		s, err := decodeString(raw)
		if err != nil {
			return nil, models.FieldInvalid(f.Name, "must be an RFC 3339 time string")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, models.FieldInvalid(f.Name, "must be an RFC 3339 time such as 2026-11-27T09:12:00Z")
		}
		return checkTime(f, t.UTC(), now)
	case Float, Int:
		n, err := ParseNumber(raw)
		if err != nil {
			return nil, models.FieldInvalid(f.Name, "must be a number")
		}
		if math.IsNaN(n) || n < f.Min || n > f.Max {
			return nil, models.FieldInvalid(f.Name, "must be between %g and %g", f.Min, f.Max)
		}
		if f.Type == Int {
			if n != math.Trunc(n) {
				return nil, models.FieldInvalid(f.Name, "must be a whole number")
			}
			return int64(n), nil
		}
		return n, nil
	case Money:
		cents, err := parseCents(raw)
		if err != nil {
			return nil, models.FieldInvalid(f.Name, "%s", err.Error())
		}
		if float64(cents) > f.Max*100 {
			return nil, models.FieldInvalid(f.Name, "must be at most %.0f", f.Max)
		}
		return cents, nil
	case Bool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, models.FieldInvalid(f.Name, "must be true or false")
		}
		return b, nil
	case JSON:
		max := f.MaxLen
		if max == 0 {
			max = 16 << 10
		}
		if len(raw) > max || !json.Valid(raw) {
			return nil, models.FieldInvalid(f.Name, "must be JSON of at most %d bytes", max)
		}
		// encoding/json takes any bytes inside a JSON string, and the
		// value is stored as it came: PostgreSQL's text refuses invalid
		// UTF-8 (a 500), and SQLite would hand it to every puller.
		if !utf8.Valid(raw) {
			return nil, models.FieldInvalid(f.Name, "must be valid UTF-8 text")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, models.FieldInvalid(f.Name, "must be JSON")
		}
		return buf.String(), nil
	}
	return nil, fmt.Errorf("field %s: unknown type %d", f.Name, f.Type)
}

// checkTime refuses instants beyond now+1 day where the field forbids the
// future, and any before 2000 or after 2100 (a unit or clock bug).
func checkTime(f *Field, t, now time.Time) (any, error) {
	if t.Year() < 2000 || t.Year() > 2100 {
		return nil, models.FieldInvalid(f.Name, "must be between the years 2000 and 2100")
	}
	if f.NotFuture && t.After(now.Add(24*time.Hour)) {
		return nil, models.FieldInvalid(f.Name, "is in the future (after %s)", now.Add(24*time.Hour).Format(time.RFC3339))
	}
	return t, nil
}

// ParseNumber reads a JSON number; a number in a string is refused.
func ParseNumber(raw json.RawMessage) (float64, error) {
	if len(raw) > 0 && raw[0] == '"' { // json.Number would take "12.5"
		return 0, fmt.Errorf("a string, not a number")
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, err
	}
	return n.Float64()
}

// parseCents reads a JSON number with at most two decimals into integer
// cents without going through floating point, so 0.1 + 0.2 stays 30 cents.
func parseCents(raw json.RawMessage) (int64, error) {
	if len(raw) > 0 && raw[0] == '"' {
		return 0, fmt.Errorf("must be a number, not a string")
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("must be a number")
	}
	s := n.String()
	if strings.ContainsAny(s, "eE") {
		f, err := n.Float64()
		if err != nil {
			return 0, fmt.Errorf("must be a number")
		}
		s = strconv.FormatFloat(f, 'f', -1, 64)
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("must not be negative")
	}
	whole, frac, _ := strings.Cut(s, ".")
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 2 {
		return 0, fmt.Errorf("must have at most two decimals")
	}
	if len(whole) > 13 {
		return 0, fmt.Errorf("is too large")
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must be a number")
	}
	for len(frac) < 2 {
		frac += "0"
	}
	c, _ := strconv.ParseInt(frac, 10, 64)
	return w*100 + c, nil
}

// AppendValue appends a field value as JSON.
func (f *Field) AppendValue(b []byte, v any) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	switch f.Type {
	case String, Text, Enum:
		s, _ := v.(string)
		return AppendString(b, s)
	case UUID:
		id, _ := v.(uuid.UUID)
		b = append(b, '"')
		b = appendUUID(b, id)
		return append(b, '"')
	case Time:
		t, _ := v.(time.Time)
		b = append(b, '"')
		b = t.UTC().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	case Float:
		x, _ := v.(float64)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			// JSON has no NaN or ±Inf: a pull must never fail to parse
			// because of one stored value (flush never writes one).
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, x, 'f', -1, 64)
	case Int:
		x, _ := v.(int64)
		return strconv.AppendInt(b, x, 10)
	case Money:
		c, _ := v.(int64)
		if c < 0 { // reversing ledger entries carry negative amounts
			b = append(b, '-')
			c = -c
		}
		b = strconv.AppendInt(b, c/100, 10)
		if c%100 != 0 {
			b = append(b, '.')
			b = append(b, byte('0'+c%100/10))
			if c%10 != 0 {
				b = append(b, byte('0'+c%10))
			}
		}
		return b
	case Bool:
		x, _ := v.(bool)
		return strconv.AppendBool(b, x)
	case JSON:
		s, _ := v.(string)
		if s == "" {
			return append(b, "null"...)
		}
		return append(b, s...)
	}
	return append(b, "null"...)
}

// decodeString is json.Unmarshal of raw into a string, without the
// reflection and allocations in the common case: printable ASCII without
// escapes, which is every id, time, enum and most text a phone sends
// (decoding fields took a visible share of a push's CPU). Anything else,
// escapes and multi-byte UTF-8 included, goes through encoding/json.
func decodeString(raw []byte) (string, error) {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		inner := raw[1 : n-1]
		plain := true
		for _, c := range inner {
			if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				plain = false
				break
			}
		}
		if plain {
			return string(inner), nil
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

// AppendString appends s as a JSON string.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			// Escapes, multi-byte UTF-8 and HTML-sensitive bytes take
			// encoding/json's path, so output matches it byte for byte.
			enc, _ := json.Marshal(s)
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendUUID appends id's canonical text form without allocating.
func appendUUID(b []byte, id uuid.UUID) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], id[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], id[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], id[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], id[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], id[10:])
	return append(b, buf[:]...)
}

// MarshalRecord encodes a record's full current state for a pull: id,
// version, audit times and every field, in declaration order.
func (e *Entity) MarshalRecord(b []byte, r *Record) []byte {
	b = append(b, `{"id":"`...)
	b = appendUUID(b, r.ID)
	b = append(b, `","version":`...)
	b = strconv.AppendInt(b, r.Version, 10)
	b = append(b, `,"created_at":"`...)
	b = r.CreatedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","updated_at":"`...)
	b = r.UpdatedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	for i := range e.Fields {
		f := &e.Fields[i]
		if f.Hidden {
			continue
		}
		// Field names are identifiers (the entity tests hold them to it):
		// they need no escaping.
		b = append(b, ',', '"')
		b = append(b, f.Name...)
		b = append(b, '"', ':')
		b = f.AppendValue(b, r.Values[f.Name])
	}
	return append(b, '}')
}

// DocUpdatedAt reads updated_at from a record's pull encoding
// (MarshalRecord), where it is the first member of that name: before it
// come only the id, the version and created_at, none of which can hold it.
func DocUpdatedAt(doc []byte) (time.Time, bool) {
	const key = `,"updated_at":"`
	i := bytes.Index(doc, []byte(key))
	if i < 0 {
		return time.Time{}, false
	}
	rest := doc[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, err == nil
}

// ValueJSON encodes one value of a field, for conflict reports.
func (f *Field) ValueJSON(v any) json.RawMessage {
	return json.RawMessage(f.AppendValue(nil, v))
}
