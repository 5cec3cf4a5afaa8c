package store

import "github.com/fieldsync/fieldsync/sync/engine"

// DueSQL exposes dueSQL to the package's external tests.
func DueSQL(q engine.DueQuery) (cond, age string) { return dueSQL(q) }
