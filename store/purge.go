package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/sync/engine"
)

// PurgeTombstones deletes up to limit of the organisation's tombstones
// last written before before — the records and their feed rows — oldest
// feed position first, and raises the organisation's purged position to
// the highest one it removed. It returns how many it removed.
func (db *Feed) PurgeTombstones(ctx context.Context, orgID uuid.UUID, entities map[string]*engine.Entity, before time.Time, limit int) (int, error) {
	purged := 0
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		rows, err := tx.Raw(`SELECT entity, record_id, txid, version FROM sync_changes WHERE org_id = ? AND deleted
			ORDER BY txid, version LIMIT ?`, orgID.String(), limit).Rows()
		if err != nil {
			return fmt.Errorf("find tombstones: %w", err)
		}
		pos := map[engine.Key]engine.Position{}
		byEntity := map[string][]string{}
		for rows.Next() {
			var k engine.Key
			var p engine.Position
			if err := rows.Scan(&k.Entity, &k.ID, &p.Txid, &p.Version); err != nil {
				rows.Close()
				return fmt.Errorf("find tombstones: %w", err)
			}
			pos[k] = p
			byEntity[k.Entity] = append(byEntity[k.Entity], k.ID.String())
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("find tombstones: %w", err)
		}
		var high engine.Position
		for name, ids := range byEntity {
			if entities[name] == nil {
				continue // an entity this build no longer serves
			}
			// Entity names come from the declarations, never from clients.
			var gone []uuid.UUID
			err := tx.Raw(`DELETE FROM `+name+` WHERE org_id = ? AND id IN ? AND deleted AND updated_at < ? RETURNING id`,
				orgID.String(), ids, before.UTC()).Scan(&gone).Error
			if err != nil {
				return fmt.Errorf("purge %s: %w", name, err)
			}
			if len(gone) == 0 {
				continue
			}
			strs := make([]string, len(gone))
			for i, id := range gone {
				strs[i] = id.String()
				if p := pos[engine.Key{Entity: name, ID: id}]; high.Before(p) {
					high = p
				}
			}
			if err := tx.Exec(`DELETE FROM sync_changes WHERE org_id = ? AND entity = ? AND record_id IN ?`, orgID.String(), name, strs).Error; err != nil {
				return fmt.Errorf("purge %s feed rows: %w", name, err)
			}
			purged += len(gone)
		}
		if purged == 0 {
			return nil
		}
		now := db.now().UTC()
		err = tx.Exec(`INSERT INTO sync_purges (org_id, txid, version, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (org_id) DO UPDATE SET txid = excluded.txid, version = excluded.version, updated_at = excluded.updated_at
			WHERE (sync_purges.txid, sync_purges.version) < (excluded.txid, excluded.version)`,
			orgID.String(), high.Txid, high.Version, now).Error
		if err != nil {
			return fmt.Errorf("record purge: %w", err)
		}
		return nil
	})
	return purged, err
}

// PurgedThrough returns the highest feed position of the organisation
// whose tombstone was purged (the zero Position when none was).
func (db *Feed) PurgedThrough(ctx context.Context, orgID uuid.UUID) (engine.Position, error) {
	return purgedThrough(db.read.WithContext(ctx), orgID)
}

func purgedThrough(g *gorm.DB, orgID uuid.UUID) (engine.Position, error) {
	var p engine.Position
	err := g.Raw(`SELECT txid, version FROM sync_purges WHERE org_id = ?`, orgID.String()).Row().Scan(&p.Txid, &p.Version)
	if err == sql.ErrNoRows {
		return engine.Position{}, nil
	}
	if err != nil {
		return engine.Position{}, fmt.Errorf("purged position: %w", translate(err))
	}
	return p, nil
}
