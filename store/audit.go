package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
)

// AuditLog is the organisation's append-only audit log (migration 00011).
// Rows are written only by insertAudit, inside the transaction of the
// change they record (People's writes, and the sync engine's journal:
// syncTx.SaveJournal); nothing in the store updates or deletes them, and on
// both dialects a trigger refuses to.
type AuditLog struct{ *handle }

// AuditLog returns the audit log's reads.
func (db *DB) AuditLog() *AuditLog { return &AuditLog{db.handle} }

// insertAudit appends e to the audit log in tx, the transaction of the
// change it records. A zero ID is filled in.
func insertAudit(tx *gorm.DB, e models.AuditEntry) error {
	if e.ID == uuid.Nil {
		e.ID = uuid.New()
	}
	if e.OrgID == uuid.Nil || e.ObjectID == uuid.Nil || e.Action == "" || e.ObjectType == "" || e.At.IsZero() {
		return fmt.Errorf("audit %q: org, object, action and time are required", e.Action)
	}
	var actor, before, after any
	if e.ActorID != nil {
		actor = e.ActorID.String()
	}
	if e.Before != nil {
		before = string(e.Before)
	}
	if e.After != nil {
		after = string(e.After)
	}
	err := tx.Exec(`INSERT INTO audit_log (org_id, id, actor_id, action, object_type, object_id, before_state, after_state, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.OrgID.String(), e.ID.String(), actor, e.Action, e.ObjectType,
		e.ObjectID.String(), before, after, e.At.UTC()).Error
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// Entries lists an organisation's audit entries matching f, newest first
// (equal times by id, descending), at most limit of them, starting after
// f.After. It reads an index that leads with the organisation and the time
// (or the actor, or the object), so a page costs O(limit) however long the
// log.
func (db *AuditLog) Entries(ctx context.Context, orgID uuid.UUID, f models.AuditFilter, limit int) ([]models.AuditEntry, error) {
	conds := []string{"org_id = ?"}
	args := []any{orgID.String()}
	if f.ActorID != nil {
		conds, args = append(conds, "actor_id = ?"), append(args, f.ActorID.String())
	}
	if f.ObjectType != "" {
		conds, args = append(conds, "object_type = ?"), append(args, f.ObjectType)
	}
	if f.ObjectID != nil {
		conds, args = append(conds, "object_id = ?"), append(args, f.ObjectID.String())
	}
	if f.From != nil {
		conds, args = append(conds, "at >= ?"), append(args, f.From.UTC())
	}
	if f.To != nil {
		conds, args = append(conds, "at < ?"), append(args, f.To.UTC())
	}
	if f.After != nil {
		conds = append(conds, "(at < ? OR (at = ? AND id < ?))")
		args = append(args, f.After.At.UTC(), f.After.At.UTC(), f.After.ID.String())
	}
	q := `SELECT id, actor_id, action, object_type, object_id, before_state, after_state, at FROM audit_log WHERE ` +
		strings.Join(conds, " AND ") + ` ORDER BY at DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.read.WithContext(ctx).Raw(q, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", translate(err))
	}
	defer rows.Close()
	out := []models.AuditEntry{}
	for rows.Next() {
		e := models.AuditEntry{OrgID: orgID}
		var actor, before, after sql.NullString
		if err := rows.Scan(&e.ID, &actor, &e.Action, &e.ObjectType, &e.ObjectID, &before, &after, &e.At); err != nil {
			return nil, fmt.Errorf("audit log: %w", translate(err))
		}
		if actor.Valid {
			id, err := uuid.Parse(actor.String)
			if err != nil {
				return nil, fmt.Errorf("audit log: actor %q: %w", actor.String, err)
			}
			e.ActorID = &id
		}
		if before.Valid {
			e.Before = []byte(before.String)
		}
		if after.Valid {
			e.After = []byte(after.String)
		}
		e.At = e.At.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit log: %w", translate(err))
	}
	return out, nil
}
