package store

import (
	"context"
	"os"
	"testing"
	"time"

	"gorm.io/gorm"
)

// TestTransactionWaitsEndWithItsDeadline: on PostgreSQL a transaction
// whose context has a deadline stops waiting for locks and statements when
// it passes, on the database's side too (lock_timeout, statement_timeout);
// one without keeps the server's defaults.
func TestTransactionWaitsEndWithItsDeadline(t *testing.T) {
	url := os.Getenv("FIELDSYNC_TEST_DATABASE_URL")
	if url == "" {
		t.Skip("PostgreSQL only: on SQLite a writer waits for the writer connection in database/sql, which ends with its context")
	}
	db, err := Open(context.Background(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	settings := func(ctx context.Context) (lock, stmt string) {
		t.Helper()
		err := db.transaction(ctx, func(tx *gorm.DB) error {
			return tx.Raw(`SELECT current_setting('lock_timeout'), current_setting('statement_timeout')`).Row().Scan(&lock, &stmt)
		})
		if err != nil {
			t.Fatal(err)
		}
		return lock, stmt
	}
	checkLimited(t, "a transaction", settings)
	if lock, stmt := settings(context.Background()); lock != "0" || stmt != "0" {
		t.Errorf("without a deadline: lock_timeout %q, statement_timeout %q, want 0 and 0", lock, stmt)
	}
}

// TestPullPageWaitsEndWithItsDeadline: a pull page's one statement, sent
// without a transaction, still runs with statement_timeout and
// lock_timeout set to the time left (readPage's pipeline), and the
// settings end with it: the connection's next statement has the server's
// defaults again.
func TestPullPageWaitsEndWithItsDeadline(t *testing.T) {
	url := os.Getenv("FIELDSYNC_TEST_DATABASE_URL")
	if url == "" {
		t.Skip("PostgreSQL only")
	}
	db, err := Open(context.Background(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.sql.SetMaxOpenConns(1) // the check below reads the page's connection
	settings := func(ctx context.Context) (lock, stmt string) {
		t.Helper()
		err := db.dialect.readPage(ctx, db.Feed(), `SELECT current_setting('lock_timeout'), current_setting('statement_timeout') WHERE ?::int = ?::int`, []any{1, 1},
			func(rs rowScanner) error {
				for rs.Next() {
					if err := rs.Scan(&lock, &stmt); err != nil {
						return err
					}
				}
				return rs.Err()
			})
		if err != nil {
			t.Fatal(err)
		}
		return lock, stmt
	}
	checkLimited(t, "a page read", settings)
	var after string
	if err := db.sql.QueryRow(`SELECT current_setting('statement_timeout')`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != "0" {
		t.Errorf("statement_timeout after the page: %q, want 0", after)
	}
	if lock, stmt := settings(context.Background()); lock != "0" || stmt != "0" {
		t.Errorf("without a deadline: lock_timeout %q, statement_timeout %q, want 0 and 0", lock, stmt)
	}
}

// checkLimited checks that what settings reads with 5 s left has both
// waits limited to at most that.
func checkLimited(t *testing.T, what string, settings func(context.Context) (lock, stmt string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lock, stmt := settings(ctx)
	for name, v := range map[string]string{"lock_timeout": lock, "statement_timeout": stmt} {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 5*time.Second {
			t.Errorf("%s = %q in %s with 5 s left, want a positive duration of at most 5s", name, v, what)
		}
	}
}
