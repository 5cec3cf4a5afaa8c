package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBenchSmall runs `fieldsync bench` end to end at a tiny size on
// SQLite: every phase runs and the summary names each figure with a ratio
// against the raw ceiling. (The figures themselves are for people to read;
// tests never time anything.)
func TestBenchSmall(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "bench.db")
	got := invoke(t, context.Background(), env{}, "", "bench", "--database-url", url, "--devices", "2", "--batches", "2",
		"--batch-size", "20", "--rounds", "2", "--latency-devices", "3", "--latency-every", "20ms", "--incremental", "50,200", "--history", "20",
		"--team-devices", "2", "--team-batches", "1", "--same-minute")
	if got.err != nil {
		t.Fatalf("bench: %v\n%s", got.err, got.stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`push mutations/s \(batches of 20\)\s+\d+\s+\d+\s+\d+%\s+\(rounds: \d+–\d+%\)`),
		regexp.MustCompile(`pull records/s \(pages of 1000\)\s+\d+\s+\d+\s+\d+%`),
		regexp.MustCompile(`push p50 / p99, 3 devices × 10, each every 20ms\s+\S+ / \S+\s+\(\d+ pushes/s\)`),
		regexp.MustCompile(`push p50 / p99, 3 devices × 10, back to back`),
		regexp.MustCompile(`incremental pull of 100, 200 visits\s+\S+\s+\d+\.\d+×`),
		regexp.MustCompile(`team push p50 / p99\s+\S+ / \S+\s+\(2 pushes, \d+ failed\)`),
		regexp.MustCompile(`GET /v1/me p50 / p99 during pushes\s+\S+ / \S+`),
		regexp.MustCompile(`/readyz p50 / p99 during pushes\s+\S+ / \S+\s+\(\d+ probes, \d+ not ready\)`),
		regexp.MustCompile(`push latency, last two \(median\)\s+\S+\s+\(\d+\.\d+× the first two; target ≤ 2×\)`),
		regexp.MustCompile(`peak RSS\s+\d+\.\d MB`),
	} {
		if !want.MatchString(got.stdout) {
			t.Errorf("summary lacks %s:\n%s", want, got.stdout)
		}
	}
	if bad := invoke(t, context.Background(), env{}, "", "bench", "--rounds", "0"); bad.err == nil || !strings.Contains(bad.err.Error(), "positive") {
		t.Errorf("--rounds 0: %v, want a usage error", bad.err)
	}
}
