package store_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
)

// TestSchemaVersion: the version this build migrates to is the newest
// migration, the same in both dialects' trees, and what a fully migrated
// database reports.
func TestSchemaVersion(t *testing.T) {
	for _, d := range []string{"postgres", "sqlite"} {
		entries, err := os.ReadDir(filepath.Join("migrations", d))
		if err != nil {
			t.Fatal(err)
		}
		last := entries[len(entries)-1].Name()
		if v, _ := strconv.ParseInt(strings.SplitN(last, "_", 2)[0], 10, 64); v != store.SchemaVersion() {
			t.Errorf("SchemaVersion() = %d, but the newest %s migration is %s", store.SchemaVersion(), d, last)
		}
	}
	db := storetest.MustOpenDB(t)
	st, err := db.MigrationStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != store.SchemaVersion() || st.Latest != store.SchemaVersion() {
		t.Errorf("a migrated database: %+v, want current = latest = SchemaVersion() = %d", st, store.SchemaVersion())
	}
}

// TestReadMigrationStatus: the status is read without writing anything,
// and an SQLite file that is not there is an error, not a new database.
func TestReadMigrationStatus(t *testing.T) {
	ctx := context.Background()
	latest := store.SchemaVersion()

	t.Run("a missing SQLite file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "misspelt.db")
		_, err := store.ReadMigrationStatus(ctx, "sqlite:"+path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v, want one naming %s", err, path)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the status created %s: %v", path, err)
		}
	})

	t.Run("an empty database", func(t *testing.T) {
		dbURL := storetest.URL(t)
		if d, path, _ := store.ParseURL(dbURL); d == store.SQLite {
			// An empty file is an empty SQLite database.
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		st, err := store.ReadMigrationStatus(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		if st != (store.MigrationStatus{Current: 0, Latest: latest}) || !st.Behind() {
			t.Errorf("status %+v, want 0 of %d, behind", st, latest)
		}
		// Not even goose's version table was created.
		db, err := store.Open(ctx, dbURL, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if db.Gorm().Migrator().HasTable("goose_db_version") {
			t.Errorf("reading the status created the migrations table")
		}
	})

	t.Run("a database behind and then current", func(t *testing.T) {
		dbURL := storetest.MigratedURL(t)
		db, err := store.Open(ctx, dbURL, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		st, err := store.ReadMigrationStatus(ctx, dbURL)
		if err != nil || st != (store.MigrationStatus{Current: latest, Latest: latest}) || st.Behind() {
			t.Errorf("migrated: %+v (%v), want %d of %d", st, err, latest, latest)
		}
		// Forget the last two migrations, as if this build were newer.
		// Versions need not be consecutive (branches number theirs apart).
		var applied []int64
		if err := db.Gorm().Raw("SELECT version_id FROM goose_db_version WHERE version_id > 0 ORDER BY version_id DESC LIMIT 3").Scan(&applied).Error; err != nil || len(applied) < 3 {
			t.Fatalf("applied versions %v: %v", applied, err)
		}
		if err := db.Gorm().Exec("DELETE FROM goose_db_version WHERE version_id > ?", applied[2]).Error; err != nil {
			t.Fatal(err)
		}
		st, err = store.ReadMigrationStatus(ctx, dbURL)
		if err != nil || st != (store.MigrationStatus{Current: applied[2], Latest: latest}) || !st.Behind() {
			t.Errorf("two behind: %+v (%v), want %d of %d, behind", st, err, applied[2], latest)
		}
	})
}
