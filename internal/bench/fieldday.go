package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// FieldDayConfig sets the field-day scenario: a sales force's working day
// compressed into Duration, played open-loop — every request has a time it
// is due, set before the run starts, and its latency counts from then, so
// a server that falls behind is charged for the queue it builds (no
// coordinated omission).
type FieldDayConfig struct {
	DatabaseURL string
	// Server builds one replica's HTTP handler on that replica's own pool
	// (see Config.Server).
	Server func(db *store.DB) (http.Handler, error)
	// Devices are the phones: reps, and a manager for every TeamSize reps.
	Devices  int
	TeamSize int
	// Duration is the working day, compressed; 8 hours of visit times are
	// spread over it.
	Duration time.Duration
	// Calls is the calls each rep makes in the day: each a check-in (a
	// visit created), an activity and a check-out (the visit updated with
	// its outcome and order value), three pushes.
	Calls int
	// PullEvery is how often every phone pulls what changed since its
	// cursor; StandingsEvery how often a manager reads the team contest's
	// standings.
	PullEvery, StandingsEvery time.Duration
	// Replicas lists the replica counts to run the day against, in turn:
	// each replica is a server of its own, with its own pool, handler and
	// listener, on the same database; phones are spread round-robin.
	Replicas []int
	MaxConns int           // each replica's PostgreSQL pool; 0 is the store's default
	Window   time.Duration // the width of the latency-over-time windows; 0 is 10 s
}

// Endpoints of the field day, in report order.
const (
	epLogin = iota
	epMe
	epPush
	epPull
	epStandings
	epCount
)

var epNames = [epCount]string{"login", "me", "push", "pull", "standings"}

// FieldDayReport is what `fieldsync bench --scenario field-day` reports,
// on stdout as a table and in --report-json as this.
type FieldDayReport struct {
	Scenario       string  `json:"scenario"`
	Dialect        string  `json:"dialect"`
	Cores          int     `json:"cores"`
	Devices        int     `json:"devices"`
	Reps           int     `json:"reps"`
	Managers       int     `json:"managers"`
	Teams          int     `json:"teams"`
	DurationS      float64 `json:"duration_s"`
	Calls          int     `json:"calls_per_rep"`
	PullEveryS     float64 `json:"pull_every_s"`
	StandingsEvery float64 `json:"standings_every_s"`
	WindowS        float64 `json:"window_s"`
	// PeakRSSBytes is the process's high-water resident set (VmHWM) at
	// the end: server replicas, the simulated phones and the setup alike.
	PeakRSSBytes int64         `json:"peak_rss_bytes"`
	Runs         []FieldDayRun `json:"runs"`
}

// FieldDayRun is one run of the day against a number of replicas.
type FieldDayRun struct {
	Replicas          int     `json:"replicas"`
	LoadBefore        string  `json:"load_before"` // /proc/loadavg as the run began
	LoadAfter         string  `json:"load_after"`
	ElapsedS          float64 `json:"elapsed_s"`
	Requests          int     `json:"requests"`
	Errors            int     `json:"errors"` // non-2xx answers and transport errors
	ErrorRate         float64 `json:"error_rate"`
	RequestsPerSecond float64 `json:"requests_per_s"`
	PushesPerSecond   float64 `json:"pushes_per_s"`
	// RejectedMutations counts mutations a 200 push answered rejected:
	// the bench's phones send only valid ones, so it should stay 0.
	RejectedMutations int             `json:"rejected_mutations"`
	Endpoints         []EndpointStats `json:"endpoints"`
	// PeakRSSBytes is the largest VmRSS sampled during the run.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// Pool figures are summed over the replicas' pools, sampled.
	PoolInUseMax  int      `json:"pool_in_use_max"`
	PoolOpenMax   int      `json:"pool_open_max"`
	PoolLimit     int      `json:"pool_limit"` // 0: unlimited (SQLite's write pool is one)
	PoolWaits     int64    `json:"pool_waits"`
	PoolWaitS     float64  `json:"pool_wait_s"`
	PGConnections int      `json:"pg_connections_max,omitempty"` // pg_stat_activity of the database, sampled
	Windows       []Window `json:"windows"`
}

// EndpointStats are one endpoint's figures in a run. Latencies count from
// when each request was due.
type EndpointStats struct {
	Name       string  `json:"name"`
	Count      int     `json:"count"`
	Errors     int     `json:"errors"`
	P50MS      float64 `json:"p50_ms"`
	P95MS      float64 `json:"p95_ms"`
	P99MS      float64 `json:"p99_ms"`
	MaxMS      float64 `json:"max_ms"`
	FirstError string  `json:"first_error,omitempty"`
}

// Window is one window of the run: p99 latency by endpoint of the
// requests due in it (endpoints with none are left out).
type Window struct {
	StartS float64            `json:"start_s"`
	P99MS  map[string]float64 `json:"p99_ms"`
}

// sample is one timed request.
type sample struct {
	ep   int
	due  time.Duration // since the run began
	took time.Duration // from due to answered
	err  error
}

// evKind is what a phone does at a moment of its day.
type evKind int

const (
	evLogin evKind = iota
	evMe
	evPull
	evCheckIn
	evActivity
	evCheckOut
	evStandings
)

type event struct {
	at   time.Duration
	kind evKind
	call int
}

// phone is one device of the day: a rep's or a manager's.
type phone struct {
	user     models.User
	team     int
	base     string // the replica it talks to
	token    string
	deviceID string
	seq      int64
	cursor   string
	events   []event
	// The rep's call in progress.
	visit        uuid.UUID
	visitVersion int64
	account      int
}

// fieldTeam is a team with its manager, accounts and contest.
type fieldTeam struct {
	team     models.Team
	manager  models.User
	reps     []models.User
	accounts []uuid.UUID
	lat, lng []float64
	contest  string
}

const fieldAccounts = 20 // accounts per team

// fieldDay is one run's world.
type fieldDay struct {
	ctx      context.Context
	cfg      FieldDayConfig
	db       *store.DB // setup and sampling; not a replica's pool
	client   *http.Client
	org      models.Org
	teams    []*fieldTeam
	start    time.Time // when the run's clock started
	dayStart time.Time // the visit time of the run's start
	mu       sync.Mutex
	samples  []sample
	rejected int
}

// FieldDay runs the field-day scenario once per replica count and writes
// the table to out, progress to progress.
func FieldDay(ctx context.Context, cfg FieldDayConfig, out, progress io.Writer) (FieldDayReport, error) {
	var rep FieldDayReport
	if cfg.Server == nil {
		return rep, errors.New("bench: no server to measure (FieldDayConfig.Server is nil)")
	}
	if cfg.Window <= 0 {
		cfg.Window = 10 * time.Second
	}
	if cfg.TeamSize < 1 {
		cfg.TeamSize = 10
	}
	if len(cfg.Replicas) == 0 {
		cfg.Replicas = []int{1}
	}
	if cfg.Devices < 2 || cfg.Calls < 1 || cfg.Duration <= 0 || cfg.PullEvery <= 0 || cfg.StandingsEvery <= 0 {
		return rep, errors.New("bench: field day needs at least 2 devices, a call, and positive durations")
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{MaxOpenConns: cfg.MaxConns})
	if err != nil {
		return rep, err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return rep, err
	}
	for _, n := range cfg.Replicas {
		if n < 1 {
			return rep, fmt.Errorf("bench: %d replicas", n)
		}
		if n > 1 && db.Dialect() != store.Postgres {
			return rep, errors.New("bench: more than one replica needs PostgreSQL (SQLite is one process's file)")
		}
	}
	teams, reps, managers := fieldShape(cfg.Devices, cfg.TeamSize)
	rep = FieldDayReport{Scenario: "field-day", Dialect: string(db.Dialect()), Cores: runtime.NumCPU(), Devices: cfg.Devices, Reps: reps, Managers: managers, Teams: teams,
		DurationS: cfg.Duration.Seconds(), Calls: cfg.Calls, PullEveryS: cfg.PullEvery.Seconds(), StandingsEvery: cfg.StandingsEvery.Seconds(), WindowS: cfg.Window.Seconds()}
	for _, n := range cfg.Replicas {
		f := &fieldDay{ctx: ctx, cfg: cfg, db: db, client: &http.Client{
			Transport: &http.Transport{MaxIdleConns: 4 * cfg.Devices, MaxIdleConnsPerHost: 2 * cfg.Devices, IdleConnTimeout: 2 * time.Minute},
			Timeout:   2 * time.Minute}}
		run, err := f.run(n, progress)
		if err != nil {
			return rep, err
		}
		rep.Runs = append(rep.Runs, run)
	}
	rep.PeakRSSBytes = peakRSS()
	fieldTable(out, rep)
	return rep, nil
}

// fieldShape splits devices into teams of up to teamSize reps and a
// manager each.
func fieldShape(devices, teamSize int) (teams, reps, managers int) {
	teams = (devices + teamSize) / (teamSize + 1)
	return teams, devices - teams, teams
}

// setup creates the run's organisation: teams of reps with a manager each,
// every team with its accounts and, once the managers have logged in, a
// contest of its own created through the API.
func (f *fieldDay) setup(progress io.Writer) error {
	ctx := f.ctx
	hash, err := bcrypt.GenerateFromPassword([]byte(benchPassword), bcrypt.MinCost)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	tag := strconv.FormatInt(now.UnixNano(), 36)
	f.org = models.Org{ID: uuid.New(), Name: "field day " + tag, CreatedAt: now}
	n := 0
	mk := func(role models.Role, team *uuid.UUID) models.User {
		n++
		return models.User{OrgID: f.org.ID, ID: uuid.New(), Email: fmt.Sprintf("fd-%s-%d@bench.test", tag, n), Name: fmt.Sprintf("Field %d", n),
			Role: role, TeamID: team, Active: true, TimeZone: "UTC", PasswordHash: string(hash), CreatedAt: now, UpdatedAt: now}
	}
	if err := f.db.People().CreateOrg(ctx, f.org, mk(models.RoleAdmin, nil)); err != nil {
		return err
	}
	teams, reps, _ := fieldShape(f.cfg.Devices, f.cfg.TeamSize)
	bar := newBar(progress, "people", f.cfg.Devices)
	for t := 0; t < teams; t++ {
		m := mk(models.RoleManager, nil)
		if err := f.db.People().CreateUser(ctx, m); err != nil {
			return err
		}
		ft := &fieldTeam{manager: m}
		ft.team = models.Team{OrgID: f.org.ID, ID: uuid.New(), Name: fmt.Sprintf("Field team %d", t+1), ManagerID: &m.ID, CreatedAt: now}
		if err := f.db.People().CreateTeam(ctx, ft.team); err != nil {
			return err
		}
		ft.manager.TeamID = &ft.team.ID
		bar.step()
		f.teams = append(f.teams, ft)
	}
	for r := 0; r < reps; r++ {
		ft := f.teams[r%teams]
		u := mk(models.RoleRep, &ft.team.ID)
		if err := f.db.People().CreateUser(ctx, u); err != nil {
			return err
		}
		ft.reps = append(ft.reps, u)
		bar.step()
	}
	bar.done()
	// Accounts a few hundred metres apart, so check-ins at them verify and
	// a rep driving between them is never implausibly fast.
	for t, ft := range f.teams {
		var recs []*engine.Record
		for i := 0; i < fieldAccounts; i++ {
			id := uuid.New()
			lat, lng := 44.5+float64(t%100)*0.05, -93.5+float64(t/100)*0.5+float64(i)*0.005
			name := fmt.Sprintf("Field account %d-%d", t+1, i+1)
			recs = append(recs, &engine.Record{ID: id, CreatedAt: now, UpdatedAt: now, Clocks: map[string]engine.FieldClock{},
				Values: map[string]any{"name": name, "name_key": strings.ToLower(name), "status": "customer", "team_id": ft.team.ID, "lat": lat, "lng": lng}})
			ft.accounts, ft.lat, ft.lng = append(ft.accounts, id), append(ft.lat, lat), append(ft.lng, lng)
		}
		if err := f.db.Feed().SeedRecords(ctx, f.org.ID, sales.Accounts(), recs); err != nil {
			return err
		}
	}
	return nil
}

// contests has every manager create their team's contest, running from
// yesterday to tomorrow, through the API of the first replica.
func (f *fieldDay) contests(base string) error {
	day := time.Now().UTC().Truncate(24 * time.Hour)
	for _, ft := range f.teams {
		p := &phone{user: ft.manager}
		if err := f.login(base, p); err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]any{"name": "Field day " + ft.team.Name, "team_id": ft.team.ID,
			"starts_at": day.Add(-24 * time.Hour).Format(time.RFC3339), "ends_at": day.Add(48 * time.Hour).Format(time.RFC3339)})
		var c struct {
			ID string `json:"id"`
		}
		if err := f.do(base, http.MethodPost, "/v1/contests", p.token, body, &c); err != nil {
			return fmt.Errorf("create contest: %w", err)
		}
		ft.contest = c.ID
	}
	return nil
}

func (f *fieldDay) login(base string, p *phone) error {
	p.deviceID = uuid.NewString()
	body, _ := json.Marshal(map[string]string{"email": p.user.Email, "password": benchPassword, "device_id": p.deviceID})
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := f.do(base, http.MethodPost, "/v1/auth/login", "", body, &tr); err != nil {
		return fmt.Errorf("login %s: %w", p.user.Email, err)
	}
	p.token = tr.AccessToken
	return nil
}

// do sends a request; any answer but 2xx is an error.
func (f *fieldDay) do(base, method, path, token string, body []byte, out any) error {
	return call(f.ctx, f.client, base, method, path, token, body, out)
}

// replica is one in-process server on a pool of its own.
type replica struct {
	db   *store.DB
	hs   *http.Server
	base string
}

func (f *fieldDay) startReplicas(n int) ([]*replica, func(), error) {
	var rs []*replica
	stop := func() {
		for _, r := range rs {
			_ = r.hs.Close()
			_ = r.db.Close()
		}
	}
	for i := 0; i < n; i++ {
		db, err := store.Open(f.ctx, f.cfg.DatabaseURL, store.Options{MaxOpenConns: f.cfg.MaxConns})
		if err != nil {
			stop()
			return nil, nil, err
		}
		h, err := f.cfg.Server(db)
		if err != nil {
			_ = db.Close()
			stop()
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			_ = db.Close()
			stop()
			return nil, nil, err
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		rs = append(rs, &replica{db: db, hs: hs, base: "http://" + ln.Addr().String()})
	}
	return rs, stop, nil
}

// schedule sets every phone's day before the clock starts. A phone starts
// at a random moment early in the day (log in, GET /v1/me, a first pull)
// and then pulls every PullEvery, from a random phase. A rep's calls come every
// Duration/Calls: check-in, an activity a fifth of a call later, the
// check-out a quarter after that; the last check-out falls within the
// day. A manager reads the standings every
// StandingsEvery, from a random phase.
func (f *fieldDay) schedule(p *phone, manager bool, rng *rand.Rand) {
	d := f.cfg.Duration
	gap := d / time.Duration(f.cfg.Calls)
	startSpan := min(gap*4/10, f.cfg.PullEvery)
	s := time.Duration(rng.Int64N(int64(max(startSpan, 1))))
	eps := min(100*time.Millisecond, gap/100)
	p.events = append(p.events, event{at: s, kind: evLogin}, event{at: s + eps, kind: evMe}, event{at: s + 2*eps, kind: evPull})
	// Pulls on a phase of their own, so the phones' pulls spread over
	// every interval rather than coming in a wave after each day's start.
	for t := s + 3*eps + time.Duration(rng.Int64N(int64(f.cfg.PullEvery))); t < d; t += f.cfg.PullEvery {
		p.events = append(p.events, event{at: t, kind: evPull})
	}
	if manager {
		for t := s + time.Duration(rng.Int64N(int64(f.cfg.StandingsEvery))); t < d; t += f.cfg.StandingsEvery {
			p.events = append(p.events, event{at: t, kind: evStandings})
		}
	} else {
		for k := 0; k < f.cfg.Calls; k++ {
			c := s + 3*eps + time.Duration(k)*gap + gap/20
			p.events = append(p.events, event{at: c, kind: evCheckIn, call: k}, event{at: c + gap/5, kind: evActivity, call: k}, event{at: c + gap*9/20, kind: evCheckOut, call: k})
		}
	}
	sort.SliceStable(p.events, func(i, j int) bool { return p.events[i].at < p.events[j].at })
}

// visitTime maps a moment of the run onto the working day: 8 hours ending
// a minute before the run began, so no visit time is in the future.
func (f *fieldDay) visitTime(at time.Duration) time.Time {
	return f.dayStart.Add(time.Duration(float64(at) * float64(8*time.Hour) / float64(f.cfg.Duration))).Truncate(time.Second)
}

func (f *fieldDay) run(replicas int, progress io.Writer) (FieldDayRun, error) {
	run := FieldDayRun{Replicas: replicas, LoadBefore: loadAvg()}
	fmt.Fprintf(progress, "field day, %d replica(s)\n", replicas)
	if err := f.setup(progress); err != nil {
		return run, err
	}
	rs, stop, err := f.startReplicas(replicas)
	if err != nil {
		return run, err
	}
	defer stop()
	if err := f.contests(rs[0].base); err != nil {
		return run, err
	}
	// Phones, round-robin over the replicas.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 15))
	var phones []*phone
	for t, ft := range f.teams {
		p := &phone{user: ft.manager, team: t}
		f.schedule(p, true, rng)
		phones = append(phones, p)
		for _, u := range ft.reps {
			p := &phone{user: u, team: t, account: rng.IntN(fieldAccounts)}
			f.schedule(p, false, rng)
			phones = append(phones, p)
		}
	}
	total := 0
	for i, p := range phones {
		p.base = rs[i%len(rs)].base
		total += len(p.events)
	}
	samp := f.sampleResources(rs)
	bar := newBar(progress, "field day", total)
	f.start = time.Now()
	f.dayStart = f.start.UTC().Add(-8*time.Hour - time.Minute)
	var wg sync.WaitGroup
	for _, p := range phones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.play(p, bar)
		}()
	}
	wg.Wait()
	elapsed := time.Since(f.start)
	bar.done()
	res := samp()
	if err := f.ctx.Err(); err != nil {
		return run, err
	}
	run.LoadAfter = loadAvg()
	run.ElapsedS = elapsed.Seconds()
	run.PeakRSSBytes, run.PoolInUseMax, run.PoolOpenMax, run.PoolLimit, run.PGConnections = res.rss, res.inUse, res.open, res.limit, res.pg
	for _, r := range rs {
		if sqlDB, err := r.db.Gorm().DB(); err == nil {
			s := sqlDB.Stats()
			run.PoolWaits += s.WaitCount
			run.PoolWaitS += s.WaitDuration.Seconds()
		}
	}
	f.summarise(&run, elapsed)
	return run, nil
}

// play runs one phone's day; each request waits for the one before it
// (a phone does one thing at a time), and its latency counts from when it
// was due, however late it could start.
func (f *fieldDay) play(p *phone, bar *bar) {
	for _, ev := range p.events {
		due := f.start.Add(ev.at)
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-f.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		f.act(p, ev, due)
		bar.step()
	}
}

func (f *fieldDay) record(ep int, due time.Time, err error) {
	took := time.Since(due)
	f.mu.Lock()
	f.samples = append(f.samples, sample{ep: ep, due: due.Sub(f.start), took: took, err: err})
	f.mu.Unlock()
}

func (f *fieldDay) act(p *phone, ev event, due time.Time) {
	ft := f.teams[p.team]
	switch ev.kind {
	case evLogin:
		f.record(epLogin, due, f.login(p.base, p))
	case evMe:
		f.record(epMe, due, f.do(p.base, http.MethodGet, "/v1/me", p.token, nil, nil))
	case evStandings:
		f.record(epStandings, due, f.do(p.base, http.MethodGet, "/v1/contests/"+ft.contest+"/standings", p.token, nil, nil))
	case evPull:
		// Pages until the end; each page is a request, later pages due
		// as the page before them arrives.
		for {
			var pr struct {
				Cursor  string `json:"cursor"`
				HasMore bool   `json:"has_more"`
			}
			err := f.do(p.base, http.MethodGet, "/v1/sync/pull?schema_version=1&limit=500&cursor="+p.cursor, p.token, nil, &pr)
			f.record(epPull, due, err)
			if err != nil {
				return
			}
			p.cursor = pr.Cursor
			if !pr.HasMore {
				return
			}
			due = time.Now()
		}
	case evCheckIn, evActivity, evCheckOut:
		f.push(p, ft, ev, due)
	}
}

// push sends one step of a call as a push of one mutation.
func (f *fieldDay) push(p *phone, ft *fieldTeam, ev event, due time.Time) {
	at := f.visitTime(ev.at).Format(time.RFC3339)
	p.seq++
	hlc := fmt.Sprintf(`{"ms":%d,"counter":0}`, time.Now().UnixMilli())
	var m string
	switch ev.kind {
	case evCheckIn:
		p.visit, p.visitVersion = uuid.New(), 0
		p.account = (p.account + 7) % fieldAccounts
		a := p.account
		m = fmt.Sprintf(`{"seq":%d,"entity":"visits","id":"%s","op":"upsert","hlc":%s,"fields":{"account_id":"%s","kind":"unscheduled","status":"in_progress","started_at":"%s","check_in_lat":%.6f,"check_in_lng":%.6f,"check_in_accuracy_m":12}}`,
			p.seq, p.visit, hlc, ft.accounts[a], at, ft.lat[a], ft.lng[a])
	case evActivity:
		types := []string{"crm_update", "referral", "networking", "expense_report"}
		m = fmt.Sprintf(`{"seq":%d,"entity":"activities","id":"%s","op":"upsert","hlc":%s,"fields":{"type":"%s","occurred_at":"%s","account_id":"%s","visit_id":"%s","notes":"Field day activity"}}`,
			p.seq, uuid.New(), hlc, types[(ev.call+int(p.seq))%len(types)], at, ft.accounts[p.account], p.visit)
	case evCheckOut:
		// One call in three takes an order.
		outcome := `"outcome":"meeting"`
		switch (ev.call + p.account) % 3 {
		case 0:
			outcome = `"outcome":"order","order_value":` + strconv.Itoa(150+10*ev.call) + `.50`
		case 1:
			outcome = `"outcome":"no_answer"`
		}
		base := ""
		if p.visitVersion > 0 {
			base = `,"base_version":` + strconv.FormatInt(p.visitVersion, 10)
		}
		a := p.account
		m = fmt.Sprintf(`{"seq":%d,"entity":"visits","id":"%s","op":"upsert","hlc":%s%s,"fields":{"status":"completed","ended_at":"%s",%s,"check_out_lat":%.6f,"check_out_lng":%.6f,"notes":"Field day call %d"}}`,
			p.seq, p.visit, hlc, base, at, outcome, ft.lat[a], ft.lng[a], ev.call+1)
	}
	var pr struct {
		Results []struct {
			Status  string `json:"status"`
			Version int64  `json:"version"`
			Error   *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"results"`
	}
	err := f.do(p.base, http.MethodPost, "/v1/sync/push", p.token, []byte(`{"schema_version":1,"mutations":[`+m+`]}`), &pr)
	f.record(epPush, due, err)
	if err != nil {
		return
	}
	for _, r := range pr.Results {
		if r.Status == engine.StatusRejected {
			f.mu.Lock()
			f.rejected++
			if f.rejected == 1 && r.Error != nil {
				fmt.Fprintf(os.Stderr, "\nfield day: a mutation was rejected: %s %s\n", r.Error.Code, r.Error.Message)
			}
			f.mu.Unlock()
			continue
		}
		if ev.kind == evCheckIn {
			p.visitVersion = r.Version
		}
	}
}

// summarise turns the samples into the run's figures.
func (f *fieldDay) summarise(run *FieldDayRun, elapsed time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	by := make([][]time.Duration, epCount)
	run.Endpoints = make([]EndpointStats, epCount)
	for i := range run.Endpoints {
		run.Endpoints[i].Name = epNames[i]
	}
	windows := map[int][][]time.Duration{}
	for _, s := range f.samples {
		e := &run.Endpoints[s.ep]
		e.Count++
		if s.err != nil {
			e.Errors++
			if e.FirstError == "" {
				e.FirstError = s.err.Error()
			}
		}
		by[s.ep] = append(by[s.ep], s.took)
		w := int(s.due / f.cfg.Window)
		if windows[w] == nil {
			windows[w] = make([][]time.Duration, epCount)
		}
		windows[w][s.ep] = append(windows[w][s.ep], s.took)
	}
	for i := range run.Endpoints {
		e := &run.Endpoints[i]
		e.P50MS, e.P95MS, e.P99MS, e.MaxMS = ms(percentile(by[i], 50)), ms(percentile(by[i], 95)), ms(percentile(by[i], 99)), ms(percentile(by[i], 100))
		run.Requests += e.Count
		run.Errors += e.Errors
	}
	if run.Requests > 0 {
		run.ErrorRate = float64(run.Errors) / float64(run.Requests)
	}
	run.RequestsPerSecond = float64(run.Requests) / elapsed.Seconds()
	run.PushesPerSecond = float64(run.Endpoints[epPush].Count) / elapsed.Seconds()
	run.RejectedMutations = f.rejected
	var ws []int
	for w := range windows {
		ws = append(ws, w)
	}
	sort.Ints(ws)
	for _, w := range ws {
		win := Window{StartS: (time.Duration(w) * f.cfg.Window).Seconds(), P99MS: map[string]float64{}}
		for ep, ds := range windows[w] {
			if len(ds) > 0 {
				win.P99MS[epNames[ep]] = ms(percentile(ds, 99))
			}
		}
		run.Windows = append(run.Windows, win)
	}
}

type resources struct {
	rss                    int64
	inUse, open, limit, pg int
}

// sampleResources samples, until the returned function is called, the
// process's resident set, the replicas' pools and, on PostgreSQL, the
// database's connections; the function returns the largest of each.
func (f *fieldDay) sampleResources(rs []*replica) func() resources {
	done := make(chan struct{})
	out := make(chan resources)
	go func() {
		var res resources
		for _, r := range rs {
			if sqlDB, err := r.db.Gorm().DB(); err == nil {
				if m := sqlDB.Stats().MaxOpenConnections; m > 0 {
					res.limit += m
				}
			}
		}
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			res.rss = max(res.rss, procStatus("VmRSS:"))
			inUse, open := 0, 0
			for _, r := range rs {
				if sqlDB, err := r.db.Gorm().DB(); err == nil {
					s := sqlDB.Stats()
					inUse += s.InUse
					open += s.OpenConnections
				}
			}
			res.inUse, res.open = max(res.inUse, inUse), max(res.open, open)
			if f.db.Dialect() == store.Postgres {
				var n int
				ctx, cancel := context.WithTimeout(f.ctx, time.Second)
				if f.db.Gorm().WithContext(ctx).Raw("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()").Scan(&n).Error == nil {
					res.pg = max(res.pg, n)
				}
				cancel()
			}
			select {
			case <-done:
				out <- res
				return
			case <-tick.C:
			}
		}
	}()
	return func() resources { close(done); return <-out }
}

// procStatus reads a size in kB from /proc/self/status, in bytes.
func procStatus(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// loadAvg is the machine's load average (1, 5 and 15 minutes), as
// /proc/loadavg has it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}
