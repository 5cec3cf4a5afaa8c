// Package auth issues and verifies fieldsync's credentials: HS256 access
// tokens with key rotation, opaque refresh tokens stored only as hashes,
// password hashes (argon2id; bcrypt read for old hashes), and the login
// attempt guard.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// Token lifetimes.
const (
	AccessTTL  = 15 * time.Minute
	RefreshTTL = 30 * 24 * time.Hour
)

// Issuer and Audience are the iss and aud of every access token.
const (
	Issuer   = "fieldsync"
	Audience = "fieldsync-api"
)

// MinSecretLen is the shortest HMAC secret accepted, in bytes.
const MinSecretLen = 32

// Claims are an access token's claims. Sub, org, role, team and did name
// the caller; sid names the session that every request checks is live.
type Claims struct {
	jwt.RegisteredClaims
	Org  string `json:"org"`
	Role string `json:"role"`
	Team string `json:"team,omitempty"`
	Did  string `json:"did"`
	Sid  string `json:"sid"`
}

// Tokens signs and verifies access tokens. The current secret signs; it and
// every previous secret verify, each found by its kid, so a secret can be
// rotated without logging anyone out.
type Tokens struct {
	current string
	keys    map[string][]byte
	now     func() time.Time
}

// NewTokens returns a Tokens for the current secret and the previous ones
// that still verify. Every secret must be at least MinSecretLen bytes.
func NewTokens(secret string, previous []string, now func() time.Time) (*Tokens, error) {
	if now == nil {
		now = time.Now
	}
	t := &Tokens{keys: map[string][]byte{}, now: now}
	for i, s := range append([]string{secret}, previous...) {
		if len(s) < MinSecretLen {
			if i == 0 {
				return nil, fmt.Errorf("jwt secret must be at least %d bytes, got %d", MinSecretLen, len(s))
			}
			return nil, fmt.Errorf("previous jwt secret %d must be at least %d bytes", i, MinSecretLen)
		}
		kid := KeyID(s)
		if i == 0 {
			t.current = kid
		}
		t.keys[kid] = []byte(s)
	}
	return t, nil
}

// KeyID derives a public, stable key id from a secret.
func KeyID(secret string) string {
	sum := sha256.Sum256([]byte("fieldsync-kid:" + secret))
	return hex.EncodeToString(sum[:6])
}

// Issue signs an access token for a user's session on a device. It returns
// the token and its lifetime in seconds.
func (t *Tokens) Issue(u models.User, s models.Session) (string, int, error) {
	now := t.now()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   u.ID.String(),
			Issuer:    Issuer,
			Audience:  jwt.ClaimStrings{Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(AccessTTL)),
			ID:        uuid.NewString(),
		},
		Org:  u.OrgID.String(),
		Role: string(u.Role),
		Did:  s.DeviceID.String(),
		Sid:  s.ID.String(),
	}
	if u.TeamID != nil {
		c.Team = u.TeamID.String()
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = t.current
	signed, err := tok.SignedString(t.keys[t.current])
	if err != nil {
		return "", 0, fmt.Errorf("sign access token: %w", err)
	}
	return signed, int(AccessTTL / time.Second), nil
}

// Verified is what a valid access token proves.
type Verified struct {
	OrgID, UserID, DeviceID, SessionID uuid.UUID
}

// Verify checks an access token's signature (HS256 only, key by kid),
// issuer, audience and times, and returns who it names. It does not check
// that the session is still live; the caller does, against the database.
func (t *Tokens) Verify(raw string) (Verified, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(raw, &c, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		key, ok := t.keys[kid]
		if !ok {
			return nil, errors.New("unknown key id")
		}
		return key, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now),
		jwt.WithLeeway(30*time.Second),
	)
	if err != nil {
		return Verified{}, models.Errorf(models.CodeUnauthorized, "invalid access token: %s", describe(err))
	}
	var v Verified
	for _, f := range []struct {
		dst *uuid.UUID
		src string
	}{{&v.OrgID, c.Org}, {&v.UserID, c.Subject}, {&v.DeviceID, c.Did}, {&v.SessionID, c.Sid}} {
		id, err := uuid.Parse(f.src)
		if err != nil {
			return Verified{}, models.Errorf(models.CodeUnauthorized, "invalid access token: malformed claims")
		}
		*f.dst = id
	}
	return v, nil
}

func describe(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	}
	return "rejected"
}

// NewRefreshToken returns a new opaque refresh token and the hash to store.
func NewRefreshToken() (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = "fsr_" + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashRefreshToken(token)
}

// HashRefreshToken is the stored form of a refresh token. The tokens carry
// 256 random bits, so a fast hash is enough: there is nothing to brute-force.
func HashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
