package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/sync/engine"
)

// dueSQL is the condition and the age expression of q over e's table.
// They are the very terms of the partial indexes the migrations declare
// for each query a job makes (00012: visits_location_due,
// ride_alongs_location_due): PostgreSQL and SQLite use a partial index
// only when the query's WHERE holds its predicate term for term, so this
// text and the migrations' must not drift apart (TestDueUsesIndex).
func dueSQL(q engine.DueQuery) (cond, age string) {
	age = "created_at"
	if len(q.At) > 0 {
		age = "COALESCE(" + strings.Join(q.At, ", ") + ", created_at)"
	}
	notNull := make([]string, len(q.NotNull))
	for i, f := range q.NotNull {
		notNull[i] = f + " IS NOT NULL"
	}
	cond = q.Mark + " IS NULL AND NOT deleted AND (" + strings.Join(notNull, " OR ") + ")"
	return cond, age
}

// Due returns the records a server job still owes a rewrite (see
// engine.DueQuery), oldest first. Field names come from the entity
// declarations, checked by the engine, never from clients.
//
// On PostgreSQL a push may be writing one of them right now: the job takes
// each record's push lock without waiting (tryLockRecords), skips those a
// push holds, and reads the rest again under their locks, so that its
// rewrite is made over the latest committed state and no push's edit is
// lost. A record that stopped qualifying meanwhile (deleted, marked) is
// left out.
func (t *syncTx) Due(ctx context.Context, e *engine.Entity, q engine.DueQuery) ([]*engine.Record, error) {
	cond, age := dueSQL(q)
	var ids []uuid.UUID
	err := t.tx.Raw(`SELECT id FROM `+e.Name+` WHERE org_id = ? AND `+cond+` AND `+age+` < ? ORDER BY `+age+`, id LIMIT ?`,
		t.p.OrgID.String(), q.Before.UTC(), q.Limit).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("due %s: %w", e.Name, err)
	}
	locked, err := t.db.dialect.tryLockRecords(t, e, ids)
	if err != nil {
		return nil, err
	}
	recs, err := t.load(e, locked, true)
	if err != nil {
		return nil, err
	}
	out := make([]*engine.Record, 0, len(recs))
	for _, id := range ids {
		if r := recs[id]; r != nil && !r.Deleted && r.Values[q.Mark] == nil {
			out = append(out, r)
		}
	}
	return out, nil
}
