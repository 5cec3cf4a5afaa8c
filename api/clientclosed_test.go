package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/sync/engine"
	"github.com/fieldsync/fieldsync/telemetry"
)

// stalledPush is the database with its device lock held elsewhere: a push
// waits until its request's context ends.
type stalledPush struct {
	*store.Feed
	waiting chan struct{}
}

func (s stalledPush) Push(ctx context.Context, _ models.Principal, _ []engine.Key, _ func(engine.Tx) error) error {
	close(s.waiting)
	<-ctx.Done()
	return fmt.Errorf("lock device: %w", ctx.Err())
}

// TestClientClosedIsNotAServerError: a phone that gives up while its push
// waits for a lock is the client's doing. It is logged at info and counted
// as 499, not as a 500 that pages someone.
func TestClientClosedIsNotAServerError(t *testing.T) {
	var logs lockedBuffer
	m := telemetry.New(telemetry.Options{NoRuntime: true})
	reg := m.Registry()
	waiting := make(chan struct{})
	env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) {
		d.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		d.Metrics = m
		d.Sync = engine.New(stalledPush{Feed: d.WatermelonStore.(*store.Feed), waiting: waiting}, sales.Entities(), d.Now, nil)
	}})
	rep := env.Login("rep1@demo.test")

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, env.Server.URL+"/v1/sync/push",
		strings.NewReader(`{"schema_version":1,"mutations":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+rep.Access)
	req.Header.Set("Content-Type", "application/json")
	done := make(chan error, 1)
	go func() {
		res, err := env.Server.Client().Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	select {
	case <-waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the push never reached the store")
	}
	cancel()
	<-done

	var line map[string]any
	for deadline := time.Now().Add(10 * time.Second); line == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, l := range logs.lines() {
			var rec map[string]any
			if json.Unmarshal(l, &rec) == nil && rec["msg"] == "request" && rec["route"] == "/v1/sync/push" {
				line = rec
			}
		}
	}
	if line == nil {
		t.Fatalf("no access log line for the abandoned push:\n%s", logs.lines())
	}
	if line["status"] != float64(499) || line["level"] != "INFO" {
		t.Errorf("access log: status %v at %v, want 499 at INFO", line["status"], line["level"])
	}
	for _, l := range logs.lines() {
		if strings.Contains(string(l), `"level":"ERROR"`) {
			t.Errorf("an abandoned request logged an error: %s", l)
		}
	}
	if n := counter(t, reg, "499"); n != 1 {
		t.Errorf("fieldsync_http_requests_total{status=499} = %v, want 1", n)
	}
	if n := counter(t, reg, "500"); n != 0 {
		t.Errorf("fieldsync_http_requests_total{status=500} = %v, want 0", n)
	}
}

// counter finds the push route's request counter for one status.
func counter(t *testing.T, reg *prometheus.Registry, status string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, f := range families {
		if f.GetName() != "fieldsync_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == "/v1/sync/push" && labels["status"] == status {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// TestServerCancelledAnswers503: a request the server itself cancels — a
// shutdown past its drain limit — rolls back and answers 503 with
// Retry-After, so the phone retries on another replica; it is not taken
// for a client that left.
func TestServerCancelledAnswers503(t *testing.T) {
	base, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	waiting := make(chan struct{})
	env := apitest.New(t, apitest.Options{
		BaseContext: func() context.Context { return base },
		Deps: func(d *api.Deps) {
			d.Sync = engine.New(stalledPush{Feed: d.WatermelonStore.(*store.Feed), waiting: waiting}, sales.Entities(), d.Now, nil)
		},
	})
	rep := env.Login("rep1@demo.test")
	answer := make(chan *apitest.Response, 1)
	go func() {
		answer <- env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/sync/push", Token: rep.Access, Body: `{"schema_version":1,"mutations":[]}`})
	}()
	<-waiting
	cancel(models.Errorf(models.CodeUnavailable, "the server is shutting down; retry"))
	res := <-answer
	expectProblem(t, res, http.StatusServiceUnavailable, "unavailable")
	if ra := res.Header.Get("Retry-After"); ra == "" {
		t.Errorf("503 without Retry-After")
	}
}
