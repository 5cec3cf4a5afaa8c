package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// The whole run is tested end to end by cmd/fieldsync's TestBenchSmall,
// through the command and the real API; these cover the parts with rules.

func TestPercentile(t *testing.T) {
	seq := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = n - i // descending, so the sort matters
		}
		return s
	}
	ms := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n)*time.Millisecond)
		}
		return ds
	}
	for _, tc := range []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		// No samples: zero rather than a panic.
		{"empty", nil, 50, 0},
		{"one sample", ms(7), 99, 7 * time.Millisecond},
		// The nearest-rank method: the smallest sample with at least p %
		// of the samples at or below it, whatever order they came in.
		{"median of four", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 1…100 ms", ms(seq(100)...), 99, 99 * time.Millisecond},
		{"p100 is the largest", ms(3, 9, 1), 100, 9 * time.Millisecond},
	} {
		if got := percentile(tc.ds, tc.p); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRunNeedsAServer: a Config without a server is refused before the
// database is touched.
func TestRunNeedsAServer(t *testing.T) {
	var out, progress bytes.Buffer
	_, err := Run(context.Background(), Config{DatabaseURL: "sqlite:" + t.TempDir() + "/x.db"}, &out, &progress)
	if err == nil || !strings.Contains(err.Error(), "Config.Server") {
		t.Errorf("got %v, want an error naming Config.Server", err)
	}
}
