package auth

import (
	"sync"
	"time"
)

// Limiter counts events per key in a fixed window and refuses a key once it
// reaches its limit, until the window that began with its first event ends.
// It is in-process: with several replicas each keeps its own counts, so the
// effective limit is per replica (a shared store would make it global).
type Limiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	now    func() time.Time
	hits   map[string]*window
}

type window struct {
	start time.Time
	n     int
}

// NewLimiter allows limit events per key per window.
func NewLimiter(limit int, per time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{limit: limit, window: per, now: now, hits: map[string]*window{}}
}

// Blocked reports whether key is over its limit and, if so, how long until
// it may try again.
func (l *Limiter) Blocked(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.current(key)
	if w == nil || w.n < l.limit {
		return false, 0
	}
	return true, w.start.Add(l.window).Sub(l.now())
}

// Take counts one event for key unless key is already at its limit, in
// one step: of many concurrent callers, no more than the limit are let
// through. It reports whether the event was let through and, if not, how
// long until the key may try again.
func (l *Limiter) Take(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.current(key)
	if w != nil && w.n >= l.limit {
		return false, w.start.Add(l.window).Sub(l.now())
	}
	l.add(key, w)
	return true, 0
}

// Undo takes back one event that Take let through for key, for an
// attempt that turned out not to count (a successful login).
func (l *Limiter) Undo(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.current(key); w != nil && w.n > 0 {
		w.n--
	}
}

// Add records one event for key.
func (l *Limiter) Add(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(key, l.current(key))
}

func (l *Limiter) add(key string, w *window) {
	if w == nil {
		if len(l.hits) > 100_000 {
			l.sweep()
		}
		w = &window{start: l.now()}
		l.hits[key] = w
	}
	w.n++
}

// Reset forgets key, after a successful login.
func (l *Limiter) Reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.hits, key)
}

func (l *Limiter) current(key string) *window {
	w, ok := l.hits[key]
	if !ok {
		return nil
	}
	if !l.now().Before(w.start.Add(l.window)) {
		delete(l.hits, key)
		return nil
	}
	return w
}

// sweep drops expired windows so that a flood of distinct keys cannot grow
// the map without bound.
func (l *Limiter) sweep() {
	now := l.now()
	for k, w := range l.hits {
		if !now.Before(w.start.Add(l.window)) {
			delete(l.hits, k)
		}
	}
}
