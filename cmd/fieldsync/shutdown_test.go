package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// goroutinesIn counts the goroutines whose stack passes through fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

// TestServeStopsItsWorkersBeforeClosing: when serve returns — here because
// its address is taken, after the scheduler and the notification workers
// started — none of its background goroutines is still running, since
// they would run on a closed database.
func TestServeStopsItsWorkersBeforeClosing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The context never ends: serve must stop its workers on its own way out.
	got := invoke(t, context.Background(), env{"FIELDSYNC_JWT_SECRET": testSecret}, "",
		"serve", "--database-url", seededURL(t), "--addr", ln.Addr().String())
	if got.err == nil || !strings.Contains(got.err.Error(), "listen on") {
		t.Fatalf("serve on a taken address: %v, want a listen error\n%s", got.err, got.stderr)
	}
	for _, fn := range []string{"cmd/fieldsync.schedule(", "notifications.(*Dispatcher).Run(", "notifications.Every("} {
		if n := goroutinesIn(fn); n > 0 {
			t.Errorf("%d goroutines still in %s after serve returned", n, fn)
		}
	}
}

// TestSchedulerStopWaitsForTheTick: stop returns only once the scheduler
// has, so serve closes the database after the tick in progress is done
// with it, however long that tick takes to notice the cancellation.
func TestSchedulerStopWaitsForTheTick(t *testing.T) {
	var (
		mu     sync.Mutex
		events []string
	)
	record := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	ticking := make(chan struct{})
	jobs := scheduled{
		orgs: func(context.Context) ([]uuid.UUID, error) { return []uuid.UUID{uuid.New()}, nil },
		tick: func(ctx context.Context, _ uuid.UUID) error {
			close(ticking) // the first tick only: the next is an hour away
			<-ctx.Done()
			// A tick that is committing when the server stops takes a
			// moment more to return.
			time.Sleep(50 * time.Millisecond)
			record("tick returned")
			return ctx.Err()
		},
		purge: func(context.Context, uuid.UUID, time.Time) (int, error) { return 0, nil },
	}
	stop := startScheduler(context.Background(), jobs, slog.New(slog.DiscardHandler), time.Hour, time.Hour)
	<-ticking
	stop()
	record("database closed")
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"tick returned", "database closed"}; !slices.Equal(events, want) {
		t.Errorf("got %q, want %q", events, want)
	}
}

// TestShutdownPastTheDrainLimit: a request still running when the drain
// limit passes is cancelled with the shutdown as its cause (the api turns
// that into 503), the shutdown is logged, and serve returns cleanly — exit
// 0, not a process that dies mid-transaction.
func TestShutdownPastTheDrainLimit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	var cause error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // a push stuck behind a lock
		cause = context.Cause(r.Context())
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	var logs syncBuffer
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- serveUntil(ctx, ln, h, slog.New(slog.NewTextHandler(&logs, nil)), 200*time.Millisecond)
	}()
	status := make(chan int, 1)
	go func() {
		res, err := http.Post("http://"+ln.Addr().String()+"/v1/sync/push", "application/json", strings.NewReader("{}"))
		if err != nil {
			status <- 0
			return
		}
		res.Body.Close()
		status <- res.StatusCode
	}()
	<-started
	stop() // SIGTERM
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve returned %v past the drain limit, want a clean stop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after the drain limit")
	}
	if got := <-status; got != http.StatusServiceUnavailable {
		t.Errorf("the request in flight got %d, want the 503 its handler wrote", got)
	}
	if !errors.Is(cause, errShuttingDown) {
		t.Errorf("the request's context ended with %v, want errShuttingDown", cause)
	}
	if !strings.Contains(logs.String(), "drain limit reached") {
		t.Errorf("no log line says the drain limit cancelled requests:\n%s", logs.String())
	}
}
