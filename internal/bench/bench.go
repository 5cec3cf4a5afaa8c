// Package bench measures fieldsync's sync engine end to end — HTTP, JSON,
// the engine and the database — against the raw ceiling of the same
// database: hand-written multi-row upserts and keyset reads of the same
// rows, in the same run, so the figures compare on a noisy machine. It is
// the code of `fieldsync bench`; the server never imports it.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Config sets the size of a run and the server it measures.
type Config struct {
	DatabaseURL string
	// Server builds the HTTP handler under test on the run's database: the
	// command wires the real API, so this package needs no import of it.
	// The handler must accept the logins of users Run creates (any bcrypt
	// cost) without a login rate limit getting in the way.
	Server      func(db *store.DB) (http.Handler, error)
	Devices     int // concurrent devices in the throughput phase
	Batches     int // batches each device pushes
	Rounds      int // throughput rounds, each with its raw ceiling
	BatchSize   int // mutations per batch
	PullLimit   int // page size of pulls
	LatencyDevs int // concurrent devices in the latency phase
	// LatencyEvery is how often each device of the latency phase pushes,
	// on its own schedule; latency counts from when a push was due.
	LatencyEvery time.Duration
	Incremental  []int // table sizes for the incremental-pull phase
	MaxConns     int   // the server's PostgreSQL pool; 0 is the store's default
	History      int   // visits the organisation holds before the run
	// TeamDevices push TeamBatches batches of 200–1,000 visits each, all
	// at once, while a reader measures GET /v1/me, pulls and /readyz; 0
	// skips the phase.
	TeamDevices, TeamBatches int
	// SameMinute adds the same-minute phase: one device pushes 20
	// batches of BatchSize calls all stamped with the same minute.
	SameMinute bool
	// Hostile adds the hostile phase after the latency phase: all the
	// latency phase's devices but one, paced, alone and then while one
	// more device pushes batches of BatchSize back to back (hostile.go).
	// It needs LatencyDevs of at least 2.
	Hostile bool
	// HostileServer builds the handler the hostile phase measures: the
	// server with the push admission it is deployed with (a per-user
	// budget of mutations). The other phases push back to back on
	// purpose, to measure capacity, and run on Server. Nil uses Server.
	HostileServer func(db *store.DB) (http.Handler, error)
	// HostilePushes is how many times each paced device of the hostile
	// phase pushes in each of its runs (hostileRuns); 0 means
	// DefaultHostilePushes (10).
	HostilePushes int
}

// round is one round of the throughput phase.
type round struct {
	push, pull, rawUpsert, rawRead float64
	sameSent, sameMade             float64 // a push's own writes alone (samewrites.go); PostgreSQL only
	p50, p99                       time.Duration
}

// Result holds the figures of a run.
type Result struct {
	PushRate, PullRate         float64 // mutations/s, records/s through the API (median round)
	RawUpsertRate, RawReadRate float64 // rows/s, hand-written SQL, in the same rounds
	PushRatioMin, PushRatioMax float64 // push / raw upsert over the rounds
	// SameSentRate and SameMadeRate are the database taking a push's
	// writes alone (SameWrites), rows sent and rows made in the database,
	// rows/s in the median push round; PostgreSQL only.
	SameSentRate, SameMadeRate float64
	PullRatioMin, PullRatioMax float64 // pull / raw read over the rounds
	PushP50, PushP99           time.Duration
	// Growth is how the throughput phase's pushes slowed over each
	// device's batches (see growthResult).
	Growth                     growthResult
	LatencyP50, LatencyP99     time.Duration         // paced devices, from when each push was due
	LatencyRate                float64               // pushes/s the paced devices achieved
	SaturatedP50, SaturatedP99 time.Duration         // the same devices pushing back to back
	SaturatedRate              float64               // pushes/s back to back
	Incremental                map[int]time.Duration // table size → one incremental pull of 100 changes
	PeakRSSBytes               int64
	Dialect                    store.Dialect
	Rows                       int
	Team                       teamResult       // the team phase, when it ran
	SameMinute                 sameMinuteResult // the same-minute phase, when it ran
	Hostile                    hostileResult    // the hostile phase, when it ran
}

const benchPassword = "bench-password-1234"

// Run performs a benchmark and writes progress to progress and a summary
// table to out.
func Run(ctx context.Context, cfg Config, out, progress io.Writer) (Result, error) {
	var res Result
	if cfg.Server == nil {
		return res, errors.New("bench: no server to measure (Config.Server is nil)")
	}
	if cfg.Hostile && cfg.LatencyDevs < 2 {
		return res, errors.New("bench: the hostile phase needs at least 2 latency devices")
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{MaxOpenConns: cfg.MaxConns})
	if err != nil {
		return res, err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return res, err
	}
	res.Dialect = db.Dialect()
	if cfg.HostilePushes <= 0 {
		cfg.HostilePushes = DefaultHostilePushes
	}
	w := newWorld(ctx, db)
	// Reps of their own, after all the others: the hostile device's,
	// then the same-minute device's.
	extra, hostileRep := 0, cfg.Devices+cfg.LatencyDevs+cfg.TeamDevices
	if cfg.Hostile {
		extra++
	}
	if cfg.SameMinute {
		extra++
	}
	if err := w.setup(cfg.Devices + cfg.LatencyDevs + cfg.TeamDevices + extra); err != nil {
		return res, err
	}
	// What each rep pushes in the run, so its calls end just before now:
	// the throughput reps every round (the first also the incremental
	// phase's), the latency reps 16 small pushes.
	for i, u := range w.reps {
		switch {
		case i >= cfg.Devices+cfg.LatencyDevs:
			w.budget[u.ID] = int64(cfg.TeamBatches * teamBatchMax)
		case i >= cfg.Devices && cfg.Hostile:
			w.budget[u.ID] = int64(16+hostileRuns*cfg.HostilePushes) * 10
		case i >= cfg.Devices:
			w.budget[u.ID] = 16 * 10
		case i == 0:
			w.budget[u.ID] = int64(cfg.Rounds*cfg.Batches*cfg.BatchSize + 5*100*len(cfg.Incremental))
		default:
			w.budget[u.ID] = int64(cfg.Rounds * cfg.Batches * cfg.BatchSize)
		}
	}
	// The organisation starts with a history, analysed as autovacuum
	// keeps a live database: a run on fresh tables would otherwise
	// measure plans the server prepared while they were empty.
	bar := newBar(progress, "history", 1)
	if err := w.fill(cfg.History, bar); err != nil {
		return res, err
	}
	bar.done()
	base, stop, err := w.serve(cfg.Server)
	if err != nil {
		return res, err
	}
	defer stop()

	// Throughput, in rounds: each pushes new visits, pulls everything back
	// and measures the raw ceiling right after, so each round's ratios
	// compare figures taken moments apart. The median round is reported
	// with the spread, since these machines are noisy.
	res.Rows = cfg.Devices * cfg.Batches * cfg.BatchSize
	var (
		rounds  []round
		growths []float64 // each device's growth over its batches, every round
	)
	for i := 0; i < cfg.Rounds; i++ {
		label := func(s string) string { return fmt.Sprintf("%s %d/%d", s, i+1, cfg.Rounds) }
		var r round
		bar := newBar(progress, label("push"), cfg.Devices*cfg.Batches)
		perDev, dur, err := w.pushPhaseByDevice(base, w.reps[:cfg.Devices], cfg.Batches, cfg.BatchSize, 0, bar)
		bar.done()
		if err != nil {
			return res, err
		}
		var lat []time.Duration
		for _, l := range perDev {
			lat = append(lat, l...)
			if g, ok := growth(l); ok {
				growths = append(growths, g)
			}
		}
		r.push = float64(res.Rows) / dur.Seconds()
		r.p50, r.p99 = percentile(lat, 50), percentile(lat, 99)

		// The admin pulls everything from the beginning.
		bar = newBar(progress, label("pull"), ((i+1)*res.Rows+cfg.History)/cfg.PullLimit+1)
		n, dur, err := w.pullAll(base, w.admin, "", cfg.PullLimit, bar)
		bar.done()
		if err != nil {
			return res, err
		}
		r.pull = float64(n) / dur.Seconds()

		bar = newBar(progress, label("raw"), 2)
		r.rawUpsert, r.rawRead, err = w.raw(res.Rows, cfg.PullLimit)
		bar.step()
		if err == nil && w.db.Dialect() == store.Postgres {
			r.sameSent, err = w.sameWrites(cfg.Devices, cfg.Batches, cfg.BatchSize, sentRows)
			if err == nil {
				r.sameMade, err = w.sameWrites(cfg.Devices, cfg.Batches, cfg.BatchSize, madeInDatabase)
			}
		}
		bar.done()
		if err != nil {
			return res, err
		}
		rounds = append(rounds, r)
	}
	res.Growth = summarizeGrowth(growths)
	sort.Slice(rounds, func(i, j int) bool { return rounds[i].push/rounds[i].rawUpsert < rounds[j].push/rounds[j].rawUpsert })
	mid := rounds[len(rounds)/2]
	res.PushRate, res.RawUpsertRate, res.PushP50, res.PushP99 = mid.push, mid.rawUpsert, mid.p50, mid.p99
	res.SameSentRate, res.SameMadeRate = mid.sameSent, mid.sameMade
	res.PushRatioMin, res.PushRatioMax = rounds[0].push/rounds[0].rawUpsert, rounds[len(rounds)-1].push/rounds[len(rounds)-1].rawUpsert
	sort.Slice(rounds, func(i, j int) bool { return rounds[i].pull/rounds[i].rawRead < rounds[j].pull/rounds[j].rawRead })
	mid = rounds[len(rounds)/2]
	res.PullRate, res.RawReadRate = mid.pull, mid.rawRead
	res.PullRatioMin, res.PullRatioMax = rounds[0].pull/rounds[0].rawRead, rounds[len(rounds)-1].pull/rounds[len(rounds)-1].rawRead

	// Latency under many devices (other reps than the throughput phase's,
	// whose histories would make every push's domain reads larger). First
	// paced, as phones syncing as they log calls; then back to back, which
	// measures throughput: there a push waits for the pushes queued ahead
	// of it, about devices / (pushes per second).
	if cfg.LatencyDevs > 0 {
		latencyReps := w.reps[cfg.Devices : cfg.Devices+cfg.LatencyDevs]
		// Each rep's first push, unmeasured: the figures are those of
		// reps who have synced before, on a pool the server has warmed,
		// not of 200 first-ever calls and fresh connections at once.
		bar := newBar(progress, "warm-up", cfg.LatencyDevs)
		if _, _, err := w.pushPhase(base, latencyReps, 1, 10, 0, bar); err != nil {
			return res, err
		}
		bar.done()
		const latencyRounds = 10
		bar = newBar(progress, "latency", cfg.LatencyDevs*latencyRounds)
		lat, dur, err := w.pushPhase(base, latencyReps, latencyRounds, 10, cfg.LatencyEvery, bar)
		bar.done()
		if err != nil {
			return res, err
		}
		res.LatencyP50, res.LatencyP99 = percentile(lat, 50), percentile(lat, 99)
		res.LatencyRate = float64(len(lat)) / dur.Seconds()
		bar = newBar(progress, "saturation", cfg.LatencyDevs*5)
		lat, dur, err = w.pushPhase(base, latencyReps, 5, 10, 0, bar)
		bar.done()
		if err != nil {
			return res, err
		}
		res.SaturatedP50, res.SaturatedP99 = percentile(lat, 50), percentile(lat, 99)
		res.SaturatedRate = float64(len(lat)) / dur.Seconds()

		if cfg.Hostile {
			hbase := base
			if cfg.HostileServer != nil {
				var hstop func()
				if hbase, hstop, err = w.serve(cfg.HostileServer); err != nil {
					return res, err
				}
				defer hstop()
			}
			bar = newBar(progress, "hostile", hostileRuns*(cfg.LatencyDevs-1)*cfg.HostilePushes)
			res.Hostile, err = w.hostilePhase(hbase, latencyReps[:cfg.LatencyDevs-1], w.reps[hostileRep], cfg.HostilePushes, cfg.BatchSize, cfg.LatencyEvery, bar)
			bar.done()
			if err != nil {
				return res, err
			}
		}
	}

	if cfg.TeamDevices > 0 {
		bar := newBar(progress, "team", cfg.TeamDevices*cfg.TeamBatches)
		res.Team, err = w.teamPhase(base, w.reps[cfg.Devices+cfg.LatencyDevs:cfg.Devices+cfg.LatencyDevs+cfg.TeamDevices], cfg.TeamBatches, bar)
		bar.done()
		if err != nil {
			return res, err
		}
	}

	if cfg.SameMinute {
		bar := newBar(progress, "same minute", sameMinuteBatches)
		res.SameMinute, err = w.sameMinutePhase(base, w.reps[len(w.reps)-1], cfg.BatchSize, bar)
		bar.done()
		if err != nil {
			return res, err
		}
	}

	// Incremental pulls against growing tables.
	res.Incremental = map[int]time.Duration{}
	for _, size := range cfg.Incremental {
		bar := newBar(progress, fmt.Sprintf("fill %d", size), 1)
		if err := w.fill(size, bar); err != nil {
			return res, err
		}
		bar.done()
		d, err := w.incremental(base)
		if err != nil {
			return res, err
		}
		res.Incremental[size] = d
	}
	res.PeakRSSBytes = peakRSS()
	report(out, cfg, res)
	return res, nil
}

type device struct {
	token string
	seq   int64
	user  models.User
}

type world struct {
	ctx     context.Context
	db      *store.DB
	org     models.Org
	team    models.Team
	account uuid.UUID
	reps    []models.User
	admin   *device
	client  *http.Client
	filled  int                 // visits of the filler rep
	calls   map[uuid.UUID]int64 // calls pushed so far, by rep
	budget  map[uuid.UUID]int64 // calls a rep pushes in the whole run
	start   time.Time
	filler  models.User
}

func newWorld(ctx context.Context, db *store.DB) *world {
	return &world{ctx: ctx, db: db, start: time.Now().UTC(), calls: map[uuid.UUID]int64{}, budget: map[uuid.UUID]int64{}, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512}, Timeout: 2 * time.Minute}}
}

// setup creates a fresh organisation for this run, so runs never mix.
func (w *world) setup(reps int) error {
	ctx := w.ctx
	hash, err := bcrypt.GenerateFromPassword([]byte(benchPassword), bcrypt.MinCost)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	tag := strconv.FormatInt(now.UnixNano(), 36)
	w.org = models.Org{ID: uuid.New(), Name: "bench " + tag, CreatedAt: now}
	mk := func(i int, role models.Role, team *uuid.UUID) models.User {
		return models.User{OrgID: w.org.ID, ID: uuid.New(), Email: fmt.Sprintf("%s-%d@bench.test", tag, i), Name: fmt.Sprintf("Bench %d", i),
			Role: role, TeamID: team, Active: true, TimeZone: "UTC", PasswordHash: string(hash), CreatedAt: now, UpdatedAt: now}
	}
	admin := mk(0, models.RoleAdmin, nil)
	if err := w.db.People().CreateOrg(ctx, w.org, admin); err != nil {
		return err
	}
	w.team = models.Team{OrgID: w.org.ID, ID: uuid.New(), Name: "Bench", CreatedAt: now}
	if err := w.db.People().CreateTeam(ctx, w.team); err != nil {
		return err
	}
	for i := 1; i <= reps+1; i++ {
		u := mk(i, models.RoleRep, &w.team.ID)
		if err := w.db.People().CreateUser(ctx, u); err != nil {
			return err
		}
		w.reps = append(w.reps, u)
	}
	w.filler, w.reps = w.reps[reps], w.reps[:reps]
	lat, lng := 44.97, -93.26
	w.account = uuid.New()
	acc := &engine.Record{ID: w.account, CreatedAt: now, UpdatedAt: now, Clocks: map[string]engine.FieldClock{},
		Values: map[string]any{"name": "Bench Hardware", "name_key": "bench hardware", "status": "customer", "team_id": w.team.ID, "lat": lat, "lng": lng}}
	if err := w.db.Feed().SeedRecords(ctx, w.org.ID, sales.Accounts(), []*engine.Record{acc}); err != nil {
		return err
	}
	w.admin = &device{user: admin}
	return nil
}

// serve runs the server under test on a loopback port.
func (w *world) serve(server func(*store.DB) (http.Handler, error)) (string, func(), error) {
	h, err := server(w.db)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	if err := w.login(base, w.admin); err != nil {
		return "", nil, err
	}
	return base, func() { _ = hs.Close() }, nil
}

func (w *world) login(base string, d *device) error {
	body, _ := json.Marshal(map[string]string{"email": d.user.Email, "password": benchPassword, "device_id": uuid.NewString()})
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := w.call(base, http.MethodPost, "/v1/auth/login", "", body, &tr); err != nil {
		return fmt.Errorf("login %s: %w", d.user.Email, err)
	}
	d.token = tr.AccessToken
	return nil
}

func (w *world) call(base, method, path, token string, body []byte, out any) error {
	return call(w.ctx, w.client, base, method, path, token, body, out)
}

// call sends a JSON request and decodes the answer into out (when not
// nil); any answer but 2xx is an error quoting the start of its body.
func call(ctx context.Context, client *http.Client, base, method, path, token string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		if len(b) > 300 {
			b = b[:300]
		}
		return fmt.Errorf("%s %s: %d %s", method, strings.SplitN(path, "?", 2)[0], res.StatusCode, b)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// visitBatch builds a push of n new completed unscheduled visits.
func (w *world) visitBatch(d *device, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"schema_version":1,"mutations":[`)
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		d.seq++
		// A rep's calls an hour apart, each batch more recent than the
		// one before and the last an hour before the run began, as a
		// phone syncing its day would push them — on whichever of the
		// rep's devices, so a rep never has two calls at once, and every
		// round's pushes meet the same history.
		w.calls[d.user.ID]++
		start := w.start.Add(-time.Duration(w.budget[d.user.ID]-w.calls[d.user.ID]+1) * time.Hour)
		// One call in three takes an order, so streaks are looked for.
		outcome := `"outcome":"order","order_value":` + strconv.Itoa(100+i) + `.50`
		switch w.calls[d.user.ID] % 3 {
		case 1:
			outcome = `"outcome":"no_answer"`
		case 2:
			outcome = `"outcome":"meeting"`
		}
		fmt.Fprintf(&b, `{"seq":%d,"entity":"visits","id":"%s","op":"upsert","hlc":{"ms":%d,"counter":%d},"fields":{"account_id":"%s",%s,"started_at":"%s","ended_at":"%s","check_in_lat":44.97,"check_in_lng":-93.26,"check_in_accuracy_m":12,"notes":"Bench visit %d"}}`,
			d.seq, uuid.NewString(), now.UnixMilli(), i, w.account, outcome, start.Format(time.RFC3339), start.Add(30*time.Minute).Format(time.RFC3339), d.seq)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// pushPhase has a device per rep push batches of size visits, back to back
// when every is 0, else each on its own schedule of one push per every,
// starting at a random phase. A push's latency counts from when it was
// due, so a server that falls behind is charged for the wait.
func (w *world) pushPhase(base string, reps []models.User, batches, size int, every time.Duration, bar *bar) ([]time.Duration, time.Duration, error) {
	perDev, dur, err := w.pushPhaseByDevice(base, reps, batches, size, every, bar)
	var lats []time.Duration
	for _, l := range perDev {
		lats = append(lats, l...)
	}
	return lats, dur, err
}

// pushPhaseByDevice is pushPhase with each device's latencies apart, in
// the order of its batches.
func (w *world) pushPhaseByDevice(base string, reps []models.User, batches, size int, every time.Duration, bar *bar) ([][]time.Duration, time.Duration, error) {
	devices := len(reps)
	devs := make([]*device, devices)
	for i := range devs {
		devs[i] = &device{user: reps[i]}
		if err := w.login(base, devs[i]); err != nil {
			return nil, 0, err
		}
	}
	// Bodies are built before the clock starts: the figure is the server's.
	bodies := make([][][]byte, devices)
	for i, d := range devs {
		for j := 0; j < batches; j++ {
			bodies[i] = append(bodies[i], w.visitBatch(d, size))
		}
	}
	var (
		mu    sync.Mutex
		lats  = make([][]time.Duration, devices)
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var phase time.Duration
			if every > 0 {
				phase = time.Duration(rand.Int64N(int64(every)))
			}
			for j, body := range bodies[i] {
				t0 := time.Now()
				if every > 0 {
					t0 = start.Add(phase + time.Duration(j)*every)
					time.Sleep(time.Until(t0))
				}
				var pr struct {
					Results []struct{ Status string } `json:"results"`
				}
				err := w.call(base, http.MethodPost, "/v1/sync/push", d.token, body, &pr)
				took := time.Since(t0)
				if err == nil {
					for _, r := range pr.Results {
						if r.Status != engine.StatusApplied {
							err = fmt.Errorf("a bench mutation was %s", r.Status)
							break
						}
					}
				}
				mu.Lock()
				lats[i] = append(lats[i], took)
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
				bar.step()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return lats, time.Since(start), first
}

// pullAll pulls from cursor to the end and returns the records seen.
func (w *world) pullAll(base string, d *device, cursor string, limit int, bar *bar) (int, time.Duration, error) {
	n := 0
	start := time.Now()
	var body []byte
	for {
		path := fmt.Sprintf("/v1/sync/pull?limit=%d&cursor=%s", limit, cursor)
		if err := w.call(base, http.MethodGet, path, d.token, nil, &body); err != nil {
			return n, 0, err
		}
		pr, err := readPull(body)
		if err != nil {
			return n, 0, err
		}
		n += pr.changes
		cursor = pr.Cursor
		if bar != nil {
			bar.step()
		}
		if !pr.HasMore {
			return n, time.Since(start), nil
		}
	}
}

// RawCeiling says how raw measures, for the report.
const RawCeiling = "raw ceiling: multi-row INSERT … ON CONFLICT of 500 rows on one connection into a table keyed (org_id, id) " +
	"with an index on (org_id, version); then, after ANALYZE, keyset pages (version > last ORDER BY version LIMIT page, " +
	"an index range) on one connection, scanned and JSON-encoded"

// raw measures the database's own ceiling on rows like the pushed visits
// (RawCeiling): the best the database and Go do on the same rows, so the
// ratios are honest.
func (w *world) raw(rows, page int) (float64, float64, error) {
	var upsert, read float64
	err := w.db.Gorm().WithContext(w.ctx).Connection(func(g *gorm.DB) error {
		var err error
		upsert, read, err = w.rawOn(g, rows, page)
		return err
	})
	return upsert, read, err
}

func (w *world) rawOn(g *gorm.DB, rows, page int) (float64, float64, error) {
	cols := []string{"org_id", "id", "account_id", "kind", "status", "started_at", "ended_at", "check_in_lat", "check_in_lng", "check_in_accuracy_m", "outcome", "order_value", "referrals", "notes", "rep_id", "team_id", "version", "updated_at"}
	table := "bench_raw_visits"
	_ = g.Exec("DROP TABLE IF EXISTS " + table).Error
	ddl := `CREATE TABLE ` + table + ` (org_id uuid, id uuid, account_id uuid, kind text, status text, started_at timestamptz, ended_at timestamptz,
		check_in_lat double precision, check_in_lng double precision, check_in_accuracy_m double precision, outcome text, order_value bigint,
		referrals bigint, notes text, rep_id uuid, team_id uuid, version bigint, updated_at timestamptz, PRIMARY KEY (org_id, id))`
	if w.db.Dialect() == store.SQLite {
		ddl = strings.NewReplacer("uuid", "TEXT", "timestamptz", "DATETIME", "double precision", "REAL", "bigint", "INTEGER").Replace(ddl)
	}
	if err := g.Exec(ddl).Error; err != nil {
		return 0, 0, fmt.Errorf("raw table: %w", err)
	}
	defer g.Exec("DROP TABLE IF EXISTS " + table)
	if err := g.Exec("CREATE INDEX " + table + "_version ON " + table + " (org_id, version)").Error; err != nil {
		return 0, 0, fmt.Errorf("raw index: %w", err)
	}
	now := time.Now().UTC()
	// Placeholders numbered as PostgreSQL takes them, and ids as text:
	// through GORM, and with uuid.UUID's driver.Valuer (which pgx tries
	// several encodings of before taking its value), Go spent more on a
	// batch than the database did, and the ceiling was too low.
	pg := w.db.Dialect() == store.Postgres
	orgID, accountID, repID, teamID := w.org.ID.String(), w.account.String(), w.reps[0].ID.String(), w.team.ID.String()
	var upd []string
	for _, c := range cols[2:] {
		upd = append(upd, c+" = excluded."+c)
	}
	start := time.Now()
	for done := 0; done < rows; done += 500 {
		n := min(500, rows-done)
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
		args := make([]any, 0, n*len(cols))
		for i := 0; i < n; i++ {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteByte('(')
			for c := range cols {
				if c > 0 {
					sb.WriteString(", ")
				}
				if pg {
					sb.WriteString("$" + strconv.Itoa(len(args)+c+1))
				} else {
					sb.WriteByte('?')
				}
			}
			sb.WriteByte(')')
			args = append(args, orgID, uuid.NewString(), accountID, "unscheduled", "completed", now, now, 44.97, -93.26, 12.0, "order", int64(10050), int64(0), "Bench visit", repID, teamID, int64(done+i), now)
		}
		sb.WriteString(" ON CONFLICT (org_id, id) DO UPDATE SET " + strings.Join(upd, ", "))
		if _, err := g.Statement.ConnPool.ExecContext(w.ctx, sb.String(), args...); err != nil {
			return 0, 0, fmt.Errorf("raw upsert: %w", err)
		}
	}
	upsert := float64(rows) / time.Since(start).Seconds()
	if err := g.Exec("ANALYZE " + table).Error; err != nil {
		return 0, 0, fmt.Errorf("raw analyze: %w", err)
	}

	type rawVisit struct {
		ID            uuid.UUID `json:"id"`
		AccountID     uuid.UUID `json:"account_id"`
		Kind, Status  string
		StartedAt     time.Time `json:"started_at"`
		EndedAt       time.Time `json:"ended_at"`
		Lat, Lng, Acc float64
		Outcome       string `json:"outcome"`
		OrderValue    int64  `json:"order_value"`
		Referrals     int64  `json:"referrals"`
		Notes         string `json:"notes"`
		RepID, TeamID uuid.UUID
		Version       int64     `json:"version"`
		UpdatedAt     time.Time `json:"updated_at"`
	}
	start = time.Now()
	var last int64 = -1
	read := 0
	for {
		r, err := g.Raw(`SELECT id, account_id, kind, status, started_at, ended_at, check_in_lat, check_in_lng, check_in_accuracy_m, outcome, order_value, referrals, notes, rep_id, team_id, version, updated_at
			FROM `+table+` WHERE org_id = ? AND version > ? ORDER BY version LIMIT ?`, w.org.ID, last, page).Rows()
		if err != nil {
			return 0, 0, fmt.Errorf("raw read: %w", err)
		}
		got := make([]rawVisit, 0, page)
		for r.Next() {
			var v rawVisit
			if err := r.Scan(&v.ID, &v.AccountID, &v.Kind, &v.Status, &v.StartedAt, &v.EndedAt, &v.Lat, &v.Lng, &v.Acc, &v.Outcome, &v.OrderValue, &v.Referrals, &v.Notes, &v.RepID, &v.TeamID, &v.Version, &v.UpdatedAt); err != nil {
				r.Close()
				return 0, 0, fmt.Errorf("raw read: %w", err)
			}
			got = append(got, v)
		}
		r.Close()
		if len(got) == 0 {
			break
		}
		if _, err := json.Marshal(got); err != nil {
			return 0, 0, err
		}
		read += len(got)
		last = got[len(got)-1].Version
	}
	return upsert, float64(read) / time.Since(start).Seconds(), nil
}

// fill grows the filler rep's visits to size rows through the store's own
// write path, so the change feed and indexes are those of real data.
func (w *world) fill(size int, bar *bar) error {
	e := sales.Visits()
	now := time.Now().UTC()
	for w.filled < size {
		n := min(5000, size-w.filled)
		recs := make([]*engine.Record, n)
		for i := range recs {
			recs[i] = &engine.Record{ID: uuid.New(), CreatedAt: now, UpdatedAt: now, Clocks: map[string]engine.FieldClock{},
				Values: map[string]any{"account_id": w.account, "kind": "unscheduled", "status": "completed", "outcome": "none",
					"referrals": int64(0), "started_at": now.Add(-time.Hour), "rep_id": w.filler.ID, "team_id": w.team.ID}}
		}
		if err := w.db.Feed().SeedRecords(w.ctx, w.org.ID, e, recs); err != nil {
			return err
		}
		w.filled += n
		bar.set(w.filled, size)
	}
	// Vacuumed and analysed, as autovacuum leaves a table in steady
	// state: its vacuum of a million fresh rows must not run during the
	// timed pulls.
	if w.db.Dialect() == store.Postgres {
		return w.db.Gorm().WithContext(w.ctx).Exec("VACUUM ANALYZE sync_changes, visits").Error
	}
	return w.db.Gorm().WithContext(w.ctx).Exec("ANALYZE").Error
}

// pullPage is what the bench reads of a pull response.
type pullPage struct {
	changes int
	Cursor  string `json:"cursor"`
	HasMore bool   `json:"has_more"`
}

// readPull reads a pull response as a phone must at least: in one pass it
// checks that the whole body is JSON (what json.Valid accepts) and that
// each change is an object, and counts them; the envelope after the
// changes is then decoded. Decoding into []json.RawMessage made two
// passes over every change (json.Unmarshal validates the body, then
// skips through each value to copy it) and a copy of each: the bench's
// client cost as much as the server it measures.
func readPull(b []byte) (pullPage, error) {
	var pr pullPage
	const head = `{"changes":[`
	if !bytes.HasPrefix(b, []byte(head)) {
		return pr, fmt.Errorf("pull: not a pull response: %.200s", b)
	}
	s := jsonScan{b: b, i: len(head)}
	s.space()
	for s.more() && b[s.i] != ']' {
		if b[s.i] != '{' || !s.value() {
			return pr, fmt.Errorf("pull: change %d is not a JSON object", pr.changes)
		}
		pr.changes++
		s.space()
		if s.more() && b[s.i] == ',' {
			s.i++
			s.space()
			if !s.more() || b[s.i] == ']' {
				return pr, fmt.Errorf("pull: changes end with a comma")
			}
		}
	}
	if !s.more() {
		return pr, fmt.Errorf("pull: the changes do not end")
	}
	end := s.i
	// The rest of the envelope, {"changes":[…] ⟶ ,"cursor":…}: more
	// members, or none.
	s.i++
	s.space()
	ok := s.more() && b[s.i] == '}'
	if ok {
		s.i++
	} else if s.more() && b[s.i] == ',' {
		s.i++
		s.space()
		ok = s.more() && b[s.i] == '"' && s.members()
	}
	if s.space(); !ok || s.more() {
		return pr, fmt.Errorf("pull: not JSON after the changes: %.200s", b[end:])
	}
	rest := append([]byte{'{'}, bytes.TrimLeft(b[end+1:], " \t\r\n,")...)
	if err := json.Unmarshal(rest, &pr); err != nil {
		return pr, fmt.Errorf("pull: %w", err)
	}
	return pr, nil
}

// jsonScan checks JSON (RFC 8259, as json.Valid: strings are not checked
// for valid UTF-8) in one pass from b[i].
type jsonScan struct {
	b []byte
	i int
}

func (s *jsonScan) more() bool { return s.i < len(s.b) }

func (s *jsonScan) space() {
	for s.more() {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// value checks one value and moves past it.
func (s *jsonScan) value() bool {
	s.space()
	if !s.more() {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		s.i++
		return s.members()
	case c == '[':
		s.i++
		s.space()
		if s.more() && s.b[s.i] == ']' {
			s.i++
			return true
		}
		for {
			if !s.value() {
				return false
			}
			s.space()
			if !s.more() {
				return false
			}
			switch s.b[s.i] {
			case ',':
				s.i++
			case ']':
				s.i++
				return true
			default:
				return false
			}
		}
	case c == '"':
		return s.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return s.num()
	case c == 't':
		return s.word("true")
	case c == 'f':
		return s.word("false")
	case c == 'n':
		return s.word("null")
	}
	return false
}

// members checks an object's members and its closing brace, the opening
// one read.
func (s *jsonScan) members() bool {
	s.space()
	if s.more() && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.space()
		if !s.more() || s.b[s.i] != '"' || !s.str() {
			return false
		}
		s.space()
		if !s.more() || s.b[s.i] != ':' {
			return false
		}
		s.i++
		if !s.value() {
			return false
		}
		s.space()
		if !s.more() {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

func (s *jsonScan) str() bool {
	for s.i++; s.more(); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.i++
			if !s.more() {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if s.i+4 >= len(s.b) {
					return false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				s.i += 4
			default:
				return false
			}
		}
	}
	return false
}

func (s *jsonScan) digits() int {
	n := 0
	for s.more() && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *jsonScan) num() bool {
	if s.b[s.i] == '-' {
		s.i++
	}
	if !s.more() {
		return false
	}
	if s.b[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return false
	}
	if s.more() && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.more() && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.more() && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *jsonScan) word(w string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(w)) {
		return false
	}
	s.i += len(w)
	return true
}

// incremental times a pull of 100 fresh changes by a rep whose cursor is
// at the end of the feed; the median of five rounds.
func (w *world) incremental(base string) (time.Duration, error) {
	d := &device{user: w.reps[0]}
	if err := w.login(base, d); err != nil {
		return 0, err
	}
	cursor, err := w.endCursor(base, d)
	if err != nil {
		return 0, err
	}
	var times []time.Duration
	for round := 0; round < 5; round++ {
		if err := w.call(base, http.MethodPost, "/v1/sync/push", d.token, w.visitBatch(d, 100), nil); err != nil {
			return 0, err
		}
		var pr struct {
			Changes []json.RawMessage `json:"changes"`
			Cursor  string            `json:"cursor"`
		}
		t0 := time.Now()
		if err := w.call(base, http.MethodGet, "/v1/sync/pull?limit=1000&cursor="+cursor, d.token, nil, &pr); err != nil {
			return 0, err
		}
		times = append(times, time.Since(t0))
		// Other changes the rep may see (a badge, another phone's write)
		// can ride along; the 100 visits must all be there.
		if len(pr.Changes) < 100 {
			return 0, fmt.Errorf("incremental pull returned %d changes, want at least 100", len(pr.Changes))
		}
		cursor = pr.Cursor
	}
	return percentile(times, 50), nil
}

func (w *world) endCursor(base string, d *device) (string, error) {
	cursor := ""
	for {
		var pr struct {
			Cursor  string `json:"cursor"`
			HasMore bool   `json:"has_more"`
		}
		if err := w.call(base, http.MethodGet, "/v1/sync/pull?limit=1000&cursor="+cursor, d.token, nil, &pr); err != nil {
			return "", err
		}
		cursor = pr.Cursor
		if !pr.HasMore {
			return cursor, nil
		}
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// peakRSS reads the process's high-water resident set from /proc.
func peakRSS() int64 { return procStatus("VmHWM:") }

func report(out io.Writer, cfg Config, r Result) {
	fmt.Fprintf(out, "\nfieldsync bench on %s: %d devices × %d batches × %d visits (%d rows)\n\n", r.Dialect, cfg.Devices, cfg.Batches, cfg.BatchSize, r.Rows)
	fmt.Fprintf(out, "%-42s %14s %14s %8s\n", "measure", "fieldsync", "raw ceiling", "ratio")
	fmt.Fprintf(out, "%-42s %14.0f %14.0f %7.0f%%   (rounds: %.0f–%.0f%%)\n", "push mutations/s (batches of "+strconv.Itoa(cfg.BatchSize)+")",
		r.PushRate, r.RawUpsertRate, 100*r.PushRate/r.RawUpsertRate, 100*r.PushRatioMin, 100*r.PushRatioMax)
	fmt.Fprintf(out, "%-42s %14.0f %14.0f %7.0f%%   (rounds: %.0f–%.0f%%)\n", "pull records/s (pages of "+strconv.Itoa(cfg.PullLimit)+")",
		r.PullRate, r.RawReadRate, 100*r.PullRate/r.RawReadRate, 100*r.PullRatioMin, 100*r.PullRatioMax)
	fmt.Fprintf(out, "(%s)\n", RawCeiling)
	if r.SameSentRate > 0 && r.SameMadeRate > 0 {
		for _, l := range []struct {
			what string
			rate float64
		}{{"push's writes alone, sent", r.SameSentRate}, {"push's writes alone, made by PostgreSQL", r.SameMadeRate}} {
			fmt.Fprintf(out, "%-42s %14.0f %14.0f %7.0f%%   (push ÷ these writes: %.0f%%)\n", l.what, l.rate, r.RawUpsertRate, 100*l.rate/r.RawUpsertRate, 100*r.PushRate/l.rate)
		}
		fmt.Fprintf(out, "(%s)\n", SameWrites)
	}
	fmt.Fprintf(out, "%-42s %14s\n", "push latency p50 / p99", r.PushP50.Round(time.Millisecond).String()+" / "+r.PushP99.Round(time.Millisecond).String())
	reportGrowth(out, cfg, r.Growth)
	if cfg.LatencyDevs > 0 {
		fmt.Fprintf(out, "%-42s %14s   (%.0f pushes/s)\n", fmt.Sprintf("push p50 / p99, %d devices × 10, each every %s", cfg.LatencyDevs, cfg.LatencyEvery),
			r.LatencyP50.Round(time.Millisecond).String()+" / "+r.LatencyP99.Round(time.Millisecond).String(), r.LatencyRate)
		fmt.Fprintf(out, "%-42s %14s   (%.0f pushes/s)\n", fmt.Sprintf("push p50 / p99, %d devices × 10, back to back", cfg.LatencyDevs),
			r.SaturatedP50.Round(time.Millisecond).String()+" / "+r.SaturatedP99.Round(time.Millisecond).String(), r.SaturatedRate)
	}
	sizes := make([]int, 0, len(r.Incremental))
	for s := range r.Incremental {
		sizes = append(sizes, s)
	}
	sort.Ints(sizes)
	for _, s := range sizes {
		ratio := ""
		if len(sizes) > 0 && r.Incremental[sizes[0]] > 0 {
			ratio = fmt.Sprintf("%7.2f×", float64(r.Incremental[s])/float64(r.Incremental[sizes[0]]))
		}
		fmt.Fprintf(out, "%-42s %14s %14s %8s\n", fmt.Sprintf("incremental pull of 100, %d visits", s), r.Incremental[s].Round(10*time.Microsecond), "", ratio)
	}
	if cfg.TeamDevices > 0 {
		reportTeam(out, cfg, r.Team)
	}
	if cfg.Hostile && cfg.LatencyDevs >= 2 {
		reportHostile(out, cfg, r.Hostile)
	}
	if cfg.SameMinute {
		reportSameMinute(out, r.SameMinute)
	}
	fmt.Fprintf(out, "%-42s %12.1f MB\n", "peak RSS", float64(r.PeakRSSBytes)/(1<<20))
}

// bar is a one-line progress bar.
type bar struct {
	w     io.Writer
	label string
	total int64
	n     atomic.Int64
	mu    sync.Mutex
	shown int64 // the percentage last drawn
}

func newBar(w io.Writer, label string, total int) *bar {
	b := &bar{w: w, label: label, total: int64(max(total, 1)), shown: -1}
	b.draw()
	return b
}

func (b *bar) step() { b.n.Add(1); b.draw() }

func (b *bar) set(n, total int) { b.total = int64(max(total, 1)); b.n.Store(int64(n)); b.draw() }

func (b *bar) draw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(b.n.Load(), b.total)
	if 100*n/b.total == b.shown {
		return
	}
	b.shown = 100 * n / b.total
	width := 30
	filled := int(int64(width) * n / b.total)
	fmt.Fprintf(b.w, "\r%-12s [%s%s] %3d%%", b.label, strings.Repeat("#", filled), strings.Repeat(" ", width-filled), 100*n/b.total)
}

func (b *bar) done() { b.n.Store(b.total); b.draw(); fmt.Fprintln(b.w) }
