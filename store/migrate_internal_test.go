package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenReadOnlySQLite: the status's connection to an SQLite file
// refuses writes, so reading the status cannot change the database.
func TestOpenReadOnlySQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := openReadOnly(SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.ExecContext(context.Background(), "CREATE TABLE x (a int)")
	if err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Errorf("a write through the status's connection: %v, want a read-only refusal", err)
	}
}
