package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/internal/bench"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
)

// TestBenchSmall runs `fieldsync bench` end to end at a tiny size on
// the test database (SQLite, or PostgreSQL when FIELDSYNC_TEST_DATABASE_URL
// is set): every phase runs and the summary names each figure with a ratio
// against the raw ceiling. (The figures themselves are for people to read;
// tests never time anything.)
func TestBenchSmall(t *testing.T) {
	url := storetest.URL(t)
	got := invoke(t, context.Background(), env{}, "", "bench", "--database-url", url, "--devices", "2", "--batches", "4",
		"--batch-size", "20", "--rounds", "2", "--latency-devices", "3", "--latency-every", "20ms", "--incremental", "50,200", "--history", "20",
		"--team-devices", "2", "--team-batches", "1", "--same-minute", "--hostile", "--hostile-pushes", "2")
	if got.err != nil {
		t.Fatalf("bench: %v\n%s", got.err, got.stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`push mutations/s \(batches of 20\)\s+\d+\s+\d+\s+\d+%\s+\(rounds: \d+–\d+%\)`),
		regexp.MustCompile(`pull records/s \(pages of 1000\)\s+\d+\s+\d+\s+\d+%`),
		regexp.MustCompile(`push growth, batches 3–4 vs 1–2\s+\d+\.\d+×\s+\(median of 4 devices × rounds, \d+\.\d+–\d+\.\d+×; target ≤ 1\.5×\)`),
		regexp.MustCompile(`push p50 / p99, 3 devices × 10, each every 20ms\s+\S+ / \S+\s+\(\d+ pushes/s\)`),
		regexp.MustCompile(`push p50 / p99, 3 devices × 10, back to back`),
		regexp.MustCompile(`incremental pull of 100, 200 visits\s+\S+\s+\d+\.\d+×`),
		regexp.MustCompile(`team push p50 / p99\s+\S+ / \S+\s+\(2 pushes, \d+ failed\)`),
		regexp.MustCompile(`GET /v1/me p50 / p99 during pushes\s+\S+ / \S+`),
		regexp.MustCompile(`/readyz p50 / p99 during pushes\s+\S+ / \S+\s+\(\d+ probes, \d+ not ready\)`),
		regexp.MustCompile(`push latency, last two \(median\)\s+\S+\s+\(\d+\.\d+× the first two; target ≤ 2×\)`),
		regexp.MustCompile(`paced p50 / p99, alone\s+\S+ / \S+\s+\(p99 of each run: \S+, \S+, \S+, \S+\)`),
		regexp.MustCompile(`paced p50 / p99, with the hostile device\s+\S+ / \S+\s+\(p99 of each run: \S+, \S+, \S+\)`),
		regexp.MustCompile(`paced p99 with the hostile device ÷ alone\s+\d+\.\d+×\s+\(median p99 with ÷ median p99 alone; target ≤ 1\.25×\)`),
		regexp.MustCompile(`hostile device pushes/s\s+\d+\.\d\s+\(\d+ mutations/s; \d+ × 429, \d+ × 503 in \d+\.\d s\)`),
		regexp.MustCompile(`peak RSS\s+\d+\.\d MB`),
	} {
		if !want.MatchString(got.stdout) {
			t.Errorf("summary lacks %s:\n%s", want, got.stdout)
		}
	}
	// On PostgreSQL the push's own writes are measured alone beside the
	// raw ceiling, in copies of the tables it drops again.
	pg := strings.HasPrefix(url, "postgres")
	for _, how := range []string{"sent", "made by PostgreSQL"} {
		line := regexp.MustCompile(`push's writes alone, ` + how + `\s+\d+\s+\d+\s+\d+%\s+\(push ÷ these writes: \d+%\)`)
		if line.MatchString(got.stdout) != pg {
			t.Errorf("on PostgreSQL %v, the summary has the line of the push's own writes %s %v:\n%s", pg, how, !pg, got.stdout)
		}
	}
	if pg {
		db, err := store.Open(context.Background(), url, store.Options{})
		if err != nil {
			t.Fatalf("open the bench's database: %v", err)
		}
		defer db.Close()
		var left int64
		if err := db.Gorm().Raw("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'bench_same_%'").Row().Scan(&left); err != nil || left != 0 {
			t.Errorf("tables of the same-writes ceiling left behind: %d (%v)", left, err)
		}
	}
	if bad := invoke(t, context.Background(), env{}, "", "bench", "--rounds", "0"); bad.err == nil || !strings.Contains(bad.err.Error(), "positive") {
		t.Errorf("--rounds 0: %v, want a usage error", bad.err)
	}
	if bad := invoke(t, context.Background(), env{}, "", "bench", "--hostile", "--latency-devices", "1"); bad.err == nil || !strings.Contains(bad.err.Error(), "--latency-devices") {
		t.Errorf("--hostile with one latency device: %v, want a usage error", bad.err)
	}
}

// TestBenchFieldDay runs the field-day scenario at a tiny size on SQLite:
// the JSON report parses and names every endpoint with requests and no
// errors, no mutation was rejected, and the SVG chart is well-formed XML.
// No timings are checked.
func TestBenchFieldDay(t *testing.T) {
	dir := t.TempDir()
	jsonPath, svgPath := filepath.Join(dir, "day.json"), filepath.Join(dir, "day.svg")
	got := invoke(t, context.Background(), env{}, "", "bench", "--scenario", "field-day", "--database-url", "sqlite:"+filepath.Join(dir, "bench.db"),
		"--day-devices", "5", "--team-size", "2", "--duration", "2s", "--calls", "2", "--pull-every", "500ms", "--standings-every", "500ms",
		"--report-json", jsonPath, "--report-svg", svgPath)
	if got.err != nil {
		t.Fatalf("bench: %v\n%s", got.err, got.stderr)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.FieldDayReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, b)
	}
	if len(rep.Runs) != 1 || rep.Devices != 5 || rep.Scenario != "field-day" {
		t.Fatalf("report: %d runs of %d devices (%q), want 1 of 5 (field-day)", len(rep.Runs), rep.Devices, rep.Scenario)
	}
	run := rep.Runs[0]
	seen := map[string]bool{}
	for _, e := range run.Endpoints {
		seen[e.Name] = true
		if e.Count == 0 || e.Errors != 0 {
			t.Errorf("%s: %d requests, %d errors (first: %q); want some and none", e.Name, e.Count, e.Errors, e.FirstError)
		}
	}
	for _, name := range []string{"login", "me", "push", "pull", "standings"} {
		if !seen[name] {
			t.Errorf("report lacks endpoint %s", name)
		}
	}
	if run.Errors != 0 || run.RejectedMutations != 0 || len(run.Windows) == 0 || run.PeakRSSBytes <= 0 {
		t.Errorf("run: %d errors, %d rejected, %d windows, RSS %d; want 0, 0, some, some", run.Errors, run.RejectedMutations, len(run.Windows), run.PeakRSSBytes)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	polylines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg is not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
		}
	}
	if polylines != 5 {
		t.Errorf("svg has %d polylines, want one per endpoint (5)", polylines)
	}
	if !regexp.MustCompile(`push\s+\d+\s+0\s`).MatchString(got.stdout) {
		t.Errorf("table lacks the push line:\n%s", got.stdout)
	}
	if bad := invoke(t, context.Background(), env{}, "", "bench", "--scenario", "field-day", "--replicas", "2", "--duration", "1s"); bad.err == nil || !strings.Contains(bad.err.Error(), "PostgreSQL") {
		t.Errorf("--replicas 2 on SQLite: %v, want an error naming PostgreSQL", bad.err)
	}
}
