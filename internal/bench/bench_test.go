package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// The whole run is tested end to end by cmd/fieldsync's TestBenchSmall,
// through the command and the real API; these cover the parts with rules.

// ms is the durations of ns milliseconds.
func ms(ns ...int) []time.Duration {
	var ds []time.Duration
	for _, n := range ns {
		ds = append(ds, time.Duration(n)*time.Millisecond)
	}
	return ds
}

func TestPercentile(t *testing.T) {
	seq := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = n - i // descending, so the sort matters
		}
		return s
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

func TestFieldShape(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		devices, teamSize     int
		teams, reps, managers int
	}{
		// 1,000 phones in teams of 10 reps and a manager: 90 full teams
		// and one of 9 reps.
		{"the issue's thousand", 1000, 10, 91, 909, 91},
		{"exact teams", 22, 10, 2, 20, 2},
		// Fewer phones than a team: one manager, the rest reps.
		{"one small team", 5, 10, 1, 4, 1},
		{"teams of one", 6, 1, 3, 3, 3},
	} {
		teams, reps, managers := fieldShape(tc.devices, tc.teamSize)
		if teams != tc.teams || reps != tc.reps || managers != tc.managers {
			t.Errorf("%s: got %d teams, %d reps, %d managers; want %d, %d, %d", tc.name, teams, reps, managers, tc.teams, tc.reps, tc.managers)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{1, 1}, {1.2, 2}, {3, 5}, {7, 10}, {120, 200}, {0.3, 0.5}, {500, 500},
	} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%g): got %g, want %g", tc.in, got, tc.want)
		}
	}
}

func TestGrowth(t *testing.T) {
	for _, tc := range []struct {
		name string
		lats []time.Duration
		want float64
		ok   bool
	}{
		// The last two's mean over the first two's.
		{"flat", ms(10, 10, 10, 10, 10), 1, true},
		{"doubling", ms(10, 30, 20, 40, 40), 2, true},
		// Fewer than four batches: the pairs would overlap.
		{"three batches", ms(10, 20, 30), 0, false},
		{"no time at all", ms(0, 0, 5, 5), 0, false},
	} {
		got, ok := growth(tc.lats)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	// The median over devices and rounds, with the range.
	if got, want := summarizeGrowth([]float64{1.4, 0.9, 1.1, 3}), (growthResult{Median: 1.1, Min: 0.9, Max: 3, N: 4}); got != want {
		t.Errorf("summarizeGrowth: got %+v, want %+v", got, want)
	}
	if got := summarizeGrowth(nil); got.N != 0 {
		t.Errorf("summarizeGrowth(nil): got %+v, want N 0", got)
	}
}

// TestReadPull: the bench's reading of a pull response counts every change
// and finds the envelope, whatever the changes' strings hold, and refuses
// a body that is not JSON.
func TestReadPull(t *testing.T) {
	body := `{"changes":[{"entity":"visits","id":"a","op":"upsert","data":{"notes":"]}\"{[,\\"}},` +
		`{"entity":"visits","id":"b","op":"delete"}],"cursor":"c1","has_more":true,"reset":false,"last_seq":3,"rejections":[]}`
	got, err := readPull([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got.changes != 2 || got.Cursor != "c1" || !got.HasMore {
		t.Errorf("got %d changes, cursor %q, has_more %v; want 2, c1, true", got.changes, got.Cursor, got.HasMore)
	}
	empty, err := readPull([]byte(`{"changes":[],"cursor":"c2","has_more":false,"reset":false,"last_seq":0,"rejections":[]}`))
	if err != nil || empty.changes != 0 || empty.Cursor != "c2" {
		t.Errorf("empty page: %+v, %v", empty, err)
	}
	if _, err := readPull([]byte(`{"changes":[{"entity":"visits"},],"cursor":"c"}`)); err == nil {
		t.Error("a body that is not JSON was read")
	}
}

// TestJSONScan holds the bench's one-pass check to json.Valid: on chosen
// documents, and on every one-byte change of a pull response.
func TestJSONScan(t *testing.T) {
	valid := func(b []byte) bool {
		s := jsonScan{b: b}
		ok := s.value()
		s.space()
		return ok && !s.more()
	}
	docs := []string{`{}`, `[]`, `{"a":[1,-0.5e+3,true,false,null,"x\u00e9\n\"\\"]}`, ` [ 1 , 2 ] `, `"\ud800"`, `0`, `-0`,
		`01`, `1.`, `.5`, `1e`, `-`, `[1,]`, `{"a":1,}`, `{"a"}`, `{a:1}`, `"\x"`, `"\u12g4"`, "\"\t\"", `tru`, `nul`, `[`, `{"a":1}x`, ``}
	sample := `{"changes":[{"entity":"visits","id":"a","version":12,"op":"upsert","data":{"notes":"]}\"{[,\\","lat":-48.5e-3,"ok":true,"n":null}}],"cursor":"c","has_more":false,"reset":false,"last_seq":0,"rejections":[]}`
	docs = append(docs, sample)
	for i := range len(sample) {
		for _, c := range []byte{'"', '\\', '{', '}', '[', ']', ',', ':', '-', '0', 'e', '.', 'x', ' ', 0x01} {
			b := []byte(sample)
			b[i] = c
			docs = append(docs, string(b))
		}
	}
	for _, d := range docs {
		if got, want := valid([]byte(d)), json.Valid([]byte(d)); got != want {
			t.Errorf("%q: jsonScan says %v, json.Valid %v", d, got, want)
		}
		if _, err := readPull([]byte(d)); err == nil && !json.Valid([]byte(d)) {
			t.Errorf("%q: readPull read a body that is not JSON", d)
		}
	}
}

// TestHostileRatio: the hostile figure is the median p99 of the runs with
// the hostile device over the median p99 of the runs alone, so one run a
// spell of the machine spoilt — alone or with — does not decide it.
func TestHostileRatio(t *testing.T) {
	for _, tc := range []struct {
		name        string
		alone, with []time.Duration
		want        float64
	}{
		{"steady", ms(40, 40, 40, 40), ms(44, 44, 44), 1.1},
		// The machine drifts from 40 to 80 ms alone and the runs with the
		// device, between them, drift with it, 10 % above.
		{"drift", ms(40, 60, 80, 80), ms(55, 77, 88), 1.1},
		// A spell slows one run alone fivefold: the ratio of the two
		// pooled p99s would read 0.22×.
		{"a spoilt run alone", ms(40, 200, 40, 40), ms(44, 44, 44), 1.1},
		// A spell slows one run with the device tenfold.
		{"a spoilt run with", ms(40, 40, 40, 40), ms(44, 400, 48), 1.2},
		// The device doubling every run's p99 is not hidden.
		{"a real effect", ms(40, 45, 40, 200), ms(80, 90, 85), 85.0 / 42.5},
		{"no runs", nil, nil, 0},
	} {
		r := hostileResult{AloneP99s: tc.alone, WithP99s: tc.with}
		if got := r.Ratio(); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: %.4f×, want %.4f×", tc.name, got, tc.want)
		}
	}
}
