package engine

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// Batch is a push in progress, handed to a protocol adapter (the
// WatermelonDB endpoint) that turns its own wire format into mutations and
// applies them one by one under the same rules, scope and hooks as a
// native push.
type Batch struct{ b *batch }

// PushBatch runs fn as one push of p's device: in one transaction that
// holds the device's lock and the locks of the records of keys, which are
// all the records fn may write. What fn applied is written when it returns
// nil and discarded when it returns an error. The device's seq is neither
// read nor moved: an adapter without seqs keeps exactly-once its own way.
func (en *Engine) PushBatch(ctx context.Context, p models.Principal, keys []Key, fn func(*Batch) error) error {
	return en.store.Push(ctx, p, keys, func(tx Tx) error {
		// LastSeq takes the device and record locks: a retry racing the
		// original waits, then finds nothing left to do.
		if _, err := tx.LastSeq(ctx); err != nil {
			return err
		}
		b := &batch{en: en, tx: tx, ctx: ctx, p: p, now: en.now().UTC(), state: map[Key]*Record{}, dirty: map[Key]bool{}}
		if err := fn(&Batch{b}); err != nil {
			return err
		}
		return b.flush()
	})
}

// Keys returns the records muts write, each once, for PushBatch.
func Keys(muts []Mutation) []Key { return mutationKeys(muts) }

// Now is the batch's time: every record it writes is stamped with it.
func (b *Batch) Now() time.Time { return b.b.now }

// Principal is who pushes.
func (b *Batch) Principal() models.Principal { return b.b.p }

// Prefetch loads the records muts write and those their reference fields
// name, one query per entity, before they are applied.
func (b *Batch) Prefetch(muts []Mutation) error {
	todo := make([]int, len(muts))
	for i := range todo {
		todo[i] = i
	}
	return b.b.prefetch(muts, todo)
}

// Current returns a record as the batch now sees it (tombstones included,
// whoever may see it), or nil. Only prefetched or written records are
// known; Prefetch first.
func (b *Batch) Current(k Key) *Record { return b.b.state[k] }

// Apply applies one mutation as a native push would, except for its seq:
// a rule it breaks is a rejected Result; errors are storage failures.
func (b *Batch) Apply(m Mutation) (Result, error) { return b.b.apply(m) }

// Reject records the refusal of one record of the push, saved with the
// batch and listed for the device (DeviceRejections): an adapter without
// seqs leaves Seq 0.
func (b *Batch) Reject(r Rejection) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = b.b.now
	}
	b.b.rejections = append(b.b.rejections, r)
}

// Touch gives a record a new version at commit without changing it or
// running hooks, so that it reaches the next pull of devices that hold an
// older copy.
func (b *Batch) Touch(k Key) {
	r := b.b.state[k].Clone()
	r.UpdatedAt = b.b.now
	b.b.state[k] = r
	if !b.b.dirty[k] {
		b.b.dirty[k] = true
		b.b.order = append(b.b.order, k)
	}
}

// FeedPositions returns the committed change-feed positions of the given
// records that have one.
func (b *Batch) FeedPositions(keys []Key) (map[Key]Position, error) {
	return b.b.tx.FeedPositions(b.b.ctx, keys)
}

// LastWrittenBy reports whether the record's current version was written
// by the device: a field clock of that version carries it.
func LastWrittenBy(r *Record, device uuid.UUID) bool {
	d := device.String()
	for _, fc := range r.FieldClocks() {
		if fc.Version == r.Version && fc.Device == d {
			return true
		}
	}
	return false
}

// PurgedThrough returns the highest feed position of the organisation
// whose tombstone was purged: a pull from below it may have missed a
// delete.
func (en *Engine) PurgedThrough(ctx context.Context, orgID uuid.UUID) (Position, error) {
	return en.store.PurgedThrough(ctx, orgID)
}
