// Package store is fieldsync's storage adapter: GORM over PostgreSQL in
// production and over pure-Go SQLite as the zero-setup default. It owns the
// schema (versioned migrations per dialect), translates database errors into
// models codes at its edge, and runs each unit of work in one transaction.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/semaphore"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Dialect names the database behind a DB.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DefaultURL is the embedded database used when none is configured.
const DefaultURL = "sqlite:fieldsync.db"

// DB is a handle on the database. It is safe for concurrent use.
type DB struct {
	gorm    *gorm.DB
	sql     *sql.DB
	dialect Dialect
	// Path is the SQLite file, empty on PostgreSQL.
	Path string
	now  func() time.Time
	// locks bounds the record locks this process's pushes hold at once
	// on PostgreSQL (see lockBudget); nil on SQLite.
	locks *semaphore.Weighted
	// pushes admits pushes to the pool in arrival order, leaving two
	// connections to everything else (PostgreSQL; nil on SQLite, whose
	// writers queue on its own lock). database/sql hands a freed
	// connection to a random waiter: under a burst some pushes waited
	// three times as long as the median.
	pushes *semaphore.Weighted
}

// Options tune Open. The zero value is fine.
type Options struct {
	Logger *slog.Logger
	// Now replaces the clock, for tests.
	Now func() time.Time
	// MaxOpenConns caps the pool (PostgreSQL); 0 means 20.
	MaxOpenConns int
}

// ParseURL splits a database URL into its dialect and the driver's DSN.
// An empty URL selects DefaultURL. Accepted forms: postgres://…,
// postgresql://…, sqlite:PATH and sqlite://PATH.
func ParseURL(raw string) (Dialect, string, error) {
	if raw == "" {
		raw = DefaultURL
	}
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		return Postgres, raw, nil
	case strings.HasPrefix(raw, "sqlite://"):
		return SQLite, strings.TrimPrefix(raw, "sqlite://"), nil
	case strings.HasPrefix(raw, "sqlite:"):
		return SQLite, strings.TrimPrefix(raw, "sqlite:"), nil
	}
	return "", "", fmt.Errorf("database url %q: want postgres://… or sqlite:PATH", redact(raw))
}

// Open connects to the database named by rawURL. It does not migrate.
func Open(ctx context.Context, rawURL string, opt Options) (*DB, error) {
	dialect, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := &gorm.Config{
		TranslateError: true,
		Logger:         logger.Discard,
		NowFunc:        func() time.Time { return opt.Now().UTC() },
		// Each store method opens its own transaction where it needs one;
		// GORM's implicit per-write transaction would only add round trips.
		SkipDefaultTransaction: true,
	}
	db := &DB{dialect: dialect, now: opt.Now}
	var g *gorm.DB
	switch dialect {
	case Postgres:
		g, err = gorm.Open(postgres.Open(dsn), cfg)
	case SQLite:
		db.Path = dsn
		if err := prepareSQLiteFile(dsn, opt.Logger); err != nil {
			return nil, err
		}
		g, err = gorm.Open(sqlite.Open(sqliteDSN(dsn)), cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	switch dialect {
	case Postgres:
		n := opt.MaxOpenConns
		if n == 0 {
			n = 20
		}
		sqlDB.SetMaxOpenConns(n)
		sqlDB.SetMaxIdleConns(n)
		db.pushes = semaphore.NewWeighted(int64(max(n-2, 1)))
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	case SQLite:
		// WAL lets readers run beside the one writer; more connections
		// than this only queue on SQLite's write lock.
		sqlDB.SetMaxOpenConns(4)
		sqlDB.SetMaxIdleConns(4)
	}
	db.gorm, db.sql = g, sqlDB
	if err := db.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	if dialect == Postgres {
		n, err := db.lockBudget(ctx)
		if err != nil {
			_ = sqlDB.Close()
			return nil, err
		}
		db.locks = semaphore.NewWeighted(n)
	}
	return db, nil
}

// lockBudget is how many record locks this process's pushes may hold at
// once: half of PostgreSQL's shared lock table, which every session of the
// cluster shares and which, once full, fails any statement that needs a
// lock ("out of shared memory"). A push of 1,000 mutations holds 1,000
// advisory locks until it commits; without a budget a dozen such pushes at
// once — a team back online after a day without signal — would fill the
// table with the default settings (64 × 100 connections).
func (db *DB) lockBudget(ctx context.Context) (int64, error) {
	var n int64
	err := db.sql.QueryRowContext(ctx, `SELECT current_setting('max_locks_per_transaction')::bigint *
		(current_setting('max_connections')::bigint + current_setting('max_prepared_transactions')::bigint)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("read lock table size: %w", translate(err))
	}
	return max(n/2, engine.MaxBatch), nil
}

// sqliteDSN adds the pragmas fieldsync relies on. _txlock=immediate takes
// the write lock at BEGIN, so two writers queue on busy_timeout instead of
// one failing with SQLITE_BUSY when it upgrades a read lock; it also makes
// SQLite writers strictly serial, which the change log's cursor relies on.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Dialect reports which database this is.
func (db *DB) Dialect() Dialect { return db.dialect }

// SQL exposes the pool, for metrics and migrations.
func (db *DB) SQL() *sql.DB { return db.sql }

// Gorm exposes the GORM handle to the adapter's own tests and to tools
// inside this module (the benchmark) that need raw SQL.
func (db *DB) Gorm() *gorm.DB { return db.gorm }

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.sql.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", errors.Join(models.ErrUnavailable, err))
	}
	return nil
}

// Close releases the pool.
func (db *DB) Close() error { return db.sql.Close() }

// transaction runs fn in one transaction on the request's context.
func (db *DB) transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return translate(db.gorm.WithContext(ctx).Transaction(fn))
}

// translate maps driver errors onto models codes at the adapter's edge.
// *models.Error values pass through unchanged.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var me *models.Error
	switch {
	case errors.As(err, &me):
		return err
	case errors.Is(err, gorm.ErrRecordNotFound):
		return models.ErrNotFound
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%w: %w", &models.Error{Code: models.CodeConflict, Message: "already exists"}, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case isConnError(err), isTransient(err):
		return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	return err
}

// isTransient tells a failure the same request may not meet again: a
// deadlock or serialization failure rolled back, resources the server ran
// short of, a server starting or stopping. Clients are told to retry.
func isTransient(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code[:2] {
	case "08", "40", "53", "57":
		return pe.Code != "57014" // query_canceled is the caller's doing
	}
	return false
}

func isConnError(err error) bool {
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) {
		return true
	}
	s := err.Error()
	for _, frag := range []string{"connection refused", "broken pipe", "connection reset", "bad connection", "database is closed", "failed to connect", "conn closed", "the database system is shutting down", "terminating connection"} {
		if strings.Contains(s, frag) {
			return true
		}
	}
	return errors.Is(err, sql.ErrConnDone)
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
