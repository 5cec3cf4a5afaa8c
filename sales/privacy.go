package sales

import (
	"context"
	"encoding/json"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Location privacy. Positions say where a person was; after the retention
// (config --location-retention) only about where is kept: the hourly job
// rounds them to LocationDecimals places, 0.01° — at most 1.1 km. It
// rewrites the records through the engine, so their versions move and
// every device's next pull carries the coarse values, but with
// engine.Context.Rewrite: no rule runs again, so a check-in's
// verification (verification, check_in_distance_m, a ride-along's
// joint_verified), its score entries and notifications stand as they were
// judged on the precise position.

// LocationDecimals is how many decimal places of a degree a coarsened
// position keeps.
const LocationDecimals = 2

// RedactBatch is how many records one location privacy transaction
// rewrites at most.
const RedactBatch = 1000

// locatedEntity names an entity's stored positions and how they are dated.
type locatedEntity struct {
	entity string
	coords []string // every coordinate field
	// present are the fields of which one is set when the record holds a
	// position (latitudes: a longitude is never set alone); at dates the
	// position (created_at when null). Both are terms of the partial
	// index of migration 00012 and must stay in step with it.
	present []string
	at      []string
}

// located are the positions the job coarsens. Accounts' lat/lng are not
// among them: a customer's premises are not a person's whereabouts, and
// check-ins are verified against them.
var located = []locatedEntity{
	{entity: entVisits, coords: []string{fCheckInLat, fCheckInLng, fCheckOutLat, fCheckOutLng},
		present: []string{fCheckInLat, fCheckOutLat}, at: []string{fStartedAt}},
	{entity: entRideAlongs, coords: []string{fManagerCheckInLat, fManagerCheckInLng},
		present: []string{fManagerCheckInLat}, at: []string{fCompletedAt}},
}

func (l locatedEntity) query(before time.Time, limit int) engine.DueQuery {
	return engine.DueQuery{Mark: fLocationRedactedAt, NotNull: l.present, At: l.at, Before: before, Limit: limit}
}

// LocationQueries are the queries by which RedactLocations finds its work,
// by entity: the store's indexes are held to them.
func LocationQueries(before time.Time, limit int) map[string]engine.DueQuery {
	out := make(map[string]engine.DueQuery, len(located))
	for _, l := range located {
		out[l.entity] = l.query(before, limit)
	}
	return out
}

// Coarsen rounds a coordinate to LocationDecimals places.
func Coarsen(deg float64) float64 {
	const scale = 100 // 10^LocationDecimals
	return math.Round(deg*scale) / scale
}

// RedactLocations coarsens, in c's transaction, the positions of up to
// limit records dated before before, oldest first, and marks each
// (location_redacted_at) so that it is never taken again: running it
// twice changes nothing the second time. It returns how many records it
// rewrote; fewer than limit means no more are due (or the rest are being
// pushed right now, and wait for the next run).
func RedactLocations(c *engine.Context, before time.Time, limit int) (int, error) {
	n := 0
	for _, l := range located {
		if n >= limit {
			break
		}
		recs, err := c.Due(l.entity, l.query(before, limit-n))
		if err != nil {
			return n, err
		}
		for _, r := range recs {
			next := r.Clone()
			for _, f := range l.coords {
				if v := next.FloatValue(f); v != nil {
					next.Values[f] = Coarsen(*v)
				}
			}
			next.Values[fLocationRedactedAt] = c.Now
			if err := c.Rewrite(l.entity, next); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// RedactAllLocations runs RedactLocations for an organisation in
// transactions of batch records until none is due, and returns how many
// records it rewrote.
func RedactAllLocations(ctx context.Context, en *engine.Engine, orgID uuid.UUID, before time.Time, batch int) (int, error) {
	total := 0
	for {
		var n int
		err := en.Server(ctx, models.Principal{OrgID: orgID}, func(c *engine.Context) error {
			var err error
			n, err = RedactLocations(c, before, batch)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}

// redacted reports whether the privacy job coarsened r's positions: a rule
// must not judge them again (see verifyRep, validateRideAlong).
func redacted(r *engine.Record) bool { return r != nil && r.Values[fLocationRedactedAt] != nil }

// unmarkIfRelocated clears r's redaction mark when a device sent a
// position other than the stored coarse one (a phone that never pulled
// the coarse values pushing its precise ones back): the record is then
// coarsened again on the job's next run.
func unmarkIfRelocated(c *engine.Context, old, r *engine.Record, coords ...string) {
	if old == nil || !redacted(old) {
		return
	}
	for _, f := range coords {
		if _, sent := c.Sent[f]; sent && !engine.Equal(old.Values[f], r.Values[f]) {
			r.Values[fLocationRedactedAt] = nil
			return
		}
	}
}

// personalEntity names, for one entity, the fields that say whose a
// record is (owners) and, by owner field, the fields erasure clears when
// that owner is the person erased: a manager's position on a ride-along
// is the manager's, its note is about the rep too. Export returns every
// record any owner field names the person in, whole.
type personalEntity struct {
	entity string
	owners []string
	// byOwner's fields are set to null on erasure, but for a kudos
	// message, which a recognition requires (ErasedText), and an
	// assessment's behaviours, which keep their scores and lose their
	// notes (see eraseRecord).
	byOwner map[string][]string
}

// ErasedText replaces required free text on erasure.
const ErasedText = "[erased]"

var personal = []personalEntity{
	{entity: entVisits, owners: []string{fRepID},
		byOwner: map[string][]string{fRepID: {fNotes, fCheckInLat, fCheckInLng, fCheckOutLat, fCheckOutLng, fCheckInAccuracyM}}},
	{entity: entActivities, owners: []string{fRepID},
		byOwner: map[string][]string{fRepID: {fNotes}}},
	{entity: entRideAlongs, owners: []string{fRepID, fManagerID},
		byOwner: map[string][]string{fRepID: {fNote}, fManagerID: {fNote, fManagerCheckInLat, fManagerCheckInLng}}},
	{entity: entAssessments, owners: []string{fRepID},
		byOwner: map[string][]string{fRepID: {fRepComment, fBehaviours}}},
	{entity: entRecognitions, owners: []string{fFromUserID, fToUserID},
		byOwner: map[string][]string{fFromUserID: {fMessage}, fToUserID: {fMessage}}},
	// Totals are kept: score entries and standings name the rep and hold
	// no free text of theirs; they are exported, never cleared.
	{entity: entScoreEntries, owners: []string{fRepID}},
	{entity: entStandings, owners: []string{fRepID}},
}

// PersonalData returns, by entity, the live records that are a user's
// personal data — their visits with positions and notes, activities,
// ride-alongs (as rep or as manager), assessments of them, recognitions
// given and received, score entries and standings — as p (an admin of
// the user's organisation) sees them. Nothing of another person is
// returned but what these records themselves name.
func PersonalData(ctx context.Context, en *engine.Engine, p models.Principal, userID uuid.UUID) (map[string][]*engine.Record, error) {
	out := map[string][]*engine.Record{}
	for _, pe := range personal {
		seen := map[uuid.UUID]bool{}
		out[pe.entity] = []*engine.Record{}
		for _, owner := range pe.owners {
			recs, err := en.Find(ctx, p, pe.entity, map[string]any{owner: userID})
			if err != nil {
				return nil, err
			}
			for _, r := range recs {
				if !seen[r.ID] {
					seen[r.ID] = true
					out[pe.entity] = append(out[pe.entity], r)
				}
			}
		}
	}
	return out, nil
}

// EraseBatch is how many records one erasure transaction rewrites at most.
const EraseBatch = 1000

// ErasePersonalData anonymises a user's records (see personal): notes,
// comments, kudos messages, behaviour notes and positions are cleared;
// outcomes, order values, points and standings are kept, so totals do not
// move. The records are rewritten through the engine (Rewrite: no rule
// runs again, nothing is rescored), so every device's next pull carries
// the anonymised values. It is idempotent: a record with nothing left to
// clear is not written. It returns how many records it rewrote.
func ErasePersonalData(ctx context.Context, en *engine.Engine, p models.Principal, userID uuid.UUID) (int, error) {
	data, err := PersonalData(ctx, en, p, userID)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, pe := range personal {
		if len(pe.byOwner) == 0 {
			continue
		}
		ids := make([]uuid.UUID, 0, len(data[pe.entity]))
		for _, r := range data[pe.entity] {
			if _, changed := eraseRecord(pe, r, userID); changed {
				ids = append(ids, r.ID)
			}
		}
		for start := 0; start < len(ids); start += EraseBatch {
			part := ids[start:min(start+EraseBatch, len(ids))]
			err := en.Server(ctx, p, func(c *engine.Context) error {
				for _, id := range part {
					// Read again in the transaction: what was listed may
					// have changed since.
					cur, err := c.Get(pe.entity, id)
					if err != nil {
						return err
					}
					if cur == nil || cur.Deleted {
						continue
					}
					if next, changed := eraseRecord(pe, cur, userID); changed {
						markCleared(c, pe.entity, next)
						if err := c.Rewrite(pe.entity, next); err != nil {
							return err
						}
						total++
					}
				}
				return nil
			})
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// markCleared marks a record whose positions erasure cleared as redacted:
// no rule judges them again (see redacted), and the verdicts made on them
// stand.
func markCleared(c *engine.Context, entity string, r *engine.Record) {
	for _, l := range located {
		if l.entity != entity || r.Values[fLocationRedactedAt] != nil {
			continue
		}
		for _, f := range l.coords {
			if r.Values[f] != nil {
				return
			}
		}
		r.Values[fLocationRedactedAt] = c.Now
	}
}

// eraseRecord returns r with the user's data cleared, and whether that
// changed anything.
func eraseRecord(pe personalEntity, r *engine.Record, userID uuid.UUID) (*engine.Record, bool) {
	var next *engine.Record
	for _, owner := range pe.owners {
		if id := r.UUIDValue(owner); id == nil || *id != userID {
			continue
		}
		for _, f := range pe.byOwner[owner] {
			var v any
			switch f {
			case fMessage:
				if r.StringValue(fKind) == "badge" {
					continue // the server's own words, not the person's
				}
				v = ErasedText
			case fBehaviours:
				v = eraseBehaviourNotes(r.StringValue(f))
			}
			if v == "" {
				v = nil
			}
			if engine.Equal(r.Values[f], v) {
				continue
			}
			if next == nil {
				next = r.Clone()
			}
			if v == nil {
				delete(next.Values, f)
			} else {
				next.Values[f] = v
			}
		}
	}
	if next == nil {
		return r, false
	}
	return next, true
}

// eraseBehaviourNotes drops the notes of an assessment's behaviours and
// keeps their scores; "" stands for no behaviours.
func eraseBehaviourNotes(behaviours string) any {
	if behaviours == "" {
		return ""
	}
	var items []models.BehaviourScore
	if err := json.Unmarshal([]byte(behaviours), &items); err != nil {
		return "" // not the shape the rules write: drop it whole
	}
	for i := range items {
		items[i].Note = ""
	}
	b, err := json.Marshal(items)
	if err != nil {
		return ""
	}
	return string(b)
}
