package storetest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fieldsync/fieldsync/store"
)

// The template database is named after a hash of the PostgreSQL migration
// files, so a change to any of them — a new file, or an edit to an old one
// that keeps its version number — names a new template and the old one is
// never cloned again. Templates are shared by every test process on the
// server and outlive them; stale ones are small (under 10 MB) and safe to
// drop by hand when no test runs (ALTER DATABASE … IS_TEMPLATE false, then
// DROP DATABASE).
//
// A template is built under another name and renamed only once the real
// migrations succeeded, so a template that exists is complete. An advisory
// lock keeps the test processes that go test starts in parallel from
// building it several times; should two still race (their lock sessions in
// different databases), the loser of the rename drops its copy.
const templatePrefix = "fieldsync_tmpl_"

var templates struct {
	sync.Mutex
	m map[string]templateResult
}

type templateResult struct {
	name string
	err  error
}

// templateFor returns the name of a current template database on the
// server base names, building it first if needed. The answer, or the
// error, is kept for the life of the process.
func templateFor(base string) (string, error) {
	templates.Lock()
	defer templates.Unlock()
	if r, ok := templates.m[base]; ok {
		return r.name, r.err
	}
	name, err := buildTemplate(base)
	if templates.m == nil {
		templates.m = make(map[string]templateResult)
	}
	templates.m[base] = templateResult{name, err}
	return name, err
}

func buildTemplate(base string) (string, error) {
	hash, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := templatePrefix + hash[:16]
	adm, err := admin(base)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if ok, err := databaseExists(ctx, adm, name); err != nil || ok {
		return name, err
	}

	conn, err := adm.Conn(ctx)
	if err != nil {
		return "", fmt.Errorf("template lock: %w", err)
	}
	defer conn.Close()
	key := "fieldsync storetest " + name
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(hashtext($1))", key); err != nil {
		return "", fmt.Errorf("template lock: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(hashtext($1))", key)
	}()
	if ok, err := databaseExists(ctx, conn, name); err != nil || ok {
		return name, err
	}

	build := name + "_b" + randomHex(4)
	// template0, not the default template1: nobody may be connected to the
	// template of a CREATE DATABASE, and template1 is where people connect.
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+build+" TEMPLATE template0"); err != nil {
		return "", fmt.Errorf("create template database: %w", err)
	}
	published := false
	defer func() {
		if !published {
			_, _ = conn.ExecContext(context.Background(), "ALTER DATABASE "+build+" WITH IS_TEMPLATE false")
			_, _ = conn.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+build+" WITH (FORCE)")
		}
	}()
	// The base URL's own settings, not testURL's: the template outlives
	// the run, so its commits are durable ones.
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", EnvURL, err)
	}
	u.Path = "/" + build
	db, err := store.Open(ctx, u.String(), store.Options{})
	if err != nil {
		return "", fmt.Errorf("open template database: %w", err)
	}
	_, err = db.Migrate(ctx)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("migrate template database: %w", err)
	}
	// No connections: a session on a template makes every clone of it fail.
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+build+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return "", fmt.Errorf("mark template database: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+build+" RENAME TO "+name); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: another process won
			return name, nil
		}
		return "", fmt.Errorf("publish template database: %w", err)
	}
	published = true
	return name, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func databaseExists(ctx context.Context, q queryer, name string) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		return false, fmt.Errorf("look for template database: %w", err)
	}
	return n > 0, nil
}

// migrationsHash hashes the PostgreSQL migration files next to this
// package's source. The store embeds the same files, but does not export
// them; reading the source is safe as long as the test binary was built
// from it, which holds unless a file changed after the build. That case,
// and a binary built with -trimpath, get an error and tests migrate their
// own schema.
func migrationsHash() (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the storetest source")
	}
	dir := filepath.Join(filepath.Dir(self), "..", "migrations", string(store.Postgres))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("read migrations: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find test binary: %w", err)
	}
	exeInfo, err := os.Stat(exe)
	if err != nil {
		return "", fmt.Errorf("find test binary: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("read migrations: no files in %s", dir)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		p := filepath.Join(dir, n)
		info, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("read migrations: %w", err)
		}
		if info.ModTime().After(exeInfo.ModTime()) {
			return "", fmt.Errorf("%s changed after the test binary was built", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("read migrations: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
