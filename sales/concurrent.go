package sales

import (
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Cross-field invariants under concurrent edits.
//
// Each rule below spans fields of one record. A mutation that breaks one
// by itself — judged by the fields it carries over the record as its
// device last saw it — is rejected as before. When the break comes only
// from another device's concurrent change of the other field (see
// engine.Context.Concurrent), the record is resolved by the rule's own
// resolution, every undisputed field the device wrote is applied, and the
// conflict (both values, who pushed, when) is listed at
// GET /v1/sync/conflicts for the rep and their manager. Each resolution
// gives the same record whichever of the two writes arrives first.
//
//   - Visits, "an order value belongs to an order outcome": the later
//     outcome wins (the per-field merge decides it by clock); an order
//     value that no longer belongs to it leaves the record, and is kept in
//     the conflict log, with the outcome that decided it.
//   - Visits, "a visit does not end before it starts": the later-written
//     of started_at and ended_at stands; the earlier-written leaves the
//     record (null) and is kept in the conflict log.
//   - Coordinate pairs (a visit's check-in and check-out, an account's
//     location, a manager's check-in), "set together": a pair left half
//     set by concurrent edits is cleared; the dropped half is kept in the
//     conflict log.

// checkOrderValue holds a visit's order value to an order outcome.
func checkOrderValue(c *engine.Context, r *engine.Record) error {
	if r.Values[fOrderValue] == nil || r.StringValue(fOutcome) == "order" {
		return nil
	}
	if !c.Concurrent(r, fOutcome) && !c.Concurrent(r, fOrderValue) {
		return models.FieldInvalid(fOrderValue, "is only recorded for an outcome of order")
	}
	c.Disputed(r, fOutcome)
	c.Resolve(r, fOrderValue, nil)
	return nil
}

// checkVisitTimes holds a visit's end to no earlier than its start.
func checkVisitTimes(c *engine.Context, r *engine.Record) error {
	s, e := r.TimeValue(fStartedAt), r.TimeValue(fEndedAt)
	if s == nil || e == nil || !e.Before(*s) {
		return nil
	}
	if !c.Concurrent(r, fStartedAt) && !c.Concurrent(r, fEndedAt) {
		return models.FieldInvalid(fEndedAt, "must not be before started_at")
	}
	clocks := r.FieldClocks()
	drop := fEndedAt
	if clocks[fStartedAt].HLC.Compare(clocks[fEndedAt].HLC) < 0 {
		drop = fStartedAt
	}
	c.Resolve(r, drop, nil)
	return nil
}

// checkPair holds two fields to being set together.
func checkPair(c *engine.Context, r *engine.Record, a, b string) error {
	if (r.Values[a] == nil) == (r.Values[b] == nil) {
		return nil
	}
	if !c.Concurrent(r, a) && !c.Concurrent(r, b) {
		return bothOrNeither(r, a, b)
	}
	for _, f := range []string{a, b} {
		if r.Values[f] != nil {
			c.Resolve(r, f, nil)
		}
	}
	return nil
}
