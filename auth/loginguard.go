package auth

import (
	"sync"
	"time"
)

// LoginPolicy says how failed logins slow down further attempts. Failures
// are counted per (email, client address) pair, tightly, and per email
// across all addresses, loosely:
//
//   - A pair may fail PairFree times freely. Its PairFree-th failure makes
//     that address wait BaseDelay before it may try that email again, and
//     each further failure doubles the wait, up to MaxDelay.
//   - Once an email has failed EmailFree times from any addresses, every
//     address that has failed for it waits in the same way, the delay
//     growing with the email's count. An address that has not failed for
//     that email is still let through, so an attacker cannot lock the
//     owner out; it is counted, and once it fails it waits too.
//
// A success from a pair forgets that pair's failures. A pair or email with
// no failure for Forget is forgotten. Nothing is ever blocked per address
// alone: many users behind one NAT do not pay for one another's typos.
type LoginPolicy struct {
	PairFree, EmailFree int
	BaseDelay, MaxDelay time.Duration
	Forget              time.Duration
}

// DefaultLoginPolicy is the policy in production.
var DefaultLoginPolicy = LoginPolicy{
	PairFree: 5, EmailFree: 50,
	BaseDelay: time.Minute, MaxDelay: 15 * time.Minute,
	Forget: 24 * time.Hour,
}

// delay is how long a key that has failed n times waits after its last
// failure: nothing below free, then base doubling up to max.
func (p LoginPolicy) delay(n, free int) time.Duration {
	if n < free {
		return 0
	}
	d := p.BaseDelay
	for i := free; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay)
}

// LoginGuard applies a LoginPolicy. It is in-process: with several
// replicas each keeps its own counts, so an attacker spreading attempts
// over replicas gets one budget per replica.
type LoginGuard struct {
	mu     sync.Mutex
	policy LoginPolicy
	now    func() time.Time
	keys   map[string]*failures
	// maxKeys bounds the memory a flood of distinct emails can take.
	maxKeys int
}

type failures struct {
	n    int
	last time.Time
}

// NewLoginGuard returns a guard for policy; a zero policy means
// DefaultLoginPolicy.
func NewLoginGuard(policy LoginPolicy, now func() time.Time) *LoginGuard {
	if policy == (LoginPolicy{}) {
		policy = DefaultLoginPolicy
	}
	if now == nil {
		now = time.Now
	}
	return &LoginGuard{policy: policy, now: now, keys: map[string]*failures{}, maxKeys: 200_000}
}

// Attempt is one login attempt let through by Begin. The caller reports
// its outcome with Succeeded; an attempt never reported stays counted as
// a failure.
type Attempt struct {
	g                *LoginGuard
	pairKey, mailKey string
}

// Begin checks whether address may try email now and, if so, counts the
// attempt as a failure before the password is checked, in the same step,
// so that guesses sent in parallel cannot all pass the check while the
// first are still hashing. When the attempt is refused it returns how long
// to wait.
func (g *LoginGuard) Begin(email, address string) (*Attempt, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	a := &Attempt{g: g, pairKey: "pair:" + address + "\x00" + email, mailKey: "email:" + email}
	pair, mail := g.get(a.pairKey, now), g.get(a.mailKey, now)
	var wait time.Duration
	if pair != nil {
		wait = pair.last.Add(g.policy.delay(pair.n, g.policy.PairFree)).Sub(now)
		if mail != nil {
			wait = max(wait, mail.last.Add(g.policy.delay(mail.n, g.policy.EmailFree)).Sub(now))
		}
	}
	if wait > 0 {
		return nil, wait
	}
	if len(g.keys) >= g.maxKeys {
		g.sweep(now)
	}
	for _, k := range []string{a.pairKey, a.mailKey} {
		f := g.keys[k]
		if f == nil {
			f = &failures{}
			g.keys[k] = f
		}
		f.n++
		f.last = now
	}
	return a, 0
}

// Succeeded takes back the attempt's count: the pair's failures are
// forgotten, and the email's count drops by this attempt.
func (a *Attempt) Succeeded() {
	g := a.g
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.keys, a.pairKey)
	if f := g.keys[a.mailKey]; f != nil {
		if f.n--; f.n <= 0 {
			delete(g.keys, a.mailKey)
		}
	}
}

// Aborted takes back the attempt's count without judging the password,
// after an error unrelated to it (the database was unreachable).
func (a *Attempt) Aborted() {
	g := a.g
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range []string{a.pairKey, a.mailKey} {
		if f := g.keys[k]; f != nil {
			if f.n--; f.n <= 0 {
				delete(g.keys, k)
			}
		}
	}
}

// get returns key's failures, forgetting them once they are stale.
func (g *LoginGuard) get(key string, now time.Time) *failures {
	f := g.keys[key]
	if f != nil && !now.Before(f.last.Add(g.policy.Forget)) {
		delete(g.keys, key)
		return nil
	}
	return f
}

// sweep drops stale keys so that a flood of distinct emails or addresses
// cannot grow the map without bound. If the map is still full, it drops
// arbitrary keys down to nine tenths: that may forget some failures, but
// every key took one password hash to make, so a flood big enough to
// matter is slow, and the alternative is running out of memory.
func (g *LoginGuard) sweep(now time.Time) {
	for k := range g.keys {
		g.get(k, now)
	}
	for k := range g.keys {
		if len(g.keys) < g.maxKeys*9/10 {
			return
		}
		delete(g.keys, k)
	}
}
