package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/internal/apitest"
)

// lockedBuffer lets the server's handler goroutines and the test share
// one log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Split(bytes.TrimSpace(l.b.Bytes()), []byte("\n"))
}

// A log pipeline reads latency as milliseconds, a number; slog's default
// encoding of a time.Duration in JSON is integer nanoseconds, which every
// dashboard then has to divide.
func TestAccessLogLatencyInMilliseconds(t *testing.T) {
	var logs lockedBuffer
	env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) {
		d.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	}})
	env.Do(apitest.Request{Method: http.MethodGet, Path: "/healthz"})

	var found bool
	for _, line := range logs.lines() {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if rec["msg"] != "request" || rec["route"] != "/healthz" {
			continue
		}
		found = true
		if _, ok := rec["latency"]; ok {
			t.Errorf("access log still has latency (nanoseconds): %s", line)
		}
		ms, ok := rec["latency_ms"].(float64)
		if !ok {
			t.Fatalf("latency_ms = %#v, want a number: %s", rec["latency_ms"], line)
		}
		if ms < 0 || ms > 60_000 {
			t.Errorf("latency_ms = %v, want milliseconds of a quick request", ms)
		}
	}
	if !found {
		t.Fatalf("no access log line for /healthz in:\n%s", bytes.Join(logs.lines(), []byte("\n")))
	}
}
