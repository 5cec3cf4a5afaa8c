package engine

import "math"

// dropNonFinite stores null instead of NaN or ±Inf in a record's Float
// fields, and logs it. JSON has no such values: a pull carrying one fails
// to parse on every device that may see the record, so none is ever
// written. Clients cannot send one (Field.Parse refuses them) and the
// rules refuse the inputs that would compute one at their source (contest
// targets, order value units); this is the last line, for a rule's bug.
func (b *batch) dropNonFinite(e *Entity, recs []*Record) {
	for i := range e.Fields {
		f := &e.Fields[i]
		if f.Type != Float {
			continue
		}
		for _, r := range recs {
			if x, ok := r.Values[f.Name].(float64); ok && (math.IsNaN(x) || math.IsInf(x, 0)) {
				b.en.log.Error("non-finite value not stored", "entity", e.Name, "id", r.ID, "field", f.Name, "value", x)
				r.Values[f.Name] = nil
			}
		}
	}
}
