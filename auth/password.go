package auth

import (
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// Passwords hashes and checks passwords with bcrypt at a set cost.
type Passwords struct {
	cost  int
	dummy []byte
}

// DefaultCost is bcrypt's work factor in production (~0.2 s on these cores).
const DefaultCost = 12

// NewPasswords returns a hasher at cost (bcrypt.MinCost in tests).
func NewPasswords(cost int) *Passwords {
	// dummy is compared against when the email is unknown, so an unknown
	// email costs the same time as a wrong password.
	dummy, _ := bcrypt.GenerateFromPassword([]byte("fieldsync-dummy-password"), cost)
	return &Passwords{cost: cost, dummy: dummy}
}

// Hash returns the stored form of a password.
func (p *Passwords) Hash(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), p.cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Check reports whether pw matches hash. An empty hash (unknown user) is
// checked against a dummy so that it takes as long as a real mismatch.
func (p *Passwords) Check(hash, pw string) bool {
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(p.dummy, []byte(pw))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}
