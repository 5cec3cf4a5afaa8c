package models

import (
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Role is what a user may do in their organisation.
type Role string

const (
	RoleRep     Role = "rep"
	RoleManager Role = "manager"
	RoleAdmin   Role = "admin"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	return r == RoleRep || r == RoleManager || r == RoleAdmin
}

// Org is a tenant. Nothing of one organisation is ever visible to another.
type Org struct {
	ID        uuid.UUID
	Name      string
	CreatedAt time.Time
	// OrderValueCeilingCents is the largest order value, in cents of the
	// organisation's currency, that scores without a manager's review
	// (see OrderValueReview). It is always positive.
	OrderValueCeilingCents int64
}

// Bounds of an organisation's order value ceiling, in cents: by default
// 1,000,000 in the organisation's currency; at least 1 and at most the
// largest order value a visit takes (10,000,000,000).
const (
	DefaultOrderValueCeilingCents int64 = 1_000_000_00
	MinOrderValueCeilingCents     int64 = 1_00
	MaxOrderValueCeilingCents     int64 = 10_000_000_000_00
)

// OrgSettings is what an admin changes of their organisation. Nil fields
// are left alone.
type OrgSettings struct {
	OrderValueCeilingCents *int64
}

// Validate checks settings from a client.
func (s OrgSettings) Validate() error {
	if c := s.OrderValueCeilingCents; c != nil && (*c < MinOrderValueCeilingCents || *c > MaxOrderValueCeilingCents) {
		return FieldInvalid("order_value_ceiling", "must be between %d and %d", MinOrderValueCeilingCents/100, MaxOrderValueCeilingCents/100)
	}
	return nil
}

// Team is a manager's group of reps.
type Team struct {
	OrgID     uuid.UUID
	ID        uuid.UUID
	Name      string
	ManagerID *uuid.UUID
	CreatedAt time.Time
}

// User is a person who logs in: a rep, a manager or an admin.
type User struct {
	OrgID        uuid.UUID
	ID           uuid.UUID
	Email        string
	Name         string
	Role         Role
	TeamID       *uuid.UUID
	Active       bool
	TimeZone     string
	PasswordHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Principal is the authenticated caller of a request, as proven by an access
// token and checked against the live session.
type Principal struct {
	OrgID     uuid.UUID
	UserID    uuid.UUID
	Role      Role
	TeamID    *uuid.UUID
	DeviceID  uuid.UUID
	SessionID uuid.UUID
}

// Limits on user-supplied strings, in characters.
const (
	MaxNameLen     = 200
	MaxEmailLen    = 254
	MinPasswordLen = 10
	MaxPasswordLen = 128
)

// NormalizeEmail lower-cases and trims an address, so that logins match
// regardless of how the address was typed.
func NormalizeEmail(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}

// ValidateEmail checks a normalised address.
func ValidateEmail(field, email string) error {
	if email == "" {
		return FieldInvalid(field, "is required")
	}
	if len(email) > MaxEmailLen {
		return FieldInvalid(field, "must be at most %d characters", MaxEmailLen)
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || !strings.Contains(email[strings.IndexByte(email, '@'):], ".") {
		return FieldInvalid(field, "is not an email address")
	}
	return nil
}

// ValidateName checks a required human-readable name.
func ValidateName(field, name string) error {
	if strings.TrimSpace(name) == "" {
		return FieldInvalid(field, "is required")
	}
	if utf8.RuneCountInString(name) > MaxNameLen {
		return FieldInvalid(field, "must be at most %d characters", MaxNameLen)
	}
	return nil
}

// ValidatePassword checks a new password's length and that it is not one
// of the most common passwords. These are the rules that measurably help
// (NIST SP 800-63B); composition rules do not.
func ValidatePassword(field, pw string) error {
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLen {
		return FieldInvalid(field, "must be at least %d characters", MinPasswordLen)
	}
	if n > MaxPasswordLen {
		return FieldInvalid(field, "must be at most %d characters", MaxPasswordLen)
	}
	if IsCommonPassword(pw) {
		return FieldInvalid(field, "is one of the most common passwords; choose another")
	}
	return nil
}

// ValidateTimeZone checks an IANA zone name.
func ValidateTimeZone(field, tz string) error {
	if tz == "" {
		return FieldInvalid(field, "is required")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return FieldInvalid(field, "is not an IANA time zone")
	}
	return nil
}

// CanSeeUser reports whether p may read u's profile. Admins see their org,
// managers their team, reps themselves and their teammates (the HTTP layer
// shows reps only their teammates' names).
func (p Principal) CanSeeUser(u User) bool {
	if u.OrgID != p.OrgID {
		return false
	}
	switch {
	case p.Role == RoleAdmin, u.ID == p.UserID:
		return true
	case p.TeamID == nil || u.TeamID == nil:
		return false
	default:
		return *p.TeamID == *u.TeamID
	}
}

// Session is a user's login on one device. Refresh tokens rotate within it;
// revoking it ends every token it issued.
type Session struct {
	OrgID      uuid.UUID
	ID         uuid.UUID
	UserID     uuid.UUID
	DeviceID   uuid.UUID
	DeviceName string
	Platform   string
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// UserPatch holds the fields an admin may change; nil leaves a field alone.
// ClearTeam removes the user from their team.
type UserPatch struct {
	Role      *Role
	TeamID    *uuid.UUID
	ClearTeam bool
	Active    *bool
	Name      *string
}
