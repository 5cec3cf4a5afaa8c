package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// DeviceRejections lists the device's rejections, native and WatermelonDB
// (seq 0), newest first, with ids below before (0: from the newest).
func (db *Feed) DeviceRejections(ctx context.Context, p models.Principal, before int64, limit int) ([]engine.Rejection, error) {
	q := `SELECT id, seq, entity, record_id, code, message, field, created_at FROM sync_rejections
		WHERE org_id = ? AND user_id = ? AND device_id = ?`
	args := []any{p.OrgID, p.UserID, p.DeviceID}
	if before > 0 {
		q += ` AND id < ?`
		args = append(args, before)
	}
	rows, err := db.gorm.WithContext(ctx).Raw(q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...).Rows()
	if err != nil {
		return nil, fmt.Errorf("device rejections: %w", translate(err))
	}
	defer rows.Close()
	var out []engine.Rejection
	for rows.Next() {
		var r engine.Rejection
		var field sql.NullString
		if err := rows.Scan(&r.ID, &r.Seq, &r.Entity, &r.RecordID, &r.Code, &r.Message, &field, &r.CreatedAt); err != nil {
			return nil, fmt.Errorf("device rejections: %w", err)
		}
		r.Field, r.CreatedAt = field.String, r.CreatedAt.UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}
