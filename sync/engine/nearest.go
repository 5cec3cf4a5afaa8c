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

// Look is one neighbour look-up of Context.NearestAll: the nearest Limit
// live records of Entity matching Where on Dir's side of each pivot, in
// the order of the Time field Field (ties by id).
type Look struct {
	Entity string
	Where  map[string]any
	Field  string
	Dir    Direction
	Pivots []Mark
	Limit  int
}

// StoreLook is a Look as the store answers it (Tx.Nearest): the records
// whose ids are in Skip are left out.
type StoreLook struct {
	Entity *Entity
	Where  map[string]any
	Field  string
	Dir    Direction
	Pivots []Mark
	Limit  int
	Skip   []uuid.UUID
}

// Nearest returns up to limit live records of an entity matching where
// that lie strictly on dir's side of pivot in the order of the Time field
// (ties by id), nearest first, as the batch now sees them. The store
// answers it from an index with ORDER BY … LIMIT: it reads about limit
// rows however many records lie beyond them, so a rule that needs a
// record's neighbours costs a push O(log n) per look-up, not O(the
// records in a window).
func (c *Context) Nearest(entity string, where map[string]any, field string, pivot Mark, dir Direction, limit int) ([]*Record, error) {
	out, err := c.NearestAll([]Look{{Entity: entity, Where: where, Field: field, Dir: dir, Pivots: []Mark{pivot}, Limit: limit}})
	if err != nil {
		return nil, err
	}
	return out[0][0], nil
}

// NearestEach returns, for each pivot, the nearest record Nearest would
// return first, or nil where there is none: one call for a batch's worth
// of look-ups.
func (c *Context) NearestEach(entity string, where map[string]any, field string, pivots []Mark, dir Direction) ([]*Record, error) {
	lists, err := c.NearestAll([]Look{{Entity: entity, Where: where, Field: field, Dir: dir, Pivots: pivots, Limit: 1}})
	if err != nil {
		return nil, err
	}
	return First(lists[0]), nil
}

// First is the nearest record of each list, or nil where a list is empty.
func First(lists [][]*Record) []*Record {
	out := make([]*Record, len(lists))
	for i, l := range lists {
		if len(l) > 0 {
			out[i] = l[0]
		}
	}
	return out
}

// NearestAll answers several look-ups as Nearest does each, in one call
// to the store: on PostgreSQL one round trip for all of them, which a
// push makes while it holds its transaction open. It returns, for each
// look-up, a list per pivot.
func (c *Context) NearestAll(looks []Look) ([][][]*Record, error) {
	out := make([][][]*Record, len(looks))
	var (
		ask  []StoreLook
		asks []int // ask[j] answers looks[asks[j]]
		mine = make([][]*Record, len(looks))
	)
	for i, l := range looks {
		e := c.batch.en.entities[l.Entity]
		if e == nil {
			return nil, fmt.Errorf("nearest: unknown entity %q", l.Entity)
		}
		if f := e.Field(l.Field); f == nil || f.Type != Time {
			return nil, fmt.Errorf("nearest: %s.%s is not a time field", l.Entity, l.Field)
		}
		out[i] = make([][]*Record, len(l.Pivots))
		if l.Limit < 1 || len(l.Pivots) == 0 {
			continue
		}
		// The stored copies of the records the batch wrote are stale:
		// the store leaves out those that existed before the batch
		// (records it creates are not stored yet), and the batch's own
		// state of every record it wrote that matches is merged in. Only
		// the owner's dirty records are looked at when where names the
		// owner.
		keep := func(r *Record) bool { _, ok := r.TimeAt(l.Field); return ok }
		var skip []uuid.UUID
		for _, k := range c.batch.written.keys(e, l.Where) {
			if c.batch.stored[k] {
				skip = append(skip, k.ID)
			}
			if r := c.batch.state[k]; matches(r, l.Where, keep) {
				mine[i] = append(mine[i], r)
			}
		}
		ask = append(ask, StoreLook{Entity: e, Where: l.Where, Field: l.Field, Dir: l.Dir, Pivots: l.Pivots, Limit: l.Limit, Skip: skip})
		asks = append(asks, i)
	}
	if len(ask) == 0 {
		return out, nil
	}
	stored, err := c.batch.tx.Nearest(c, ask)
	if err != nil {
		return nil, err
	}
	for j, i := range asks {
		out[i] = c.mergeOwn(looks[i], stored[j], mine[i])
	}
	return out, nil
}

// mergeOwn keeps what the store read for look-up l in the batch, and
// merges the batch's own matching records, mine, into each pivot's list.
func (c *Context) mergeOwn(l Look, stored [][]*Record, mine []*Record) [][]*Record {
	// The batch keeps what it read, as Lookup does: a rule that goes on
	// to Put one of them finds it without reading it again.
	for i, list := range stored {
		for j, r := range list {
			k := Key{l.Entity, r.ID}
			if cur, ok := c.batch.state[k]; ok {
				if cur == nil {
					continue // cannot happen: the store just read it
				}
				list[j] = cur
			} else {
				c.batch.state[k] = r
			}
		}
		stored[i] = list
	}
	if len(mine) == 0 {
		return stored
	}
	marks := make([]Mark, len(mine))
	for i, r := range mine {
		marks[i], _ = MarkOf(r, l.Field)
	}
	idx := make([]int, len(mine))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return marks[idx[a]].Less(marks[idx[b]]) })
	out := make([][]*Record, len(l.Pivots))
	for i, p := range l.Pivots {
		// The batch's records on dir's side of p, nearest first.
		var own []*Record
		if l.Dir == Before {
			n := sort.Search(len(idx), func(j int) bool { return !marks[idx[j]].Less(p) })
			for j := n - 1; j >= 0 && len(own) < l.Limit; j-- {
				own = append(own, mine[idx[j]])
			}
		} else {
			n := sort.Search(len(idx), func(j int) bool { return p.Less(marks[idx[j]]) })
			for j := n; j < len(idx) && len(own) < l.Limit; j++ {
				own = append(own, mine[idx[j]])
			}
		}
		out[i] = mergeNearest(stored[i], own, l.Field, l.Dir, l.Limit)
	}
	return out
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
