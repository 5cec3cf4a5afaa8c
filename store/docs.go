package store

import (
	"maps"
	"slices"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/sync/engine"
)

// pullDocs is pullDoc of each of recs, encoded into one buffer sized
// after the first, which the docs share as strings: a push of 1,000
// allocates its docs' bytes once, not a buffer and a copy per record.
func pullDocs(e *engine.Entity, recs []*engine.Record, precision time.Duration) []string {
	if len(recs) == 0 {
		return nil
	}
	ends := make([]int, len(recs))
	b := pullDoc(make([]byte, 0, 1024), e, recs[0], precision)
	ends[0] = len(b)
	b = slices.Grow(b, (len(b)+64)*(len(recs)-1))
	for i, r := range recs[1:] {
		b = pullDoc(b, e, r, precision)
		ends[i+1] = len(b)
	}
	// The buffer is never written again: its bytes can be the strings'.
	all := unsafe.String(unsafe.SliceData(b), len(b))
	out := make([]string, len(recs))
	start := 0
	for i, end := range ends {
		out[i], start = all[start:end], end
	}
	return out
}

// pullDoc appends the pull encoding of r as it will be stored (the doc
// column of its feed row, migration 00015). A tombstone has one too,
// though a pull sends it without data: the page reads its updated_at
// there. It must be byte for byte what a pull that loads the stored row
// would send: so times are cut to the precision the database keeps
// (PostgreSQL keeps microseconds, and pgx truncates to them) and values
// are taken in the types a load returns. TestPullDocsMatchRecords holds
// the two to it on both databases.
func pullDoc(b []byte, e *engine.Entity, r *engine.Record, precision time.Duration) []byte {
	v := *r
	v.CreatedAt, v.UpdatedAt = r.CreatedAt.Truncate(precision), r.UpdatedAt.Truncate(precision)
	cloned := false
	set := func(name string, val any) {
		if !cloned {
			v.Values, cloned = maps.Clone(r.Values), true
		}
		v.Values[name] = val
	}
	for i := range e.Fields {
		f := &e.Fields[i]
		if f.Hidden {
			continue
		}
		switch x := r.Values[f.Name].(type) {
		case time.Time:
			if t := x.Truncate(precision); !t.Equal(x) {
				set(f.Name, t)
			}
		case *uuid.UUID:
			if x == nil {
				set(f.Name, nil)
			} else {
				set(f.Name, *x)
			}
		}
	}
	return e.MarshalRecord(b, &v)
}
