package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/google/uuid"
	"github.com/pressly/goose/v3"
	"golang.org/x/sync/semaphore"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/notifications"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// sqliteDialect is the store on SQLite, whose writers are serial: versions
// are handed out in commit order, so the change feed needs no horizon and
// nothing needs an advisory lock.
type sqliteDialect struct{}

func (sqliteDialect) name() Dialect { return SQLite }

// open splits the file's connections: one that writes, and a pool of
// read-only ones. In WAL mode readers never wait for the writer nor it for
// them, so pulls and every request's session check run beside the pushes
// instead of queuing behind them for a pooled connection (with four
// shared connections, 20 devices pushing made GET /v1/me wait 6–28 s).
func (sqliteDialect) open(dsn string, busy time.Duration, onStatement func(string)) (writer, reader, probe gorm.Dialector, path string, err error) {
	ro := sqliteReaderDSN(dsn, busy)
	writer = sqlite.Open(sqliteDSN(dsn, busy))
	if onStatement != nil {
		pool, err := countingPool(sqlite.DriverName, sqliteDSN(dsn, busy), onStatement)
		if err != nil {
			return nil, nil, nil, "", err
		}
		writer = sqlite.Dialector{Conn: pool}
	}
	return writer, sqlite.Open(ro), sqlite.Open(ro), dsn, nil
}

// sqliteDSN adds the pragmas fieldsync relies on. _txlock=immediate takes
// the write lock at BEGIN, so two writers queue on busy_timeout instead of
// one failing with SQLITE_BUSY when it upgrades a read lock; it also makes
// SQLite writers strictly serial, which the change log's cursor relies on.
// busy_timeout only matters when another process writes the file: this
// one's writers queue for its one writer connection.
func sqliteDSN(path string, busy time.Duration) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// sqliteReaderDSN opens read-only connections (query_only): in WAL mode
// they read the last committed state without a lock the writer waits for.
// The busy timeout covers the rare moments a reader must wait (a WAL
// being recovered after a crash).
func sqliteReaderDSN(path string, busy time.Duration) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "query_only(1)")
	return "file:" + path + "?" + q.Encode()
}

// sqliteReaders is the size of the pool of reads.
var sqliteReaders = max(4, runtime.GOMAXPROCS(0))

// configure gives the writer one connection, so that this process's
// writers wait their turn in Go, where their context ends the wait,
// rather than in SQLite's busy handler, which no context interrupts; and
// reads a pool of their own. Pushes queue for the connection in arrival
// order (handle.pushes): database/sql hands a freed connection to a
// random waiter, so under a team's pushes some waited past their deadline
// while later ones went through.
func (sqliteDialect) configure(_ context.Context, db *handle, _ int) error {
	db.sql.SetMaxOpenConns(1)
	db.sql.SetMaxIdleConns(1)
	db.pushes = semaphore.NewWeighted(1)
	db.readSQL.SetMaxOpenConns(sqliteReaders)
	db.readSQL.SetMaxIdleConns(sqliteReaders)
	return nil
}

// limitWaits has nothing to set: a writer waits for the one writer
// connection in database/sql, which gives up when the context ends, and
// for another process's write lock at most the busy timeout.
func (sqliteDialect) limitWaits(*gorm.DB) error { return nil }

func (sqliteDialect) goose() (goose.Dialect, []goose.ProviderOption, error) {
	return goose.DialectSQLite3, nil, nil
}

// announceFeedWriter has nothing to announce: no pull can read the feed
// while a writer runs.
func (sqliteDialect) announceFeedWriter(*gorm.DB, uuid.UUID) (bool, error) { return false, nil }

// lockDevice upserts the device's row; writers being serial, the records
// need no locks.
func (sqliteDialect) lockDevice(t *syncTx) (int64, error) {
	var seq int64
	err := t.tx.Raw(`INSERT INTO sync_devices (org_id, user_id, device_id, last_seq, updated_at) VALUES (?, ?, ?, 0, ?)
			ON CONFLICT (org_id, user_id, device_id) DO UPDATE SET last_seq = sync_devices.last_seq
			RETURNING last_seq, seq_log_from`, t.p.OrgID.String(), t.p.UserID.String(), t.p.DeviceID.String(), t.now).Row().Scan(&seq, &t.seqLogFrom)
	if err != nil {
		return 0, fmt.Errorf("lock device: %w", err)
	}
	t.seqLogKnown = true
	return seq, nil
}

// nextVersions advances the one-row counter.
func (sqliteDialect) nextVersions(tx *gorm.DB, n int) ([]int64, error) {
	out := make([]int64, 0, n)
	var last int64
	if err := tx.Raw(`UPDATE sync_counter SET value = value + ? WHERE id = 1 RETURNING value`, n).Row().Scan(&last); err != nil {
		return nil, fmt.Errorf("next versions: %w", err)
	}
	for v := last - int64(n) + 1; v <= last; v++ {
		out = append(out, v)
	}
	return out, nil
}

// txid is 0: SQLite writers are serial, so version order is commit order.
func (sqliteDialect) txid() string { return "0" }

// load reads in chunks of a thousand ids, under SQLite's limit on a
// statement's parameters.
func (sqliteDialect) load(t *syncTx, e *engine.Entity, ids []uuid.UUID, clocks bool) (map[uuid.UUID]*engine.Record, error) {
	out := make(map[uuid.UUID]*engine.Record, len(ids))
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(start+1000, len(ids))]
		strs := make([]string, len(chunk))
		for i, id := range chunk {
			strs[i] = id.String()
		}
		q := `SELECT ` + strings.Join(columns(e), ", ") + ` FROM ` + e.Name + ` WHERE org_id = ? AND id IN ?`
		if err := scanRecords(t.tx.Raw(q, t.p.OrgID.String(), strs), e, clocks, func(r *engine.Record) { out[r.ID] = r }); err != nil {
			return nil, fmt.Errorf("load %s: %w", e.Name, err)
		}
	}
	return out, nil
}

// tryLockRecords locks nothing: SQLite writers are serial, so no push
// runs beside the transaction.
func (sqliteDialect) tryLockRecords(_ *syncTx, _ *engine.Entity, ids []uuid.UUID) ([]uuid.UUID, error) {
	return ids, nil
}

// save writes with multi-row statements (saveRows).
func (sqliteDialect) save(ctx context.Context, t *syncTx, e *engine.Entity, recs []*engine.Record) error {
	return t.saveRows(ctx, e, recs)
}

// nearest runs a statement per pivot: in process, a statement costs no
// round trip. A push asks for a neighbour of each of its calls, so the
// statement is prepared once per look-up rather than built by GORM per
// pivot (that doubled what a push of 1,000 allocated); GORM still builds
// it when an argument is a list to expand (AnyOf's IN ?).
func (sqliteDialect) nearest(t *syncTx, looks []nearestLook) ([][][]*engine.Record, error) {
	out := make([][][]*engine.Record, len(looks))
	for i, l := range looks {
		var err error
		if !plainArgs(l.args) {
			out[i], err = t.nearestEach(l)
		} else {
			out[i], err = sqliteNearest(t, l)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sqliteNearest(t *syncTx, l nearestLook) ([][]*engine.Record, error) {
	cmp, order := nearestOrder(l.Dir)
	q := `SELECT ` + strings.Join(columns(l.Entity), ", ") + l.filter +
		` AND (` + l.Field + `, id)` + cmp + `(?, ?) ORDER BY ` + l.Field + order + `, id` + order + ` LIMIT ?`
	ctx := t.tx.Statement.Context
	stmt, err := t.tx.Statement.ConnPool.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.Entity.Name, err)
	}
	defer stmt.Close()
	out := make([][]*engine.Record, len(l.Pivots))
	args := l.args
	n := len(args)
	for i, p := range l.Pivots {
		args = append(args[:n], p.At.UTC(), p.ID.String(), l.Limit)
		rows, err := stmt.QueryContext(ctx, args...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Entity.Name, err)
		}
		if err := scanRows(rows, l.Entity, true, func(r *engine.Record) { out[i] = append(out[i], r) }); err != nil {
			return nil, fmt.Errorf("%s: %w", l.Entity.Name, err)
		}
	}
	return out, nil
}

// plainArgs reports whether args bind as they are, with no list for GORM
// to expand.
func plainArgs(args []any) bool {
	for _, a := range args {
		switch a.(type) {
		case string, bool, int, int64, float64, time.Time, nil:
		default:
			return false
		}
	}
	return true
}

// excludeIDs passes the ids as one JSON array.
func (sqliteDialect) excludeIDs(ids []uuid.UUID) (string, any) {
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	b, _ := json.Marshal(strs)
	return `id NOT IN (SELECT value FROM json_each(?))`, string(b)
}

// sqliteTimePrecision is how much of a time SQLite keeps: the driver
// stores it as text to the nanosecond.
const sqliteTimePrecision = time.Nanosecond

// pullState needs no horizon: writers are serial and take versions in
// commit order, so no row can appear below one already committed. A
// native pull's device state and purge watermark are read by their own
// statements, which cost no round trip in process; before the page's, as
// engine.Pull requires of the watermark.
func (sqliteDialect) pullState(ctx context.Context, db *Feed, p models.Principal, rejections int) (pullState, error) {
	var st pullState
	if rejections < 0 {
		return st, nil
	}
	g := db.read.WithContext(ctx)
	var err error
	if st.lastSeq, st.rejections, err = deviceState(g, p, rejections); err != nil {
		return pullState{}, err
	}
	if st.issued, err = purgedThrough(g, p.OrgID); err != nil {
		return pullState{}, err
	}
	return st, nil
}

// readPage runs the page's statement on the pool of reads.
func (sqliteDialect) readPage(ctx context.Context, db *Feed, q string, args []any, scan func(rowScanner) error) error {
	rows, err := db.readSQL.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return scan(rows)
}

// readRecords loads directly: a read waits for no writer.
func (sqliteDialect) readRecords(g *gorm.DB, load func(tx *gorm.DB) error) error { return load(g) }

// feedPosition is the counter as committed: the last version any pull can
// see, the next writer taking a larger one.
func (sqliteDialect) feedPosition(g *gorm.DB, _ uuid.UUID) (engine.Position, error) {
	var v int64
	if err := g.Raw(`SELECT value FROM sync_counter WHERE id = 1`).Row().Scan(&v); err != nil {
		return engine.Position{}, fmt.Errorf("feed horizon: %w", translate(err))
	}
	return engine.Position{Version: v}, nil
}

// claimLock is empty: a claim is a write transaction, and writers are
// serial.
func (sqliteDialect) claimLock() string { return "" }

// lockRecipients has nothing to do: claims are serial.
func (sqliteDialect) lockRecipients(*gorm.DB, []notifications.UserKey) error { return nil }
