package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
)

// Idempotency keeps the answers to requests sent with an Idempotency-Key,
// so a retry gets the first answer instead of a second effect.
type Idempotency struct{ *handle }

// Idempotency returns the stored answers of idempotent requests.
func (db *DB) Idempotency() *Idempotency { return &Idempotency{db.handle} }

type idempotencyRow struct {
	OrgID       uuid.UUID `gorm:"column:org_id"`
	UserID      uuid.UUID `gorm:"column:user_id"`
	Key         string    `gorm:"column:key"`
	RequestHash string    `gorm:"column:request_hash"`
	Status      int       `gorm:"column:status"`
	ContentType string    `gorm:"column:content_type"`
	Body        []byte    `gorm:"column:body"`
	CreatedAt   time.Time `gorm:"column:created_at"`
}

func (idempotencyRow) TableName() string { return "idempotency_keys" }

// Claim takes r's key for this request. It returns nil if the key was free
// (or its answer had expired): the caller runs the request and then calls
// Finish or Release. Otherwise it returns what is stored under the key.
func (db *Idempotency) Claim(ctx context.Context, r models.IdempotentRequest) (*models.StoredAnswer, error) {
	now := db.now().UTC()
	var stored *models.StoredAnswer
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		// An expired answer frees its key.
		if err := tx.Where("org_id = ? AND user_id = ? AND key = ? AND created_at < ?", r.OrgID, r.UserID, r.Key, now.Add(-models.IdempotencyKeyTTL)).
			Delete(&idempotencyRow{}).Error; err != nil {
			return fmt.Errorf("expire idempotency key: %w", err)
		}
		res := tx.Exec(`INSERT INTO idempotency_keys (org_id, user_id, key, request_hash, status, content_type, body, created_at)
			VALUES (?, ?, ?, ?, 0, '', ?, ?) ON CONFLICT DO NOTHING`, r.OrgID, r.UserID, r.Key, r.Hash, []byte{}, now)
		if res.Error != nil {
			return fmt.Errorf("claim idempotency key: %w", res.Error)
		}
		if res.RowsAffected == 1 {
			return nil
		}
		var row idempotencyRow
		if err := tx.Take(&row, "org_id = ? AND user_id = ? AND key = ?", r.OrgID, r.UserID, r.Key).Error; err != nil {
			return fmt.Errorf("read idempotency key: %w", err)
		}
		stored = &models.StoredAnswer{Hash: row.RequestHash, Status: row.Status, ContentType: row.ContentType, Body: row.Body}
		return nil
	})
	return stored, err
}

// Finish stores the answer to the request that claimed r's key.
func (db *Idempotency) Finish(ctx context.Context, r models.IdempotentRequest, a models.StoredAnswer) error {
	err := db.gorm.WithContext(ctx).Model(&idempotencyRow{}).
		Where("org_id = ? AND user_id = ? AND key = ? AND request_hash = ? AND status = 0", r.OrgID, r.UserID, r.Key, r.Hash).
		Updates(map[string]any{"status": a.Status, "content_type": a.ContentType, "body": a.Body}).Error
	if err != nil {
		return fmt.Errorf("store idempotent answer: %w", translate(err))
	}
	return nil
}

// Release frees r's key after a request that failed in a way worth
// retrying (a 5xx): the retry runs again.
func (db *Idempotency) Release(ctx context.Context, r models.IdempotentRequest) error {
	err := db.gorm.WithContext(ctx).
		Where("org_id = ? AND user_id = ? AND key = ? AND request_hash = ? AND status = 0", r.OrgID, r.UserID, r.Key, r.Hash).
		Delete(&idempotencyRow{}).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("release idempotency key: %w", translate(err))
	}
	return nil
}

// Purge deletes answers older than the TTL and reports how many.
func (db *Idempotency) Purge(ctx context.Context) (int64, error) {
	res := db.gorm.WithContext(ctx).Where("created_at < ?", db.now().UTC().Add(-models.IdempotencyKeyTTL)).Delete(&idempotencyRow{})
	if res.Error != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", translate(res.Error))
	}
	return res.RowsAffected, nil
}
