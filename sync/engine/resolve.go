package engine

import "reflect"

// Rules that span fields under concurrent edits.
//
// A mutation is judged by the fields it carries, over the record as its
// device last saw it. When the merged record breaks a rule that spans
// fields (an order value belongs to an order outcome) only because another
// device concurrently changed one of those fields, the mutation is not at
// fault: rejecting it would lose the device's undisputed edits (a rep's
// notes) and, on WatermelonDB, block the record forever. The entity's
// Validate then resolves the record deterministically instead (Resolve),
// by a rule documented with the invariant, and the conflict is logged for
// the rep and their manager. Validate tells the two cases apart with
// Concurrent.

// applying is what hooks may learn of the client mutation being applied.
type applying struct {
	h        HLC     // its clock, with the device
	base     *int64  // the version the device last saw, if it said
	cur      *Record // the record as stored before it
	resolved []Conflict
}

// Concurrent reports whether the value of field in r, the merged record
// of the mutation being applied, was written by another device that the
// pushing device had not seen: its clock is another device's, and newer
// than the mutation's base_version, or any other device's when the
// mutation names none (WatermelonDB pushes, whose per-column merge of a
// pull combines the device's changed columns with others' values). A
// value the mutation itself wrote, the device wrote earlier, the server
// wrote without a clock, or the device saw at base_version is not.
func (c *Context) Concurrent(r *Record, field string) bool {
	if c.mut == nil {
		return false
	}
	fc, ok := r.FieldClocks()[field]
	if !ok || fc.Device == "" || fc.Device == c.mut.h.Device {
		return false
	}
	return c.mut.base == nil || fc.Version == 0 || fc.Version > *c.mut.base
}

// Resolve sets field of r, the merged record, to v as the resolution of a
// rule broken by concurrent edits: stamped with the mutation's clock, so
// every replica agrees, and logged as a conflict. The conflict's server
// value is the stored one, its client value what the mutation sent (or v
// when it sent none); kept is "server" when the mutation's own value gave
// way, "client" when the stored one did.
func (c *Context) Resolve(r *Record, field string, v any) {
	f := c.Entity.Field(field)
	var stored any
	if c.mut.cur != nil && !c.mut.cur.Deleted {
		stored = c.mut.cur.Values[field]
	}
	sent, wasSent := c.Sent[field]
	cf := Conflict{Field: field, Kept: KeptClient, ServerValue: f.ValueJSON(stored), ClientValue: f.ValueJSON(v)}
	if c.mut.cur != nil {
		fc, known := c.mut.cur.FieldClocks()[field]
		cf = cf.wroteServerSide(fc, known)
	}
	if wasSent {
		cf.Kept, cf.ClientValue = KeptServer, f.ValueJSON(sent)
	}
	c.mut.resolved = append(c.mut.resolved, cf)
	r.Values[field] = v
	r.FieldClocks()[field] = FieldClock{HLC: c.mut.h}
}

// Disputed logs, alongside a resolution, the field whose concurrent edit
// decided it (the outcome that won), unless the merge reported it already
// or the two sides agree.
func (c *Context) Disputed(r *Record, field string) {
	if c.mut == nil || c.mut.cur == nil || c.mut.cur.Deleted {
		return
	}
	sent, wasSent := c.Sent[field]
	stored := c.mut.cur.Values[field]
	if !wasSent || reflect.DeepEqual(sent, stored) {
		return
	}
	f := c.Entity.Field(field)
	kept := KeptServer
	if reflect.DeepEqual(r.Values[field], sent) {
		kept = KeptClient
	}
	fc, known := c.mut.cur.FieldClocks()[field]
	c.mut.resolved = append(c.mut.resolved, Conflict{Field: field, Kept: kept, ServerValue: f.ValueJSON(stored), ClientValue: f.ValueJSON(sent)}.wroteServerSide(fc, known))
}

// addResolved adds the resolutions' conflicts to the merge's, each field
// once.
func (m *applying) addResolved(conflicts []Conflict) []Conflict {
	for _, rc := range m.resolved {
		dup := false
		for _, c := range conflicts {
			if c.Field == rc.Field {
				dup = true
				break
			}
		}
		if !dup {
			conflicts = append(conflicts, rc)
		}
	}
	return conflicts
}
