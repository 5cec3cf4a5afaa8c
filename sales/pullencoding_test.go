package sales_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

var updatePullEncoding = flag.Bool("update-pull-encoding", false, "rewrite testdata/pull_encoding.golden after adding the migration that clears the stale docs")

// TestPullEncodingIsPinned holds every entity's pull encoding to the one
// the stored docs were written in (migration 00015: sync_changes.doc keeps
// each record as the build that saved it encoded it). A change to a field
// — added, renamed, retyped, hidden — or to how a type is written leaves
// the docs of earlier builds stale, and pulls would serve them as they
// are. So this fails until the change comes with a migration clearing
// the entity's docs, and the golden file is rewritten with
// -update-pull-encoding.
func TestPullEncodingIsPinned(t *testing.T) {
	var b strings.Builder
	for _, e := range sales.Entities() {
		r := &engine.Record{ID: uuid.MustParse("00000000-0000-4000-8000-000000000001"), Version: 7,
			CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), UpdatedAt: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC),
			Values: map[string]any{}}
		for _, f := range e.Fields {
			r.Values[f.Name] = sampleValue(f)
		}
		b.WriteString(e.Name + " " + string(e.MarshalRecord(nil, r)) + "\n")
	}
	path := filepath.Join("testdata", "pull_encoding.golden")
	if *updatePullEncoding {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(b.String(), "\n")
	for i, line := range strings.Split(string(want), "\n") {
		if i >= len(got) || got[i] != line {
			have := ""
			if i < len(got) {
				have = got[i]
			}
			t.Fatalf("the pull encoding changed; docs stored by earlier builds are stale. Add a migration that clears them "+
				"(UPDATE sync_changes SET doc = NULL WHERE entity = '…'), then run go test ./sales -run TestPullEncodingIsPinned -update-pull-encoding.\n"+
				"pinned: %s\nnow:    %s", line, have)
		}
	}
	if len(got) != len(strings.Split(string(want), "\n")) {
		t.Fatalf("the pull encoding changed (an entity added or removed): run with -update-pull-encoding; a new entity's docs need no migration")
	}
}

// sampleValue is a value of f's type that shows how the type is written.
func sampleValue(f engine.Field) any {
	switch f.Type {
	case engine.UUID:
		return uuid.MustParse("00000000-0000-4000-8000-0000000000aa")
	case engine.Time:
		return time.Date(2026, 5, 6, 7, 8, 9, 120000, time.UTC)
	case engine.Float:
		return 12.5
	case engine.Int:
		return int64(42)
	case engine.Money:
		return int64(12345)
	case engine.Bool:
		return true
	case engine.JSON:
		return `{"k":[1,"\u00e9"]}`
	case engine.Enum:
		if len(f.Enum) > 0 {
			return f.Enum[0]
		}
	}
	return "text \"quoted\" é"
}
