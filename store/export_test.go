package store

import "github.com/fieldsync/fieldsync/sync/engine"

// DueSQL exposes dueSQL to the package's external tests.
func DueSQL(q engine.DueQuery) (cond, age string) { return dueSQL(q) }

// WaitSettings reads the lock_timeout and statement_timeout a push's or
// server work's transaction runs with.
func WaitSettings(tx engine.Tx) (lock, stmt string, err error) {
	err = tx.(*syncTx).tx.Raw(`SELECT current_setting('lock_timeout'), current_setting('statement_timeout')`).Row().Scan(&lock, &stmt)
	return lock, stmt, err
}
