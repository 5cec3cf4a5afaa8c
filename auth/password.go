package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2Params are argon2id's costs. MemoryKiB is per hash in flight.
type Argon2Params struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

// DefaultArgon2 is the production cost: 46 MiB, 1 pass, 1 lane — one of
// OWASP's recommended argon2id settings. On a small 2-core server under
// load one hash takes about 0.15 s of one core, so two logins hash at once
// within 92 MiB.
var DefaultArgon2 = Argon2Params{Time: 1, MemoryKiB: 46 * 1024, Threads: 1}

// TestArgon2 is a cost for tests only: hashes in microseconds, guards
// nothing.
var TestArgon2 = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// Passwords hashes passwords with argon2id and checks them against
// argon2id hashes and the bcrypt hashes of earlier builds. At most
// GOMAXPROCS hashes run at once, so a burst of logins queues rather than
// taking GOMAXPROCS × 64 MiB and more.
type Passwords struct {
	params    Argon2Params
	sem       chan struct{}
	dummyOnce sync.Once
	dummy     string
}

// NewPasswords returns a hasher at params (DefaultArgon2 in production).
func NewPasswords(params Argon2Params) *Passwords {
	return &Passwords{params: params, sem: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))}
}

// Hash returns the stored form of a password, in the PHC string format:
// $argon2id$v=19$m=47104,t=1,p=1$<salt>$<hash>, base64 without padding.
func (p *Passwords) Hash(pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := p.derive(pw, salt, p.params)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.params.MemoryKiB, p.params.Time,
		p.params.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

func (p *Passwords) derive(pw string, salt []byte, a Argon2Params) []byte {
	p.sem <- struct{}{}
	defer func() { <-p.sem }()
	return argon2.IDKey([]byte(pw), salt, a.Time, a.MemoryKiB, a.Threads, keyLen)
}

// Check reports whether pw matches hash, and whether hash should be
// replaced by Hash(pw) because it is bcrypt or argon2id at other costs
// (stale is only ever true when ok is). An empty hash (unknown user) is
// checked against a dummy of the current cost, made on first need, so that
// an unknown email takes as long as a wrong password.
func (p *Passwords) Check(hash, pw string) (ok, stale bool) {
	if hash == "" {
		p.dummyOnce.Do(func() { p.dummy, _ = p.Hash("fieldsync-dummy-password") })
		p.check(p.dummy, pw)
		return false, false
	}
	return p.check(hash, pw)
}

func (p *Passwords) check(hash, pw string) (ok, stale bool) {
	if strings.HasPrefix(hash, "$2") {
		// bcrypt, from builds before argon2id. Passwords over 72 bytes
		// could not be stored then, so refusing them here loses nothing.
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil, true
	}
	a, salt, key, err := parseArgon2id(hash)
	if err != nil {
		return false, false
	}
	if subtle.ConstantTimeCompare(p.derive(pw, salt, a), key) != 1 {
		return false, false
	}
	return true, a != p.params || len(key) != keyLen
}

func parseArgon2id(hash string) (Argon2Params, []byte, []byte, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return Argon2Params{}, nil, nil, fmt.Errorf("not an argon2id hash")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return Argon2Params{}, nil, nil, fmt.Errorf("argon2id version %q", parts[2])
	}
	var a Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &a.MemoryKiB, &a.Time, &a.Threads); err != nil ||
		a.Time == 0 || a.Threads == 0 || a.MemoryKiB < 8*uint32(a.Threads) {
		return Argon2Params{}, nil, nil, fmt.Errorf("argon2id parameters %q", parts[3])
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) == 0 || len(key) == 0 {
		return Argon2Params{}, nil, nil, fmt.Errorf("argon2id salt or hash")
	}
	return a, salt, key, nil
}
