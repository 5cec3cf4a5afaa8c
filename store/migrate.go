package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"

	_ "github.com/glebarez/go-sqlite"  // database/sql driver "sqlite", for ReadMigrationStatus
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for ReadMigrationStatus
	"github.com/pressly/goose/v3"
)

//go:embed migrations
var migrations embed.FS

// MigrationStatus reports how far the schema is from the code's.
type MigrationStatus struct {
	Current int64 // applied version
	Latest  int64 // newest version this binary knows
}

// Behind reports whether migrations are pending.
func (s MigrationStatus) Behind() bool { return s.Current < s.Latest }

// provider runs the migrations over conn (the writers' pool, or
// readiness's probe).
func (db *DB) provider(conn *sql.DB) (*goose.Provider, error) {
	name := db.dialect.name()
	sub, err := fs.Sub(migrations, "migrations/"+string(name))
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", name, err)
	}
	d, opts, err := db.dialect.goose()
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(d, conn, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", name, err)
	}
	return p, nil
}

// Migrate applies every pending migration and returns the versions applied.
func (db *DB) Migrate(ctx context.Context) ([]int64, error) {
	p, err := db.provider(db.sql)
	if err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate up: %w", err)
	}
	applied := make([]int64, 0, len(res))
	for _, r := range res {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}

// MigrationStatus reports the applied and the latest known version.
func (db *DB) MigrationStatus(ctx context.Context) (MigrationStatus, error) {
	return db.migrationStatus(ctx, db.sql)
}

func (db *DB) migrationStatus(ctx context.Context, conn *sql.DB) (MigrationStatus, error) {
	p, err := db.provider(conn)
	if err != nil {
		return MigrationStatus{}, err
	}
	cur, target, err := p.GetVersions(ctx)
	if err != nil {
		return MigrationStatus{}, fmt.Errorf("migration status: %w", err)
	}
	return MigrationStatus{Current: cur, Latest: target}, nil
}

// SchemaVersion is the schema version this build migrates to: its newest
// embedded migration. Both dialects' trees hold the same versions (see
// TestSchemaVersion and the schema tests).
func SchemaVersion() int64 { return schemaVersion }

var schemaVersion = mustLatestVersion(SQLite)

// mustLatestVersion is the newest migration of a dialect's embedded tree.
func mustLatestVersion(d Dialect) int64 {
	entries, err := fs.ReadDir(migrations, "migrations/"+string(d))
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	var latest int64
	for _, e := range entries {
		if path.Ext(e.Name()) != ".sql" {
			continue
		}
		v, err := goose.NumericComponent(e.Name())
		if err != nil {
			panic(fmt.Sprintf("migration %s: %v", e.Name(), err))
		}
		latest = max(latest, v)
	}
	return latest
}

// ReadMigrationStatus reports the schema version of the database rawURL
// names, and the version this build migrates to, without changing the
// database: unlike Open followed by MigrationStatus it creates no SQLite
// file (a missing one is an error naming its path), opens an SQLite file
// read-only, reads PostgreSQL in a READ ONLY transaction, and creates no
// migrations table (goose's status would). A database without one is at
// version 0.
func ReadMigrationStatus(ctx context.Context, rawURL string) (MigrationStatus, error) {
	d, dsn, err := ParseURL(rawURL)
	if err != nil {
		return MigrationStatus{}, err
	}
	if d == SQLite {
		if _, err := os.Stat(dsn); err != nil {
			return MigrationStatus{}, fmt.Errorf("sqlite database %s: %w", dsn, err)
		}
	}
	db, err := openReadOnly(d, dsn)
	if err != nil {
		return MigrationStatus{}, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: d == Postgres})
	if err != nil {
		return MigrationStatus{}, fmt.Errorf("migration status: %w", translate(err))
	}
	defer func() { _ = tx.Rollback() }()
	exists := `SELECT to_regclass('goose_db_version') IS NOT NULL`
	if d == SQLite {
		exists = `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version')`
	}
	st := MigrationStatus{Latest: SchemaVersion()}
	var ok bool
	if err := tx.QueryRowContext(ctx, exists).Scan(&ok); err != nil {
		return MigrationStatus{}, fmt.Errorf("migration status: %w", translate(err))
	}
	if !ok {
		return st, nil
	}
	// As goose reads it: a rolled-back migration's row is deleted.
	var cur sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(version_id) FROM goose_db_version`).Scan(&cur); err != nil {
		return MigrationStatus{}, fmt.Errorf("migration status: %w", translate(err))
	}
	st.Current = cur.Int64
	return st, nil
}

// openReadOnly opens a pool of one connection that cannot write: on
// SQLite the file is opened with mode=ro (and must exist).
func openReadOnly(d Dialect, dsn string) (*sql.DB, error) {
	driver := "pgx"
	if d == SQLite {
		driver = "sqlite"
		q := url.Values{}
		q.Set("mode", "ro")
		q.Add("_pragma", "busy_timeout(10000)")
		dsn = "file:" + dsn + "?" + q.Encode()
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", d, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}
