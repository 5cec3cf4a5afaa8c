package auth

import (
	"strings"
	"testing"
)

func TestPasswordsCheck(t *testing.T) {
	cheap := NewPasswords(TestArgon2)
	h, err := cheap.Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q, want a PHC argon2id string", h)
	}
	other := NewPasswords(Argon2Params{Time: 2, MemoryKiB: 128, Threads: 1})
	tests := []struct {
		name            string
		p               *Passwords
		hash, pw        string
		wantOK, wantOld bool
	}{
		{"right password", cheap, h, "correct horse battery", true, false},
		{"wrong password", cheap, h, "correct horse batterY", false, false},
		// A hash at other costs still verifies, and asks to be redone.
		{"costs changed", other, h, "correct horse battery", true, true},
		{"unknown user", cheap, "", "anything", false, false},
		{"garbage hash", cheap, "$argon2id$v=19$m=x$", "anything", false, false},
		{"wrong version", cheap, strings.Replace(h, "v=19", "v=16", 1), "correct horse battery", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, stale := tt.p.Check(tt.hash, tt.pw)
			if ok != tt.wantOK || stale != tt.wantOld {
				t.Errorf("Check = (%v, %v), want (%v, %v)", ok, stale, tt.wantOK, tt.wantOld)
			}
		})
	}
}

// BenchmarkDefaultArgon2 measures one production hash.
func BenchmarkDefaultArgon2(b *testing.B) {
	p := NewPasswords(DefaultArgon2)
	for b.Loop() {
		if _, err := p.Hash("correct horse battery"); err != nil {
			b.Fatal(err)
		}
	}
}
