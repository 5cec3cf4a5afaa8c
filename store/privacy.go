package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
)

// PersonalProfile returns a user's profile, sessions (newest first) and
// push-token registrations (without the tokens), for a personal-data
// export. Errors: not_found.
func (db *People) PersonalProfile(ctx context.Context, orgID, userID uuid.UUID) (models.PersonalProfile, error) {
	var out models.PersonalProfile
	g := db.read.WithContext(ctx)
	var u userRow
	if err := g.Take(&u, "org_id = ? AND id = ?", orgID, userID).Error; err != nil {
		return out, fmt.Errorf("get user: %w", translate(err))
	}
	out.User = u.model()
	var sessions []sessionRow
	if err := g.Where("org_id = ? AND user_id = ?", orgID, userID).Order("created_at DESC, id").Find(&sessions).Error; err != nil {
		return out, fmt.Errorf("list sessions: %w", translate(err))
	}
	out.Sessions = make([]models.SessionInfo, len(sessions))
	for i, s := range sessions {
		var revoked *time.Time
		if s.RevokedAt != nil {
			t := s.RevokedAt.UTC()
			revoked = &t
		}
		out.Sessions[i] = models.SessionInfo{ID: s.ID, DeviceID: s.DeviceID, DeviceName: s.DeviceName, Platform: s.Platform,
			CreatedAt: s.CreatedAt.UTC(), LastUsedAt: s.LastUsedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC(), RevokedAt: revoked}
	}
	rows, err := g.Raw(`SELECT device_id, platform, created_at, updated_at FROM push_tokens WHERE org_id = ? AND user_id = ? ORDER BY device_id`,
		orgID.String(), userID.String()).Rows()
	if err != nil {
		return out, fmt.Errorf("list push tokens: %w", translate(err))
	}
	defer rows.Close()
	out.PushTokens = []models.PushTokenInfo{}
	for rows.Next() {
		var t models.PushTokenInfo
		if err := rows.Scan(&t.DeviceID, &t.Platform, &t.CreatedAt, &t.UpdatedAt); err != nil {
			return out, fmt.Errorf("list push tokens: %w", err)
		}
		t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
		out.PushTokens = append(out.PushTokens, t)
	}
	return out, rows.Err()
}

// ErasePerson anonymises what the people store keeps of a user, in one
// transaction: the name becomes models.ErasedName, the email (and the
// login it names) models.ErasedEmail, the password can no longer match,
// the user is deactivated, every session is revoked and loses its device
// name, push tokens and notification preferences are deleted, and the
// sync conflicts the user pushed, owns or was the other writer of — which
// hold the values of notes and positions — are deleted. Role, team and
// every id stay, so the user's sales records keep counting. Erasing an
// erased user again changes nothing but updated_at. Errors: not_found.
//
// The user's synced records are anonymised through the sync engine
// (sales.ErasePersonalData), so that phones pull the change.
func (db *People) ErasePerson(ctx context.Context, orgID, id uuid.UUID) (models.User, error) {
	var out models.User
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		var r userRow
		if err := tx.Take(&r, "org_id = ? AND id = ?", orgID, id).Error; err != nil {
			return fmt.Errorf("get user: %w", err)
		}
		now := db.now().UTC()
		email := models.ErasedEmail(id)
		// No password hash has this form: nothing verifies against it.
		upd := map[string]any{"name": models.ErasedName, "email": email, "active": false, "password_hash": "!erased", "updated_at": now}
		if err := tx.Model(&userRow{}).Where("org_id = ? AND id = ?", orgID, id).Updates(upd).Error; err != nil {
			return fmt.Errorf("erase user: %w", err)
		}
		if err := tx.Exec(`UPDATE logins SET email = ? WHERE org_id = ? AND user_id = ?`, email, orgID.String(), id.String()).Error; err != nil {
			return fmt.Errorf("erase login: %w", err)
		}
		if err := revokeUserSessions(tx, orgID, id, now); err != nil { // push tokens too
			return err
		}
		org, user := orgID.String(), id.String()
		for _, st := range []struct {
			q    string
			args []any
		}{
			{`UPDATE sessions SET device_name = '', platform = '' WHERE org_id = ? AND user_id = ?`, []any{org, user}},
			{`DELETE FROM notification_preferences WHERE org_id = ? AND user_id = ?`, []any{org, user}},
			{`DELETE FROM sync_conflicts WHERE org_id = ? AND (user_id = ? OR owner_id = ? OR server_user_id = ?)`, []any{org, user, user, user}},
		} {
			if err := tx.Exec(st.q, st.args...).Error; err != nil {
				return fmt.Errorf("erase personal data: %w", err)
			}
		}
		var fresh userRow
		if err := tx.Take(&fresh, "org_id = ? AND id = ?", orgID, id).Error; err != nil {
			return fmt.Errorf("reload user: %w", err)
		}
		out = fresh.model()
		return nil
	})
	return out, err
}
