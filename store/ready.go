package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/fieldsync/fieldsync/models"
)

// readyTimeout bounds one readiness check: a probe that waits longer
// reports the database unavailable.
const readyTimeout = 2 * time.Second

// schemaRecheck is how long a schema found current is taken to stay so:
// within it a check only reads one row. A schema never goes back while
// the server runs, except by hand (migrate down), which this notices
// within the interval.
const schemaRecheck = time.Minute

// readyCache remembers when the schema was last found current.
type readyCache struct{ current atomic.Int64 } // Unix nanoseconds; 0 never

// Ready reports whether the service can take traffic: the database
// answers and its schema is current. It runs on a connection of its own
// (handle.probe), so that it never queues behind pushes for a pooled one,
// and gives up after readyTimeout. Errors: unavailable (with the versions
// when the schema is behind).
func (db *DB) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if last := db.ready.current.Load(); last != 0 && time.Since(time.Unix(0, last)) < schemaRecheck {
		var v int64
		err := db.probe.QueryRowContext(ctx, `SELECT version_id FROM goose_db_version ORDER BY id DESC LIMIT 1`).Scan(&v)
		if err != nil {
			return fmt.Errorf("readiness: %w", errors.Join(models.ErrUnavailable, err))
		}
		return nil
	}
	st, err := db.migrationStatus(ctx, db.probe)
	if err != nil {
		return fmt.Errorf("readiness: %w", errors.Join(models.ErrUnavailable, err))
	}
	if st.Behind() {
		return models.Errorf(models.CodeUnavailable, "schema at version %d, want %d", st.Current, st.Latest)
	}
	db.ready.current.Store(time.Now().UnixNano())
	return nil
}
