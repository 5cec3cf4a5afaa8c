package engine

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// CodeSeqReused rejects a mutation whose seq the device already used for
// another mutation: its counter went back.
const CodeSeqReused = models.CodeSeqReused

// LoggedMutation is what the server keeps of a processed mutation to tell a
// retry of it from another mutation under the same seq: the record it
// wrote and the clock the device stamped it with.
type LoggedMutation struct {
	Seq    int64
	Entity string
	ID     uuid.UUID
	HLC    HLC // as sent, before any clamping; Device unset
}

func logged(m Mutation) LoggedMutation {
	return LoggedMutation{Seq: m.Seq, Entity: m.Entity, ID: m.ID, HLC: HLC{MS: m.HLC.MS, Counter: m.HLC.Counter}}
}

// judgeOld answers the mutations at or below the device's last seq.
//
// A seq at or below last_seq is a duplicate only when the server holds
// that mutation's effect from this device: the log names the same record
// and the same clock, as a retried batch (a lost response, a crash
// replay) sends them. Anything else under a used seq is a new mutation of
// a device whose counter went back (a reinstall, a restored backup, a
// bug): acknowledging it as a duplicate would drop a new record without a
// word, so it is rejected as seq_reused, naming the server's last_seq, and
// the app renumbers it past last_seq and pushes it again. Seqs processed
// before the log existed (below the device's log start) cannot be told
// apart and stay duplicates.
//
// seq_reused is not stored as a rejection: it is not final, and a retry of
// the same batch gets the same answer.
func (b *batch) judgeOld(muts []Mutation, old []int, last int64, results []Result) error {
	seqs := make([]int64, len(old))
	for i, j := range old {
		seqs[i] = muts[j].Seq
	}
	log, from, err := b.tx.SeqLog(b.ctx, seqs)
	if err != nil {
		return err
	}
	for _, j := range old {
		m := muts[j]
		l, ok := log[m.Seq]
		if m.Seq < from || (ok && l == logged(m)) {
			results[j] = Result{Seq: m.Seq, Status: StatusDuplicate}
			continue
		}
		results[j] = reject(CodeSeqReused, "seq", fmt.Sprintf(
			"seq %d was already used by another mutation of this device; the server's last_seq is %d: number this mutation after it and push it again", m.Seq, last))
		results[j].Seq = m.Seq
	}
	return nil
}
