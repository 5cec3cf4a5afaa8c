package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// TestFeedWriterWaitsEndWithItsDeadline: a push and the server's work set
// their wait limits in their first statement, not in one of its own (see
// TestTransactionWaitsEndWithItsDeadline for the others), and set them as
// any transaction does.
func TestFeedWriterWaitsEndWithItsDeadline(t *testing.T) {
	db := storetest.MustOpenDB(t)
	if db.Dialect() != store.Postgres {
		t.Skip("PostgreSQL only: on SQLite a writer waits for the writer connection in database/sql, which ends with its context")
	}
	p := models.Principal{OrgID: uuid.New(), UserID: uuid.New(), DeviceID: uuid.New()}
	for _, c := range []struct {
		name string
		run  func(ctx context.Context, fn func(engine.Tx) error) error
	}{
		{"push", func(ctx context.Context, fn func(engine.Tx) error) error {
			return db.Feed().Push(ctx, p, []engine.Key{{Entity: "visits", ID: uuid.New()}}, func(tx engine.Tx) error {
				if _, err := tx.LastSeq(ctx); err != nil {
					return err
				}
				return fn(tx)
			})
		}},
		{"server", func(ctx context.Context, fn func(engine.Tx) error) error { return db.Feed().Server(ctx, p.OrgID, fn) }},
	} {
		settings := func(ctx context.Context) (lock, stmt string) {
			t.Helper()
			err := c.run(ctx, func(tx engine.Tx) error {
				var err error
				lock, stmt, err = store.WaitSettings(tx)
				return err
			})
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			return lock, stmt
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		lock, stmt := settings(ctx)
		cancel()
		for name, v := range map[string]string{"lock_timeout": lock, "statement_timeout": stmt} {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > 5*time.Second {
				t.Errorf("%s: %s = %q with 5 s left, want a positive duration of at most 5s", c.name, name, v)
			}
		}
		if lock, stmt := settings(context.Background()); lock != "0" || stmt != "0" {
			t.Errorf("%s without a deadline: lock_timeout %q, statement_timeout %q, want 0 and 0", c.name, lock, stmt)
		}
	}
}
