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

type sessionRow struct {
	OrgID      uuid.UUID `gorm:"primaryKey"`
	ID         uuid.UUID `gorm:"primaryKey"`
	UserID     uuid.UUID
	DeviceID   uuid.UUID
	DeviceName string
	Platform   string
	CreatedAt  time.Time `gorm:"autoCreateTime:false"`
	LastUsedAt time.Time
	ExpiresAt  time.Time
	RevokedAt  *time.Time
}

func (sessionRow) TableName() string { return "sessions" }

func (r sessionRow) model() models.Session {
	return models.Session{
		OrgID: r.OrgID, ID: r.ID, UserID: r.UserID, DeviceID: r.DeviceID, DeviceName: r.DeviceName,
		Platform: r.Platform, CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
	}
}

type refreshRow struct {
	TokenHash string `gorm:"primaryKey"`
	OrgID     uuid.UUID
	SessionID uuid.UUID
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
	ExpiresAt time.Time
	RotatedAt *time.Time
}

func (refreshRow) TableName() string { return "refresh_tokens" }

// ErrRefreshReused reports that a rotated refresh token was presented again:
// someone holds a stolen copy. The session has been revoked.
var ErrRefreshReused = &models.Error{Code: models.CodeUnauthorized, Message: "refresh token was already used; the session has been revoked"}

var errBadRefresh = &models.Error{Code: models.CodeUnauthorized, Message: "refresh token is invalid or expired"}

// CreateSession starts a session for a user on a device with its first
// refresh token. A live session of the same user on the same device is
// revoked: a device holds one session per user.
func (db *People) CreateSession(ctx context.Context, s models.Session, refreshHash string) error {
	return db.transaction(ctx, func(tx *gorm.DB) error {
		now := s.CreatedAt.UTC()
		err := tx.Model(&sessionRow{}).
			Where("org_id = ? AND user_id = ? AND device_id = ? AND revoked_at IS NULL", s.OrgID, s.UserID, s.DeviceID).
			Update("revoked_at", now).Error
		if err != nil {
			return fmt.Errorf("revoke previous session: %w", err)
		}
		row := sessionRow{
			OrgID: s.OrgID, ID: s.ID, UserID: s.UserID, DeviceID: s.DeviceID, DeviceName: s.DeviceName,
			Platform: s.Platform, CreatedAt: now, LastUsedAt: now, ExpiresAt: s.ExpiresAt.UTC(),
		}
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("insert session: %w", err)
		}
		rt := refreshRow{TokenHash: refreshHash, OrgID: s.OrgID, SessionID: s.ID, CreatedAt: now, ExpiresAt: s.ExpiresAt.UTC()}
		if err := tx.Create(&rt).Error; err != nil {
			return fmt.Errorf("insert refresh token: %w", err)
		}
		return nil
	})
}

// RotateRefresh exchanges the refresh token with hash oldHash for one with
// hash newHash, valid until expiresAt, and returns the session and its user.
//
// The old token is marked rotated with a conditional UPDATE, so of two
// concurrent exchanges of one token exactly one succeeds. Presenting a
// token that was already rotated revokes the whole session (and commits that
// revocation) before answering ErrRefreshReused.
// Errors: unauthorized.
func (db *People) RotateRefresh(ctx context.Context, oldHash, newHash string, expiresAt time.Time) (models.Session, models.User, error) {
	var (
		sess   models.Session
		user   models.User
		reused bool
	)
	now := db.now().UTC()
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&refreshRow{}).
			Where("token_hash = ? AND rotated_at IS NULL AND expires_at > ?", oldHash, now).
			Update("rotated_at", now)
		if res.Error != nil {
			return fmt.Errorf("rotate refresh token: %w", res.Error)
		}
		var rt refreshRow
		if err := tx.Take(&rt, "token_hash = ?", oldHash).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return errBadRefresh
			}
			return fmt.Errorf("get refresh token: %w", err)
		}
		if res.RowsAffected == 0 {
			if rt.RotatedAt == nil {
				return errBadRefresh // expired
			}
			reused = true
			err := tx.Model(&sessionRow{}).Where("org_id = ? AND id = ? AND revoked_at IS NULL", rt.OrgID, rt.SessionID).
				Update("revoked_at", now).Error
			if err != nil {
				return fmt.Errorf("revoke session: %w", err)
			}
			return removeSessionPushToken(tx, rt.OrgID, rt.SessionID)
		}
		var s sessionRow
		if err := tx.Take(&s, "org_id = ? AND id = ?", rt.OrgID, rt.SessionID).Error; err != nil {
			return fmt.Errorf("get session: %w", err)
		}
		var u userRow
		if err := tx.Take(&u, "org_id = ? AND id = ?", s.OrgID, s.UserID).Error; err != nil {
			return fmt.Errorf("get user: %w", err)
		}
		if s.RevokedAt != nil || !u.Active || !s.ExpiresAt.After(now) {
			return errBadRefresh
		}
		nrt := refreshRow{TokenHash: newHash, OrgID: s.OrgID, SessionID: s.ID, CreatedAt: now, ExpiresAt: expiresAt.UTC()}
		if err := tx.Create(&nrt).Error; err != nil {
			return fmt.Errorf("insert refresh token: %w", err)
		}
		err := tx.Model(&sessionRow{}).Where("org_id = ? AND id = ?", s.OrgID, s.ID).
			Updates(map[string]any{"last_used_at": now, "expires_at": expiresAt.UTC()}).Error
		if err != nil {
			return fmt.Errorf("touch session: %w", err)
		}
		sess, user = s.model(), u.model()
		sess.ExpiresAt = expiresAt.UTC()
		return nil
	})
	if err == nil && reused {
		err = ErrRefreshReused
	}
	return sess, user, err
}

// RevokeSession ends a session, and removes the push token its user
// registered on its device; revoking an ended one is a no-op.
func (db *People) RevokeSession(ctx context.Context, orgID, id uuid.UUID) error {
	return db.transaction(ctx, func(tx *gorm.DB) error {
		err := tx.Model(&sessionRow{}).
			Where("org_id = ? AND id = ? AND revoked_at IS NULL", orgID, id).
			Update("revoked_at", db.now().UTC()).Error
		if err != nil {
			return fmt.Errorf("revoke session: %w", err)
		}
		return removeSessionPushToken(tx, orgID, id)
	})
}

func revokeUserSessions(tx *gorm.DB, orgID, userID uuid.UUID, now time.Time) error {
	err := tx.Model(&sessionRow{}).Where("org_id = ? AND user_id = ? AND revoked_at IS NULL", orgID, userID).
		Update("revoked_at", now).Error
	if err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	return removeUserPushTokens(tx, orgID, userID)
}

// LivePrincipal checks that a session is live and its user active, and
// returns the caller as they are now: a role or team changed since the
// token was issued takes effect at once. Errors: unauthorized.
func (db *People) LivePrincipal(ctx context.Context, orgID, sessionID, userID uuid.UUID) (models.Principal, error) {
	var r struct {
		Role     string
		TeamID   *uuid.UUID
		DeviceID uuid.UUID
	}
	err := db.read.WithContext(ctx).Table("sessions s").
		Select("u.role, u.team_id, s.device_id").
		Joins("JOIN users u ON u.org_id = s.org_id AND u.id = s.user_id").
		Where("s.org_id = ? AND s.id = ? AND s.user_id = ? AND s.revoked_at IS NULL AND u.active", orgID, sessionID, userID).
		Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return models.Principal{}, &models.Error{Code: models.CodeUnauthorized, Message: "the session has ended"}
	}
	if err != nil {
		return models.Principal{}, fmt.Errorf("check session: %w", translate(err))
	}
	return models.Principal{
		OrgID: orgID, UserID: userID, Role: models.Role(r.Role), TeamID: r.TeamID,
		DeviceID: r.DeviceID, SessionID: sessionID,
	}, nil
}
