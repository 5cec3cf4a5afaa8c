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

// TableReads counts the rows of table read by scans and by index
// (PostgreSQL's pg_stat_xact_user_tables). The count takes in earlier
// transactions of the connection not yet reported, so only the difference
// of two readings in one transaction is its work.
func TableReads(tx engine.Tx, table string) (int64, error) {
	var n int64
	err := tx.(*syncTx).tx.Raw(`SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables WHERE relname = ?`, table).Row().Scan(&n)
	return n, err
}
