package bench

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fieldsync/fieldsync/models"
)

// teamResult holds the figures of the team phase: a team's devices
// pushing large batches at once while a reader checks its session
// (GET /v1/me), pulls a page and a load balancer probes /readyz — what a
// replica's readers see while it takes a team's pushes.
type teamResult struct {
	Pushes, PushFailures int
	PushP50, PushP99     time.Duration
	MeP50, MeP99         time.Duration
	PullP50, PullP99     time.Duration
	ReadyP50, ReadyP99   time.Duration
	Reads, ReadFailures  int // GET /v1/me and pulls; failures are any status but 200
	Probes, ReadyRed     int // /readyz probes, and those not answered 200
}

// teamBatchMin and teamBatchMax bound the batches of the team phase: a
// rep's day of calls after a day without signal.
const teamBatchMin, teamBatchMax = 200, 1000

// teamPhase has a device per rep push batches of 200–1,000 visits back to
// back, while one reader loops over GET /v1/me, a pull of 100 and
// /readyz until the pushes end. A push that fails (a 503 past its
// deadline) is counted and the device goes on, as a phone would retry.
func (w *world) teamPhase(base string, reps []models.User, batches int, bar *bar) (teamResult, error) {
	var res teamResult
	devs := make([]*device, len(reps))
	bodies := make([][][]byte, len(reps))
	for i := range devs {
		devs[i] = &device{user: reps[i]}
		if err := w.login(base, devs[i]); err != nil {
			return res, err
		}
		for range batches {
			bodies[i] = append(bodies[i], w.visitBatch(devs[i], teamBatchMin+rand.IntN(teamBatchMax-teamBatchMin+1)))
		}
	}
	reader := &device{user: w.admin.user}
	if err := w.login(base, reader); err != nil {
		return res, err
	}
	var (
		mu                 sync.Mutex
		push, me, pull, rd []time.Duration
		pushFailed         int
		wg                 sync.WaitGroup
		stop               atomic.Bool
	)
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, body := range bodies[i] {
				t0 := time.Now()
				err := w.call(base, http.MethodPost, "/v1/sync/push", d.token, body, nil)
				mu.Lock()
				push = append(push, time.Since(t0))
				if err != nil {
					pushFailed++
				}
				mu.Unlock()
				bar.step()
			}
		}()
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		timed := func(path, token string, into *[]time.Duration, failed *int) {
			t0 := time.Now()
			err := w.call(base, http.MethodGet, path, token, nil, nil)
			took := time.Since(t0)
			mu.Lock()
			*into = append(*into, took)
			if err != nil {
				*failed++
			}
			mu.Unlock()
		}
		for !stop.Load() {
			timed("/v1/me", reader.token, &me, &res.ReadFailures)
			timed("/v1/sync/pull?limit=100", reader.token, &pull, &res.ReadFailures)
			timed("/readyz", "", &rd, &res.ReadyRed)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	wg.Wait()
	stop.Store(true)
	<-readerDone
	res.Pushes, res.PushFailures = len(push), pushFailed
	res.PushP50, res.PushP99 = percentile(push, 50), percentile(push, 99)
	res.MeP50, res.MeP99 = percentile(me, 50), percentile(me, 99)
	res.PullP50, res.PullP99 = percentile(pull, 50), percentile(pull, 99)
	res.ReadyP50, res.ReadyP99 = percentile(rd, 50), percentile(rd, 99)
	res.Reads, res.Probes = len(me)+len(pull), len(rd)
	return res, nil
}

// reportTeam writes the team phase's lines of the summary.
func reportTeam(out io.Writer, cfg Config, r teamResult) {
	d := func(a, b time.Duration) string {
		return a.Round(time.Millisecond).String() + " / " + b.Round(time.Millisecond).String()
	}
	fmt.Fprintf(out, "\nteam: %d devices × %d pushes of %d–%d visits at once, a reader alongside\n", cfg.TeamDevices, cfg.TeamBatches, teamBatchMin, teamBatchMax)
	fmt.Fprintf(out, "%-42s %14s   (%d pushes, %d failed)\n", "team push p50 / p99", d(r.PushP50, r.PushP99), r.Pushes, r.PushFailures)
	fmt.Fprintf(out, "%-42s %14s\n", "GET /v1/me p50 / p99 during pushes", d(r.MeP50, r.MeP99))
	fmt.Fprintf(out, "%-42s %14s   (%d reads, %d failed)\n", "pull of 100 p50 / p99 during pushes", d(r.PullP50, r.PullP99), r.Reads, r.ReadFailures)
	fmt.Fprintf(out, "%-42s %14s   (%d probes, %d not ready)\n", "/readyz p50 / p99 during pushes", d(r.ReadyP50, r.ReadyP99), r.Probes, r.ReadyRed)
}
