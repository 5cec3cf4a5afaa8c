// Package storetest opens a fresh, migrated database for a test: SQLite in
// a temporary directory by default, or a new PostgreSQL database when
// FIELDSYNC_TEST_DATABASE_URL is set (CI always sets it).
//
// On PostgreSQL, running the migrations costs most of a second per test on
// a busy machine, and each commit waits for a WAL flush of a few
// milliseconds. So MustOpenDB clones a template database that the real
// migrations built once per machine (see template.go), and every test
// connection turns synchronous_commit off: a throwaway database need not
// survive a crash of the server. URL still hands out an empty schema, for
// the tests that exercise the migrations themselves.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for setup and teardown

	"github.com/fieldsync/fieldsync/store"
)

// EnvURL names the PostgreSQL server tests use when set.
const EnvURL = "FIELDSYNC_TEST_DATABASE_URL"

// Options tune MustOpenDB.
type Options struct {
	Now func() time.Time
	// MaxOpenConns caps the PostgreSQL pool; 0 keeps the store's default.
	MaxOpenConns int
	// BusyTimeout is SQLite's wait for another process's write lock; 0
	// keeps the store's default.
	BusyTimeout time.Duration
	// PushWait is store.Options.PushWait.
	PushWait func(time.Duration)
	// PushesPerUser and PushShareWait tune each user's share of the push
	// slots (store.Options); 0 keeps the store's defaults.
	PushesPerUser int
	PushShareWait time.Duration
	// OnStatement is store.Options.OnStatement.
	OnStatement func(query string)
	// URL, if set, rewrites the URL the store opens (Wire.URL).
	URL func(string) string
}

// MustOpenDB returns a migrated database that exists only for this test.
func MustOpenDB(t testing.TB) *store.DB {
	return MustOpenDBWith(t, Options{})
}

// MustOpenDBWith is MustOpenDB with options.
func MustOpenDBWith(t testing.TB, opt Options) *store.DB {
	t.Helper()
	ctx := context.Background()
	dbURL := MigratedURL(t)
	if opt.URL != nil {
		dbURL = opt.URL(dbURL)
	}
	db, err := store.Open(ctx, dbURL, store.Options{Now: opt.Now, MaxOpenConns: opt.MaxOpenConns, BusyTimeout: opt.BusyTimeout, PushWait: opt.PushWait,
		PushesPerUser: opt.PushesPerUser, PushShareWait: opt.PushShareWait, OnStatement: opt.OnStatement})
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	// A no-op on a clone of a current template (a few milliseconds); it
	// still brings any other database up to date.
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return db
}

// URL returns the URL of a fresh, empty database for this test, which is
// dropped when the test ends. On PostgreSQL it is a new schema in the
// database EnvURL names.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
	}
	admin := mustAdmin(t, base)
	schema := "t_" + randomHex(6)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Logf("drop test schema %s: %v", schema, err)
		}
	})
	u := mustTestURL(t, base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = encodeQuery(q)
	return u.String()
}

// MigratedURL returns the URL of a fresh database for this test that
// already holds the schema of the current migrations, dropped when the test
// ends. Every store handle opened on it shares the one database, as
// replicas of a service would. On PostgreSQL it is a clone of the template
// database (or, when no current template can be had, a schema migrated
// here); on SQLite it is migrated here.
func MigratedURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		return migrateInto(t, URL(t))
	}
	tmpl, err := templateFor(base)
	if err != nil {
		t.Logf("no template database, migrating this test's schema: %v", err)
		return migrateInto(t, URL(t))
	}
	admin := mustAdmin(t, base)
	name := "fieldsync_t_" + randomHex(6)
	if _, err := admin.Exec("CREATE DATABASE " + name + " TEMPLATE " + tmpl); err != nil {
		t.Fatalf("create test database from %s: %v", tmpl, err)
	}
	t.Cleanup(func() {
		// FORCE ends sessions a failed test left open (PostgreSQL 13+).
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u := mustTestURL(t, base)
	u.Path = "/" + name
	return u.String()
}

// migrateInto applies the migrations to the empty database at dbURL.
func migrateInto(t testing.TB, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return dbURL
}

// testURL is base with the session settings of a throwaway database:
// synchronous_commit=off lets a commit return before its WAL reaches the
// disk, which a crash could lose but nothing else can observe. The server
// keeps fsync on; only the wait goes.
func testURL(base string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", EnvURL, err)
	}
	q := u.Query()
	q.Set("options", strings.TrimSpace(q.Get("options")+" -c synchronous_commit=off"))
	u.RawQuery = encodeQuery(q)
	return u, nil
}

// encodeQuery is q.Encode with spaces as %20: pgx reads a '+' literally.
// Encode escapes a literal '+' as %2B, so every '+' left is a space.
func encodeQuery(q url.Values) string {
	return strings.ReplaceAll(q.Encode(), "+", "%20")
}

func mustTestURL(t testing.TB, base string) *url.URL {
	t.Helper()
	u, err := testURL(base)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

var admins struct {
	sync.Mutex
	m map[string]*sql.DB
}

// mustAdmin returns this process's pool on the database base names, which
// creates and drops the tests' schemas and databases. It lives as long as
// the process: tests of a package come and go, the server stays.
func mustAdmin(t testing.TB, base string) *sql.DB {
	t.Helper()
	db, err := admin(base)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func admin(base string) (*sql.DB, error) {
	admins.Lock()
	defer admins.Unlock()
	if db, ok := admins.m[base]; ok {
		return db, nil
	}
	u, err := testURL(base)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", EnvURL, err)
	}
	db.SetMaxIdleConns(2)
	if admins.m == nil {
		admins.m = make(map[string]*sql.DB)
	}
	admins.m[base] = db
	return db, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
