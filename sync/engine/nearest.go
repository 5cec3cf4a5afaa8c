package engine

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
)

// Mark is a place in the order of an entity's records by a Time field,
// ties broken by id: the order Nearest walks. Two records never share a
// Mark, so "the record before this one" is always well defined, however
// many records share a time.
type Mark struct {
	At time.Time
	ID uuid.UUID
}

// MarkOf is the place of r in the order of field, and whether r has one
// (a record whose field is null has none).
func MarkOf(r *Record, field string) (Mark, bool) {
	t, ok := r.TimeAt(field)
	return Mark{At: t, ID: r.ID}, ok
}

// Less reports whether m comes before o.
func (m Mark) Less(o Mark) bool {
	if !m.At.Equal(o.At) {
		return m.At.Before(o.At)
	}
	return bytes.Compare(m.ID[:], o.ID[:]) < 0
}

// Direction says which way Nearest looks from its pivot.
type Direction int

const (
	// Before looks at the records strictly before the pivot, nearest
	// (latest) first.
	Before Direction = iota
	// After looks at the records strictly after the pivot, nearest
	// (earliest) first.
	After
)

// NotNull, as a value of a where map, matches a field that is set.
type NotNull struct{}

// Nearest returns up to limit live records of an entity matching where
// that lie strictly on dir's side of pivot in the order of the Time field
// (ties by id), nearest first, as the batch now sees them. The store
// answers it from an index with ORDER BY … LIMIT: it reads about limit
// rows however many records lie beyond them, so a rule that needs a
// record's neighbours costs a push O(log n) per look-up, not O(the
// records in a window).
func (c *Context) Nearest(entity string, where map[string]any, field string, pivot Mark, dir Direction, limit int) ([]*Record, error) {
	out, err := c.nearest(entity, where, field, dir, []Mark{pivot}, limit)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// NearestEach returns, for each pivot, the nearest record Nearest would
// return first, or nil where there is none: one call for a batch's worth
// of look-ups.
func (c *Context) NearestEach(entity string, where map[string]any, field string, pivots []Mark, dir Direction) ([]*Record, error) {
	lists, err := c.nearest(entity, where, field, dir, pivots, 1)
	if err != nil {
		return nil, err
	}
	out := make([]*Record, len(pivots))
	for i, l := range lists {
		if len(l) > 0 {
			out[i] = l[0]
		}
	}
	return out, nil
}

func (c *Context) nearest(entity string, where map[string]any, field string, dir Direction, pivots []Mark, limit int) ([][]*Record, error) {
	e := c.batch.en.entities[entity]
	if e == nil {
		return nil, fmt.Errorf("nearest: unknown entity %q", entity)
	}
	if f := e.Field(field); f == nil || f.Type != Time {
		return nil, fmt.Errorf("nearest: %s.%s is not a time field", entity, field)
	}
	if limit < 1 || len(pivots) == 0 {
		return make([][]*Record, len(pivots)), nil
	}
	// The stored copies of the records the batch wrote are stale: the
	// store leaves out those that existed before the batch (records it
	// creates are not stored yet), and the batch's own state of every
	// record it wrote that matches is merged in. Only the owner's dirty
	// records are looked at when where names the owner.
	keep := func(r *Record) bool { _, ok := r.TimeAt(field); return ok }
	var skip []uuid.UUID
	var mine []*Record
	for _, k := range c.batch.written.keys(e, where) {
		if c.batch.stored[k] {
			skip = append(skip, k.ID)
		}
		if r := c.batch.state[k]; matches(r, where, keep) {
			mine = append(mine, r)
		}
	}
	stored, err := c.batch.tx.Nearest(c, e, where, field, dir, pivots, limit, skip)
	if err != nil {
		return nil, err
	}
	// The batch keeps what it read, as Lookup does: a rule that goes on
	// to Put one of them finds it without reading it again.
	for i, l := range stored {
		for j, r := range l {
			k := Key{entity, r.ID}
			if cur, ok := c.batch.state[k]; ok {
				if cur == nil {
					continue // cannot happen: the store just read it
				}
				l[j] = cur
			} else {
				c.batch.state[k] = r
			}
		}
		stored[i] = l
	}
	if len(mine) == 0 {
		return stored, nil
	}
	marks := make([]Mark, len(mine))
	for i, r := range mine {
		marks[i], _ = MarkOf(r, field)
	}
	idx := make([]int, len(mine))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return marks[idx[a]].Less(marks[idx[b]]) })
	out := make([][]*Record, len(pivots))
	for i, p := range pivots {
		// The batch's records on dir's side of p, nearest first.
		var own []*Record
		if dir == Before {
			n := sort.Search(len(idx), func(j int) bool { return !marks[idx[j]].Less(p) })
			for j := n - 1; j >= 0 && len(own) < limit; j-- {
				own = append(own, mine[idx[j]])
			}
		} else {
			n := sort.Search(len(idx), func(j int) bool { return p.Less(marks[idx[j]]) })
			for j := n; j < len(idx) && len(own) < limit; j++ {
				own = append(own, mine[idx[j]])
			}
		}
		out[i] = mergeNearest(stored[i], own, field, dir, limit)
	}
	return out, nil
}

// mergeNearest merges two lists ordered nearest first into the nearest
// limit records.
func mergeNearest(a, b []*Record, field string, dir Direction, limit int) []*Record {
	out := make([]*Record, 0, min(limit, len(a)+len(b)))
	nearer := func(x, y *Record) bool {
		mx, _ := MarkOf(x, field)
		my, _ := MarkOf(y, field)
		if dir == Before {
			return my.Less(mx)
		}
		return mx.Less(my)
	}
	for len(out) < limit && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || (len(a) > 0 && nearer(a[0], b[0])) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}
