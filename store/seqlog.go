package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/fieldsync/fieldsync/sync/engine"
)

// SeqLog returns the logged mutations of the pushing device with these
// seqs, and the device's first logged seq (sync_devices.seq_log_from).
func (t *syncTx) SeqLog(ctx context.Context, seqs []int64) (map[int64]engine.LoggedMutation, int64, error) {
	var from int64
	err := t.tx.Raw(`SELECT seq_log_from FROM sync_devices WHERE org_id = ? AND user_id = ? AND device_id = ?`,
		t.p.OrgID.String(), t.p.UserID.String(), t.p.DeviceID.String()).Row().Scan(&from)
	if err != nil && err != sql.ErrNoRows {
		return nil, 0, fmt.Errorf("seq log: %w", translate(err))
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
	return out, from, nil
}

// LogMutations records processed mutations of the pushing device, in the
// push's transaction.
func (t *syncTx) LogMutations(ctx context.Context, ms []engine.LoggedMutation) error {
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
