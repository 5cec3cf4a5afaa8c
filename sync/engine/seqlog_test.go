package engine_test

import (
	"context"
	"testing"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
	"github.com/google/uuid"
)

// TestSeqLogBeforeItExisted holds that the seqs a device used before the
// mutation log existed (below its seq_log_from, set by the migration to
// last_seq + 1) stay duplicates: the server cannot tell a retry from a
// reuse there, and acknowledging is what it always did. Seqs logged since
// are judged.
func TestSeqLogBeforeItExisted(t *testing.T) {
	f := synctest.New(t, storetest.Options{})
	rep := f.Principal("rep1@demo.test")
	account := f.AccountsByTeam()[*rep.TeamID][0]
	visit := func(seq int64) engine.Mutation {
		return engine.Mutation{Seq: seq, Entity: "visits", ID: uuid.New(), Op: engine.OpUpsert, HLC: engine.HLC{MS: f.Now().UnixMilli() + seq},
			Fields: synctest.RawFields(t, map[string]any{"account_id": account})}
	}
	f.Push(rep, visit(1), visit(2), visit(3))
	// As if seqs 1 and 2 had been processed before the log existed.
	if err := f.DB.Gorm().Exec(`UPDATE sync_devices SET seq_log_from = 3 WHERE device_id = ?`, rep.DeviceID.String()).Error; err != nil {
		t.Fatal(err)
	}
	res, err := f.En.Push(context.Background(), rep, []engine.Mutation{visit(2), visit(3)})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Results[0].Status; got != engine.StatusDuplicate {
		t.Errorf("seq 2, from before the log: %s, want duplicate", got)
	}
	if r := res.Results[1]; r.Status != engine.StatusRejected || r.Error.Code != engine.CodeSeqReused {
		t.Errorf("seq 3, logged: %s %+v, want rejected seq_reused", r.Status, r.Error)
	}
}
