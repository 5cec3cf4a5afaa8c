package engine

import (
	"fmt"
	"time"
)

// HLC is a hybrid logical clock stamp: wall milliseconds, a counter that
// orders events within one millisecond, and the device that stamped it,
// which breaks exact ties so every replica picks the same winner.
type HLC struct {
	MS      int64  `json:"ms"`
	Counter int64  `json:"counter"`
	Device  string `json:"device,omitempty"`
}

// Compare orders stamps: -1 if h is earlier than o, +1 if later, 0 if equal.
func (h HLC) Compare(o HLC) int {
	switch {
	case h.MS != o.MS:
		return cmp(h.MS, o.MS)
	case h.Counter != o.Counter:
		return cmp(h.Counter, o.Counter)
	case h.Device < o.Device:
		return -1
	case h.Device > o.Device:
		return 1
	}
	return 0
}

func cmp(a, b int64) int {
	if a < b {
		return -1
	}
	return 1
}

// IsZero reports whether h was never set.
func (h HLC) IsZero() bool { return h.MS == 0 && h.Counter == 0 && h.Device == "" }

func (h HLC) String() string { return fmt.Sprintf("%d:%d:%s", h.MS, h.Counter, h.Device) }

// MaxSkew is how far ahead of server time a client stamp may be. Beyond it
// the stamp is clamped to receipt time, so one phone with a clock set to
// next year cannot win every conflict until then.
const MaxSkew = 5 * time.Minute

// Clamp returns h limited to now+MaxSkew: a stamp further ahead becomes
// now (counter kept) and clamped is true.
func (h HLC) Clamp(now time.Time) (out HLC, clamped bool) {
	if h.MS > now.Add(MaxSkew).UnixMilli() {
		h.MS = now.UnixMilli()
		return h, true
	}
	return h, false
}
