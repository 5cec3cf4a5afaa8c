package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// column is one column of a migrated table, its type reduced to a family
// (see pgFamily and sqliteFamily).
type column struct {
	name    string
	family  string
	notNull bool
}

func (c column) String() string {
	null := "NULL"
	if c.notNull {
		null = "NOT NULL"
	}
	return c.name + " " + c.family + " " + null
}

// baseSchema are the columns every synced table starts with (see
// store.baseColumns, which reads and writes them in this order).
var baseSchema = []struct {
	name    string
	typ     engine.FieldType
	notNull bool
}{
	{"org_id", engine.UUID, true},
	{"id", engine.UUID, true},
	{"version", engine.Int, true},
	{"deleted", engine.Bool, true},
	{"clocks", engine.JSON, true},
	{"created_by", engine.UUID, false}, // nil for the server's own records
	{"created_at", engine.Time, true},
	{"updated_at", engine.Time, true},
}

// storeOnlyColumns are the columns of synced tables that no entity
// declares: the store's own, never on the wire. Each must exist, alike, in
// both dialects.
var storeOnlyColumns = map[string]map[string]string{
	"notifications": {
		// The outbox's delivery state (store/notifications.go).
		"status": "delivery", "attempts": "delivery", "next_attempt_at": "delivery",
		"lease_id": "delivery", "sent_at": "delivery", "last_error": "delivery",
	},
}

// nullableRequired are Required fields whose column takes NULL, and why.
var nullableRequired = map[string]string{
	// Required is the sync engine's rule, checked on every write that
	// goes through it (Field.Parse refuses null, checkRequired a record
	// left without the field); the column has taken NULL since the
	// visits table was created (migration 00002, both dialects), unlike
	// the other Required fields'. Adding NOT NULL changes the schema —
	// on SQLite it means rebuilding the table — so it is left for a
	// migration of its own.
	"visits.account_id": "Required is enforced by the engine; the column predates NOT NULL",
}

// dialectDifferences are the known ways the two migration trees differ,
// by table or table.column, and why. Anything else is a drift.
var dialectDifferences = map[string]string{
	"sync_counter": "SQLite's version counter; PostgreSQL draws versions from the sync_version sequence",
	// SQLite lets a PRIMARY KEY of one non-INTEGER column hold NULL unless
	// it is declared NOT NULL (a legacy quirk its documentation keeps);
	// these were declared without. The store always writes them.
	"orgs.id":                   "SQLite primary key without NOT NULL",
	"logins.email":              "SQLite primary key without NOT NULL",
	"refresh_tokens.token_hash": "SQLite primary key without NOT NULL",
	"sync_purges.org_id":        "SQLite primary key without NOT NULL",
}

// TestSchemaMatchesEntities migrates an empty database of each dialect —
// SQLite always, PostgreSQL when FIELDSYNC_TEST_DATABASE_URL is set — and
// checks every synced table against its entity's declaration: the base
// columns, a column per field, no undeclared column, each of the family
// the field's type is stored as, NOT NULL exactly when the field is
// Required. With both dialects it also checks that the two migration trees
// built the same tables, with the same columns, types and nullability.
func TestSchemaMatchesEntities(t *testing.T) {
	ctx := context.Background()
	schemas := map[store.Dialect]map[string][]column{}

	schemas[store.SQLite] = migratedSchema(t, ctx, "sqlite:"+filepath.Join(t.TempDir(), "schema.db"), readSQLite)
	if os.Getenv(storetest.EnvURL) != "" {
		schemas[store.Postgres] = migratedSchema(t, ctx, storetest.URL(t), readPostgres)
	} else {
		t.Logf("%s unset: checking the SQLite schema only", storetest.EnvURL)
	}

	for d, tables := range schemas {
		for _, e := range sales.Entities() {
			t.Run(string(d)+"/"+e.Name, func(t *testing.T) {
				cols, ok := tables[e.Name]
				if !ok {
					t.Fatalf("no table %s", e.Name)
				}
				for _, p := range entityProblems(d, e, cols) {
					t.Error(p)
				}
			})
		}
	}

	pg, sq := schemas[store.Postgres], schemas[store.SQLite]
	if pg == nil {
		return
	}
	t.Run("postgres=sqlite", func(t *testing.T) {
		for _, p := range dialectProblems(pg, sq) {
			t.Error(p)
		}
	})
}

// migratedSchema migrates the empty database at dbURL and reads its
// tables with read.
func migratedSchema(t *testing.T, ctx context.Context, dbURL string, read func(context.Context, *store.DB) (map[string][]column, error)) map[string][]column {
	t.Helper()
	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", db.Dialect(), err)
	}
	tables, err := read(ctx, db)
	if err != nil {
		t.Fatalf("read %s schema: %v", db.Dialect(), err)
	}
	return tables
}

// readPostgres reads every table's columns in declaration order, but
// goose's own, from information_schema.
func readPostgres(ctx context.Context, db *store.DB) (map[string][]column, error) {
	out := map[string][]column{}
	rows, err := db.Gorm().WithContext(ctx).Raw(`SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name <> 'goose_db_version'
		ORDER BY table_name, ordinal_position`).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var table, name, typ, nullable string
		if err := rows.Scan(&table, &name, &typ, &nullable); err != nil {
			return nil, err
		}
		out[table] = append(out[table], column{name: name, family: pgFamily(typ), notNull: nullable == "NO"})
	}
	return out, rows.Err()
}

// readSQLite reads every table's columns in declaration order, but
// goose's own, with pragma table_info.
func readSQLite(ctx context.Context, db *store.DB) (map[string][]column, error) {
	g := db.Gorm().WithContext(ctx)
	out := map[string][]column{}
	var tables []string
	err := g.Raw(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`).
		Scan(&tables).Error
	if err != nil {
		return nil, err
	}
	for _, table := range tables {
		rows, err := g.Raw(`SELECT name, type, "notnull" FROM pragma_table_info(?) ORDER BY cid`, table).Rows()
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var name, typ string
			var notNull bool
			if err := rows.Scan(&name, &typ, &notNull); err != nil {
				rows.Close()
				return nil, err
			}
			out[table] = append(out[table], column{name: name, family: sqliteFamily(typ), notNull: notNull})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// pgFamily reduces an information_schema data_type to a family. Integers
// keep their width: the store binds entity integers as int8.
func pgFamily(typ string) string {
	switch typ {
	case "uuid":
		return "uuid"
	case "text", "character varying":
		return "text"
	case "boolean":
		return "bool"
	case "timestamp with time zone":
		return "time"
	case "double precision":
		return "float"
	case "bigint":
		return "int"
	case "integer":
		return "int32"
	case "smallint":
		return "int16"
	case "bytea":
		return "bytes"
	}
	return "pg:" + typ
}

// sqliteFamily reduces a declared SQLite column type to a family.
func sqliteFamily(typ string) string {
	switch strings.ToUpper(typ) {
	case "TEXT":
		return "text"
	case "DATETIME":
		return "time"
	case "REAL":
		return "float"
	case "INTEGER":
		return "int"
	case "BLOB":
		return "bytes"
	}
	return "sqlite:" + typ
}

// fieldFamily is the family a field of type ft is stored as. SQLite has
// no uuid or boolean type: the store writes UUIDs as text and booleans as
// integers there.
func fieldFamily(d store.Dialect, ft engine.FieldType) string {
	f := map[engine.FieldType]string{
		engine.String: "text", engine.Text: "text", engine.Enum: "text", engine.JSON: "text",
		engine.UUID: "uuid", engine.Time: "time", engine.Float: "float",
		engine.Int: "int", engine.Money: "int", engine.Bool: "bool",
	}[ft]
	if d == store.SQLite {
		return sqliteOf(f)
	}
	return f
}

// sqliteOf is the SQLite family that stores what a PostgreSQL family does.
func sqliteOf(pgFamily string) string {
	switch pgFamily {
	case "uuid":
		return "text"
	case "bool", "int32", "int16":
		return "int"
	}
	return pgFamily
}

// entityProblems compares a synced table's columns with its entity.
func entityProblems(d store.Dialect, e *engine.Entity, cols []column) []string {
	type want struct {
		family  string
		notNull bool
		why     string
	}
	wants := map[string]want{}
	var order []string
	for _, b := range baseSchema {
		wants[b.name] = want{fieldFamily(d, b.typ), b.notNull, "base column"}
		order = append(order, b.name)
	}
	for _, f := range e.Fields {
		w := want{fieldFamily(d, f.Type), f.Required, "field"}
		if f.Required {
			if why, ok := nullableRequired[e.Name+"."+f.Name]; ok {
				w.notNull, w.why = false, why
			}
		}
		wants[f.Name] = w
		order = append(order, f.Name)
	}
	var problems []string
	have := map[string]column{}
	for _, c := range cols {
		have[c.name] = c
		w, ok := wants[c.name]
		if !ok {
			if _, ok := storeOnlyColumns[e.Name][c.name]; !ok {
				problems = append(problems, fmt.Sprintf("%s.%s (%s): no field declares it", e.Name, c.name, c))
			}
			continue
		}
		if c.family != w.family {
			problems = append(problems, fmt.Sprintf("%s.%s is %s, want %s (%s)", e.Name, c.name, c.family, w.family, w.why))
		}
		if c.notNull != w.notNull {
			problems = append(problems, fmt.Sprintf("%s.%s: NOT NULL is %t, want %t (%s)", e.Name, c.name, c.notNull, w.notNull, w.why))
		}
	}
	for _, name := range order {
		if _, ok := have[name]; !ok {
			problems = append(problems, fmt.Sprintf("%s has no column %s (%s)", e.Name, name, wants[name].why))
		}
	}
	for name := range storeOnlyColumns[e.Name] {
		if _, ok := have[name]; !ok {
			problems = append(problems, fmt.Sprintf("%s has no column %s (the store's own)", e.Name, name))
		}
	}
	return problems
}

// dialectProblems compares the two migration trees' tables: the same
// tables, the same columns in the same order, of matching families and
// nullability.
func dialectProblems(pg, sq map[string][]column) []string {
	var problems []string
	differs := map[string]bool{} // the known differences met
	for name := range sq {
		if _, ok := pg[name]; ok {
			continue
		}
		if dialectDifferences[name] != "" {
			differs[name] = true
			continue
		}
		problems = append(problems, fmt.Sprintf("table %s exists on SQLite only", name))
	}
	var names []string
	for name := range pg {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		sc, ok := sq[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("table %s exists on PostgreSQL only", name))
			continue
		}
		pc := pg[name]
		pn, sn := columnNames(pc), columnNames(sc)
		if !slices.Equal(pn, sn) {
			problems = append(problems, fmt.Sprintf("table %s: columns\n\tPostgreSQL %v\n\tSQLite     %v", name, pn, sn))
			continue
		}
		for i := range pc {
			if sqliteOf(pc[i].family) == sc[i].family && pc[i].notNull == sc[i].notNull {
				continue
			}
			if k := name + "." + pc[i].name; dialectDifferences[k] != "" {
				differs[k] = true
				continue
			}
			problems = append(problems, fmt.Sprintf("%s.%s: PostgreSQL %s, SQLite %s", name, pc[i].name, pc[i], sc[i]))
		}
	}
	for k := range dialectDifferences {
		if !differs[k] {
			problems = append(problems, fmt.Sprintf("%s is listed in dialectDifferences but no longer differs: remove it", k))
		}
	}
	return problems
}

func columnNames(cols []column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}
