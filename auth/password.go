package auth

import (
	"fmt"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Passwords hashes and checks passwords with bcrypt at a set cost.
type Passwords struct {
	cost      int
	dummyOnce sync.Once
	dummy     []byte
}

// DefaultCost is bcrypt's work factor in production (~0.2 s on these cores).
const DefaultCost = 12

// NewPasswords returns a hasher at cost (bcrypt.MinCost in tests).
func NewPasswords(cost int) *Passwords {
	return &Passwords{cost: cost}
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
// checked against a dummy of the same cost, made on first need, so that an
// unknown email takes as long as a wrong password.
func (p *Passwords) Check(hash, pw string) bool {
	if hash == "" {
		p.dummyOnce.Do(func() {
			p.dummy, _ = bcrypt.GenerateFromPassword([]byte("fieldsync-dummy-password"), p.cost)
		})
		_ = bcrypt.CompareHashAndPassword(p.dummy, []byte(pw))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}
