package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldsync/fieldsync/sync/engine"
)

// SeqLog returns the logged mutations of the pushing device with these
// seqs, and the device's first logged seq (sync_devices.seq_log_from, which
// LastSeq read with the device's lock).
func (t *syncTx) SeqLog(ctx context.Context, seqs []int64) (map[int64]engine.LoggedMutation, int64, error) {
	if !t.seqLogKnown {
		return nil, 0, fmt.Errorf("seq log: the device is not locked (LastSeq first)")
	}
	out := make(map[int64]engine.LoggedMutation, len(seqs))
	for start := 0; start < len(seqs); start += 500 {
		part := seqs[start:min(start+500, len(seqs))]
		rows, err := t.tx.Raw(`SELECT seq, entity, record_id, hlc_ms, hlc_counter FROM sync_mutations
			WHERE org_id = ? AND user_id = ? AND device_id = ? AND seq IN ?`,
			t.p.OrgID.String(), t.p.UserID.String(), t.p.DeviceID.String(), part).Rows()
		if err != nil {
			return nil, 0, fmt.Errorf("seq log: %w", translate(err))
		}
		for rows.Next() {
			var m engine.LoggedMutation
			if err := rows.Scan(&m.Seq, &m.Entity, &m.ID, &m.HLC.MS, &m.HLC.Counter); err != nil {
				rows.Close()
				return nil, 0, fmt.Errorf("seq log: %w", err)
			}
			out[m.Seq] = m
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("seq log: %w", err)
		}
	}
	return out, t.seqLogFrom, nil
}

// logMutations records processed mutations of the pushing device, in the
// push's transaction, with multi-row statements.
func (t *syncTx) logMutations(ms []engine.LoggedMutation) error {
	for start := 0; start < len(ms); start += 500 {
		part := ms[start:min(start+500, len(ms))]
		var sb strings.Builder
		sb.WriteString(`INSERT INTO sync_mutations (org_id, user_id, device_id, seq, entity, record_id, hlc_ms, hlc_counter) VALUES `)
		args := make([]any, 0, len(part)*8)
		for i, m := range part {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, t.p.OrgID.String(), t.p.UserID.String(), t.p.DeviceID.String(), m.Seq, m.Entity, m.ID.String(), m.HLC.MS, m.HLC.Counter)
		}
		if err := t.tx.Exec(sb.String(), args...).Error; err != nil {
			return fmt.Errorf("log mutations: %w", err)
		}
	}
	return nil
}

// setLastSeqSQL moves the pushing device's last seq.
const setLastSeqSQL = `UPDATE sync_devices SET last_seq = ?, updated_at = ? WHERE org_id = ? AND user_id = ? AND device_id = ?`

// setLastSeq on SQLite: two statements, which in process cost no round
// trip (SQLite has no data-modifying WITH).
func (sqliteDialect) setLastSeq(_ context.Context, t *syncTx, seq int64, log []engine.LoggedMutation) error {
	if err := t.logMutations(log); err != nil {
		return err
	}
	err := t.tx.Exec(setLastSeqSQL, seq, t.now, t.p.OrgID.String(), t.p.UserID.String(), t.p.DeviceID.String()).Error
	if err != nil {
		return fmt.Errorf("set last seq: %w", err)
	}
	return nil
}

// setLastSeq on PostgreSQL is one statement, the push's last before
// COMMIT: the log travels as arrays, one per column, whatever its length.
func (pgDialect) setLastSeq(ctx context.Context, t *syncTx, seq int64, log []engine.LoggedMutation) error {
	seqs := make([]int64, len(log))
	entities := make([]string, len(log))
	ids := make([]pgtype.UUID, len(log))
	ms := make([]int64, len(log))
	counters := make([]int64, len(log))
	for i, m := range log {
		seqs[i], entities[i], ids[i] = m.Seq, m.Entity, pgtype.UUID{Bytes: m.ID, Valid: true}
		ms[i], counters[i] = m.HLC.MS, m.HLC.Counter
	}
	_, err := t.tx.Statement.ConnPool.ExecContext(ctx, `WITH log AS (
			INSERT INTO sync_mutations (org_id, user_id, device_id, seq, entity, record_id, hlc_ms, hlc_counter)
			SELECT $1::uuid, $2::uuid, $3::uuid, u.* FROM unnest($4::int8[], $5::text[], $6::uuid[], $7::int8[], $8::int8[]) AS u)
		UPDATE sync_devices SET last_seq = $9, updated_at = $10 WHERE org_id = $1 AND user_id = $2 AND device_id = $3`,
		t.p.OrgID.String(), t.p.UserID.String(), t.p.DeviceID.String(), seqs, entities, ids, ms, counters, seq, t.now)
	if err != nil {
		return fmt.Errorf("set last seq: %w", err)
	}
	return nil
}
