package store

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/fieldsync/fieldsync/sync/engine"
)

// nearest answers the look-ups of each entity in one round trip, the
// records with them (pgNearest). A verification's look-ups — for each
// changed call its rep's nearest check-in and nearest visit of the same
// account, both ways — are one statement whatever the batch.
func (pgDialect) nearest(t *syncTx, looks []nearestLook) ([][][]*engine.Record, error) {
	out := make([][][]*engine.Record, len(looks))
	byEntity := map[string][]int{}
	var names []string
	for i, l := range looks {
		out[i] = make([][]*engine.Record, len(l.Pivots))
		if byEntity[l.Entity.Name] == nil {
			names = append(names, l.Entity.Name)
		}
		byEntity[l.Entity.Name] = append(byEntity[l.Entity.Name], i)
	}
	for _, name := range names {
		if err := pgNearest(t, looks, byEntity[name], out); err != nil {
			return nil, err
		}
	}
	for i, l := range looks {
		for _, list := range out[i] {
			if len(list) > 1 {
				sort.Slice(list, func(a, b int) bool {
					ma, _ := engine.MarkOf(list[a], l.Field)
					mb, _ := engine.MarkOf(list[b], l.Field)
					if l.Dir == engine.After {
						return ma.Less(mb)
					}
					return mb.Less(ma)
				})
			}
		}
	}
	return out, nil
}

// A look-up's shape is its statement without its values: look-ups of one
// shape — the same conditions, differing only in the values their
// equalities compare with (a rep's visits of one account, of another) —
// share one branch of the statement, their pivots and values travel as
// arrays, one row per pivot. So the statement's text depends on the shapes
// a push asks for, not on how many accounts or calls it holds: pgx
// prepares it once per connection, and PostgreSQL plans it once.
type nearestShape struct {
	field string
	dir   engine.Direction
	limit int
	conds []nearestCond // the conditions that take no per-pivot value
	eq    []string      // columns compared with a value per pivot, sorted
	skip  bool          // whether records are left out (Skip)
}

// nearestCond is a condition of a look-up on a column: IS NULL, IS NOT
// NULL, or one of a list (AnyOf), which is part of the shape.
type nearestCond struct {
	col  string
	kind string // "null", "set" or "in"
	in   []any  // AnyOf's values but null
	null bool   // AnyOf holds null
}

func (sh *nearestShape) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%d|%d|%s|%t", sh.field, sh.dir, sh.limit, strings.Join(sh.eq, ","), sh.skip)
	for _, c := range sh.conds {
		fmt.Fprintf(&b, "|%s %s %t %v", c.col, c.kind, c.null, c.in)
	}
	return b.String()
}

// shapeOf is a look-up's shape and the values of its equalities.
func shapeOf(l nearestLook) (nearestShape, []any, error) {
	sh := nearestShape{field: l.Field, dir: l.Dir, limit: l.Limit, skip: len(l.Skip) > 0}
	keys := make([]string, 0, len(l.Where))
	for k := range l.Where {
		if k != "id" && l.Entity.Field(k) == nil {
			return sh, nil, fmt.Errorf("%s has no field %q", l.Entity.Name, k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var vals []any
	for _, k := range keys {
		switch v := l.Where[k].(type) {
		case nil:
			sh.conds = append(sh.conds, nearestCond{col: k, kind: "null"})
		case engine.NotNull:
			sh.conds = append(sh.conds, nearestCond{col: k, kind: "set"})
		case engine.AnyOf:
			c := nearestCond{col: k, kind: "in"}
			for _, x := range v {
				if x == nil {
					c.null = true
				} else {
					c.in = append(c.in, dbValue(x))
				}
			}
			sh.conds = append(sh.conds, c)
		default:
			sh.eq = append(sh.eq, k)
			vals = append(vals, dbValue(v))
		}
	}
	return sh, vals, nil
}

// pgArrayType is the array type a column's values travel as.
func pgArrayType(e *engine.Entity, col string) string {
	if col == "id" {
		return "uuid[]"
	}
	switch e.Field(col).Type {
	case engine.UUID:
		return "uuid[]"
	case engine.Time:
		return "timestamptz[]"
	case engine.Float:
		return "float8[]"
	case engine.Int, engine.Money:
		return "int8[]"
	case engine.Bool:
		return "bool[]"
	}
	return "text[]"
}

// pgNearest answers looks[which], all of one entity, into out: per shape
// a LATERAL subquery per pivot reads the nearest ids from the index
// (ORDER BY … LIMIT), and each record found is then read once, by primary
// key, with the look-ups and pivots (q:i,…) that found it. The read by
// key is a LATERAL with LIMIT 1 so that it stays a probe per record found
// whatever the planner guesses of their number: a hash or merge join there
// read every visit of the organisation, a push's work growing with the
// data.
func pgNearest(t *syncTx, looks []nearestLook, which []int, out [][][]*engine.Record) error {
	e := looks[which[0]].Entity
	shapes := map[string]*nearestBranch{}
	var order []*nearestBranch
	for _, i := range which {
		sh, vals, err := shapeOf(looks[i])
		if err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
		key := sh.key()
		b := shapes[key]
		if b == nil {
			b = &nearestBranch{shape: sh, eq: make([][]any, len(sh.eq))}
			shapes[key] = b
			order = append(order, b)
		}
		b.add(int32(i), looks[i], vals)
	}

	var sb strings.Builder
	args := []any{t.p.OrgID.String()} // $1, the organisation
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	sb.WriteString(`WITH hits AS (`)
	for j, b := range order {
		if j > 0 {
			sb.WriteString(` UNION ALL `)
		}
		b.write(&sb, e, param)
	}
	cols := columns(e)
	vcols := make([]string, len(cols))
	for k, c := range cols {
		vcols[k] = "v." + c
	}
	sb.WriteString(`), found AS (SELECT id, string_agg(q || ':' || i, ',') AS at FROM hits GROUP BY id)
		SELECT f.at, ` + strings.Join(vcols, ", ") + ` FROM found AS f
		CROSS JOIN LATERAL (SELECT ` + strings.Join(cols, ", ") + ` FROM ` + e.Name + ` WHERE org_id = $1 AND id = f.id LIMIT 1) AS v`)
	ctx := t.tx.Statement.Context
	rows, err := t.tx.Statement.ConnPool.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return fmt.Errorf("%s: %w", e.Name, err)
	}
	var (
		found string
		bad   error
	)
	err = scanRowsAfter(rows, []any{&found}, e, true, func(r *engine.Record) {
		for hit := range strings.SplitSeq(found, ",") {
			q, pivot, _ := strings.Cut(hit, ":")
			i, err1 := strconv.Atoi(q)
			k, err2 := strconv.Atoi(pivot)
			if err1 != nil || err2 != nil || i < 0 || i >= len(out) || k < 0 || k >= len(out[i]) {
				bad = fmt.Errorf("%s: a hit %q of no look-up", e.Name, hit)
				continue
			}
			out[i][k] = append(out[i][k], r)
		}
	})
	if err != nil {
		return fmt.Errorf("%s: %w", e.Name, err)
	}
	return bad
}

// nearestBranch gathers the pivots of the look-ups of one shape: row r
// answers pivot pivot[r] of look-up look[r], whose equalities compare with
// eq[c][r].
type nearestBranch struct {
	shape       nearestShape
	look, pivot []int32
	at          []time.Time
	id          []pgtype.UUID
	eq          [][]any
	skip        []pgtype.UUID
}

func (b *nearestBranch) add(q int32, l nearestLook, vals []any) {
	for k, p := range l.Pivots {
		b.look = append(b.look, q)
		b.pivot = append(b.pivot, int32(k))
		b.at = append(b.at, p.At.UTC())
		b.id = append(b.id, pgtype.UUID{Bytes: p.ID, Valid: true})
		for c := range b.eq {
			b.eq[c] = append(b.eq[c], vals[c])
		}
	}
	// Left out of every look-up of the branch: a record the batch
	// rewrote is stale in storage for all of them alike (the engine
	// merges in its state in the batch).
	for _, id := range l.Skip {
		b.skip = append(b.skip, pgtype.UUID{Bytes: id, Valid: true})
	}
}

// write appends the branch's SELECT of (q, i, id) rows.
func (b *nearestBranch) write(sb *strings.Builder, e *engine.Entity, param func(any) string) {
	sh := b.shape
	cmp, order := nearestOrder(sh.dir)
	sb.WriteString(`(SELECT p.q, p.i, n.id FROM unnest(` + param(b.look) + `::int4[], ` + param(b.pivot) + `::int4[], ` +
		param(b.at) + `::timestamptz[], ` + param(b.id) + `::uuid[]`)
	for c, col := range sh.eq {
		sb.WriteString(", " + param(typedArray(b.eq[c], pgArrayType(e, col))) + "::" + pgArrayType(e, col))
	}
	sb.WriteString(`) AS p(q, i, pivot_at, pivot_id`)
	for c := range sh.eq {
		sb.WriteString(", e" + strconv.Itoa(c))
	}
	sb.WriteString(`) CROSS JOIN LATERAL (SELECT id FROM ` + e.Name + ` WHERE org_id = $1 AND NOT deleted`)
	for _, c := range sh.conds {
		switch {
		case c.kind == "null":
			sb.WriteString(" AND " + c.col + " IS NULL")
		case c.kind == "set":
			sb.WriteString(" AND " + c.col + " IS NOT NULL")
		case len(c.in) == 0 && c.null:
			sb.WriteString(" AND " + c.col + " IS NULL")
		case len(c.in) == 0:
			sb.WriteString(" AND false")
		case c.null:
			sb.WriteString(" AND (" + c.col + " = ANY(" + param(typedArray(c.in, pgArrayType(e, c.col))) + "::" + pgArrayType(e, c.col) + ") OR " + c.col + " IS NULL)")
		default:
			sb.WriteString(" AND " + c.col + " = ANY(" + param(typedArray(c.in, pgArrayType(e, c.col))) + "::" + pgArrayType(e, c.col) + ")")
		}
	}
	for c, col := range sh.eq {
		sb.WriteString(" AND " + col + " = p.e" + strconv.Itoa(c))
	}
	if sh.skip {
		sb.WriteString(` AND id <> ALL(` + param(b.skip) + `::uuid[])`)
	}
	sb.WriteString(` AND (` + sh.field + `, id)` + cmp + `(p.pivot_at, p.pivot_id) ORDER BY ` + sh.field + order + `, id` + order +
		` LIMIT ` + strconv.Itoa(sh.limit) + `) AS n)`)
}

// typedArray is vals, the values of an array parameter of type array, as
// a slice pgx encodes in binary in one pass. Given a []any — or strings
// for a uuid[] — it first tries binary, fails, formats the whole value
// into an error it drops, and then sends text. Mixed values stay as they
// are.
func typedArray(vals []any, array string) any {
	if len(vals) == 0 {
		return vals
	}
	if array == "uuid[]" {
		out := make([]pgtype.UUID, len(vals))
		for i, v := range vals {
			s, ok := v.(string)
			id, err := uuid.Parse(s)
			if !ok || err != nil {
				return vals
			}
			out[i] = pgtype.UUID{Bytes: id, Valid: true}
		}
		return out
	}
	switch vals[0].(type) {
	case string:
		return sameTyped[string](vals)
	case time.Time:
		return sameTyped[time.Time](vals)
	case float64:
		return sameTyped[float64](vals)
	case int64:
		return sameTyped[int64](vals)
	case bool:
		return sameTyped[bool](vals)
	}
	return vals
}

func sameTyped[T any](vals []any) any {
	out := make([]T, len(vals))
	for i, v := range vals {
		x, ok := v.(T)
		if !ok {
			return vals
		}
		out[i] = x
	}
	return out
}
