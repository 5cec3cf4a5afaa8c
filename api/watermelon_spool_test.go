package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
	"github.com/fieldsync/fieldsync/sync/watermelondb"
)

// TestSpool holds that a pull spilled to disk piece by piece is written
// out exactly as one kept in memory: grouped by table and list, in feed
// order, as valid JSON.
func TestSpool(t *testing.T) {
	es := engine.New(nil, sales.Entities(), nil, nil).Entities()
	accounts, visits := es["accounts"], es["visits"]
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	var changes []struct {
		kind watermelondb.Kind
		ch   engine.Change
	}
	for i := range 300 {
		e, kind := accounts, watermelondb.Kind(i%3)
		if i%2 == 0 {
			e = visits
		}
		r := &engine.Record{ID: uuid.New(), Version: int64(i + 1), CreatedAt: now, UpdatedAt: now, Deleted: kind == watermelondb.Deleted,
			Values: map[string]any{"name": "Account", "notes": "note", "started_at": now}}
		changes = append(changes, struct {
			kind watermelondb.Kind
			ch   engine.Change
		}{kind, engine.Change{Entity: e, Record: r}})
	}
	render := func(limit int) []byte {
		sp := &wmSpool{parts: map[wmSpoolKey]*wmSpoolPart{}, limit: limit}
		defer sp.close()
		for _, c := range changes {
			if err := sp.add(c.kind, c.ch); err != nil {
				t.Fatal(err)
			}
		}
		if limit == 1 && sp.file == nil {
			t.Fatal("a one-byte spool did not spill")
		}
		var buf bytes.Buffer
		if err := sp.writeChanges(&buf, []string{"accounts", "visits"}); err != nil {
			t.Fatal(err)
		}
		buf.WriteString(`},"timestamp":1}`)
		return buf.Bytes()
	}
	mem, disk, some := render(0), render(1), render(4096)
	if !bytes.Equal(mem, disk) || !bytes.Equal(mem, some) {
		t.Fatalf("spilled output differs from the in-memory one:\n%s\n%s", mem, disk)
	}
	var out struct {
		Changes map[string]struct {
			Created []map[string]any `json:"created"`
			Updated []map[string]any `json:"updated"`
			Deleted []string         `json:"deleted"`
		} `json:"changes"`
	}
	if err := json.Unmarshal(mem, &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, mem)
	}
	n := 0
	for _, tc := range out.Changes {
		n += len(tc.Created) + len(tc.Updated) + len(tc.Deleted)
	}
	if n != len(changes) {
		t.Errorf("%d records written, want %d", n, len(changes))
	}
}
