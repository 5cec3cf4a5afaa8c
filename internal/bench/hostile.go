package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// Hostile phase: the latency phase's paced devices but one (199 of 200)
// push 10 visits every --latency-every, --hostile-pushes times (10), in
// four runs:
// alone, twice while one more device, its own rep's, pushes batches of
// --batch-size visits back to back as fast as the server lets it (on a
// 429 it waits Retry-After and sends the same batch again, as a phone
// does), and alone again. The figure is the paced devices' p99 with the
// hostile device over their p99 alone, each over its two runs: with 200
// paced devices the server is near its capacity and a p99 swings from
// run to run, and the order alone, with, with, alone cancels a drift of
// the machine's load over the phase. A run before them, unmeasured, lets
// the database settle after the saturation phase. Target: within
// hostileTarget.
//
// The paced devices with the hostile one are measured from the hostile
// device's first 429 (its burst spent, the steady state of a device that
// never stops), or after hostileHeadStart paced intervals when none came:
// a burst is the allowance of a phone back from weeks offline, spent
// once, and its cost is the long-offline guarantee's, not this one's.
const (
	// DefaultHostilePushes is how many times each paced device pushes in
	// each run, unless Config.HostilePushes says otherwise.
	DefaultHostilePushes = 10
	hostileTarget        = 1.25
	hostileHeadStart     = 10 // paced intervals at most before the measure starts
	// hostileMaxBatches bounds what the hostile device pushes in a run,
	// so its calls, a minute apart, all lie in the past.
	hostileMaxBatches = 2000
)

// hostileResult holds the figures of the hostile phase.
type hostileResult struct {
	Paced              int           // paced devices
	PushesPerRun       int           // pushes of each paced device in a run
	Size               int           // visits a hostile push
	AloneP50, AloneP99 time.Duration // over both runs alone
	WithP50, WithP99   time.Duration // over both runs with the hostile device
	// RunP99s are each run's p99, in order: alone, with, with, alone;
	// the two alone show how far p99 swings without the hostile device.
	RunP99s [4]time.Duration
	// The hostile device in the measured window: pushes accepted, 429s,
	// other failures (503s), and the window's length.
	Pushes, Refused, Failed int
	Window                  time.Duration
	// Head start: mutations the hostile device pushed before the window
	// opened, over how long, and whether a 429 (rather than the
	// head-start bound) opened it.
	BurstMutations int
	BurstTook      time.Duration
	BurstEnded     bool
	// Capped is set when the hostile device pushed hostileMaxBatches.
	Capped bool
}

// Ratio is the paced devices' p99 with the hostile device over alone.
func (r hostileResult) Ratio() float64 {
	if r.AloneP99 <= 0 {
		return 0
	}
	return float64(r.WithP99) / float64(r.AloneP99)
}

// hostileDevice pushes back to back until stopped; its counters are read
// while it runs.
type hostileDevice struct {
	w      *world
	base   string
	d      *device
	size   int
	first  time.Time // its first call's start
	pushed atomic.Int64
	muts   atomic.Int64
	// refused and failed count 429s and other retried answers (503).
	refused, failed atomic.Int64
	limited         chan struct{} // closed at the first 429
	limitedOnce     sync.Once
	capped          atomic.Bool
}

func (w *world) hostilePhase(base string, paced []models.User, hostile models.User, pushes, size int, every time.Duration, bar *bar) (hostileResult, error) {
	res := hostileResult{Paced: len(paced), Size: size, PushesPerRun: pushes}
	// A first run, unmeasured: right after the saturation phase the
	// database is still digesting its writes (the first run alone had a
	// p99 ten times the last's), which no hostile device caused.
	if _, _, err := w.pushPhase(base, paced, pushes, 10, every, bar); err != nil {
		return res, fmt.Errorf("paced devices warming up: %w", err)
	}
	alone, _, err := w.pushPhase(base, paced, pushes, 10, every, bar)
	if err != nil {
		return res, fmt.Errorf("paced devices alone: %w", err)
	}
	res.RunP99s[0] = percentile(alone, 99)

	h := &hostileDevice{w: w, base: base, d: &device{user: hostile}, size: size, limited: make(chan struct{}),
		first: w.start.Add(-time.Duration(hostileMaxBatches*size+1) * time.Minute)}
	if err := w.login(base, h.d); err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- h.run(ctx) }()
	select {
	case <-h.limited:
		res.BurstEnded = true
	case <-time.After(hostileHeadStart * every):
	case err := <-done:
		return res, fmt.Errorf("hostile device: %w", err)
	}
	res.BurstMutations, res.BurstTook = int(h.muts.Load()), time.Since(started)
	pushed0, refused0, failed0 := h.pushed.Load(), h.refused.Load(), h.failed.Load()
	t0 := time.Now()
	var with []time.Duration
	for i := range 2 {
		var lat []time.Duration
		if lat, _, err = w.pushPhase(base, paced, pushes, 10, every, bar); err != nil {
			break
		}
		res.RunP99s[1+i] = percentile(lat, 99)
		with = append(with, lat...)
	}
	res.Window = time.Since(t0)
	res.Pushes, res.Refused, res.Failed = int(h.pushed.Load()-pushed0), int(h.refused.Load()-refused0), int(h.failed.Load()-failed0)
	cancel()
	if herr := <-done; herr != nil && err == nil {
		err = fmt.Errorf("hostile device: %w", herr)
	}
	if err != nil {
		return res, fmt.Errorf("paced devices with a hostile one: %w", err)
	}
	res.Capped = h.capped.Load()
	lat, _, err := w.pushPhase(base, paced, pushes, 10, every, bar)
	if err != nil {
		return res, fmt.Errorf("paced devices alone again: %w", err)
	}
	res.RunP99s[3] = percentile(lat, 99)
	alone = append(alone, lat...)
	res.AloneP50, res.AloneP99 = percentile(alone, 50), percentile(alone, 99)
	res.WithP50, res.WithP99 = percentile(with, 50), percentile(with, 99)
	return res, nil
}

// run pushes batch after batch until ctx ends, each batch again after
// Retry-After for as long as it is refused with 429 or 503. It returns
// nil when stopped, or the first other failure.
func (h *hostileDevice) run(ctx context.Context) error {
	for k := 0; k < hostileMaxBatches; k++ {
		body := h.batch(k)
		for {
			status, retry, err := h.push(ctx, body)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			if status == http.StatusOK {
				h.pushed.Add(1)
				h.muts.Add(int64(h.size))
				break
			}
			if status == http.StatusTooManyRequests {
				h.refused.Add(1)
				h.limitedOnce.Do(func() { close(h.limited) })
			} else {
				h.failed.Add(1)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retry):
			}
		}
	}
	h.capped.Store(true)
	<-ctx.Done()
	return nil
}

// push sends one batch and returns its status and, for 429 and 503, the
// wait its Retry-After asks for (1 s when it names none); any other
// status but 200 is an error.
func (h *hostileDevice) push(ctx context.Context, body []byte) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/v1/sync/push", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+h.d.token)
	res, err := h.w.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, 0, err
	}
	switch res.StatusCode {
	case http.StatusOK:
		return res.StatusCode, 0, nil
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		retry := time.Second
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s >= 0 {
			retry = time.Duration(s) * time.Second
		}
		return res.StatusCode, retry, nil
	}
	if len(b) > 300 {
		b = b[:300]
	}
	return res.StatusCode, 0, fmt.Errorf("POST /v1/sync/push: %d %s", res.StatusCode, b)
}

// batch builds the hostile device's k-th push: size new completed calls
// a minute apart, each batch after the one before, all before the run
// began. The device keeps its own clock of calls, apart from the world's
// (whose map the paced devices' batches use meanwhile).
func (h *hostileDevice) batch(k int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"schema_version":1,"mutations":[`)
	now := time.Now().UTC()
	for i := 0; i < h.size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		h.d.seq++
		start := h.first.Add(time.Duration(k*h.size+i) * time.Minute)
		outcome := `"outcome":"order","order_value":` + strconv.Itoa(100+i) + `.50`
		switch h.d.seq % 3 {
		case 1:
			outcome = `"outcome":"no_answer"`
		case 2:
			outcome = `"outcome":"meeting"`
		}
		fmt.Fprintf(&b, `{"seq":%d,"entity":"visits","id":"%s","op":"upsert","hlc":{"ms":%d,"counter":%d},"fields":{"account_id":"%s",%s,"started_at":"%s","ended_at":"%s","check_in_lat":44.97,"check_in_lng":-93.26,"check_in_accuracy_m":12,"notes":"Hostile visit %d"}}`,
			h.d.seq, uuid.NewString(), now.UnixMilli(), i, h.w.account, outcome, start.Format(time.RFC3339), start.Add(30*time.Second).Format(time.RFC3339), h.d.seq)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// reportHostile writes the hostile phase's lines of the summary.
func reportHostile(out io.Writer, cfg Config, r hostileResult) {
	d := func(a, b time.Duration) string {
		return a.Round(time.Millisecond).String() + " / " + b.Round(time.Millisecond).String()
	}
	fmt.Fprintf(out, "\nhostile: %d paced devices × %d pushes of 10, each every %s: alone, twice beside 1 device pushing %d visits back to back, alone\n",
		r.Paced, r.PushesPerRun, cfg.LatencyEvery, r.Size)
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	fmt.Fprintf(out, "%-42s %14s   (p99 of each run: %s, %s)\n", "paced p50 / p99, alone", d(r.AloneP50, r.AloneP99), ms(r.RunP99s[0]), ms(r.RunP99s[3]))
	fmt.Fprintf(out, "%-42s %14s   (p99 %.2f× alone; target ≤ %.2f×; each run: %s, %s)\n", "paced p50 / p99, with the hostile device", d(r.WithP50, r.WithP99),
		r.Ratio(), hostileTarget, ms(r.RunP99s[1]), ms(r.RunP99s[2]))
	secs := r.Window.Seconds()
	capped := ""
	if r.Capped {
		capped = fmt.Sprintf("; stopped at %d batches", hostileMaxBatches)
	}
	fmt.Fprintf(out, "%-42s %14.1f   (%.0f mutations/s; %d × 429, %d × 503 in %.1f s%s)\n", "hostile device pushes/s", float64(r.Pushes)/secs,
		float64(r.Pushes*r.Size)/secs, r.Refused, r.Failed, secs, capped)
	opened := fmt.Sprintf("no 429 within %d paced intervals", hostileHeadStart)
	if r.BurstEnded {
		opened = "its first 429"
	}
	fmt.Fprintf(out, "%-42s %14d   (in %.1f s before %s, not measured)\n", "hostile head start, mutations", r.BurstMutations, r.BurstTook.Seconds(), opened)
}
