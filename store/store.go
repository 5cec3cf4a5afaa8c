// Package store is fieldsync's storage adapter: GORM over PostgreSQL in
// production and over pure-Go SQLite as the zero-setup default. It owns the
// schema (versioned migrations per dialect), translates database errors into
// models codes at its edge, and runs each unit of work in one transaction.
//
// DB opens, migrates and closes the database; its parts, one per concern,
// do the work over its one pool: Feed (the sync change feed), Outbox (push
// notifications), People (organisations, users, sessions) and Reports.
// What PostgreSQL and SQLite do differently lives in one place, the dialect
// interface (dialect.go) and its two implementations (postgres.go,
// sqlite.go); the rest of the package is written once for both.
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

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/semaphore"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/fieldsync/fieldsync/models"
)

// Dialect names the database behind a DB.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DefaultURL is the embedded database used when none is configured.
const DefaultURL = "sqlite:fieldsync.db"

// DB is a handle on the database. It is safe for concurrent use. Its
// methods open, migrate and close it; the work is done by its parts, one
// per concern, which share its pool:
//
//   - Feed: the sync change feed — pushes, pulls, device state, conflicts,
//     tombstone purges, WatermelonDB positions (engine.Store).
//   - Outbox: push notifications — the outbox dispatchers claim from
//     (notifications.Store), push tokens, preferences, the inbox.
//   - People: organisations, teams, users and sessions.
//   - Reports: aggregate reads.
type DB struct {
	*handle
	// Path is the SQLite file, empty on PostgreSQL.
	Path string

	feed    *Feed
	outbox  *Outbox
	people  *People
	reports *Reports
}

// handle is what the parts of a DB share: the pools, the dialect and the
// clock.
type handle struct {
	// gorm and sql are the pool that writes: on SQLite one connection,
	// whose writers queue in database/sql, where they give up when their
	// context ends; on PostgreSQL the one pool.
	gorm *gorm.DB
	sql  *sql.DB
	// read is the pool of reads that take no write lock — pulls, the
	// session check of every request, GET endpoints: on SQLite a pool of
	// read-only connections of its own, which in WAL mode never wait for
	// the writer; on PostgreSQL the one pool (readSQL nil).
	read    *gorm.DB
	readSQL *sql.DB
	// probe is readiness's own connection (see DB.Ready), so that the
	// check never queues behind pushes.
	probe   *sql.DB
	ready   readyCache
	dialect dialect
	now     func() time.Time
	// locks bounds the record locks this process's pushes hold at once
	// on PostgreSQL (see lockBudget); nil on SQLite.
	locks *semaphore.Weighted
	// pushes admits pushes to the pool in arrival order, leaving two
	// connections to everything else on PostgreSQL, and one at a time to
	// SQLite's one writer connection. database/sql hands a freed
	// connection to a random waiter: under a burst some pushes waited
	// three times as long as the median.
	pushes *semaphore.Weighted
	// pushWait is Options.PushWait, never nil.
	pushWait func(time.Duration)
	// share admits each user's pushes to pushes: at most
	// Options.PushesPerUser of one user's at a time (see userShare).
	share *userShare
}

// Feed is the sync change feed: the sync engine's and the WatermelonDB
// protocol's store.
type Feed struct{ *handle }

// Outbox holds push notifications: the dispatchers' outbox, push tokens,
// notification preferences and the inbox.
type Outbox struct{ *handle }

// People holds organisations, teams, users and their sessions.
type People struct{ *handle }

// Reports are the aggregate reads over the organisation's records.
type Reports struct{ *handle }

// Feed returns the change feed.
func (db *DB) Feed() *Feed { return db.feed }

// Outbox returns the notifications outbox.
func (db *DB) Outbox() *Outbox { return db.outbox }

// People returns organisations, teams, users and sessions.
func (db *DB) People() *People { return db.people }

// Reports returns the aggregate reads.
func (db *DB) Reports() *Reports { return db.reports }

// Options tune Open. The zero value is fine.
type Options struct {
	Logger *slog.Logger
	// Now replaces the clock, for tests.
	Now func() time.Time
	// MaxOpenConns caps the pool (PostgreSQL); 0 means 20.
	MaxOpenConns int
	// PushWait, if set, is told how long each push waited for its turn
	// to the pool (handle.pushes), whether it got it or its context ended
	// first. It is a hook so that metrics stay out of the store.
	PushWait func(time.Duration)
	// BusyTimeout is how long an SQLite writer waits for the file's write
	// lock while another process holds it, before it answers unavailable
	// (SQLITE_BUSY); 0 means 5 s. Writers of this process never meet it:
	// they queue for the one writer connection.
	BusyTimeout time.Duration
	// PushesPerUser is how many of one user's pushes may hold or queue
	// for the push slots at once; 0 means DefaultPushesPerUser (2).
	PushesPerUser int
	// PushShareWait is how long a push beyond its user's share waits for
	// a place before it is refused rate_limited; 0 means
	// DefaultPushShareWait (2 s).
	PushShareWait time.Duration
	// OnStatement, if set, is told each statement the writers' pool sends
	// (BEGIN and COMMIT included), from the goroutine that sends it: a
	// test holds the round trips of a unit of work down with it.
	OnStatement func(query string)
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
	name, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	dialect := dialects[name]
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
	if opt.BusyTimeout == 0 {
		opt.BusyTimeout = 5 * time.Second
	}
	if opt.PushWait == nil {
		opt.PushWait = func(time.Duration) {}
	}
	h := &handle{dialect: dialect, now: opt.Now, pushWait: opt.PushWait, share: newUserShare(opt.PushesPerUser, opt.PushShareWait)}
	db := &DB{handle: h, feed: &Feed{h}, outbox: &Outbox{h}, people: &People{h}, reports: &Reports{h}}
	writer, reader, probe, path, err := dialect.open(dsn, opt.BusyTimeout, opt.OnStatement)
	if err != nil {
		return nil, err
	}
	db.Path = path
	if path != "" { // a file: SQLite
		if err := prepareSQLiteFile(path, opt.Logger); err != nil {
			return nil, err
		}
	}
	open := func(d gorm.Dialector) (*gorm.DB, *sql.DB, error) {
		g, err := gorm.Open(d, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("open %s database: %w", name, err)
		}
		s, err := g.DB()
		if err != nil {
			return nil, nil, fmt.Errorf("open %s database: %w", name, err)
		}
		return g, s, nil
	}
	// The writer first: on SQLite it puts the file in WAL mode, which
	// the read-only connections need.
	if db.gorm, db.sql, err = open(writer); err != nil {
		return nil, err
	}
	db.read = db.gorm
	if reader != nil {
		if db.read, db.readSQL, err = open(reader); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	if _, db.probe, err = open(probe); err != nil {
		_ = db.Close()
		return nil, err
	}
	db.probe.SetMaxOpenConns(1)
	db.probe.SetMaxIdleConns(1)
	if err := db.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := dialect.configure(ctx, h, opt.MaxOpenConns); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// Dialect reports which database this is.
func (db *DB) Dialect() Dialect { return db.dialect.name() }

// Pool names in PoolStats.
const (
	PoolMain  = "main"  // the pool that writes: PostgreSQL's one pool, SQLite's writer
	PoolRead  = "read"  // SQLite's pool of read-only connections
	PoolProbe = "probe" // readiness's connection of its own
)

// PoolStats returns the database/sql statistics of each connection pool
// by name (PoolMain, PoolRead on SQLite, PoolProbe), read now: for
// metrics, which the store itself knows nothing of.
func (db *DB) PoolStats() map[string]sql.DBStats {
	out := map[string]sql.DBStats{PoolMain: db.sql.Stats(), PoolProbe: db.probe.Stats()}
	if db.readSQL != nil {
		out[PoolRead] = db.readSQL.Stats()
	}
	return out
}

// Gorm exposes the GORM handle to tests, which inspect and stage rows
// directly (the change feed's txids, outbox states), and to the benchmark
// in internal/bench, which times raw inserts and analyses tables. The
// service itself never uses it: everything it stores goes through Feed,
// Outbox, People and Reports.
func (db *DB) Gorm() *gorm.DB { return db.gorm }

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.sql.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", errors.Join(models.ErrUnavailable, err))
	}
	return nil
}

// Close releases the pools.
func (db *DB) Close() error {
	errs := []error{db.sql.Close()}
	for _, s := range []*sql.DB{db.readSQL, db.probe} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// transaction runs fn in one transaction on the request's context. The
// transaction's waits end with ctx's deadline (dialect.limitWaits), and a
// transaction whose context has ended is rolled back, never committed:
// database/sql refuses the commit and GORM returns its error.
func (db *handle) transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return db.feedWriterTransaction(ctx, func(tx *gorm.DB) error {
		if err := db.dialect.limitWaits(tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// feedWriterTransaction is transaction for a writer of the change feed,
// whose first statement — dialect.lockDevice for a push, else
// dialect.announceFeedWriter — limits the waits itself: a round trip
// fewer for each push, which holds its transaction (and on PostgreSQL a
// connection) open for every round trip it makes.
func (db *handle) feedWriterTransaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
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
	case isConnError(err), isTransient(err), isBusy(err):
		return fmt.Errorf("%w: %w", models.ErrUnavailable, err)
	}
	return err
}

// isBusy tells SQLite's SQLITE_BUSY and SQLITE_LOCKED: another process
// (a second server on the same file, an admin command, a backup) held the
// write lock for longer than the busy timeout. It clears by itself, so
// clients are told to retry.
func isBusy(err error) bool {
	var ce interface{ Code() int }
	if errors.As(err, &ce) {
		if c := ce.Code() & 0xff; c == 5 || c == 6 {
			return true
		}
	}
	s := err.Error()
	return strings.Contains(s, "database is locked") || strings.Contains(s, "database table is locked") || strings.Contains(s, "SQLITE_BUSY")
}

// isTransient tells a failure the same request may not meet again: a
// deadlock or serialization failure rolled back, resources the server ran
// short of, a server starting or stopping. Clients are told to retry.
func isTransient(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "55P03", "57014":
		// lock_not_available, query_canceled: lock_timeout or
		// statement_timeout, which limitWaits sets from the request's
		// deadline, ran out.
		return true
	}
	switch pe.Code[:2] {
	case "08", "40", "53", "57":
		return true
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
