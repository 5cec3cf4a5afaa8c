package store_test

import (
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
)

// TestDueUsesIndex: each query of the location privacy job can be answered
// from its partial index (migration 00012), on both databases, so finding
// the next batch never scans the table. The index is named in the plan
// only when the query's terms match the index's word for word.
func TestDueUsesIndex(t *testing.T) {
	db := storetest.MustOpenDB(t)
	g := db.Gorm()
	for entity, q := range sales.LocationQueries(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 1000) {
		t.Run(entity, func(t *testing.T) {
			cond, age := store.DueSQL(q)
			query := `SELECT id FROM ` + entity + ` WHERE org_id = '00000000-0000-0000-0000-000000000001' AND ` + cond +
				` AND ` + age + ` < '2026-01-01 00:00:00' ORDER BY ` + age + `, id LIMIT 1000`
			var plan []string
			err := g.Transaction(func(tx *gorm.DB) error {
				explain := `EXPLAIN QUERY PLAN `
				if db.Dialect() == store.Postgres {
					// An empty table is cheaper to scan than to look up:
					// ask whether the index can serve the query at all.
					if err := tx.Exec(`SET LOCAL enable_seqscan = off`).Error; err != nil {
						return err
					}
					explain = `EXPLAIN `
				}
				rows, err := tx.Raw(explain + query).Rows()
				if err != nil {
					return err
				}
				defer rows.Close()
				cols, _ := rows.Columns()
				for rows.Next() {
					vals := make([]any, len(cols))
					ptrs := make([]any, len(cols))
					for i := range vals {
						ptrs[i] = &vals[i]
					}
					if err := rows.Scan(ptrs...); err != nil {
						return err
					}
					for _, v := range vals {
						switch s := v.(type) {
						case string:
							plan = append(plan, s)
						case []byte:
							plan = append(plan, string(s))
						}
					}
				}
				return rows.Err()
			})
			if err != nil {
				t.Fatalf("explain: %v", err)
			}
			text := strings.Join(plan, "\n")
			if want := entity + "_location_due"; !strings.Contains(text, want) {
				t.Errorf("plan of %s does not use %s:\n%s", query, want, text)
			}
			if strings.Contains(text, "TEMP B-TREE") || strings.Contains(text, "Sort") {
				t.Errorf("plan sorts instead of reading the index in order:\n%s", text)
			}
		})
	}
}
