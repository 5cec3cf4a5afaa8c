// Package storetest opens a fresh, migrated database for a test: SQLite in
// a temporary directory by default, or a new PostgreSQL schema when
// FIELDSYNC_TEST_DATABASE_URL is set (CI always sets it).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for schema setup

	"github.com/fieldsync/fieldsync/store"
)

// EnvURL names the PostgreSQL server tests use when set.
const EnvURL = "FIELDSYNC_TEST_DATABASE_URL"

// Options tune MustOpenDB.
type Options struct {
	Now func() time.Time
	// MaxOpenConns caps the PostgreSQL pool; 0 keeps the store's default.
	MaxOpenConns int
}

// MustOpenDB returns a migrated database that exists only for this test.
func MustOpenDB(t testing.TB) *store.DB {
	return MustOpenDBWith(t, Options{})
}

// MustOpenDBWith is MustOpenDB with options.
func MustOpenDBWith(t testing.TB, opt Options) *store.DB {
	t.Helper()
	ctx := context.Background()
	dbURL := URL(t)
	db, err := store.Open(ctx, dbURL, store.Options{Now: opt.Now, MaxOpenConns: opt.MaxOpenConns})
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return db
}

// URL returns the URL of a fresh, empty database for this test, which is
// dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("connect to %s: %v", EnvURL, err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer admin.Close()
		_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
