package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldsync/fieldsync/sync/engine"
)

// On PostgreSQL a push's records and feed rows are written with one
// statement per entity whose parameters are arrays, one per column,
// unnested into rows. Against multi-row VALUES this keeps the statement
// text (and so its prepared plan) the same whatever the batch size, sends
// a dozen parameters instead of ten thousand, and lets pgx encode each
// column in binary in one pass.

// pgColumn is one column of an unnest: its array parameter, the array type
// the parameter is declared as and the cast the value takes on the way in.
type pgColumn struct {
	name  string
	array string // "text[]", "int8[]", …
	cast  string // a cast of each value, or ""
	vals  any
	// joined is set when vals is one string of the column's texts
	// separated by recordSep (joinedColumn), which the statement splits.
	joined bool
	param  int // the parameter's number in the statement
}

// recordSep separates the texts of a joined column. Valid JSON never
// holds it but escaped (\u001e), so JSON texts joined by it split back
// exactly.
const recordSep = '\x1e'

// joinedColumn sends JSON texts as one text parameter the statement
// splits, instead of a text[]: pgx encodes an array element by element
// into a buffer it grows as it goes, and for a push of 500 docs that
// growing and copying was the largest share of Save's CPU. b holds the
// texts, each but the first after recordSep, and ends where each ends.
// When a text held recordSep itself, the texts go as an array all the
// same.
func joinedColumn(name string, b []byte, ends []int) pgColumn {
	// b is never written again: its bytes can be the strings'.
	all := unsafe.String(unsafe.SliceData(b), len(b))
	if strings.Count(all, string(rune(recordSep))) == len(ends)-1 {
		return pgColumn{name: name, vals: all, joined: true}
	}
	texts := make([]string, len(ends))
	start := 0
	for i, end := range ends {
		texts[i], start = all[start:end], end+1
	}
	return pgColumn{name: name, array: "text[]", vals: texts}
}

// uuidColumn gathers ids as a uuid[] parameter, which pgx sends as 16
// bytes each where text would be parsed back by the server.
func uuidColumn(name string, n int, at func(i int) any) (pgColumn, error) {
	s := make([]pgtype.UUID, n)
	for i := range s {
		switch v := at(i).(type) {
		case nil:
		case uuid.UUID:
			s[i] = pgtype.UUID{Bytes: v, Valid: true}
		case *uuid.UUID:
			if v != nil {
				s[i] = pgtype.UUID{Bytes: *v, Valid: true}
			}
		default:
			return pgColumn{}, fmt.Errorf("column %s: %T is not a UUID", name, v)
		}
	}
	return pgColumn{name: name, array: "uuid[]", vals: s}, nil
}

// nullableColumn gathers one field of records into an array of T, nil
// where the record holds no value; conv converts a present value.
func nullableColumn[T any](f *engine.Field, array string, recs []*engine.Record, conv func(any) (T, bool)) (pgColumn, error) {
	s := make([]*T, len(recs))
	for i, r := range recs {
		v := r.Values[f.Name]
		if v == nil {
			continue
		}
		x, ok := conv(v)
		if !ok {
			return pgColumn{}, fmt.Errorf("field %s: unexpected %T", f.Name, v)
		}
		s[i] = &x
	}
	return pgColumn{name: f.Name, array: array, vals: s}, nil
}

func as[T any](v any) (T, bool) {
	x, ok := v.(T)
	return x, ok
}

// fieldColumn gathers one field of records into a typed array.
func fieldColumn(f *engine.Field, recs []*engine.Record) (pgColumn, error) {
	switch f.Type {
	case engine.UUID:
		return uuidColumn(f.Name, len(recs), func(i int) any { return recs[i].Values[f.Name] })
	case engine.Time:
		return nullableColumn(f, "timestamptz[]", recs, func(v any) (time.Time, bool) {
			t, ok := v.(time.Time)
			return t.UTC(), ok
		})
	case engine.Float:
		return nullableColumn(f, "float8[]", recs, as[float64])
	case engine.Int, engine.Money:
		return nullableColumn(f, "int8[]", recs, as[int64])
	case engine.Bool:
		return nullableColumn(f, "bool[]", recs, as[bool])
	}
	return nullableColumn(f, "text[]", recs, as[string])
}

// unnestInsert builds INSERT INTO table (lead…, cols…) SELECT lead
// expressions, unnested columns FROM from, unnest(…). The lead
// expressions are the same for every row; each column's array is its
// parameter.
func unnestInsert(table string, lead, leadExpr []string, from string, cols []pgColumn, suffix string) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + table + " (" + strings.Join(lead, ", "))
	for _, c := range cols {
		sb.WriteString(", " + c.name)
	}
	sb.WriteString(") SELECT " + strings.Join(leadExpr, ", "))
	for i, c := range cols {
		sb.WriteString(", u.c" + strconv.Itoa(i) + c.cast)
	}
	sb.WriteString(" FROM " + from + "unnest(")
	for i, c := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		if c.joined {
			sb.WriteString("string_to_array($" + strconv.Itoa(c.param) + "::text, chr(30))")
		} else {
			sb.WriteString("$" + strconv.Itoa(c.param) + "::" + c.array)
		}
	}
	sb.WriteString(") AS u(")
	for i := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("c" + strconv.Itoa(i))
	}
	sb.WriteString(") " + suffix)
	return sb.String()
}

// savePostgres is Save on PostgreSQL.
func (t *syncTx) savePostgres(ctx context.Context, e *engine.Entity, recs []*engine.Record) error {
	n := len(recs)
	ids, err := uuidColumn("id", n, func(i int) any { return recs[i].ID })
	if err != nil {
		return err
	}
	createdBy, err := uuidColumn("created_by", n, func(i int) any {
		if recs[i].CreatedBy == uuid.Nil {
			return nil
		}
		return recs[i].CreatedBy
	})
	if err != nil {
		return err
	}
	versions := make([]int64, n)
	deleted := make([]bool, n)
	created := make([]time.Time, n)
	updated := make([]time.Time, n)
	var clocks []byte
	clockEnds := make([]int, n)
	for i, r := range recs {
		if i > 0 {
			clocks = append(clocks, recordSep)
		}
		clocks = r.AppendClocksJSON(clocks)
		clockEnds[i] = len(clocks)
		if i == 0 {
			clocks = slices.Grow(clocks, (len(clocks)+16)*(n-1))
		}
		versions[i], deleted[i] = r.Version, r.Deleted
		created[i], updated[i] = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	}
	cols := []pgColumn{ids, {name: "version", array: "int8[]", vals: versions}, {name: "deleted", array: "bool[]", vals: deleted},
		createdBy, {name: "created_at", array: "timestamptz[]", vals: created}, {name: "updated_at", array: "timestamptz[]", vals: updated}}
	for i := range e.Fields {
		c, err := fieldColumn(&e.Fields[i], recs)
		if err != nil {
			return fmt.Errorf("save %s: %w", e.Name, err)
		}
		cols = append(cols, c)
	}
	// The largest parameter last (see the statement's below): pgx appends
	// each parameter to a buffer that grows as it goes, and what comes
	// after a large one copies it.
	cols = append(cols, joinedColumn("clocks", clocks, clockEnds))
	var upd []string
	for _, c := range cols {
		switch c.name {
		case "id", "created_at", "created_by":
		default:
			upd = append(upd, c.name+" = excluded."+c.name)
		}
	}

	// The feed rows, one per record, stamped with this transaction's id.
	docs, docEnds := appendPullDocs(e, recs, time.Microsecond, true)
	scopes := make([]engine.Scope, n)
	vis := make([]int32, n)
	for i, r := range recs {
		scopes[i] = e.Scope(r)
		vis[i] = int32(scopes[i].Visibility)
	}
	teamCol, err := uuidColumn("team_id", n, func(i int) any { return scopes[i].TeamID })
	if err != nil {
		return err
	}
	userCol, err := uuidColumn("user_id", n, func(i int) any { return scopes[i].UserID })
	if err != nil {
		return err
	}
	feed := []pgColumn{{name: "record_id", array: "uuid[]", vals: ids.vals}, {name: "version", array: "int8[]", vals: versions},
		teamCol, userCol, {name: "visibility", array: "int4[]", vals: vis}, {name: "deleted", array: "bool[]", vals: deleted},
		{name: "created_by", array: "uuid[]", vals: createdBy.vals}, {name: "created_version", array: "int8[]", vals: versions},
		joinedColumn("doc", docs, docEnds)}

	// Records and feed rows in one statement, one round trip. Parameters:
	// the organisation, the entity, every column's array and the two
	// largest, each list's last (clocks, docs), at the end.
	args := []any{t.p.OrgID.String(), e.Name}
	bind := func(c *pgColumn) {
		args = append(args, c.vals)
		c.param = len(args)
	}
	for i := range cols[:len(cols)-1] {
		bind(&cols[i])
	}
	for i := range feed[:len(feed)-1] {
		bind(&feed[i])
	}
	bind(&cols[len(cols)-1])
	bind(&feed[len(feed)-1])
	q := "WITH saved AS (" + unnestInsert(e.Name, []string{"org_id"}, []string{"$1::uuid"}, "", cols,
		"ON CONFLICT (org_id, id) DO UPDATE SET "+strings.Join(upd, ", ")) + ") " +
		unnestInsert("sync_changes", []string{"org_id", "entity", "txid"}, []string{"$1::uuid", "$2::text", "x.txid"},
			"(SELECT pg_current_xact_id()::text::bigint AS txid) AS x, ", feed,
			`ON CONFLICT (org_id, entity, record_id) DO UPDATE SET txid = excluded.txid, version = excluded.version,
			team_id = excluded.team_id, user_id = excluded.user_id, visibility = excluded.visibility, deleted = excluded.deleted,
			doc = excluded.doc`)
	if _, err := t.tx.Statement.ConnPool.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("save %s: %w", e.Name, err)
	}
	return nil
}
