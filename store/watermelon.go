package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/sync/engine"
	"github.com/fieldsync/fieldsync/sync/watermelondb"
)

// The store implements what the WatermelonDB protocol needs.
var _ watermelondb.Store = (*Feed)(nil)

// FeedHorizon returns the change-feed position below which everything the
// organisation's feed holds has committed, for WatermelonDB timestamps
// (see sync/watermelondb).
//
// On PostgreSQL it is (feedHorizon - 1, max): every feed writer of the
// organisation with a smaller transaction id has finished, a pull's own
// horizon is read later and is never lower (horizons only grow), and every
// transaction that writes later gets an id at or above it.
//
// On SQLite writers are serial and take versions in commit order: the
// counter as committed is the last version any pull can see, and the next
// writer takes a larger one.
func (db *Feed) FeedHorizon(ctx context.Context, orgID uuid.UUID) (engine.Position, error) {
	return db.dialect.feedPosition(db.read.WithContext(ctx), orgID)
}

// CreatedVersions returns the version each record's first write produced
// (sync_changes.created_version, which later writes leave alone).
func (db *Feed) CreatedVersions(ctx context.Context, orgID uuid.UUID, keys []engine.Key) (map[engine.Key]int64, error) {
	out := make(map[engine.Key]int64, len(keys))
	err := wmFeedRows(db.read.WithContext(ctx), orgID, keys, "created_version", func(entity string, rows *sql.Rows) error {
		var id uuid.UUID
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			return err
		}
		out[engine.Key{Entity: entity, ID: id}] = v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("created versions: %w", translate(err))
	}
	return out, nil
}

// FeedPositions returns the feed position of each record, as committed.
// The push holds the records' locks, so no writer of them is in flight.
func (t *syncTx) FeedPositions(ctx context.Context, keys []engine.Key) (map[engine.Key]engine.Position, error) {
	out := make(map[engine.Key]engine.Position, len(keys))
	err := wmFeedRows(t.tx, t.p.OrgID, keys, "txid, version", func(entity string, rows *sql.Rows) error {
		var id uuid.UUID
		var p engine.Position
		if err := rows.Scan(&id, &p.Txid, &p.Version); err != nil {
			return err
		}
		out[engine.Key{Entity: entity, ID: id}] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("feed positions: %w", err)
	}
	return out, nil
}

// wmFeedRows reads record_id and cols of the feed rows of keys, by primary
// key, one query per entity and thousand ids.
func wmFeedRows(g *gorm.DB, orgID uuid.UUID, keys []engine.Key, cols string, scan func(entity string, rows *sql.Rows) error) error {
	byEntity := map[string][]string{}
	for _, k := range keys {
		byEntity[k.Entity] = append(byEntity[k.Entity], k.ID.String())
	}
	names := make([]string, 0, len(byEntity))
	for name := range byEntity {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ids := byEntity[name]
		for start := 0; start < len(ids); start += 1000 {
			chunk := ids[start:min(start+1000, len(ids))]
			rows, err := g.Raw(`SELECT record_id, `+cols+` FROM sync_changes WHERE org_id = ? AND entity = ? AND record_id IN ?`,
				orgID.String(), name, chunk).Rows()
			if err != nil {
				return err
			}
			for rows.Next() {
				if err := scan(name, rows); err != nil {
					rows.Close()
					return err
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}
