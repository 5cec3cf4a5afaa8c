package bench

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// SameWrites says how sameWrites measures, for the report.
const SameWrites = "a push's writes alone: for each visit the push phase wrote, its row, its feed row with its doc and its device's " +
	"log row, copied with new ids into copies of visits, sync_changes and sync_mutations with all their indexes and foreign keys, " +
	"holding the run's organisation's rows; 500 rows each, written as the push writes them (upserts, the log inserted), a transaction per batch, " +
	"on one connection per pushing device; no reads, no verification, no HTTP. Sent: every value sent as a parameter, as the raw " +
	"ceiling sends its rows. Made by PostgreSQL: each batch made from its template rows by the database itself, nothing sent — " +
	"the most the database can do for these writes (PostgreSQL only)"

// writeMode is how sameWrites hands the database its rows.
type writeMode int

const (
	sentRows       writeMode = iota // multi-row VALUES, every value a parameter, as raw does
	madeInDatabase                  // INSERT … SELECT from the template row, nothing sent
)

// sameTable is one table a push of visits writes a row of per visit.
type sameTable struct {
	src, copy string
	template  string // where the template row is, given the visit's id as $2 (and the organisation as $1)
	// conflict is the push's ON CONFLICT target, "" for a plain INSERT;
	// kept are the columns its upsert leaves as they are.
	conflict string
	kept     []string
	fresh    map[string]freshValue // columns each row gets anew
}

// freshValue is what a column gets in each written row.
type freshValue int

const (
	newID      freshValue = iota // the row's new visit id
	newVersion                   // the row's own number (a version, a seq)
	txid                         // the writing transaction's id, as the feed stamps it
)

// pushTables are the rows a push writes for each visit (store.Feed.Push:
// the record, its feed row, the device's log of the mutation).
var pushTables = []sameTable{
	{src: "visits", copy: "bench_same_visits", template: "id = $2", conflict: "(org_id, id)",
		kept: []string{"org_id", "id", "created_at", "created_by"}, fresh: map[string]freshValue{"id": newID, "version": newVersion}},
	{src: "sync_changes", copy: "bench_same_feed", template: "entity = 'visits' AND record_id = $2", conflict: "(org_id, entity, record_id)",
		kept:  []string{"org_id", "entity", "record_id", "created_by", "created_version"},
		fresh: map[string]freshValue{"record_id": newID, "version": newVersion, "created_version": newVersion, "txid": txid}},
	{src: "sync_mutations", copy: "bench_same_log", template: "entity = 'visits' AND record_id = $2",
		fresh: map[string]freshValue{"record_id": newID, "seq": newVersion}},
}

// sameWrites measures, on PostgreSQL, how fast the database takes the
// very writes the throughput phase's pushes made (SameWrites), copied
// from each device's last pushed visit, in batches of size on as many
// connections as devices, into copies of the tables holding the run's
// organisation's rows (all there is in a database of the bench's own). Set beside the raw ceiling it splits the gap between fieldsync
// and the ceiling into what the schema asks of the database for each
// visit and what the server does around the writes.
func (w *world) sameWrites(devices, batches, size int, mode writeMode) (float64, error) {
	g := w.db.Gorm().WithContext(w.ctx)
	var copies []string
	for _, t := range pushTables {
		copies = append(copies, t.copy)
	}
	drop := func() error { return g.Exec("DROP TABLE IF EXISTS " + strings.Join(copies, ", ")).Error }
	if err := drop(); err != nil {
		return 0, fmt.Errorf("same writes: %w", err)
	}
	defer drop()
	cols := make([][]string, len(pushTables))
	for i, t := range pushTables {
		var fks []string
		if err := g.Raw("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = ?::regclass AND contype = 'f'", t.src).Scan(&fks).Error; err != nil {
			return 0, fmt.Errorf("same writes: foreign keys of %s: %w", t.src, err)
		}
		stmts := []string{"CREATE TABLE " + t.copy + " (LIKE " + t.src + " INCLUDING ALL)"}
		for _, fk := range fks {
			stmts = append(stmts, "ALTER TABLE "+t.copy+" ADD "+fk)
		}
		for _, q := range stmts {
			if err := g.Exec(q).Error; err != nil {
				return 0, fmt.Errorf("same writes: %w", err)
			}
		}
		// The run's organisation's rows only: the bench's database may
		// hold others', which are none of its business.
		if err := g.Exec("INSERT INTO "+t.copy+" SELECT * FROM "+t.src+" WHERE org_id = ?", w.org.ID).Error; err != nil {
			return 0, fmt.Errorf("same writes: %w", err)
		}
		if err := g.Exec("ANALYZE " + t.copy).Error; err != nil {
			return 0, fmt.Errorf("same writes: %w", err)
		}
		var err error
		if cols[i], err = w.columns(t.src); err != nil {
			return 0, err
		}
	}
	// Each device's template: its last pushed visit, and that visit's
	// rows in each table, every value as text, as PostgreSQL gives it.
	ids := make([]string, devices)
	rows := make([][][]any, devices)
	for d := range devices {
		if err := g.Raw("SELECT id::text FROM visits WHERE org_id = ? AND rep_id = ? ORDER BY version DESC LIMIT 1", w.org.ID, w.reps[d].ID).Row().Scan(&ids[d]); err != nil {
			return 0, fmt.Errorf("same writes: template of device %d: %w", d, err)
		}
		for i, t := range pushTables {
			r, err := w.textRow(t, cols[i], ids[d])
			if err != nil {
				return 0, err
			}
			rows[d] = append(rows[d], r)
		}
	}
	// New numbers above every version and seq the pushes used.
	var first int64
	if err := g.Raw("SELECT greatest((SELECT coalesce(max(version), 0) FROM sync_changes), (SELECT coalesce(max(seq), 0) FROM sync_mutations)) + 1").Row().Scan(&first); err != nil {
		return 0, fmt.Errorf("same writes: %w", err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return 0, err
	}
	qs := make([]string, len(pushTables))
	for i, t := range pushTables {
		if mode == madeInDatabase {
			qs[i] = madeInsert(t, cols[i], size)
		} else {
			qs[i] = sentInsert(t, cols[i], size)
		}
	}
	var eg errgroup.Group
	start := time.Now()
	for d := range devices {
		eg.Go(func() error {
			for b := range batches {
				n := first + int64((d*batches+b)*size)
				if err := w.sameBatch(sqlDB, mode, qs, cols, rows[d], ids[d], size, n); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return 0, fmt.Errorf("same writes: %w", err)
	}
	return float64(devices*batches*size) / time.Since(start).Seconds(), nil
}

// sameBatch writes one batch of n visits numbered from first, each
// table's rows in one statement, in one transaction, as a push does.
func (w *world) sameBatch(db *sql.DB, mode writeMode, qs []string, cols [][]string, tmpl [][]any, id string, n int, first int64) error {
	var newIDs []string
	if mode == sentRows {
		newIDs = make([]string, n)
		for i := range newIDs {
			newIDs[i] = uuid.NewString()
		}
	}
	tx, err := db.BeginTx(w.ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for k, t := range pushTables {
		var args []any
		if mode == madeInDatabase {
			args = []any{w.org.ID.String(), id, first}
		} else {
			args = make([]any, 0, n*len(cols[k]))
			for i := range n {
				for c, name := range cols[k] {
					f, ok := t.fresh[name]
					switch {
					case !ok:
						args = append(args, tmpl[k][c])
					case f == newID:
						args = append(args, newIDs[i])
					case f == newVersion:
						args = append(args, strconv.FormatInt(first+int64(i), 10))
					}
				}
			}
		}
		if _, err := tx.ExecContext(w.ctx, qs[k], args...); err != nil {
			return fmt.Errorf("%s: %w", t.copy, err)
		}
	}
	return tx.Commit()
}

// onConflict is the push's ON CONFLICT clause for t, "" for none.
func (t sameTable) onConflict(cols []string) string {
	if t.conflict == "" {
		return ""
	}
	var set []string
	for _, c := range cols {
		kept := false
		for _, k := range t.kept {
			kept = kept || c == k
		}
		if !kept {
			set = append(set, c+" = excluded."+c)
		}
	}
	return " ON CONFLICT " + t.conflict + " DO UPDATE SET " + strings.Join(set, ", ")
}

const txidExpr = "pg_current_xact_id()::text::bigint"

// sentInsert is a multi-row INSERT of n rows into t's copy, every value a
// parameter but the transaction's id.
func sentInsert(t sameTable, cols []string, n int) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + t.copy + " (" + strings.Join(cols, ", ") + ") VALUES ")
	p := 0
	for i := range n {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('(')
		for c, name := range cols {
			if c > 0 {
				sb.WriteString(", ")
			}
			if f, ok := t.fresh[name]; ok && f == txid {
				sb.WriteString(txidExpr)
				continue
			}
			p++
			sb.WriteString("$" + strconv.Itoa(p))
		}
		sb.WriteByte(')')
	}
	return sb.String() + t.onConflict(cols)
}

// madeInsert is an INSERT into t's copy of n rows made from the template
// row ($1 the organisation, $2 the template visit's id, $3 the first
// number), each column copied but for the fresh ones.
func madeInsert(t sameTable, cols []string, n int) string {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "t." + c
		switch f, ok := t.fresh[c]; {
		case !ok:
		case f == newID:
			sel[i] = "gen_random_uuid()"
		case f == newVersion:
			sel[i] = "$3::bigint + g"
		case f == txid:
			sel[i] = txidExpr
		}
	}
	return "INSERT INTO " + t.copy + " (" + strings.Join(cols, ", ") + ") SELECT " + strings.Join(sel, ", ") +
		" FROM (SELECT * FROM " + t.src + " WHERE org_id = $1 AND " + t.template + " LIMIT 1) AS t, generate_series(0, " +
		strconv.Itoa(n-1) + ") AS g" + t.onConflict(cols)
}

// columns lists table's columns in their order.
func (w *world) columns(table string) ([]string, error) {
	var cols []string
	err := w.db.Gorm().WithContext(w.ctx).Raw("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position", table).Scan(&cols).Error
	if err == nil && len(cols) == 0 {
		err = errors.New("no columns")
	}
	if err != nil {
		return nil, fmt.Errorf("same writes: columns of %s: %w", table, err)
	}
	return cols, nil
}

// textRow reads t's template row for the visit id as text, one value per
// column (nil for NULL).
func (w *world) textRow(t sameTable, cols []string, id string) ([]any, error) {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = c + "::text"
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + t.src + " WHERE org_id = $1 AND " + t.template + " LIMIT 1"
	sqlDB, err := w.db.Gorm().DB()
	if err != nil {
		return nil, err
	}
	if err := sqlDB.QueryRowContext(w.ctx, q, w.org.ID.String(), id).Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("same writes: template row of %s: %w", t.src, err)
	}
	row := make([]any, len(cols))
	for i, v := range vals {
		if v.Valid {
			row[i] = v.String
		}
	}
	return row, nil
}
