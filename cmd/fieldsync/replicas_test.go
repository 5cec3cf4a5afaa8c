package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
)

// replicaProc is one `fieldsync serve` process of TestReplicas.
type replicaProc struct {
	name, addr string
	cmd        *exec.Cmd
	log        string // stderr, appended to across restarts
	done       chan error
}

// replicaSet starts and stops `fieldsync serve` processes on one database.
type replicaSet struct {
	t   *testing.T
	bin string
	env []string

	mu    sync.Mutex
	procs []*replicaProc
}

// start runs the replica's process and waits until it is ready.
func (rs *replicaSet) start(r *replicaProc) {
	rs.t.Helper()
	logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		rs.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(rs.bin, "serve", "--addr", r.addr, "--no-migrate")
	cmd.Env = rs.env
	cmd.Stderr = logf
	cmd.Stdout = logf
	if err := cmd.Start(); err != nil {
		rs.t.Fatalf("start %s: %v", r.name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	rs.mu.Lock()
	r.cmd, r.done = cmd, done
	rs.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + r.addr + "/readyz")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-done:
			rs.t.Fatalf("%s exited while starting: %v\n%s", r.name, err, tail(r.log, 20))
		default:
		}
		if time.Now().After(deadline) {
			rs.t.Fatalf("%s not ready after 30 s\n%s", r.name, tail(r.log, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig to the replica and waits for its process to exit.
func (rs *replicaSet) signal(r *replicaProc, sig syscall.Signal) error {
	rs.t.Helper()
	rs.mu.Lock()
	cmd, done := r.cmd, r.done
	rs.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		rs.t.Fatalf("signal %s: %v", r.name, err)
	}
	select {
	case err := <-done:
		return err
	case <-time.After(40 * time.Second):
		rs.t.Fatalf("%s did not exit 40 s after %v\n%s", r.name, sig, tail(r.log, 20))
		return nil
	}
}

// tail returns the last n lines of a log file, access log lines left out.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if !strings.Contains(l, `"msg":"request"`) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// fakeFCM counts the messages the replicas send, by notification id.
type fakeFCM struct {
	mu   sync.Mutex
	sent map[string]int // "notification_id token" → messages
}

func (f *fakeFCM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Message struct {
			Token string            `json:"token"`
			Data  map[string]string `json:"data"`
		} `json:"message"`
	}
	b, _ := io.ReadAll(r.Body)
	if !strings.HasSuffix(r.URL.Path, "/messages:send") || json.Unmarshal(b, &req) != nil || req.Message.Data["notification_id"] == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.sent[req.Message.Data["notification_id"]+" "+req.Message.Token]++
	f.mu.Unlock()
	_, _ = io.WriteString(w, `{"name": "projects/replicas-test/messages/1"}`)
}

func (f *fakeFCM) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.sent))
	for k, v := range f.sent {
		out[k] = v
	}
	return out
}

// phone is a device of TestReplicas: it talks to a random replica each
// time, and retries a request that failed in transit or answered 503 on
// another, with the same body — the same batch, the same seqs.
type phone struct {
	t      *testing.T
	name   string
	email  string
	device uuid.UUID
	addrs  []string
	client *http.Client
	rng    *rand.Rand
	token  string

	seq     int64
	cursor  string
	local   map[string]int64 // "entity/id" → version: the phone's database
	owned   map[uuid.UUID]*ownedVisit
	order   []uuid.UUID // owned visits, oldest first
	retries int
}

// ownedVisit is what the server must hold of a visit this phone wrote:
// the effect of its last acknowledged mutation.
type ownedVisit struct {
	notes   string
	deleted bool
}

// do sends one request, retrying on connection errors and 503 until it
// gets another answer, and returns its status and body.
func (p *phone) do(method, path string, body []byte) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 200 {
			return 0, nil, fmt.Errorf("%s %s: no answer after %d attempts", method, path, attempt)
		}
		addr := p.addrs[p.rng.IntN(len(p.addrs))]
		req, err := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if p.token != "" {
			req.Header.Set("Authorization", "Bearer "+p.token)
		}
		res, err := p.client.Do(req)
		var b []byte
		if err == nil {
			b, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		if err != nil || res.StatusCode == http.StatusServiceUnavailable {
			p.retries++
			time.Sleep(time.Duration(20+p.rng.IntN(80)) * time.Millisecond)
			continue
		}
		return res.StatusCode, b, nil
	}
}

func (p *phone) login() error {
	body, _ := json.Marshal(map[string]any{"email": p.email, "password": demo.Password, "device_id": p.device})
	status, b, err := p.do(http.MethodPost, "/v1/auth/login", body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("login %s: %d %s", p.email, status, b)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		return err
	}
	p.token = tr.AccessToken
	return nil
}

type replicaChange struct {
	Entity  string                     `json:"entity"`
	ID      uuid.UUID                  `json:"id"`
	Op      string                     `json:"op"`
	Version int64                      `json:"version"`
	Data    map[string]json.RawMessage `json:"data"`
}

type replicaPage struct {
	Changes []replicaChange `json:"changes"`
	Cursor  string          `json:"cursor"`
	HasMore bool            `json:"has_more"`
	Reset   bool            `json:"reset"`
	LastSeq int64           `json:"last_seq"`
}

// pull applies every page after cursor to into and returns the last page.
func (p *phone) pull(cursor string, into map[string]int64, changes func(replicaChange)) (replicaPage, error) {
	for pages := 0; ; pages++ {
		if pages > 1000 {
			return replicaPage{}, errors.New("pull does not end")
		}
		status, b, err := p.do(http.MethodGet, "/v1/sync/pull?limit=200&cursor="+url.QueryEscape(cursor), nil)
		if err != nil {
			return replicaPage{}, err
		}
		if status != http.StatusOK {
			return replicaPage{}, fmt.Errorf("pull: %d %s", status, b)
		}
		var pg replicaPage
		if err := json.Unmarshal(b, &pg); err != nil {
			return replicaPage{}, err
		}
		if pg.Reset {
			return pg, fmt.Errorf("pull from %q answered reset", cursor)
		}
		for _, c := range pg.Changes {
			k := c.Entity + "/" + c.ID.String()
			if c.Op == "delete" {
				delete(into, k)
			} else {
				into[k] = c.Version
			}
			if changes != nil {
				changes(c)
			}
		}
		cursor = pg.Cursor
		if !pg.HasMore {
			return pg, nil
		}
	}
}

// push sends one batch of new work (calls, edits of recent calls, a
// delete now and then) until a replica answers it, and records what the
// server acknowledged.
func (p *phone) push(accounts []uuid.UUID, callsAt func() time.Time) error {
	type mutation struct {
		Seq    int64          `json:"seq"`
		Entity string         `json:"entity"`
		ID     uuid.UUID      `json:"id"`
		Op     string         `json:"op"`
		Fields map[string]any `json:"fields,omitempty"`
		HLC    map[string]any `json:"hlc"`
	}
	n := 1 + p.rng.IntN(20)
	muts := make([]mutation, 0, n)
	effects := make([]func(), 0, n)
	goner := map[uuid.UUID]bool{} // deleted earlier in this batch
	for i := range n {
		p.seq++
		m := mutation{Seq: p.seq, Entity: "visits", HLC: map[string]any{"ms": time.Now().UnixMilli(), "counter": i}}
		var live []uuid.UUID
		for _, id := range p.order[max(0, len(p.order)-10):] {
			if !p.owned[id].deleted && !goner[id] {
				live = append(live, id)
			}
		}
		switch r := p.rng.IntN(10); {
		case r == 0 && len(live) > 0:
			id := live[p.rng.IntN(len(live))]
			m.ID, m.Op = id, "delete"
			goner[id] = true
			effects = append(effects, func() { p.owned[id].deleted = true })
		case r < 3 && len(live) > 0:
			id := live[p.rng.IntN(len(live))]
			notes := fmt.Sprintf("%s edit %d", p.name, p.seq)
			m.ID, m.Op, m.Fields = id, "upsert", map[string]any{"notes": notes}
			effects = append(effects, func() { p.owned[id].notes = notes })
		default:
			id := uuid.New()
			notes := fmt.Sprintf("%s call %d", p.name, p.seq)
			outcome := []string{"order", "no_answer", "meeting", "not_interested", "none", "meeting"}[p.rng.IntN(6)]
			m.ID, m.Op = id, "upsert"
			m.Fields = map[string]any{"account_id": accounts[p.rng.IntN(len(accounts))], "kind": "unscheduled", "status": "completed",
				"outcome": outcome, "started_at": callsAt().Format(time.RFC3339), "notes": notes}
			p.owned[id] = &ownedVisit{notes: "(unacknowledged)"}
			p.order = append(p.order, id)
			effects = append(effects, func() { p.owned[id].notes = notes })
		}
		muts = append(muts, m)
	}
	body, _ := json.Marshal(map[string]any{"schema_version": 1, "mutations": muts})
	status, b, err := p.do(http.MethodPost, "/v1/sync/push", body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("push: %d %s", status, b)
	}
	var res struct {
		LastSeq int64 `json:"last_seq"`
		Results []struct {
			Seq       int64           `json:"seq"`
			Status    string          `json:"status"`
			Error     json.RawMessage `json:"error"`
			Conflicts json.RawMessage `json:"conflicts"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return err
	}
	if res.LastSeq != p.seq || len(res.Results) != len(muts) {
		return fmt.Errorf("push up to seq %d: last_seq %d, %d results for %d", p.seq, res.LastSeq, len(res.Results), len(muts))
	}
	for i, r := range res.Results {
		switch r.Status {
		case "applied", "duplicate": // a duplicate: a retry of a batch whose answer was lost
			effects[i]()
		default:
			return fmt.Errorf("seq %d (%s %v): %s %s %s", r.Seq, muts[i].Op, muts[i].Fields, r.Status, r.Error, r.Conflicts)
		}
	}
	return nil
}

// TestReplicas runs three `fieldsync serve` processes on one PostgreSQL
// database and has phones of two teams push and pull through random
// replicas while one replica is stopped gracefully (SIGTERM) and another
// is killed (SIGKILL) and restarted. A phone retries a request that failed
// in transit or answered 503 on another replica with the same batch. At
// the end every phone's replica equals a full pull, which holds each
// acknowledged mutation's effect once and last_seq as the phone counted;
// and every notification (a streak of calls without an order, to the
// rep's manager) reached the fake FCM server that all replicas send to
// exactly once.
//
// It is a CI step of its own (.ci/run, "Replicas on PostgreSQL"), not
// part of the ordinary suite: set FIELDSYNC_REPLICAS=1 and
// FIELDSYNC_TEST_DATABASE_URL.
func TestReplicas(t *testing.T) {
	if os.Getenv("FIELDSYNC_REPLICAS") != "1" {
		t.Skip("the replicas test runs in its own CI step: set FIELDSYNC_REPLICAS=1 and FIELDSYNC_TEST_DATABASE_URL (PostgreSQL)")
	}
	if os.Getenv(storetest.EnvURL) == "" {
		t.Skip("the replicas test needs PostgreSQL: set FIELDSYNC_TEST_DATABASE_URL")
	}
	began := time.Now()
	dir := t.TempDir()
	bin := filepath.Join(dir, "fieldsync")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built the binary in %v", time.Since(began).Round(time.Millisecond))

	fcm := &fakeFCM{sent: map[string]int{}}
	fake := httptest.NewServer(fcm)
	t.Cleanup(fake.Close)
	dbURL := seededURL(t)
	rs := &replicaSet{t: t, bin: bin, env: append(os.Environ(),
		"FIELDSYNC_DATABASE_URL="+dbURL, "FIELDSYNC_JWT_SECRET="+testSecret, "FIELDSYNC_LOG_FORMAT=json",
		"FIELDSYNC_FCM_ENDPOINT="+fake.URL, "FIELDSYNC_FIREBASE_PROJECT_ID=replicas-test")}
	var addrs []string
	for i := range 3 {
		r := &replicaProc{name: fmt.Sprintf("replica %d", i), addr: freeAddr(t), log: filepath.Join(dir, fmt.Sprintf("replica%d.log", i))}
		rs.procs = append(rs.procs, r)
		addrs = append(addrs, r.addr)
	}
	t.Cleanup(func() {
		for _, r := range rs.procs {
			rs.mu.Lock()
			cmd := r.cmd
			rs.mu.Unlock()
			if cmd != nil && cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
			}
		}
	})
	for _, r := range rs.procs {
		rs.start(r)
	}
	defer func() {
		if t.Failed() {
			for _, r := range rs.procs {
				t.Logf("%s (%s), last lines of its log:\n%s", r.name, r.addr, tail(r.log, 15))
			}
		}
	}()

	newPhone := func(name, email string, seed uint64) *phone {
		return &phone{t: t, name: name, email: email, device: uuid.New(), addrs: addrs, rng: rand.New(rand.NewPCG(seed, 15)),
			client: &http.Client{Timeout: 30 * time.Second}, local: map[string]int64{}, owned: map[uuid.UUID]*ownedVisit{}}
	}
	// Two phones for rep1 and for rep4, one for rep2 and rep5: six phones
	// that push, and the two managers, who pull and receive the pushes.
	reps := []*phone{
		newPhone("rep1-phone", "rep1@demo.test", 1), newPhone("rep1-tablet", "rep1@demo.test", 2), newPhone("rep2", "rep2@demo.test", 3),
		newPhone("rep4-phone", "rep4@demo.test", 4), newPhone("rep4-tablet", "rep4@demo.test", 5), newPhone("rep5", "rep5@demo.test", 6),
	}
	managers := []*phone{newPhone("manager1", "manager1@demo.test", 7), newPhone("manager2", "manager2@demo.test", 8)}
	phones := append(slices.Clone(reps), managers...)
	for _, p := range phones {
		if err := p.login(); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range managers {
		body, _ := json.Marshal(map[string]any{"quiet_hours": nil, "daily_cap": 100})
		if status, b, err := m.do(http.MethodPut, "/v1/me/notification-preferences", body); err != nil || status != http.StatusOK {
			t.Fatalf("%s preferences: %d %s %v", m.name, status, b, err)
		}
		body, _ = json.Marshal(map[string]any{"token": "token-" + m.name, "platform": "android"})
		if status, b, err := m.do(http.MethodPut, "/v1/devices/current/push-token", body); err != nil || status != http.StatusNoContent {
			t.Fatalf("%s push token: %d %s %v", m.name, status, b, err)
		}
	}

	// Each rep's calls start six hours ago, 3 seconds apart (a rep logs
	// thousands in the test), in the order the rep's phones log them.
	var callMu sync.Mutex
	nextCall := map[string]time.Time{}
	callsAt := func(email string) func() time.Time {
		return func() time.Time {
			callMu.Lock()
			defer callMu.Unlock()
			at, ok := nextCall[email]
			if !ok {
				at = time.Now().UTC().Add(-6 * time.Hour).Truncate(time.Second)
			}
			nextCall[email] = at.Add(3 * time.Second)
			return at
		}
	}

	const syncFor = 25 * time.Second
	stopAt := time.Now().Add(syncFor)
	errs := make(chan error, len(phones))
	var wg sync.WaitGroup
	for _, p := range phones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				var accounts []uuid.UUID
				pg, err := p.pull("", p.local, func(c replicaChange) {
					if c.Entity == "accounts" && c.Op == "upsert" {
						accounts = append(accounts, c.ID)
					}
				})
				if err != nil {
					return fmt.Errorf("%s: %w", p.name, err)
				}
				p.cursor = pg.Cursor
				for time.Now().Before(stopAt) {
					if !slices.Contains(managers, p) {
						if len(accounts) == 0 {
							return fmt.Errorf("%s pulled no account", p.name)
						}
						if err := p.push(accounts, callsAt(p.email)); err != nil {
							return fmt.Errorf("%s: %w", p.name, err)
						}
					}
					if p.rng.IntN(2) == 0 || slices.Contains(managers, p) {
						pg, err := p.pull(p.cursor, p.local, nil)
						if err != nil {
							return fmt.Errorf("%s: %w", p.name, err)
						}
						p.cursor = pg.Cursor
					}
					time.Sleep(time.Duration(20+p.rng.IntN(100)) * time.Millisecond)
				}
				return nil
			}()
		}()
	}

	// The chaos: replica 1 is killed and restarted, then replica 0 is
	// stopped gracefully and stays down.
	time.Sleep(syncFor / 5)
	killed := rs.procs[1]
	if err := rs.signal(killed, syscall.SIGKILL); err == nil {
		t.Errorf("%s exited cleanly after SIGKILL", killed.name)
	}
	t.Logf("%s killed", killed.name)
	time.Sleep(time.Second)
	rs.start(killed)
	t.Logf("%s restarted", killed.name)
	time.Sleep(syncFor / 5)
	stopped := rs.procs[0]
	if err := rs.signal(stopped, syscall.SIGTERM); err != nil {
		t.Errorf("%s after SIGTERM: %v, want exit status 0", stopped.name, err)
	}
	if !strings.Contains(tail(stopped.log, 5), `"msg":"stopped"`) {
		t.Errorf("%s's log does not end with a clean stop:\n%s", stopped.name, tail(stopped.log, 5))
	}
	t.Logf("%s stopped", stopped.name)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every phone catches up, then compares its database with a full pull.
	pushed, retried := 0, 0
	for _, p := range phones {
		pg, err := p.pull(p.cursor, p.local, nil)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if pg.LastSeq != p.seq {
			t.Errorf("%s: last_seq %d, want %d", p.name, pg.LastSeq, p.seq)
		}
		full := map[string]int64{}
		seen := map[string]int{}
		notes := map[uuid.UUID]string{}
		if _, err := p.pull("", full, func(c replicaChange) {
			k := c.Entity + "/" + c.ID.String()
			seen[k]++
			if c.Entity == "visits" {
				var s string
				_ = json.Unmarshal(c.Data["notes"], &s)
				notes[c.ID] = s
			}
		}); err != nil {
			t.Fatalf("%s: full pull: %v", p.name, err)
		}
		for k, n := range seen {
			if n > 1 {
				t.Errorf("%s: a full pull returned %s %d times", p.name, k, n)
			}
		}
		if !maps.Equal(p.local, full) {
			t.Errorf("%s: its database (%d records) differs from a full pull (%d): %s", p.name, len(p.local), len(full), mapDiff(p.local, full))
		}
		// The effects of the phone's own mutations, and of the other
		// phone of the same rep.
		for _, q := range reps {
			if q.email != p.email {
				continue
			}
			for id, w := range q.owned {
				_, live := full["visits/"+id.String()]
				switch {
				case w.deleted && live:
					t.Errorf("%s: %s's visit %s, deleted, is still there", p.name, q.name, id)
				case !w.deleted && !live:
					t.Errorf("%s: %s's visit %s is missing", p.name, q.name, id)
				case !w.deleted && notes[id] != w.notes:
					t.Errorf("%s: %s's visit %s has notes %q, want %q", p.name, q.name, id, notes[id], w.notes)
				}
			}
		}
		pushed += int(p.seq)
		retried += p.retries
	}
	t.Logf("%d phones pushed %d mutations in %v; %d requests were retried", len(phones), pushed, syncFor, retried)

	// Notifications: once the live replicas' dispatchers have nothing
	// left, rows still leased belong to the killed replica; their lease
	// is made to lapse (the 2 minutes it lasts, passed) and a live replica
	// sends them.
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inFlight := func() (pending, sending int64) {
		t.Helper()
		row := db.Gorm().Raw(`SELECT COUNT(*) FILTER (WHERE status IN ('pending', 'deferred')), COUNT(*) FILTER (WHERE status = 'sending') FROM notifications`).Row()
		if err := row.Scan(&pending, &sending); err != nil {
			t.Fatal(err)
		}
		return pending, sending
	}
	deadline := time.Now().Add(30 * time.Second)
	var stillSending int64
	for quiet := 0; quiet < 4; {
		pending, sending := inFlight()
		if pending == 0 && sending == stillSending {
			quiet++
		} else {
			quiet = 0
		}
		stillSending = sending
		if time.Now().After(deadline) {
			t.Fatalf("notifications still in flight after 30 s: %d pending or deferred, %d sending", pending, sending)
		}
		time.Sleep(time.Second)
	}
	if stillSending > 0 {
		t.Logf("%d notifications were leased to the killed replica; their lease lapses", stillSending)
		if err := db.Gorm().Exec(`UPDATE notifications SET next_attempt_at = now() - interval '1 second' WHERE status = 'sending'`).Error; err != nil {
			t.Fatal(err)
		}
		for {
			if pending, sending := inFlight(); pending+sending == 0 {
				break
			}
			if time.Now().After(deadline.Add(30 * time.Second)) {
				t.Fatal("the notifications of the killed replica were not sent")
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	rows, err := db.Gorm().Raw(`SELECT n.id, n.dedupe_key, n.status, t.token FROM notifications n
		JOIN push_tokens t ON t.org_id = n.org_id AND t.user_id = n.user_id`).Rows()
	if err != nil {
		t.Fatal(err)
	}
	// Sent once; or, past the manager's daily cap (100 pushes), kept in
	// the inbox and never sent.
	want := map[string]int{}
	keys := map[string]int{}
	capped := 0
	for rows.Next() {
		var id, key, status, token string
		if err := rows.Scan(&id, &key, &status, &token); err != nil {
			t.Fatal(err)
		}
		switch status {
		case "sent":
			want[id+" "+token] = 1
		case "inbox_only":
			want[id+" "+token] = 0
			capped++
		default:
			t.Errorf("notification %s (%s): %s, want sent", id, key, status)
		}
		keys[key+" "+token]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(want) == 0 {
		t.Fatal("no notification was written: the test checks nothing")
	}
	for k, n := range keys {
		if n > 1 {
			t.Errorf("dedupe key %s: %d notifications", k, n)
		}
	}
	got := fcm.counts()
	for k, n := range want {
		if got[k] != n {
			t.Errorf("notification %s: sent %d times, want %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("FCM received %d messages %s that no notification row accounts for", n, k)
		}
	}
	t.Logf("%d notifications: %d sent, %d past the daily cap kept in the inbox; the whole test took %v",
		len(want), len(want)-capped, capped, time.Since(began).Round(time.Second))

	for _, r := range rs.procs[1:] {
		if err := rs.signal(r, syscall.SIGTERM); err != nil {
			t.Errorf("%s after SIGTERM: %v", r.name, err)
		}
	}
}

// mapDiff names a few records on which two replicas differ.
func mapDiff(got, want map[string]int64) string {
	var d []string
	for k, v := range got {
		if w, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("extra %s@%d", k, v))
		} else if w != v {
			d = append(d, fmt.Sprintf("%s at %d, server %d", k, v, w))
		}
	}
	for k, w := range want {
		if _, ok := got[k]; !ok {
			d = append(d, fmt.Sprintf("missing %s@%d", k, w))
		}
	}
	slices.Sort(d)
	return strings.Join(d[:min(len(d), 8)], "; ")
}
