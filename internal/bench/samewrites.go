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
const SameWrites = "a push's own writes alone: the visit rows and their feed rows with docs that the push phase wrote, copied with new ids " +
	"into copies of visits and sync_changes with all their indexes and the visits' foreign key, holding the same rows; " +
	"INSERT … ON CONFLICT of 500 rows each, a transaction per batch, on one connection per pushing device; no reads, no verification, " +
	"no HTTP. Sent: the rows sent as the raw ceiling sends its rows (multi-row VALUES). Made by PostgreSQL: each batch made from " +
	"its template row by the database itself, nothing sent — the most the database can do for these writes (PostgreSQL only)"

// writeMode is how sameWrites hands the database its rows.
type writeMode int

const (
	sentRows       writeMode = iota // multi-row VALUES, every value a parameter, as raw does
	madeInDatabase                  // INSERT … SELECT from the template row, nothing sent
)

// sameWrites measures, on PostgreSQL, how fast the database takes the
// very writes the throughput phase's pushes made (SameWrites): each
// device's last pushed visit and its feed row, copied with new ids, in
// batches of size on as many connections as devices, into copies of the
// tables holding the same rows. Set beside the raw ceiling it splits the
// gap between fieldsync and the ceiling into what the schema asks of the
// database for each visit and what the server does around the writes.
func (w *world) sameWrites(devices, batches, size int, mode writeMode) (float64, error) {
	g := w.db.Gorm().WithContext(w.ctx)
	const visits, feed = "bench_same_visits", "bench_same_feed"
	drop := func() error { return g.Exec("DROP TABLE IF EXISTS " + visits + ", " + feed).Error }
	if err := drop(); err != nil {
		return 0, fmt.Errorf("same writes: %w", err)
	}
	defer drop()
	for _, q := range []string{
		"CREATE TABLE " + visits + " (LIKE visits INCLUDING ALL)",
		"ALTER TABLE " + visits + " ADD FOREIGN KEY (org_id) REFERENCES orgs (id)",
		"INSERT INTO " + visits + " SELECT * FROM visits",
		"CREATE TABLE " + feed + " (LIKE sync_changes INCLUDING ALL)",
		"INSERT INTO " + feed + " SELECT * FROM sync_changes",
		"ANALYZE " + visits + ", " + feed,
	} {
		if err := g.Exec(q).Error; err != nil {
			return 0, fmt.Errorf("same writes: %w", err)
		}
	}
	vcols, err := w.columns("visits")
	if err != nil {
		return 0, err
	}
	fcols, err := w.columns("sync_changes")
	if err != nil {
		return 0, err
	}
	// Each device's template: its last pushed visit and feed row, every
	// value as text, as PostgreSQL takes it back for the column.
	ids := make([]string, devices)
	vrows, frows := make([][]any, devices), make([][]any, devices)
	for d := range devices {
		if err := g.Raw("SELECT id::text FROM visits WHERE org_id = ? AND rep_id = ? ORDER BY version DESC LIMIT 1", w.org.ID, w.reps[d].ID).Row().Scan(&ids[d]); err != nil {
			return 0, fmt.Errorf("same writes: template of device %d: %w", d, err)
		}
		if vrows[d], err = w.textRow("visits", vcols, "id = '"+ids[d]+"'"); err != nil {
			return 0, err
		}
		if frows[d], err = w.textRow("sync_changes", fcols, "entity = 'visits' AND record_id = '"+ids[d]+"'"); err != nil {
			return 0, err
		}
	}
	var version int64
	if err := g.Raw("SELECT coalesce(max(version), 0) FROM sync_changes").Row().Scan(&version); err != nil {
		return 0, fmt.Errorf("same writes: %w", err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return 0, err
	}
	vset := "ON CONFLICT (org_id, id) DO UPDATE SET " + excludedAll(vcols, "org_id", "id", "created_at", "created_by")
	fset := "ON CONFLICT (org_id, entity, record_id) DO UPDATE SET " + excludedAll(fcols, "org_id", "entity", "record_id", "created_by", "created_version")
	txid := "pg_current_xact_id()::text::bigint"
	var vq, fq string
	if mode == madeInDatabase {
		vq = madeInsert(visits, "visits", vcols, "id = $2", map[string]string{"id": "gen_random_uuid()", "version": "$3 + g"}, size, vset)
		fq = madeInsert(feed, "sync_changes", fcols, "entity = 'visits' AND record_id = $2",
			map[string]string{"record_id": "gen_random_uuid()", "version": "$3 + g", "created_version": "$3 + g", "txid": txid}, size, fset)
	} else {
		vq = sameWritesInsert(visits, vcols, size, vset, nil)
		fq = sameWritesInsert(feed, fcols, size, fset, map[string]string{"txid": txid})
	}
	var eg errgroup.Group
	start := time.Now()
	for d := range devices {
		base := version + int64(d*batches*size) + 1
		eg.Go(func() error {
			for b := range batches {
				first := base + int64(b*size)
				var err error
				if mode == madeInDatabase {
					err = madeBatch(w, sqlDB, vq, fq, ids[d], first)
				} else {
					err = sameWritesBatch(w, sqlDB, vq, fq, vcols, fcols, vrows[d], frows[d], size, first)
				}
				if err != nil {
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

// madeInsert is INSERT INTO table SELECT …, n rows made from the row of
// from where holds (with $1 the organisation, $2 the template's id), each
// column copied but for those exprs replaces; g counts the rows from 0.
func madeInsert(table, from string, cols []string, where string, exprs map[string]string, n int, suffix string) string {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = c
		if e, ok := exprs[c]; ok {
			sel[i] = e
		}
	}
	return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") SELECT " + strings.Join(sel, ", ") +
		" FROM " + from + ", generate_series(0, " + strconv.Itoa(n-1) + ") AS g WHERE org_id = $1 AND " + where + " " + suffix
}

// madeBatch writes one batch made in the database, in one transaction.
func madeBatch(w *world, db *sql.DB, vq, fq, id string, first int64) error {
	tx, err := db.BeginTx(w.ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(w.ctx, vq, w.org.ID.String(), id, first); err != nil {
		return err
	}
	if _, err := tx.ExecContext(w.ctx, fq, w.org.ID.String(), id, first); err != nil {
		return err
	}
	return tx.Commit()
}

// sameWritesBatch writes one batch: the visits, then their feed rows, in
// one transaction, as a push does.
func sameWritesBatch(w *world, db *sql.DB, vq, fq string, vcols, fcols []string, vrow, frow []any, n int, first int64) error {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	tx, err := db.BeginTx(w.ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	vargs := make([]any, 0, len(ids)*len(vcols))
	fargs := make([]any, 0, len(ids)*(len(fcols)-1))
	for i, id := range ids {
		v := strconv.FormatInt(first+int64(i), 10)
		for c, name := range vcols {
			switch name {
			case "id":
				vargs = append(vargs, id)
			case "version":
				vargs = append(vargs, v)
			default:
				vargs = append(vargs, vrow[c])
			}
		}
		for c, name := range fcols {
			switch name {
			case "txid":
			case "record_id":
				fargs = append(fargs, id)
			case "version", "created_version":
				fargs = append(fargs, v)
			default:
				fargs = append(fargs, frow[c])
			}
		}
	}
	if _, err := tx.ExecContext(w.ctx, vq, vargs...); err != nil {
		return err
	}
	if _, err := tx.ExecContext(w.ctx, fq, fargs...); err != nil {
		return err
	}
	return tx.Commit()
}

// sameWritesInsert is a multi-row INSERT of n rows into table, every
// column a parameter except those exprs gives an expression for.
func sameWritesInsert(table string, cols []string, n int, suffix string, exprs map[string]string) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
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
			if e, ok := exprs[name]; ok {
				sb.WriteString(e)
				continue
			}
			p++
			sb.WriteString("$" + strconv.Itoa(p))
		}
		sb.WriteByte(')')
	}
	sb.WriteString(" " + suffix)
	return sb.String()
}

// excludedAll is "c = excluded.c" for every column but those kept.
func excludedAll(cols []string, kept ...string) string {
	var set []string
	for _, c := range cols {
		keep := false
		for _, k := range kept {
			keep = keep || c == k
		}
		if !keep {
			set = append(set, c+" = excluded."+c)
		}
	}
	return strings.Join(set, ", ")
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

// textRow reads the row of table where holds as text, one value per
// column (nil for NULL).
func (w *world) textRow(table string, cols []string, where string) ([]any, error) {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = c + "::text"
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := w.db.Gorm().WithContext(w.ctx).Raw("SELECT "+strings.Join(sel, ", ")+" FROM "+table+" WHERE org_id = ? AND "+where, w.org.ID).Row().Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("same writes: template row of %s: %w", table, err)
	}
	row := make([]any, len(cols))
	for i, v := range vals {
		if v.Valid {
			row[i] = v.String
		}
	}
	return row, nil
}
