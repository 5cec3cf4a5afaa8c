package models

import (
	"time"

	"github.com/google/uuid"
)

// ErasedName replaces an erased user's name.
const ErasedName = "Erased user"

// ErasedEmail is the address an erased user's email is replaced with:
// unique (it carries the user's id, so the unique email keys hold) and
// undeliverable (.invalid is reserved never to resolve, RFC 2606).
func ErasedEmail(userID uuid.UUID) string {
	return "erased-" + userID.String() + "@erased.invalid"
}

// SessionInfo is one of a user's sessions (a device they signed in on), as
// a personal-data export shows it.
type SessionInfo struct {
	ID         uuid.UUID
	DeviceID   uuid.UUID
	DeviceName string
	Platform   string
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time
	RevokedAt  *time.Time
}

// PushTokenInfo is a device a user registered for push notifications. The
// token itself is a credential to reach the device and is never exported.
type PushTokenInfo struct {
	DeviceID  uuid.UUID
	Platform  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// PersonalProfile is what the people store keeps of a user: their profile,
// sessions and registered devices.
type PersonalProfile struct {
	User       User
	Sessions   []SessionInfo
	PushTokens []PushTokenInfo
}
