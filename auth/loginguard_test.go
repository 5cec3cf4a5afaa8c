package auth

import (
	"fmt"
	"testing"
	"time"
)

func TestLoginGuardDelays(t *testing.T) {
	p := LoginPolicy{PairFree: 2, EmailFree: 100, BaseDelay: time.Minute, MaxDelay: 4 * time.Minute, Forget: time.Hour}
	tests := []struct {
		failures int
		want     time.Duration
	}{{1, 0}, {2, time.Minute}, {3, 2 * time.Minute}, {4, 4 * time.Minute}, {9, 4 * time.Minute}}
	for _, tt := range tests {
		if got := p.delay(tt.failures, p.PairFree); got != tt.want {
			t.Errorf("delay after %d failures = %v, want %v", tt.failures, got, tt.want)
		}
	}
}

// TestLoginGuardBoundsMemory: a flood of distinct emails cannot grow the
// guard past its bound.
func TestLoginGuardBoundsMemory(t *testing.T) {
	now := time.Unix(0, 0)
	g := NewLoginGuard(LoginPolicy{}, func() time.Time { return now })
	g.maxKeys = 1000
	for i := range 5000 {
		if a, _ := g.Begin(fmt.Sprintf("u%d@x.test", i), "203.0.113.1"); a == nil {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if n := len(g.keys); n > g.maxKeys {
		t.Errorf("%d keys, want at most %d", n, g.maxKeys)
	}
}
