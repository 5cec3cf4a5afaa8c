package engine

import (
	"fmt"
	"time"
)

// DueQuery selects the records a server job still owes a rewrite, oldest
// first: live records of an entity whose hidden Time field Mark is null,
// that have at least one of the NotNull fields set, and whose age — the
// first non-null of the At Time fields, else created_at — lies before
// Before. At most Limit are returned. Mark is what makes the job
// idempotent: a job sets it on every record it rewrites, and the query
// never returns that record again. A store may back the query with a
// partial index whose predicate and key are exactly these terms (see
// store/migrations 00012).
type DueQuery struct {
	Mark    string
	NotNull []string
	At      []string
	Before  time.Time
	Limit   int
}

// Due returns the records q selects, as the batch now sees them. They are
// remembered by the batch, so rewriting them reads nothing more.
func (c *Context) Due(entity string, q DueQuery) ([]*Record, error) {
	e := c.batch.en.entities[entity]
	if e == nil {
		return nil, fmt.Errorf("due: unknown entity %q", entity)
	}
	if f := e.Field(q.Mark); f == nil || f.Type != Time || !f.Hidden {
		return nil, fmt.Errorf("due: %s.%s is not a hidden time field", entity, q.Mark)
	}
	if len(q.NotNull) == 0 || q.Limit <= 0 {
		return nil, fmt.Errorf("due: a query names NotNull fields and a positive Limit")
	}
	for _, name := range append(append([]string(nil), q.NotNull...), q.At...) {
		if e.Field(name) == nil {
			return nil, fmt.Errorf("due: %s has no field %q", entity, name)
		}
	}
	for _, name := range q.At {
		if e.Field(name).Type != Time {
			return nil, fmt.Errorf("due: %s.%s is not a time field", entity, name)
		}
	}
	recs, err := c.batch.tx.Due(c, e, q)
	if err != nil {
		return nil, err
	}
	out := recs[:0]
	for _, r := range recs {
		k := Key{entity, r.ID}
		if cur, ok := c.batch.state[k]; ok {
			// The batch wrote it already: judge its current state.
			if cur == nil || cur.Deleted || cur.Values[q.Mark] != nil {
				continue
			}
			r = cur
		} else {
			c.batch.state[k] = r
		}
		out = append(out, r)
	}
	return out, nil
}

// Rewrite writes r as the server's correction of a stored record: like Put
// it gets a new version at commit and reaches every device's pull, but no
// AfterWrite hook runs — nothing that was derived from the record (a
// check-in's verdict, score entries, notifications) is judged again, and
// no notification fires. Use it for changes that are not business events,
// such as coarsening or erasing personal data; use Put for everything
// else. The record must exist: get it, Clone it, change the clone, and
// Rewrite the clone. Field clocks are left as they were, so a device's
// later edit of a rewritten field wins as any later edit does.
func (c *Context) Rewrite(entity string, r *Record) error {
	e := c.batch.en.entities[entity]
	if e == nil {
		return fmt.Errorf("rewrite: unknown entity %q", entity)
	}
	cur, err := c.Get(entity, r.ID)
	if err != nil {
		return err
	}
	if cur == nil {
		return fmt.Errorf("rewrite: %s %s does not exist", entity, r.ID)
	}
	if r.Values == nil {
		r.Values = map[string]any{}
	}
	r.FieldClocks()
	c.batch.record(e, r)
	return nil
}
