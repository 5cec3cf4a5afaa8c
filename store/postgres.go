package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"golang.org/x/sync/semaphore"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/notifications"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// pgDialect is the store on PostgreSQL, where writers run concurrently:
// pushes lock their records, feed writers announce themselves, and pulls
// read below the feed horizon in one snapshot.
type pgDialect struct{}

func (pgDialect) name() Dialect { return Postgres }

// open gives reads the writers' pool: PostgreSQL readers never wait for
// writers. The probe is a pool of its own.
func (pgDialect) open(dsn string, _ time.Duration, onStatement func(string)) (writer, reader, probe gorm.Dialector, path string, err error) {
	writer = postgres.Open(dsn)
	if onStatement != nil {
		pool, err := countingPool("pgx", dsn, onStatement)
		if err != nil {
			return nil, nil, nil, "", err
		}
		writer = postgres.New(postgres.Config{Conn: pool})
	}
	return writer, nil, postgres.Open(dsn), "", nil
}

func (pgDialect) configure(ctx context.Context, db *handle, maxOpenConns int) error {
	n := maxOpenConns
	if n == 0 {
		n = 20
	}
	db.sql.SetMaxOpenConns(n)
	db.sql.SetMaxIdleConns(n)
	db.pushes = semaphore.NewWeighted(int64(max(n-2, 1)))
	db.sql.SetConnMaxIdleTime(5 * time.Minute)
	budget, err := lockBudget(ctx, db.sql)
	if err != nil {
		return err
	}
	db.locks = semaphore.NewWeighted(budget)
	return nil
}

// lockBudget is how many record locks this process's pushes may hold at
// once: half of PostgreSQL's shared lock table, which every session of the
// cluster shares and which, once full, fails any statement that needs a
// lock ("out of shared memory"). A push of 1,000 mutations holds 1,000
// advisory locks until it commits; without a budget a dozen such pushes at
// once — a team back online after a day without signal — would fill the
// table with the default settings (64 × 100 connections).
func lockBudget(ctx context.Context, db *sql.DB) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, `SELECT current_setting('max_locks_per_transaction')::bigint *
		(current_setting('max_connections')::bigint + current_setting('max_prepared_transactions')::bigint)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("read lock table size: %w", translate(err))
	}
	return max(n/2, engine.MaxBatch), nil
}

// limitWaits sets the transaction's statement_timeout and lock_timeout
// to the time left before its context's deadline. The driver cancels a
// statement whose context ends by closing the connection, which a backend
// waiting for a lock does not notice: without these it would wait on,
// holding the locks it has, until the lock came free.
func (pgDialect) limitWaits(tx *gorm.DB) error {
	ms, ok := waitLimit(tx.Statement.Context)
	if !ok {
		return nil
	}
	if err := tx.Exec(`SELECT set_config('statement_timeout', ?, true), set_config('lock_timeout', ?, true)`, ms, ms).Error; err != nil {
		return fmt.Errorf("limit waits: %w", err)
	}
	return nil
}

// waitLimit is the time left before ctx's deadline, in milliseconds (at
// least 1), as statement_timeout and lock_timeout take it; ok is false
// when ctx has no deadline.
func waitLimit(ctx context.Context) (ms string, ok bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		return "", false
	}
	return strconv.FormatInt(max(time.Until(dl).Milliseconds(), 1), 10), true
}

// waitLimitArg is waitLimit as limitsCTE's parameter: nil without a
// deadline.
func waitLimitArg(ctx context.Context) any {
	if ms, ok := waitLimit(ctx); ok {
		return ms
	}
	return nil
}

// limitsCTE is limitWaits as the first query of a feed writer's first
// statement (see handle.feedWriterTransaction); its one parameter is
// waitLimit's, and a null keeps the settings as they are. Later queries of
// the statement select from it, so the limits are set before they wait
// for a lock: lock_timeout bounds those waits at once, statement_timeout
// the statements that follow.
const limitsCTE = `limits AS (SELECT set_config('statement_timeout', coalesce(?::text, current_setting('statement_timeout')), true),
		set_config('lock_timeout', coalesce(?::text, current_setting('lock_timeout')), true))`

func (pgDialect) goose() (goose.Dialect, []goose.ProviderOption, error) {
	// Replicas starting together each migrate on start; an advisory
	// lock lets one run the migrations while the others wait.
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return "", nil, fmt.Errorf("migration lock: %w", err)
	}
	return goose.DialectPostgres, []goose.ProviderOption{goose.WithSessionLocker(locker)}, nil
}

// announceFeedWriter takes the organisation's feed lock, shared, before
// anything gives tx a transaction id (see feedHorizon), once it limited
// the transaction's waits.
func (pgDialect) announceFeedWriter(tx *gorm.DB, orgID uuid.UUID) (bool, error) {
	ms := waitLimitArg(tx.Statement.Context)
	if err := tx.Exec(`WITH `+limitsCTE+` SELECT pg_advisory_xact_lock_shared(?, ?) FROM limits`, ms, ms, feedLockClass, feedLockKey(orgID)).Error; err != nil {
		return false, fmt.Errorf("announce feed writer: %w", err)
	}
	return true, nil
}

// feedLockClass is the first key of the shared advisory lock a feed writer
// holds. The two-key form (objsubid 2 in pg_locks) never collides with the
// one-key per-record locks of LastSeq.
const feedLockClass = 0x66656564 // "feed"

func feedLockKey(orgID uuid.UUID) int32 {
	h := fnv.New32a()
	h.Write(orgID[:])
	return int32(h.Sum32())
}

// feedHorizon returns, on PostgreSQL, a transaction id below which every
// transaction that writes the organisation's change feed has finished:
// the oldest id among the organisation's feed writers still running, or
// the next id to be assigned when none is. It must be read before the
// snapshot a pull reads the feed with (a separate, earlier statement).
//
// Why this is safe: a feed writer takes its shared lock before it has a
// transaction id. Let L be the moment this query reads the lock table and
// n the next id at or before L. A writer with an id below the horizon got
// it before L, so it held its lock then; had it still been running, its id
// would bound the horizon. So it had finished by L, and a snapshot taken
// after L sees all of its rows. Writers that get an id later get one of at
// least n, at or above the horizon, so horizons only grow.
//
// Unlike pg_snapshot_xmin, which it replaced, it does not wait for
// transactions that cannot write this feed: another organisation's
// contest recompute, a report, a migration or a test in another schema.
func feedHorizon(g *gorm.DB, orgID uuid.UUID) (int64, error) {
	var h int64
	if err := g.Raw(horizonCTE+` SELECT `+horizonExpr, feedLockClass, uint32(feedLockKey(orgID))).Row().Scan(&h); err != nil {
		return 0, fmt.Errorf("feed horizon: %w", err)
	}
	return h, nil
}

// horizonCTE and horizonExpr compute feedHorizon; the CTE takes the
// feed lock's two keys as its parameters.
//
// pg_locks shows 32-bit xids; they are widened to the 64-bit ids of
// pg_current_xact_id against the next id, n. An xid assigned after the
// statement's snapshot (d = 0 or d past half the ring) is at or above n
// and cannot lower the horizon.
const (
	horizonCTE = `WITH n AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS n),
		locks AS (SELECT * FROM pg_locks),
		writers AS (
			SELECT ((SELECT n FROM n) % 4294967296 - x.transactionid::text::bigint + 4294967296) % 4294967296 AS d
			FROM locks a JOIN locks x ON x.virtualtransaction = a.virtualtransaction
			WHERE a.locktype = 'advisory' AND a.classid = ?::oid AND a.objid = ?::oid AND a.objsubid = 2
				AND a.database = (SELECT oid FROM pg_database WHERE datname = current_database())
				AND x.locktype = 'transactionid' AND x.mode = 'ExclusiveLock' AND x.granted)`
	horizonExpr = `(SELECT n FROM n) - coalesce((SELECT max(d) FROM writers WHERE d > 0 AND d < 2147483648), 0)`
)

// pullState reads the feed horizon and, for a native pull (rejections
// >= 0), the device's last seq, its latest rejections and the purge
// watermark, in the one statement that reads the horizon. That statement
// precedes the page's (readPage), so its snapshot does too: the horizon
// is read before the page's snapshot, as feedHorizon requires, and so is
// the watermark the next cursor carries, as engine.Pull requires.
func (pgDialect) pullState(ctx context.Context, db *Feed, p models.Principal, rejections int) (pullState, error) {
	g := db.read.WithContext(ctx)
	if rejections < 0 {
		h, err := feedHorizon(g, p.OrgID)
		return pullState{horizon: &h}, err
	}
	org, user, device := p.OrgID.String(), p.UserID.String(), p.DeviceID.String()
	rows, err := g.Raw(horizonCTE+`
		SELECT 0, `+horizonExpr+`, coalesce((SELECT last_seq FROM sync_devices WHERE org_id = ? AND user_id = ? AND device_id = ?), 0),
			coalesce((SELECT txid FROM sync_purges WHERE org_id = ?), 0), coalesce((SELECT version FROM sync_purges WHERE org_id = ?), 0),
			'', NULL::uuid, '', '', NULL::text, NULL::timestamptz
		UNION ALL
		SELECT * FROM (SELECT 1, seq, 0::bigint, 0::bigint, 0::bigint, entity, record_id, code, message, field, created_at FROM sync_rejections
			WHERE org_id = ? AND user_id = ? AND device_id = ? ORDER BY seq DESC LIMIT ?) AS r`,
		feedLockClass, uint32(feedLockKey(p.OrgID)), org, user, device, org, org, org, user, device, rejections).Rows()
	if err != nil {
		return pullState{}, fmt.Errorf("pull state: %w", err)
	}
	defer rows.Close()
	var st pullState
	for rows.Next() {
		var (
			kind       int
			a, b, c, d int64
			r          engine.Rejection
			field      sql.NullString
			at         sql.NullTime
		)
		if err := rows.Scan(&kind, &a, &b, &c, &d, &r.Entity, &r.RecordID, &r.Code, &r.Message, &field, &at); err != nil {
			return pullState{}, fmt.Errorf("pull state: %w", err)
		}
		if kind == 0 {
			st.horizon, st.lastSeq, st.issued = &a, b, engine.Position{Txid: c, Version: d}
			continue
		}
		r.Seq, r.Field, r.CreatedAt = a, field.String, at.Time.UTC()
		st.rejections = append(st.rejections, r)
	}
	if err := rows.Err(); err != nil {
		return pullState{}, fmt.Errorf("pull state: %w", err)
	}
	if st.horizon == nil {
		return pullState{}, fmt.Errorf("pull state: no horizon")
	}
	// UNION ALL promises no order.
	slices.SortFunc(st.rejections, func(x, y engine.Rejection) int { return cmp.Compare(y.Seq, x.Seq) })
	return st, nil
}

// readPage runs the page's statement in one round trip with the waits
// limitWaits sets: the two statements are sent together as one pipeline
// (pgx's batch, one Sync), which PostgreSQL runs as one implicit
// transaction, so set_config(…, true) holds for the page's statement and
// ends with it. statement_timeout starts afresh for each statement of a
// pipeline (PostgreSQL 13 and later), with the value set before it. A
// BEGIN … COMMIT around the two would cost two more round trips, and the
// page needs no transaction: it is one statement, one snapshot.
func (pgDialect) readPage(ctx context.Context, db *Feed, q string, args []any, scan func(rowScanner) error) error {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		// A counting pool (Options.OnStatement) wraps the driver's
		// connection: the batch goes to the connection within, and is
		// told to the counter as the statements it sends.
		var on func(string)
		if cc, ok := dc.(*countingConn); ok {
			dc, on = cc.Conn, cc.on
		}
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("read page: driver connection is a %T, not pgx's", dc)
		}
		b := &pgx.Batch{}
		ms, limited := waitLimit(ctx)
		if limited {
			b.Queue(`SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $1, true)`, ms)
		}
		b.Queue(numbered(q), args...)
		if on != nil {
			for _, qq := range b.QueuedQueries {
				on(qq.SQL)
			}
		}
		br := sc.Conn().SendBatch(ctx, b)
		if limited {
			if _, err := br.Exec(); err != nil {
				_ = br.Close()
				return fmt.Errorf("limit waits: %w", err)
			}
		}
		rows, err := br.Query()
		if err != nil {
			_ = br.Close()
			return err
		}
		err = scan(rows)
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// readRecords loads the records of a page's rows that have no doc, in a
// transaction whose waits end with the request (limitWaits).
func (d pgDialect) readRecords(g *gorm.DB, load func(tx *gorm.DB) error) error {
	return g.Transaction(func(tx *gorm.DB) error {
		if err := d.limitWaits(tx); err != nil {
			return err
		}
		return load(tx)
	}, &sql.TxOptions{ReadOnly: true})
}

// lockDevice is one statement, a push's first, that limits its waits
// (limitsCTE) and announces the transaction as a feed writer (see
// feedHorizon): the announcement precedes the insert, which is what gives
// the transaction its id, and the record locks follow the device's, being
// evaluated per device row. It also draws the versions the push will
// most likely need (see syncTx.versions) — after the record locks, which
// it waits for: a push that writes a record after another gives it a
// later version. And it reads the organisation's row, which most pushes'
// rules consult (syncTx.Org).
func (pgDialect) lockDevice(t *syncTx) (int64, error) {
	var (
		seq, locked int64
		versions    string
		orgName     sql.NullString
		orgCreated  sql.NullTime
		orgCeiling  sql.NullInt64
	)
	ms := waitLimitArg(t.tx.Statement.Context)
	err := t.tx.Raw(`WITH `+limitsCTE+`, feed AS (SELECT pg_advisory_xact_lock_shared(?, ?) FROM limits),
		device AS (INSERT INTO sync_devices (org_id, user_id, device_id, last_seq, updated_at) SELECT ?, ?, ?, 0, ? FROM feed
			ON CONFLICT (org_id, user_id, device_id) DO UPDATE SET last_seq = sync_devices.last_seq
			RETURNING last_seq, seq_log_from)
		SELECT d.last_seq, d.seq_log_from, l.n, coalesce(v.versions, ''), o.name, o.created_at, o.order_value_ceiling FROM device AS d
			CROSS JOIN LATERAL (SELECT count(pg_advisory_xact_lock(k)) AS n FROM unnest(?::bigint[]) AS k) AS l
			CROSS JOIN LATERAL (SELECT string_agg(nextval('sync_version')::text, ',') AS versions
				FROM generate_series(1, ?) WHERE l.n >= 0) AS v
			LEFT JOIN orgs AS o ON o.id = ?`,
		ms, ms, feedLockClass, feedLockKey(t.p.OrgID), t.p.OrgID.String(), t.p.UserID.String(), t.p.DeviceID.String(), t.now,
		t.lockArray(t.keys), len(t.keys)+versionSlack, t.p.OrgID.String()).Row().Scan(&seq, &t.seqLogFrom, &locked, &versions, &orgName, &orgCreated, &orgCeiling)
	if err != nil {
		return 0, fmt.Errorf("lock device: %w", err)
	}
	if orgName.Valid {
		t.org = &orgRow{ID: t.p.OrgID, Name: orgName.String, CreatedAt: orgCreated.Time, OrderValueCeiling: orgCeiling.Int64}
	}
	t.feedWriter, t.seqLogKnown = true, true
	for v := range strings.SplitSeq(versions, ",") {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("lock device: version %q: %w", v, err)
		}
		t.versions = append(t.versions, n)
	}
	slices.Sort(t.versions)
	return seq, nil
}

// versionSlack is how many versions a push draws beyond one per record it
// was sent, for the records its rules write (a badge, a notification, a
// standing); one that needs more draws them at flush. A version drawn and
// not used is a gap in the feed, which pulls never rely on.
const versionSlack = 4

// lockArray returns the advisory lock keys of records, sorted — one order,
// so two pushes never deadlock — as an array literal. A push holds a
// transaction-scoped lock per record it writes: without them, two devices
// creating the same record at once would both see nothing and the second
// upsert would overwrite the first instead of merging. SQLite needs none:
// its writers are serial.
func (t *syncTx) lockArray(keys []engine.Key) string {
	ids := make([]int64, len(keys))
	for i, k := range keys {
		ids[i] = t.recordLock(k)
	}
	slices.Sort(ids)
	var b strings.Builder
	b.WriteByte('{')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	b.WriteByte('}')
	return b.String()
}

// recordLock is the advisory lock key of a record of the organisation.
func (t *syncTx) recordLock(k engine.Key) int64 {
	h := fnv.New64a()
	h.Write(t.p.OrgID[:])
	h.Write([]byte(k.Entity))
	h.Write(k.ID[:])
	return int64(h.Sum64())
}

// tryLockRecords takes the records' push locks (see lockArray) with
// pg_try_advisory_xact_lock: a record a push holds is skipped, not waited
// for, so a server job never deadlocks with pushes nor stalls behind them;
// it takes the record on a later run.
func (pgDialect) tryLockRecords(t *syncTx, e *engine.Entity, ids []uuid.UUID) ([]uuid.UUID, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	strs := make([]string, len(ids))
	keys := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
		keys[i] = strconv.FormatInt(t.recordLock(engine.Key{Entity: e.Name, ID: id}), 10)
	}
	var locked []uuid.UUID
	err := t.tx.Raw(`SELECT id FROM unnest(?::uuid[], ?::bigint[]) AS r(id, k) WHERE pg_try_advisory_xact_lock(k)`,
		"{"+strings.Join(strs, ",")+"}", "{"+strings.Join(keys, ",")+"}").Scan(&locked).Error
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", e.Name, err)
	}
	return locked, nil
}

// nextVersions draws from the sync_version sequence.
func (pgDialect) nextVersions(tx *gorm.DB, n int) ([]int64, error) {
	out := make([]int64, 0, n)
	rows, err := tx.Raw(`SELECT nextval('sync_version') FROM generate_series(1, ?)`, n).Rows()
	if err != nil {
		return nil, fmt.Errorf("next versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("next versions: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("next versions: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// txid is the writing transaction's id.
func (pgDialect) txid() string { return "pg_current_xact_id()::text::bigint" }

func (pgDialect) load(t *syncTx, e *engine.Entity, ids []uuid.UUID, clocks bool) (map[uuid.UUID]*engine.Record, error) {
	out := make(map[uuid.UUID]*engine.Record, len(ids))
	// One array parameter: the statement is the same for any number
	// of ids, so it is prepared once.
	keys := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		keys[i] = pgtype.UUID{Bytes: id, Valid: true}
	}
	q := `SELECT ` + strings.Join(columns(e), ", ") + ` FROM ` + e.Name + ` WHERE org_id = $1 AND id = ANY($2::uuid[])`
	rows, err := t.tx.Statement.ConnPool.QueryContext(t.tx.Statement.Context, q, t.p.OrgID.String(), keys)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", e.Name, err)
	}
	if err := scanRows(rows, e, clocks, func(r *engine.Record) { out[r.ID] = r }); err != nil {
		return nil, fmt.Errorf("load %s: %w", e.Name, err)
	}
	return out, nil
}

// save writes with array parameters (savePostgres), and only in a
// transaction announced as a feed writer.
func (pgDialect) save(ctx context.Context, t *syncTx, e *engine.Entity, recs []*engine.Record) error {
	if !t.feedWriter {
		return fmt.Errorf("save %s: a change-feed write outside feedTransaction could be skipped by pulls", e.Name)
	}
	return t.savePostgres(ctx, e, recs)
}

// excludeIDs passes the ids as one array parameter.
func (pgDialect) excludeIDs(ids []uuid.UUID) (string, any) {
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	return `id <> ALL(?::uuid[])`, "{" + strings.Join(strs, ",") + "}"
}

// feedPosition is (feedHorizon - 1, max): every feed writer of the
// organisation with a smaller transaction id has finished, a pull's own
// horizon is read later and is never lower (horizons only grow), and every
// transaction that writes later gets an id at or above it.
func (pgDialect) feedPosition(g *gorm.DB, orgID uuid.UUID) (engine.Position, error) {
	h, err := feedHorizon(g, orgID)
	if err != nil {
		return engine.Position{}, translate(err)
	}
	return engine.Position{Txid: h - 1, Version: math.MaxInt64}, nil
}

// claimLock lets concurrent claims take disjoint rows without waiting for
// each other.
func (pgDialect) claimLock() string { return ` FOR UPDATE SKIP LOCKED` }

// lockRecipients takes a transaction-scoped advisory lock per recipient,
// in sorted order, so that concurrent claims count each user's pushes of
// the day one after the other.
func (pgDialect) lockRecipients(tx *gorm.DB, keys []notifications.UserKey) error {
	ids := make([]int64, len(keys))
	for i, k := range keys {
		h := fnv.New64a()
		h.Write([]byte("notification-cap"))
		h.Write(k.OrgID[:])
		h.Write(k.UserID[:])
		ids[i] = int64(h.Sum64())
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	lit := make([]string, len(ids))
	for i, id := range ids {
		lit[i] = strconv.FormatInt(id, 10)
	}
	var n int
	err := tx.Raw(`SELECT count(*) FROM (SELECT pg_advisory_xact_lock(k) FROM unnest(?::bigint[]) WITH ORDINALITY AS t(k, i) ORDER BY i) AS l`,
		"{"+strings.Join(lit, ",")+"}").Row().Scan(&n)
	if err != nil {
		return fmt.Errorf("lock recipients: %w", err)
	}
	return nil
}
