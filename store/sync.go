package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// The store implements the sync engine's Store.
var _ engine.Store = (*Feed)(nil)

// baseColumns precede an entity's field columns in every table of a synced
// entity.
var baseColumns = []string{"org_id", "id", "version", "deleted", "clocks", "created_by", "created_at", "updated_at"}

// Push runs fn in one transaction that holds the device's row lock, so two
// copies of one batch pushed at once apply one after the other and the
// second finds every seq already processed, and the records' locks (see
// lockArray). It first takes one of its user's places (handle.share: at
// most Options.PushesPerUser of a user's pushes at once, else rate_limited
// after Options.PushShareWait), then waits its turn (handle.pushes) and,
// on PostgreSQL, its share of the lock budget (see lockBudget), before it
// takes a connection: a push waiting there keeps no pull from the pool.
// Errors: rate_limited, unavailable.
func (db *Feed) Push(ctx context.Context, p models.Principal, keys []engine.Key, fn func(engine.Tx) error) error {
	release, err := db.share.acquire(ctx, p.UserID)
	if err != nil {
		return err
	}
	defer release()
	if db.pushes != nil {
		start := time.Now()
		err := db.pushes.Acquire(ctx, 1)
		db.pushWait(time.Since(start))
		if err != nil {
			return fmt.Errorf("wait for a connection: %w", err)
		}
		defer db.pushes.Release(1)
	}
	if db.locks != nil {
		n := int64(len(keys))
		if err := db.locks.Acquire(ctx, n); err != nil {
			return fmt.Errorf("wait for the lock budget: %w", err)
		}
		defer db.locks.Release(n)
	}
	return db.feedWriterTransaction(ctx, func(tx *gorm.DB) error {
		// LastSeq, a push's first statement, limits its waits, announces
		// the feed writer and takes the record locks.
		return fn(&syncTx{db: db, tx: tx, p: p, now: db.now().UTC(), keys: keys, push: true})
	})
}

// Server runs fn in one transaction of the organisation, for the server's
// own writes.
func (db *Feed) Server(ctx context.Context, orgID uuid.UUID, fn func(engine.Tx) error) error {
	return db.feedTransaction(ctx, models.Principal{OrgID: orgID}, fn)
}

// SeedRecords writes records as the server (demo data, imports), through
// the same change feed a push uses.
func (db *Feed) SeedRecords(ctx context.Context, orgID uuid.UUID, e *engine.Entity, recs []*engine.Record) error {
	return db.feedTransaction(ctx, models.Principal{OrgID: orgID}, func(tx engine.Tx) error {
		versions, err := tx.NextVersions(ctx, len(recs))
		if err != nil {
			return err
		}
		for i, r := range recs {
			r.Version = versions[i]
		}
		return tx.Save(ctx, e, recs)
	})
}

// feedTransaction runs fn in a transaction that may write the change feed
// of p's organisation. On PostgreSQL its first statement announces it as a
// feed writer of the organisation (see feedHorizon), before anything gives
// it a transaction id.
func (db *Feed) feedTransaction(ctx context.Context, p models.Principal, fn func(engine.Tx) error) error {
	return db.feedWriterTransaction(ctx, func(tx *gorm.DB) error {
		st := &syncTx{db: db, tx: tx, p: p, now: db.now().UTC()}
		announced, err := db.dialect.announceFeedWriter(tx, p.OrgID)
		if err != nil {
			return err
		}
		st.feedWriter = announced
		return fn(st)
	})
}

type syncTx struct {
	db  *Feed
	tx  *gorm.DB
	p   models.Principal
	now time.Time
	// feedWriter is set once the transaction announced itself as a writer
	// of the organisation's feed; Save refuses to write the feed without.
	feedWriter bool
	// push is set on a push's transaction, whose LastSeq locks keys.
	push bool
	keys []engine.Key
	// seqLogFrom is the device's sync_devices.seq_log_from, which LastSeq
	// read when seqLogKnown.
	seqLogFrom  int64
	seqLogKnown bool
	// versions are drawn ahead, ascending, by LastSeq on PostgreSQL, so
	// that a push's flush need not draw them (a round trip); NextVersions
	// hands them out first.
	versions []int64
	// org is the organisation's row, when lockDevice read it with the
	// device's (a round trip a push's rules would otherwise make).
	org *orgRow
}

// LastSeq registers the device if it is new, locks its row until the push
// commits — an upsert that changes nothing still takes the row lock, so a
// second push from the same device waits here — and then locks the
// records the push writes (on PostgreSQL; see pgDialect.lockDevice, which
// also announces the transaction as a feed writer).
func (t *syncTx) LastSeq(ctx context.Context) (int64, error) {
	if !t.push {
		return 0, fmt.Errorf("lock device: not a push")
	}
	return t.db.dialect.lockDevice(t)
}

// SetLastSeq logs the processed mutations and moves the device's last seq
// (see dialect.setLastSeq).
func (t *syncTx) SetLastSeq(ctx context.Context, seq int64, log []engine.LoggedMutation) error {
	return t.db.dialect.setLastSeq(ctx, t, seq, log)
}

func columns(e *engine.Entity) []string {
	cols := append([]string(nil), baseColumns...)
	for _, f := range e.Fields {
		cols = append(cols, f.Name)
	}
	return cols
}

func (t *syncTx) Load(ctx context.Context, e *engine.Entity, ids []uuid.UUID) (map[uuid.UUID]*engine.Record, error) {
	return t.load(e, ids, true)
}

// load reads records by id; clocks are decoded only when the caller will
// merge into the records (a pull never needs them).
func (t *syncTx) load(e *engine.Entity, ids []uuid.UUID, clocks bool) (map[uuid.UUID]*engine.Record, error) {
	return t.db.dialect.load(t, e, ids, clocks)
}

// where builds the filter of Find and Range: live records of the org
// whose fields equal the given values. Field names come from the entity's
// declaration, never from clients.
func (t *syncTx) where(e *engine.Entity, where map[string]any) (string, []any, error) {
	q := ` FROM ` + e.Name + ` WHERE org_id = ? AND deleted = ?`
	args := []any{t.p.OrgID.String(), false}
	keys := make([]string, 0, len(where))
	for k := range where {
		if k != "id" && e.Field(k) == nil {
			return "", nil, fmt.Errorf("%s has no field %q", e.Name, k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if where[k] == nil {
			q += " AND " + k + " IS NULL"
			continue
		}
		if _, ok := where[k].(engine.NotNull); ok {
			q += " AND " + k + " IS NOT NULL"
			continue
		}
		if set, ok := where[k].(engine.AnyOf); ok {
			vals := make([]any, 0, len(set))
			null := false
			for _, v := range set {
				if v == nil {
					null = true
				} else {
					vals = append(vals, dbValue(v))
				}
			}
			switch {
			case len(vals) == 0 && null:
				q += " AND " + k + " IS NULL"
			case null:
				q += " AND (" + k + " IN ? OR " + k + " IS NULL)"
				args = append(args, vals)
			default:
				q += " AND " + k + " IN ?"
				args = append(args, vals)
			}
			continue
		}
		q += " AND " + k + " = ?"
		args = append(args, dbValue(where[k]))
	}
	return q, args, nil
}

func (t *syncTx) Find(ctx context.Context, e *engine.Entity, where map[string]any) ([]*engine.Record, error) {
	q, args, err := t.where(e, where)
	if err != nil {
		return nil, fmt.Errorf("find: %w", err)
	}
	q = `SELECT ` + strings.Join(columns(e), ", ") + q + fmt.Sprintf(" ORDER BY id LIMIT %d", engine.MaxFind)
	var out []*engine.Record
	if err := scanRecords(t.tx.Raw(q, args...), e, true, func(r *engine.Record) { out = append(out, r) }); err != nil {
		return nil, fmt.Errorf("find %s: %w", e.Name, err)
	}
	return out, nil
}

func (t *syncTx) Range(ctx context.Context, e *engine.Entity, where map[string]any, field string, from, to time.Time) ([]*engine.Record, error) {
	q, args, err := t.span(e, where, field, from, to)
	if err != nil {
		return nil, fmt.Errorf("range: %w", err)
	}
	var out []*engine.Record
	if err := scanRecords(t.tx.Raw(q, args...), e, true, func(r *engine.Record) { out = append(out, r) }); err != nil {
		return nil, fmt.Errorf("range %s: %w", e.Name, err)
	}
	return out, nil
}

func (t *syncTx) Latest(ctx context.Context, e *engine.Entity, where map[string]any, field string, from, to time.Time, skip []uuid.UUID, limit int) ([]*engine.Record, error) {
	q, args, err := t.span(e, where, field, from, to)
	if err != nil {
		return nil, fmt.Errorf("latest: %w", err)
	}
	if len(skip) > 0 {
		// One parameter however many ids: an array on PostgreSQL, a JSON
		// array on SQLite.
		cond, arg := t.db.dialect.excludeIDs(skip)
		q += ` AND ` + cond
		args = append(args, arg)
	}
	q += ` ORDER BY ` + field + ` DESC, id DESC LIMIT ?`
	args = append(args, limit)
	var out []*engine.Record
	if err := scanRecords(t.tx.Raw(q, args...), e, true, func(r *engine.Record) { out = append(out, r) }); err != nil {
		return nil, fmt.Errorf("latest %s: %w", e.Name, err)
	}
	return out, nil
}

// Nearest reads, for each look-up and each of its pivots, the nearest
// Limit records on Dir's side of it: a keyset condition on (field, id) and
// ORDER BY field, id LIMIT, which an index on (org_id, <equality columns>,
// field, id) answers by reading Limit entries from the pivot on, however
// many lie beyond (see migration 00014). The row comparison, unlike the
// equivalent OR, is an index range on both databases.
func (t *syncTx) Nearest(ctx context.Context, looks []engine.StoreLook) ([][][]*engine.Record, error) {
	built := make([]nearestLook, len(looks))
	for i, l := range looks {
		if f := l.Entity.Field(l.Field); f == nil || f.Type != engine.Time {
			return nil, fmt.Errorf("nearest: %s.%s is not a time field", l.Entity.Name, l.Field)
		}
		q, args, err := t.where(l.Entity, l.Where)
		if err != nil {
			return nil, fmt.Errorf("nearest: %w", err)
		}
		if len(l.Skip) > 0 {
			cond, arg := t.db.dialect.excludeIDs(l.Skip)
			q += ` AND ` + cond
			args = append(args, arg)
		}
		built[i] = nearestLook{StoreLook: l, filter: q, args: args}
	}
	out, err := t.db.dialect.nearest(t, built)
	if err != nil {
		return nil, fmt.Errorf("nearest: %w", err)
	}
	return out, nil
}

// nearestLook is a look-up of Nearest with the FROM … WHERE clause of the
// records it looks at, and the clause's arguments.
type nearestLook struct {
	engine.StoreLook
	filter string
	args   []any
}

// nearestEach answers a look-up with one statement per pivot.
func (t *syncTx) nearestEach(l nearestLook) ([][]*engine.Record, error) {
	cmp, order := nearestOrder(l.Dir)
	q := `SELECT ` + strings.Join(columns(l.Entity), ", ") + l.filter +
		` AND (` + l.Field + `, id)` + cmp + `(?, ?) ORDER BY ` + l.Field + order + `, id` + order + ` LIMIT ?`
	out := make([][]*engine.Record, len(l.Pivots))
	args := l.args
	n := len(args)
	for i, p := range l.Pivots {
		args = append(args[:n], p.At.UTC(), p.ID.String(), l.Limit)
		if err := scanRecords(t.tx.Raw(q, args...), l.Entity, true, func(r *engine.Record) { out[i] = append(out[i], r) }); err != nil {
			return nil, fmt.Errorf("%s: %w", l.Entity.Name, err)
		}
	}
	return out, nil
}

// nearestOrder is the comparison and the sort order of a look-up in dir.
func nearestOrder(dir engine.Direction) (cmp, order string) {
	if dir == engine.After {
		return " > ", " ASC"
	}
	return " < ", " DESC"
}

// span selects the live records matching where whose time field lies in
// [from, to).
func (t *syncTx) span(e *engine.Entity, where map[string]any, field string, from, to time.Time) (string, []any, error) {
	if f := e.Field(field); f == nil || f.Type != engine.Time {
		return "", nil, fmt.Errorf("%s.%s is not a time field", e.Name, field)
	}
	q, args, err := t.where(e, where)
	if err != nil {
		return "", nil, err
	}
	q = `SELECT ` + strings.Join(columns(e), ", ") + q + ` AND ` + field + ` >= ? AND ` + field + ` < ?`
	return q, append(args, from.UTC(), to.UTC()), nil
}

func (t *syncTx) Team(ctx context.Context, id uuid.UUID) (models.Team, error) {
	var r teamRow
	if err := t.tx.Take(&r, "org_id = ? AND id = ?", t.p.OrgID, id).Error; err != nil {
		return models.Team{}, fmt.Errorf("get team: %w", translate(err))
	}
	return r.model(), nil
}

// LockRecords takes the records' push locks (see lockArray); SQLite's
// writers are serial and need none.
func (t *syncTx) LockRecords(ctx context.Context, keys []engine.Key) error {
	if t.db.dialect.name() != Postgres || len(keys) == 0 {
		return nil
	}
	var n int64
	if err := t.tx.Raw(`SELECT count(pg_advisory_xact_lock(k)) FROM unnest(?::bigint[]) AS k`, t.lockArray(keys)).Row().Scan(&n); err != nil {
		return fmt.Errorf("lock records: %w", translate(err))
	}
	return nil
}

func (t *syncTx) Org(ctx context.Context) (models.Org, error) {
	if t.org != nil {
		return t.org.model(), nil
	}
	var r orgRow
	if err := t.tx.Take(&r, "id = ?", t.p.OrgID).Error; err != nil {
		return models.Org{}, fmt.Errorf("get org: %w", translate(err))
	}
	return r.model(), nil
}

func (t *syncTx) Users(ctx context.Context, teamID *uuid.UUID) ([]models.User, error) {
	q := t.tx.Where("org_id = ? AND active", t.p.OrgID)
	if teamID != nil {
		q = q.Where("team_id = ?", *teamID)
	}
	var rows []userRow
	if err := q.Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]models.User, len(rows))
	for i, r := range rows {
		out[i] = r.model()
	}
	return out, nil
}

func (t *syncTx) User(ctx context.Context, id uuid.UUID) (models.User, error) {
	var r userRow
	if err := t.tx.Take(&r, "org_id = ? AND id = ?", t.p.OrgID, id).Error; err != nil {
		return models.User{}, fmt.Errorf("get user: %w", translate(err))
	}
	return r.model(), nil
}

func (t *syncTx) NextVersions(ctx context.Context, n int) ([]int64, error) {
	take := min(n, len(t.versions))
	out := append(make([]int64, 0, n), t.versions[:take]...)
	t.versions = t.versions[take:]
	if take == n {
		return out, nil
	}
	// Drawn after those drawn ahead, so larger: the list stays ascending.
	more, err := t.db.dialect.nextVersions(t.tx, n-take)
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
}

// txidExpr is the writing transaction's feed id: its transaction id on
// PostgreSQL; 0 on SQLite, whose writers are serial, so that version order
// is commit order there.
func (t *syncTx) txidExpr() string { return t.db.dialect.txid() }

// Save upserts records, and moves each record's change-feed row to its new
// version: on PostgreSQL with array parameters (savePostgres), on SQLite
// with multi-row statements (saveRows).
func (t *syncTx) Save(ctx context.Context, e *engine.Entity, recs []*engine.Record) error {
	return t.db.dialect.save(ctx, t, e, recs)
}

// saveRows is Save with multi-row statements of up to 500 records.
func (t *syncTx) saveRows(ctx context.Context, e *engine.Entity, recs []*engine.Record) error {
	cols := columns(e)
	var upd []string
	for _, c := range cols {
		switch c {
		case "org_id", "id", "created_at", "created_by":
		default:
			upd = append(upd, c+" = excluded."+c)
		}
	}
	const chunk = 500
	for start := 0; start < len(recs); start += chunk {
		part := recs[start:min(start+chunk, len(recs))]
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + e.Name + " (" + strings.Join(cols, ", ") + ") VALUES ")
		row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
		args := make([]any, 0, len(part)*len(cols))
		for i, r := range part {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(row)
			clocks, err := r.ClocksJSON()
			if err != nil {
				return fmt.Errorf("encode clocks: %w", err)
			}
			args = append(args, t.p.OrgID.String(), r.ID.String(), r.Version, r.Deleted, string(clocks), nullUUID(r.CreatedBy), r.CreatedAt.UTC(), r.UpdatedAt.UTC())
			for _, f := range e.Fields {
				args = append(args, dbValue(r.Values[f.Name]))
			}
		}
		sb.WriteString(" ON CONFLICT (org_id, id) DO UPDATE SET " + strings.Join(upd, ", "))
		if err := t.tx.Exec(sb.String(), args...).Error; err != nil {
			return fmt.Errorf("save %s: %w", e.Name, err)
		}

		sb.Reset()
		sb.WriteString(`INSERT INTO sync_changes (org_id, entity, record_id, txid, version, team_id, user_id, visibility, deleted, created_by, created_version, doc) VALUES `)
		args = args[:0]
		docs := pullDocs(e, part, sqliteTimePrecision)
		for i, r := range part {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, " + t.txidExpr() + ", ?, ?, ?, ?, ?, ?, ?, ?)")
			s := e.Scope(r)
			args = append(args, t.p.OrgID.String(), e.Name, r.ID.String(), r.Version, dbValue(s.TeamID), dbValue(s.UserID), int(s.Visibility), r.Deleted, nullUUID(r.CreatedBy), r.Version,
				docs[i])
		}
		sb.WriteString(` ON CONFLICT (org_id, entity, record_id) DO UPDATE SET txid = excluded.txid, version = excluded.version,
			team_id = excluded.team_id, user_id = excluded.user_id, visibility = excluded.visibility, deleted = excluded.deleted,
			doc = excluded.doc`)
		if err := t.tx.Exec(sb.String(), args...).Error; err != nil {
			return fmt.Errorf("save %s changes: %w", e.Name, err)
		}
	}
	return nil
}

func (t *syncTx) SaveConflicts(ctx context.Context, cs []engine.ConflictRecord) error {
	writers, err := t.deviceUsers(cs)
	if err != nil {
		return err
	}
	for start := 0; start < len(cs); start += 500 {
		part := cs[start:min(start+500, len(cs))]
		var sb strings.Builder
		sb.WriteString(`INSERT INTO sync_conflicts (org_id, id, entity, record_id, field, kept, server_value, client_value, user_id, device_id, team_id, owner_id, visibility, created_at, server_user_id, server_written_at) VALUES `)
		var args []any
		for i, c := range part {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			var writtenAt any
			if !c.Conflict.ServerAt.IsZero() {
				writtenAt = c.Conflict.ServerAt.UTC()
			}
			args = append(args, t.p.OrgID, c.ID, c.Entity, c.RecordID, c.Conflict.Field, c.Conflict.Kept,
				string(c.Conflict.ServerValue), string(c.Conflict.ClientValue), c.UserID, c.DeviceID,
				c.Scope.TeamID, c.Scope.UserID, int(c.Scope.Visibility), c.CreatedAt.UTC(),
				nullUUID(writers[c.Conflict.ServerDevice]), writtenAt)
		}
		if err := t.tx.Exec(sb.String(), args...).Error; err != nil {
			return fmt.Errorf("save conflicts: %w", err)
		}
	}
	return nil
}

// deviceUsers maps the devices that wrote the stored side of cs to their
// users, in one read. A device several users signed in on counts as its
// latest user's.
func (t *syncTx) deviceUsers(cs []engine.ConflictRecord) (map[string]uuid.UUID, error) {
	var devices []string
	seen := map[string]bool{}
	for _, c := range cs {
		d := c.Conflict.ServerDevice
		if _, err := uuid.Parse(d); err != nil || seen[d] {
			continue
		}
		seen[d] = true
		devices = append(devices, d)
	}
	out := map[string]uuid.UUID{}
	if len(devices) == 0 {
		return out, nil
	}
	rows, err := t.tx.Raw(`SELECT device_id, user_id FROM sync_devices WHERE org_id = ? AND device_id IN ? ORDER BY updated_at`,
		t.p.OrgID.String(), devices).Rows()
	if err != nil {
		return nil, fmt.Errorf("read conflict writers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var device, user uuid.UUID
		if err := rows.Scan(&device, &user); err != nil {
			return nil, fmt.Errorf("read conflict writers: %w", err)
		}
		out[device.String()] = user
	}
	return out, rows.Err()
}

func (t *syncTx) SaveRejections(ctx context.Context, rs []engine.Rejection) error {
	for start := 0; start < len(rs); start += 500 {
		part := rs[start:min(start+500, len(rs))]
		var sb strings.Builder
		sb.WriteString(`INSERT INTO sync_rejections (org_id, user_id, device_id, seq, entity, record_id, code, message, field, created_at) VALUES `)
		var args []any
		for i, r := range part {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, t.p.OrgID, t.p.UserID, t.p.DeviceID, r.Seq, r.Entity, r.RecordID, r.Code, r.Message, r.Field, r.CreatedAt.UTC())
		}
		if err := t.tx.Exec(sb.String(), args...).Error; err != nil {
			return fmt.Errorf("save rejections: %w", err)
		}
	}
	return nil
}

// visibleTo is the SQL form of engine.Scope.Visible over a table with
// team_id, a user column and visibility. The two must agree; the pull
// scope tests hold them to it.
func visibleTo(p models.Principal, userCol string) (string, []any) {
	var team any
	if p.TeamID != nil {
		team = p.TeamID.String()
	}
	switch p.Role {
	case models.RoleAdmin:
		return "(visibility IN (0, 1, 2) OR " + userCol + " = ?)", []any{p.UserID.String()}
	case models.RoleManager:
		return "(visibility = 0 OR " + userCol + " = ? OR (visibility IN (1, 2) AND team_id = ?))", []any{p.UserID.String(), team}
	}
	return "(visibility = 0 OR " + userCol + " = ? OR (visibility = 1 AND team_id = ?))", []any{p.UserID.String(), team}
}

// DeviceState returns the device's last processed seq and its latest
// rejections, newest first.
func (db *Feed) DeviceState(ctx context.Context, p models.Principal, limit int) (int64, []engine.Rejection, error) {
	return deviceState(db.read.WithContext(ctx), p, limit)
}

// Conflicts lists the conflicts on records p may see, newest first.
func (db *Feed) Conflicts(ctx context.Context, p models.Principal, after engine.ConflictPos, limit int) ([]engine.ConflictRecord, error) {
	vis, vargs := visibleTo(p, "owner_id")
	page := ""
	args := []any{p.OrgID.String()}
	if after.ID != uuid.Nil {
		page = ` AND (created_at < ? OR (created_at = ? AND id > ?))`
		args = append(args, after.At.UTC(), after.At.UTC(), after.ID.String())
	}
	args = append(append(args, vargs...), limit)
	rows, err := db.read.WithContext(ctx).Raw(`SELECT id, entity, record_id, field, kept, server_value, client_value,
		user_id, device_id, team_id, owner_id, visibility, created_at, server_user_id, server_written_at FROM sync_conflicts
		WHERE org_id = ?`+page+` AND `+vis+` ORDER BY created_at DESC, id LIMIT ?`, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("list conflicts: %w", translate(err))
	}
	defer rows.Close()
	var out []engine.ConflictRecord
	for rows.Next() {
		var c engine.ConflictRecord
		var sv, cv string
		var team, owner, writer sql.Null[uuid.UUID]
		var writtenAt sql.NullTime
		var vis int
		if err := rows.Scan(&c.ID, &c.Entity, &c.RecordID, &c.Conflict.Field, &c.Conflict.Kept, &sv, &cv,
			&c.UserID, &c.DeviceID, &team, &owner, &vis, &c.CreatedAt, &writer, &writtenAt); err != nil {
			return nil, fmt.Errorf("list conflicts: %w", err)
		}
		c.Conflict.ServerValue, c.Conflict.ClientValue = json.RawMessage(sv), json.RawMessage(cv)
		if team.Valid {
			c.Scope.TeamID = &team.V
		}
		if owner.Valid {
			c.Scope.UserID = &owner.V
		}
		if writer.Valid {
			c.ServerUserID = &writer.V
		}
		if writtenAt.Valid {
			c.Conflict.ServerAt = writtenAt.Time.UTC()
		}
		c.Scope.Visibility = engine.Visibility(vis)
		c.CreatedAt = c.CreatedAt.UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

func nullUUID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id.String()
}

// dbValue converts a record value to a driver argument. UUIDs travel as
// strings: pgx otherwise tries (and fails, expensively) several encode
// plans for a driver.Valuer before taking its value.
func dbValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case uuid.UUID:
		return x.String()
	case *uuid.UUID:
		if x == nil {
			return nil
		}
		return x.String()
	}
	return v
}

// scanRecords runs q and decodes each row into a record of e.
func scanRecords(q *gorm.DB, e *engine.Entity, withClocks bool, each func(*engine.Record)) error {
	rows, err := q.Rows()
	if err != nil {
		return err
	}
	return scanRows(rows, e, withClocks, each)
}

// scanRows decodes each row of rows into a record of e, and closes rows.
func scanRows(rows *sql.Rows, e *engine.Entity, withClocks bool, each func(*engine.Record)) error {
	return scanRowsAfter(rows, nil, e, withClocks, each)
}

// scanRowsAfter is scanRows for rows whose first columns, before the
// record's, are scanned into extra.
func scanRowsAfter(rows *sql.Rows, extra []any, e *engine.Entity, withClocks bool, each func(*engine.Record)) error {
	defer rows.Close()
	nbase := len(extra) + len(baseColumns)
	dest := make([]any, nbase+len(e.Fields))
	copy(dest, extra)
	var (
		org       uuid.UUID
		createdBy sql.Null[uuid.UUID]
		clocks    string
	)
	// The field scanners are reused row after row: each Scan overwrites
	// them, null included, and value copies out what a record keeps.
	vals := make([]fieldScanner, len(e.Fields))
	for i := range e.Fields {
		vals[i] = newFieldScanner(e.Fields[i].Type)
		dest[nbase+i] = vals[i]
	}
	for rows.Next() {
		r := &engine.Record{Values: make(map[string]any, len(e.Fields))}
		b := dest[len(extra):]
		b[0], b[1], b[2], b[3] = &org, &r.ID, &r.Version, &r.Deleted
		b[4], b[5], b[6], b[7] = &clocks, &createdBy, &r.CreatedAt, &r.UpdatedAt
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if withClocks {
			r.SetRawClocks([]byte(clocks))
		}
		if createdBy.Valid {
			r.CreatedBy = createdBy.V
		}
		r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
		for i := range e.Fields {
			if v := vals[i].value(); v != nil {
				r.Values[e.Fields[i].Name] = v
			}
		}
		each(r)
	}
	return rows.Err()
}

type fieldScanner interface {
	sql.Scanner
	value() any
}

type nullScanner[T any] struct{ n sql.Null[T] }

func (s *nullScanner[T]) Scan(src any) error { return s.n.Scan(src) }

func (s *nullScanner[T]) value() any {
	if !s.n.Valid {
		return nil
	}
	return s.n.V
}

type timeScanner struct{ nullScanner[time.Time] }

func (s *timeScanner) value() any {
	if !s.n.Valid {
		return nil
	}
	return s.n.V.UTC()
}

func newFieldScanner(t engine.FieldType) fieldScanner {
	switch t {
	case engine.UUID:
		return &nullScanner[uuid.UUID]{}
	case engine.Time:
		return &timeScanner{}
	case engine.Float:
		return &nullScanner[float64]{}
	case engine.Int, engine.Money:
		return &nullScanner[int64]{}
	case engine.Bool:
		return &nullScanner[bool]{}
	}
	return &nullScanner[string]{}
}

// SaveJournal stores the rules' audit rows: the versions of a contest's
// scoring rules, and audit log entries (models.AuditEntry, see AuditLog).
func (t *syncTx) SaveJournal(ctx context.Context, entries []any) error {
	for _, e := range entries {
		switch v := e.(type) {
		case models.RuleVersion:
			if err := t.saveRuleVersion(ctx, v); err != nil {
				return err
			}
		case models.AuditEntry:
			// The transaction's organisation, whatever the entry says:
			// no hook writes into another organisation's log.
			v.OrgID = t.p.OrgID
			if v.At.IsZero() {
				v.At = t.now
			}
			if err := insertAudit(t.tx, v); err != nil {
				return err
			}
		default:
			return fmt.Errorf("journal: no table keeps a %T", e)
		}
	}
	return nil
}

func (t *syncTx) saveRuleVersion(ctx context.Context, v models.RuleVersion) error {
	err := t.tx.Exec(`INSERT INTO contest_rule_versions (org_id, contest_id, version, rules, targets, changed_by, changed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, t.p.OrgID.String(), v.ContestID.String(), v.Version, v.Rules, v.Targets,
		v.ChangedBy.String(), v.ChangedAt.UTC()).Error
	if err != nil {
		return fmt.Errorf("audit rule version: %w", err)
	}
	return nil
}

// Records returns every live record of an entity matching where, for the
// HTTP reads over synced entities (a contest's standings, a rep's score
// entries). Unlike Find it has no cap: callers filter by selective keys.
func (db *Feed) Records(ctx context.Context, orgID uuid.UUID, e *engine.Entity, where map[string]any) ([]*engine.Record, error) {
	st := &syncTx{db: db, tx: db.read.WithContext(ctx), p: models.Principal{OrgID: orgID}}
	q, args, err := st.where(e, where)
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	var out []*engine.Record
	err = scanRecords(st.tx.Raw(`SELECT `+strings.Join(columns(e), ", ")+q+` ORDER BY id`, args...), e, false, func(r *engine.Record) { out = append(out, r) })
	if err != nil {
		return nil, fmt.Errorf("records of %s: %w", e.Name, translate(err))
	}
	return out, nil
}

// RuleVersions lists a contest's audited rule versions, oldest first.
func (db *Feed) RuleVersions(ctx context.Context, orgID, contestID uuid.UUID) ([]models.RuleVersion, error) {
	rows, err := db.read.WithContext(ctx).Raw(`SELECT version, rules, targets, changed_by, changed_at FROM contest_rule_versions
		WHERE org_id = ? AND contest_id = ? ORDER BY version`, orgID.String(), contestID.String()).Rows()
	if err != nil {
		return nil, fmt.Errorf("rule versions: %w", translate(err))
	}
	defer rows.Close()
	var out []models.RuleVersion
	for rows.Next() {
		v := models.RuleVersion{ContestID: contestID}
		var targets sql.NullString
		if err := rows.Scan(&v.Version, &v.Rules, &targets, &v.ChangedBy, &v.ChangedAt); err != nil {
			return nil, fmt.Errorf("rule versions: %w", err)
		}
		v.Targets, v.ChangedAt = targets.String, v.ChangedAt.UTC()
		out = append(out, v)
	}
	return out, rows.Err()
}
