package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

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
// expressions are the same for every row and use the first leadParams
// parameters; the columns' arrays follow.
func unnestInsert(table string, lead, leadExpr []string, leadParams int, from string, cols []pgColumn, suffix string) string {
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
		sb.WriteString("$" + strconv.Itoa(leadParams+i+1) + "::" + c.array)
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
	clocks := make([]string, n)
	created := make([]time.Time, n)
	updated := make([]time.Time, n)
	for i, r := range recs {
		c, err := r.ClocksJSON()
		if err != nil {
			return fmt.Errorf("encode clocks: %w", err)
		}
		versions[i], deleted[i], clocks[i] = r.Version, r.Deleted, string(c)
		created[i], updated[i] = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	}
	cols := []pgColumn{ids, {name: "version", array: "int8[]", vals: versions}, {name: "deleted", array: "bool[]", vals: deleted},
		{name: "clocks", array: "text[]", vals: clocks}, createdBy,
		{name: "created_at", array: "timestamptz[]", vals: created}, {name: "updated_at", array: "timestamptz[]", vals: updated}}
	for i := range e.Fields {
		c, err := fieldColumn(&e.Fields[i], recs)
		if err != nil {
			return fmt.Errorf("save %s: %w", e.Name, err)
		}
		cols = append(cols, c)
	}
	var upd []string
	for _, c := range cols {
		switch c.name {
		case "id", "created_at", "created_by":
		default:
			upd = append(upd, c.name+" = excluded."+c.name)
		}
	}
	q := unnestInsert(e.Name, []string{"org_id"}, []string{"$1::uuid"}, 1, "", cols, "ON CONFLICT (org_id, id) DO UPDATE SET "+strings.Join(upd, ", "))
	args := []any{t.p.OrgID.String()}
	for _, c := range cols {
		args = append(args, c.vals)
	}
	if _, err := t.tx.Statement.ConnPool.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("save %s: %w", e.Name, err)
	}

	// The feed rows, one per record, stamped with this transaction's id.
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
		{name: "doc", array: "text[]", vals: pullDocs(e, recs, time.Microsecond)}}
	q = unnestInsert("sync_changes", []string{"org_id", "entity", "txid"}, []string{"$1::uuid", "$2::text", "x.txid"}, 2,
		"(SELECT pg_current_xact_id()::text::bigint AS txid) AS x, ", feed,
		`ON CONFLICT (org_id, entity, record_id) DO UPDATE SET txid = excluded.txid, version = excluded.version,
			team_id = excluded.team_id, user_id = excluded.user_id, visibility = excluded.visibility, deleted = excluded.deleted,
			doc = excluded.doc`)
	args = []any{t.p.OrgID.String(), e.Name}
	for _, c := range feed {
		args = append(args, c.vals)
	}
	if _, err := t.tx.Statement.ConnPool.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("save %s changes: %w", e.Name, err)
	}
	return nil
}
