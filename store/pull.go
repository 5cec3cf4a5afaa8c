package store

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// The change feed is read after a position, in (txid, version) order.
//
// Why not a plain sequence cursor: on PostgreSQL, transaction A can take
// version 10 and transaction B version 11, and B can commit first. A pull
// between the two commits sees 11, moves its cursor past it, and never
// sees 10. So every feed row records its writer's transaction id, and a
// pull returns only rows written by transactions older than the oldest
// feed writer of the organisation still running (feedHorizon, read by an
// earlier statement than the page, so before the page's snapshot): those
// have all finished, so no row can later appear before the cursor. Rows
// are ordered by (txid, version) and the cursor is that pair. A long feed
// write of the organisation delays its pulls while it runs; it never makes
// them skip.
//
// On SQLite writers are serial (BEGIN IMMEDIATE), versions are handed out
// in commit order, and txid is always 0.
//
// A page is one statement over the feed: each row carries its record's
// pull encoding (doc), written by the statement that wrote the row, so the
// page is one snapshot of the records as the feed says they are, with no
// load per entity. Rows written before the docs (migration 00015) are
// loaded from their records after the page (see loadMissing).

// Pull returns up to limit changes after pos visible to p, every one with
// its full record (the WatermelonDB endpoint).
func (db *Feed) Pull(ctx context.Context, p models.Principal, entities map[string]*engine.Entity, after engine.Position, limit int) ([]engine.Change, bool, error) {
	st, err := db.dialect.pullState(ctx, db, p, -1)
	if err != nil {
		return nil, false, translate(err)
	}
	pg, err := db.page(ctx, p, entities, after, limit, st.horizon, false)
	if err != nil {
		return nil, false, translate(err)
	}
	return pg.Changes, pg.More, nil
}

// PullPage reads a native pull's page (see engine.Store): on PostgreSQL
// in two round trips, one for the feed horizon, the device's state and
// the purge watermark before the page, one for the page and the
// watermark in its snapshot (see pgDialect.pullState and readPage).
func (db *Feed) PullPage(ctx context.Context, p models.Principal, entities map[string]*engine.Entity, after engine.Position, limit, rejections int, docs bool) (engine.Page, error) {
	st, err := db.dialect.pullState(ctx, db, p, rejections)
	if err != nil {
		return engine.Page{}, translate(err)
	}
	pg, err := db.page(ctx, p, entities, after, limit, st.horizon, docs)
	if err != nil {
		return engine.Page{}, translate(err)
	}
	pg.LastSeq, pg.Rejections, pg.Issued = st.lastSeq, st.rejections, st.issued
	return pg, nil
}

// pullState is what a pull reads before its page's snapshot.
type pullState struct {
	// horizon is the feed horizon (feedHorizon); nil on SQLite.
	horizon *int64
	// lastSeq, rejections and issued (the purge watermark) are read for
	// a native pull only.
	lastSeq    int64
	rejections []engine.Rejection
	issued     engine.Position
}

// rowScanner is what a page is scanned from: *sql.Rows, or pgx's rows on
// PostgreSQL (readPage).
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// feedRow is one row of a page as read.
type feedRow struct {
	entity  string
	id      uuid.UUID
	pos     engine.Position
	deleted bool
	doc     []byte
}

// page reads up to limit feed rows after pos visible to p, below horizon
// when there is one, in one statement that also reads the organisation's
// purge watermark (Page.Purged). With docs, a row's stored encoding is
// returned as its Doc; rows without one, or all rows without docs, are
// loaded from their records.
func (db *Feed) page(ctx context.Context, p models.Principal, entities map[string]*engine.Entity, after engine.Position, limit int, horizon *int64, docs bool) (engine.Page, error) {
	vis, vargs := visibleTo(p, "user_id")
	doc := "NULL"
	if docs {
		doc = "doc"
	}
	org := p.OrgID.String()
	// The row comparison, unlike the equivalent OR, is an index range on
	// (org_id, txid, version): an incremental pull reads the changes after
	// its cursor, not the organisation's whole feed. The watermark rides
	// in a one-row table the page is joined to, so an empty page has it
	// too.
	q := `SELECT coalesce(w.txid, 0), coalesce(w.version, 0), coalesce(f.entity, ''), f.record_id, coalesce(f.txid, 0),
			coalesce(f.version, 0), coalesce(f.deleted, false), f.doc
		FROM (SELECT (SELECT txid FROM sync_purges WHERE org_id = ?) AS txid, (SELECT version FROM sync_purges WHERE org_id = ?) AS version) AS w
		LEFT JOIN (SELECT entity, record_id, txid, version, deleted, ` + doc + ` AS doc FROM sync_changes
			WHERE org_id = ? AND (txid, version) > (?, ?) AND ` + vis
	args := append([]any{org, org, org, after.Txid, after.Version}, vargs...)
	if horizon != nil {
		q += ` AND txid < ?`
		args = append(args, *horizon)
	}
	q += ` ORDER BY txid, version LIMIT ?) AS f ON true`
	args = append(args, limit+1)

	var (
		out  engine.Page
		rows = make([]feedRow, 0, min(limit+1, 128))
	)
	err := db.dialect.readPage(ctx, db, q, args, func(rs rowScanner) error {
		for rs.Next() {
			var r feedRow
			if err := rs.Scan(&out.Purged.Txid, &out.Purged.Version, &r.entity, &r.id, &r.pos.Txid, &r.pos.Version, &r.deleted, &r.doc); err != nil {
				return err
			}
			if r.entity != "" {
				rows = append(rows, r)
			}
		}
		return rs.Err()
	})
	if err != nil {
		return engine.Page{}, fmt.Errorf("read change feed: %w", err)
	}
	// The subquery's order is not promised through the join: the page
	// is put back in feed order (it is usually in it already).
	byPos := func(a, b feedRow) int {
		return cmp.Or(cmp.Compare(a.pos.Txid, b.pos.Txid), cmp.Compare(a.pos.Version, b.pos.Version))
	}
	if !slices.IsSortedFunc(rows, byPos) {
		slices.SortFunc(rows, byPos)
	}
	if len(rows) > limit {
		rows, out.More = rows[:limit], true
	}
	// A stored doc this build cannot read (written by hand, or damaged)
	// is served from its record instead: a bad doc must not stop every
	// puller at that row.
	for i := range rows {
		if rows[i].doc != nil && !docReadable(rows[i].doc) {
			rows[i].doc = nil
		}
	}
	loaded, err := db.loadMissing(ctx, p, entities, rows)
	if err != nil {
		return engine.Page{}, err
	}
	out.Changes = make([]engine.Change, 0, len(rows))
	for _, r := range rows {
		e := entities[r.entity]
		if e == nil {
			continue // an entity this build no longer serves
		}
		if r.doc == nil {
			rec := loaded[r.entity][r.id]
			if rec == nil {
				continue
			}
			out.Changes = append(out.Changes, engine.Change{Entity: e, Record: rec, Pos: r.pos})
			continue
		}
		rec := &engine.Record{ID: r.id, Version: r.pos.Version, Deleted: r.deleted}
		rec.UpdatedAt, _ = engine.DocUpdatedAt(r.doc) // docReadable checked it
		out.Changes = append(out.Changes, engine.Change{Entity: e, Record: rec, Pos: r.pos, Doc: r.doc})
	}
	return out, nil
}

// loadMissing loads the records of rows that came without a doc, by
// entity, and keeps those still at the version their feed row says.
//
// The load is a later snapshot than the page's. A record written since
// may have moved on, to another version and scope: sending that version
// could show it to a user its new scope hides. It is left out instead,
// which is safe: its writer committed after the page's snapshot, so it
// was not finished when the horizon was read, and its feed row now lies
// at or above the horizon, past the cursor this page ends (on SQLite,
// past every version read, since versions are taken in commit order).
// The next page serves it there, to whoever may see it then.
func (db *Feed) loadMissing(ctx context.Context, p models.Principal, entities map[string]*engine.Entity, rows []feedRow) (map[string]map[uuid.UUID]*engine.Record, error) {
	want := map[string][]uuid.UUID{}
	versions := map[engine.Key]int64{}
	for _, r := range rows {
		if r.doc == nil && entities[r.entity] != nil {
			want[r.entity] = append(want[r.entity], r.id)
			versions[engine.Key{Entity: r.entity, ID: r.id}] = r.pos.Version
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	loaded := make(map[string]map[uuid.UUID]*engine.Record, len(want))
	load := func(tx *gorm.DB) error {
		st := &syncTx{db: db, tx: tx, p: p}
		for name, ids := range want {
			recs, err := st.load(entities[name], ids, false)
			if err != nil {
				return err
			}
			for id, rec := range recs {
				if rec.Version != versions[engine.Key{Entity: name, ID: id}] {
					delete(recs, id)
				}
			}
			loaded[name] = recs
		}
		return nil
	}
	if err := db.dialect.readRecords(db.read.WithContext(ctx), load); err != nil {
		return nil, translate(err)
	}
	return loaded, nil
}

// numbered rewrites q's ? placeholders as $1, $2, … for pgx. The page's
// statement has no ? inside a literal.
func numbered(q string) string {
	var b strings.Builder
	n := 0
	for {
		i := strings.IndexByte(q, '?')
		if i < 0 {
			b.WriteString(q)
			return b.String()
		}
		n++
		b.WriteString(q[:i])
		b.WriteString("$" + strconv.Itoa(n))
		q = q[i+1:]
	}
}

// deviceState reads the device's last processed seq and its latest
// rejections, newest first, on g.
func deviceState(g *gorm.DB, p models.Principal, limit int) (int64, []engine.Rejection, error) {
	var seq int64
	err := g.Raw(`SELECT last_seq FROM sync_devices WHERE org_id = ? AND user_id = ? AND device_id = ?`,
		p.OrgID, p.UserID, p.DeviceID).Row().Scan(&seq)
	if err != nil && err != sql.ErrNoRows {
		return 0, nil, fmt.Errorf("device state: %w", translate(err))
	}
	rows, err := g.Raw(`SELECT seq, entity, record_id, code, message, field, created_at FROM sync_rejections
		WHERE org_id = ? AND user_id = ? AND device_id = ? ORDER BY seq DESC LIMIT ?`,
		p.OrgID, p.UserID, p.DeviceID, limit).Rows()
	if err != nil {
		return 0, nil, fmt.Errorf("device rejections: %w", translate(err))
	}
	defer rows.Close()
	var out []engine.Rejection
	for rows.Next() {
		var r engine.Rejection
		var field sql.NullString
		if err := rows.Scan(&r.Seq, &r.Entity, &r.RecordID, &r.Code, &r.Message, &field, &r.CreatedAt); err != nil {
			return 0, nil, fmt.Errorf("device rejections: %w", err)
		}
		r.Field, r.CreatedAt = field.String, r.CreatedAt.UTC()
		out = append(out, r)
	}
	return seq, out, rows.Err()
}

// docReadable reports whether a stored doc has the shape MarshalRecord
// writes: an object opening with the id, and an updated_at this build
// parses.
func docReadable(doc []byte) bool {
	_, ok := engine.DocUpdatedAt(doc)
	return ok && bytes.HasPrefix(doc, []byte(`{"id":"`)) && bytes.HasSuffix(doc, []byte("}"))
}
