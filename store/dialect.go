package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/notifications"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// dialect is everything the store does differently on PostgreSQL and on
// SQLite; pgDialect (postgres.go) and sqliteDialect (sqlite.go) are its
// two implementations, and the rest of the package is written once for
// both. The differences come from one fact: SQLite writers are serial
// (BEGIN IMMEDIATE), PostgreSQL writers are concurrent. So on SQLite
// versions are handed out in commit order, a pull needs no horizon and no
// snapshot, and nothing needs an advisory lock; on PostgreSQL a push locks
// its records, a feed writer announces itself, and a pull reads below the
// feed horizon (see feedHorizon). The rest is speed: PostgreSQL takes
// array parameters where SQLite takes multi-row statements.
type dialect interface {
	// name is the exported name of the dialect.
	name() Dialect
	// open returns GORM's drivers for dsn: the pool that writes, the
	// pool of reads (nil when reads share the writers' pool), readiness's
	// probe; and the database file behind them (empty when there is
	// none). busy is how long an SQLite writer waits for another
	// process's write lock; onStatement, if set, hears each statement the
	// writers' pool sends (see countingPool).
	open(dsn string, busy time.Duration, onStatement func(string)) (writer, reader, probe gorm.Dialector, path string, err error)
	// configure sizes the pools of a database that answers and sets up
	// the admission of pushes (handle.pushes, handle.locks).
	configure(ctx context.Context, db *handle, maxOpenConns int) error
	// limitWaits bounds the waits of transaction tx, as its first
	// statement, by the deadline of its context, if it has one: so that
	// the database too stops waiting (for a lock, a slow statement) when
	// the request gives up, even when the cancellation cannot reach it.
	limitWaits(tx *gorm.DB) error
	// goose returns the migration dialect and provider options.
	goose() (goose.Dialect, []goose.ProviderOption, error)

	// announceFeedWriter marks tx as a writer of the organisation's change
	// feed, as its first statement, which also does limitWaits' work (see
	// handle.feedWriterTransaction); it reports whether it did (Save on
	// PostgreSQL refuses to write the feed of an unannounced transaction).
	announceFeedWriter(tx *gorm.DB, orgID uuid.UUID) (bool, error)
	// lockDevice is syncTx.LastSeq, a push's first statement: it does
	// limitWaits' work, registers and locks the pushing device and locks
	// the records of the push.
	lockDevice(t *syncTx) (int64, error)
	// setLastSeq logs the push's processed mutations (sync_mutations) and
	// moves the device's last seq (syncTx.SetLastSeq).
	setLastSeq(ctx context.Context, t *syncTx, seq int64, log []engine.LoggedMutation) error
	// nextVersions hands out n new versions, ascending.
	nextVersions(tx *gorm.DB, n int) ([]int64, error)
	// txid is the SQL expression of the writing transaction's feed id.
	txid() string
	// load reads records of e by id (see syncTx.load).
	load(t *syncTx, e *engine.Entity, ids []uuid.UUID, clocks bool) (map[uuid.UUID]*engine.Record, error)
	// save upserts records and their feed rows (see syncTx.Save).
	save(ctx context.Context, t *syncTx, e *engine.Entity, recs []*engine.Record) error
	// tryLockRecords takes, without waiting, the locks a push takes on the
	// records of e with these ids, and returns the ids it locked (see
	// syncTx.Due).
	tryLockRecords(t *syncTx, e *engine.Entity, ids []uuid.UUID) ([]uuid.UUID, error)
	// nearest answers syncTx.Nearest's look-ups.
	nearest(t *syncTx, looks []nearestLook) ([][][]*engine.Record, error)
	// excludeIDs returns a condition on column id that excludes ids, and
	// its one argument.
	excludeIDs(ids []uuid.UUID) (string, any)

	// pullState reads what a pull reads before its page's snapshot: the
	// feed horizon (PostgreSQL; the page must skip rows with a txid at or
	// above it) and, when rejections >= 0, the device's last seq, its
	// latest rejections and the organisation's purge watermark.
	pullState(ctx context.Context, db *Feed, p models.Principal, rejections int) (pullState, error)
	// readPage runs the page's statement q (? placeholders) on the pool
	// of reads, with the waits limitWaits sets, and passes its rows to
	// scan.
	readPage(ctx context.Context, db *Feed, q string, args []any, scan func(rowScanner) error) error
	// readRecords runs load, the loads of a page's rows without a doc, on
	// g, with the waits limitWaits sets.
	readRecords(g *gorm.DB, load func(tx *gorm.DB) error) error
	// feedPosition is Feed.FeedHorizon.
	feedPosition(g *gorm.DB, orgID uuid.UUID) (engine.Position, error)

	// claimLock is the locking clause that ends the select of an outbox
	// claim.
	claimLock() string
	// lockRecipients serialises claims for the same recipients until tx
	// ends.
	lockRecipients(tx *gorm.DB, keys []notifications.UserKey) error
}

// dialects are the databases the store runs on, by name.
var dialects = map[Dialect]dialect{Postgres: pgDialect{}, SQLite: sqliteDialect{}}
