package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
)

// The sync protocol's wire shapes, as a phone sees them.

type hlcStamp struct {
	MS      int64 `json:"ms"`
	Counter int64 `json:"counter"`
}

type mutation struct {
	Seq         int64          `json:"seq"`
	Entity      string         `json:"entity"`
	ID          string         `json:"id"`
	Op          string         `json:"op"`
	Fields      map[string]any `json:"fields,omitempty"`
	HLC         hlcStamp       `json:"hlc"`
	BaseVersion *int64         `json:"base_version,omitempty"`
}

type pushBody struct {
	SchemaVersion int        `json:"schema_version"`
	Mutations     []mutation `json:"mutations"`
}

type syncConflict struct {
	Field       string          `json:"field"`
	Kept        string          `json:"kept"`
	ServerValue json.RawMessage `json:"server_value"`
	ClientValue json.RawMessage `json:"client_value"`
}

func (c syncConflict) String() string {
	return c.Field + " kept=" + c.Kept + " server=" + string(c.ServerValue) + " client=" + string(c.ClientValue)
}

type syncRejectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

type pushResult struct {
	Seq          int64            `json:"seq"`
	Status       string           `json:"status"`
	Version      int64            `json:"version"`
	Conflicts    []syncConflict   `json:"conflicts"`
	Error        *syncRejectError `json:"error"`
	ClockClamped bool             `json:"clock_clamped"`
}

type pushResponse struct {
	LastSeq int64        `json:"last_seq"`
	Results []pushResult `json:"results"`
}

type syncChange struct {
	Entity  string                     `json:"entity"`
	ID      uuid.UUID                  `json:"id"`
	Op      string                     `json:"op"`
	Version int64                      `json:"version"`
	Data    map[string]json.RawMessage `json:"data"`
}

// str returns a string field of the record, or "" when null or absent.
func (c syncChange) str(field string) string {
	var s string
	_ = json.Unmarshal(c.Data[field], &s)
	return s
}

type syncRejection struct {
	Seq     int64     `json:"seq"`
	Entity  string    `json:"entity"`
	ID      uuid.UUID `json:"id"`
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Field   string    `json:"field"`
}

type pullResponse struct {
	Changes    []syncChange    `json:"changes"`
	Cursor     string          `json:"cursor"`
	HasMore    bool            `json:"has_more"`
	Reset      bool            `json:"reset"`
	LastSeq    int64           `json:"last_seq"`
	Rejections []syncRejection `json:"rejections"`
}

type conflictEntry struct {
	ID       uuid.UUID `json:"id"`
	Entity   string    `json:"entity"`
	RecordID uuid.UUID `json:"record_id"`
	syncConflict
	UserID   uuid.UUID `json:"user_id"`
	DeviceID uuid.UUID `json:"device_id"`
}

// Mutation builders. Seq is assigned by device.push unless set.

func upsertOf(entity string, id uuid.UUID, ms int64, fields map[string]any) mutation {
	if fields == nil {
		fields = map[string]any{}
	}
	return mutation{Entity: entity, ID: id.String(), Op: "upsert", Fields: fields, HLC: hlcStamp{MS: ms}}
}

func visitUpsert(id uuid.UUID, ms int64, fields map[string]any) mutation {
	return upsertOf("visits", id, ms, fields)
}

func deleteOf(entity string, id uuid.UUID, ms int64) mutation {
	return mutation{Entity: entity, ID: id.String(), Op: "delete", HLC: hlcStamp{MS: ms}}
}

// newVisit is a create of a visit on account.
func newVisit(id, account uuid.UUID, ms int64, extra map[string]any) mutation {
	f := map[string]any{"account_id": account.String()}
	for k, v := range extra {
		f[k] = v
	}
	return visitUpsert(id, ms, f)
}

// device is a logged-in phone that numbers its mutations.
type device struct {
	env *apitest.Env
	apitest.Session
	email string
	seq   int64
}

func newDevice(env *apitest.Env, email string) *device {
	env.T.Helper()
	return &device{env: env, Session: env.Login(email), email: email}
}

func newDeviceWithID(env *apitest.Env, email string, id uuid.UUID) *device {
	env.T.Helper()
	return &device{env: env, Session: env.LoginDevice(email, id), email: email}
}

// push numbers muts after the device's last seq and pushes them; the push
// must be answered 200 with one result per mutation.
func (d *device) push(t *testing.T, muts ...mutation) pushResponse {
	t.Helper()
	for i := range muts {
		d.seq++
		muts[i].Seq = d.seq
	}
	return pushOK(t, d.env, d.Access, muts)
}

// pushOne pushes one mutation and returns its result.
func (d *device) pushOne(t *testing.T, m mutation) pushResult {
	t.Helper()
	return d.push(t, m).Results[0]
}

func pushRequest(env *apitest.Env, token string, body any) *apitest.Response {
	env.T.Helper()
	return env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/sync/push", Token: token, Body: body})
}

func pushOK(t *testing.T, env *apitest.Env, token string, muts []mutation) pushResponse {
	t.Helper()
	res := pushRequest(env, token, pushBody{SchemaVersion: 1, Mutations: muts})
	apitest.Expect(t, res, http.StatusOK)
	var pr pushResponse
	res.JSON(t, &pr)
	if len(pr.Results) != len(muts) {
		t.Fatalf("push of %d mutations: %d results: %s", len(muts), len(pr.Results), res.Body)
	}
	for i, r := range pr.Results {
		if r.Seq != muts[i].Seq {
			t.Fatalf("result %d has seq %d, want %d", i, r.Seq, muts[i].Seq)
		}
	}
	return pr
}

func pullRequest(env *apitest.Env, token, query string) *apitest.Response {
	env.T.Helper()
	path := "/v1/sync/pull"
	if query != "" {
		path += "?" + query
	}
	return env.Do(apitest.Request{Method: http.MethodGet, Path: path, Token: token})
}

// pullPage pulls one page after cursor.
func pullPage(t *testing.T, env *apitest.Env, token, cursor string, limit int) pullResponse {
	t.Helper()
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	res := pullRequest(env, token, q.Encode())
	apitest.Expect(t, res, http.StatusOK)
	var pr pullResponse
	res.JSON(t, &pr)
	return pr
}

// replica is what a phone holds after pulling: each record once, at its
// latest state, by "entity/id".
type replica map[string]syncChange

func key(entity string, id uuid.UUID) string { return entity + "/" + id.String() }

// count returns the number of live records of an entity.
func (r replica) count(entity string) int {
	n := 0
	for _, c := range r {
		if c.Entity == entity && c.Op == "upsert" {
			n++
		}
	}
	return n
}

// live returns the live record, failing the test if it is absent or deleted.
func (r replica) live(t *testing.T, entity string, id uuid.UUID) syncChange {
	t.Helper()
	c, ok := r[key(entity, id)]
	if !ok || c.Op != "upsert" {
		t.Fatalf("%s %s: pulled %+v, want a live record", entity, id, c)
	}
	return c
}

// pullAll pulls everything token may see from the beginning, and the last
// page (for its last_seq and rejections).
func pullAll(t *testing.T, env *apitest.Env, token string) (replica, pullResponse) {
	t.Helper()
	out := replica{}
	cursor := ""
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatal("pull does not end")
		}
		pr := pullPage(t, env, token, cursor, 1000)
		if pr.Reset {
			t.Fatalf("pull from %q answered reset", cursor)
		}
		for _, c := range pr.Changes {
			out[key(c.Entity, c.ID)] = c
		}
		cursor = pr.Cursor
		if !pr.HasMore {
			return out, pr
		}
	}
}

// demoOrg is the seeded demo organisation as the tests need it.
type demoOrg struct {
	env   *apitest.Env
	users map[string]uuid.UUID // by email
	teams map[string]uuid.UUID // by name
	north []uuid.UUID          // North's accounts
	south []uuid.UUID          // South's accounts
	names map[uuid.UUID]string // account names
	owner map[uuid.UUID]string // accounts' owner_rep_id
	now   time.Time
	ms    int64 // now in HLC milliseconds
}

func newDemo(t *testing.T) *demoOrg {
	t.Helper()
	return newDemoWith(t, apitest.Options{})
}

// newDemoWith is newDemo on a server built with opt.
func newDemoWith(t *testing.T, opt apitest.Options) *demoOrg {
	t.Helper()
	env := apitest.New(t, opt)
	d := &demoOrg{env: env, users: map[string]uuid.UUID{}, teams: map[string]uuid.UUID{}, names: map[uuid.UUID]string{}, owner: map[uuid.UUID]string{}}
	admin := env.Login("admin@demo.test")

	res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/users", Token: admin.Access})
	apitest.Expect(t, res, http.StatusOK)
	var users struct {
		Users []struct {
			ID    uuid.UUID `json:"id"`
			Email string    `json:"email"`
		} `json:"users"`
	}
	res.JSON(t, &users)
	for _, u := range users.Users {
		d.users[u.Email] = u.ID
	}
	res = env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/teams", Token: admin.Access})
	apitest.Expect(t, res, http.StatusOK)
	var teams struct {
		Teams []struct {
			ID   uuid.UUID `json:"id"`
			Name string    `json:"name"`
		} `json:"teams"`
	}
	res.JSON(t, &teams)
	for _, tm := range teams.Teams {
		d.teams[tm.Name] = tm.ID
	}

	all, _ := pullAll(t, env, admin.Access)
	for _, c := range all {
		if c.Entity != "accounts" {
			continue
		}
		d.names[c.ID] = c.str("name")
		d.owner[c.ID] = c.str("owner_rep_id")
		switch c.str("team_id") {
		case d.teams["North"].String():
			d.north = append(d.north, c.ID)
		case d.teams["South"].String():
			d.south = append(d.south, c.ID)
		}
	}
	slices.SortFunc(d.north, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	slices.SortFunc(d.south, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	if len(d.users) != 9 || len(d.north) != 20 || len(d.south) != 20 {
		t.Fatalf("demo org: %d users, %d North and %d South accounts; want 9, 20, 20", len(d.users), len(d.north), len(d.south))
	}
	d.now = env.Clock.Now()
	d.ms = d.now.UnixMilli()
	return d
}

func statuses(rs []pushResult) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}

func conflictStrings(cs []syncConflict) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

// TestSyncPushExactlyOnce holds the exactly-once contract: whatever a
// flaky network does to a batch, each mutation has one effect.
func TestSyncPushExactlyOnce(t *testing.T) {
	d := newDemo(t)
	env := d.env
	account := d.north[0]

	t.Run("same batch twice", func(t *testing.T) {
		dev := newDevice(env, "rep1@demo.test")
		v1, v2, a1 := uuid.New(), uuid.New(), uuid.New()
		batch := []mutation{
			newVisit(v1, account, d.ms, map[string]any{"notes": "first"}),
			newVisit(v2, account, d.ms, nil),
			upsertOf("activities", a1, d.ms, map[string]any{"type": "crm_update", "occurred_at": d.now.Format(time.RFC3339)}),
		}
		first := dev.push(t, batch...)
		if got, want := statuses(first.Results), []string{"applied", "applied", "applied"}; !slices.Equal(got, want) {
			t.Fatalf("first push: statuses %q, want %q", got, want)
		}
		second := pushOK(t, env, dev.Access, batch)
		if got, want := statuses(second.Results), []string{"duplicate", "duplicate", "duplicate"}; !slices.Equal(got, want) {
			t.Errorf("second push: statuses %q, want %q", got, want)
		}
		if first.LastSeq != 3 || second.LastSeq != 3 {
			t.Errorf("last_seq %d then %d, want 3 and 3", first.LastSeq, second.LastSeq)
		}
		rep, last := pullAll(t, env, dev.Access)
		for i, k := range []string{key("visits", v1), key("visits", v2), key("activities", a1)} {
			c, ok := rep[k]
			if !ok {
				t.Errorf("%s: not pulled", k)
				continue
			}
			if c.Version != first.Results[i].Version {
				t.Errorf("%s: version %d, want %d (the first push's): applied twice?", k, c.Version, first.Results[i].Version)
			}
		}
		if got := rep.count("visits"); got != 2 {
			t.Errorf("pulled %d visits, want 2", got)
		}
		if last.LastSeq != 3 {
			t.Errorf("pull last_seq %d, want 3", last.LastSeq)
		}
	})

	t.Run("overlapping batches", func(t *testing.T) {
		dev := newDevice(env, "rep1@demo.test")
		ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()}
		var first []mutation
		for i := 0; i < 3; i++ {
			m := newVisit(ids[i], account, d.ms, map[string]any{"notes": fmt.Sprintf("visit %d", i+1)})
			m.Seq = int64(i + 1)
			first = append(first, m)
		}
		if got := statuses(pushOK(t, env, dev.Access, first).Results); !slices.Equal(got, []string{"applied", "applied", "applied"}) {
			t.Fatalf("seqs 1-3: statuses %q, want all applied", got)
		}
		// The replayed seqs 2 and 3 carry different content: not a retry
		// but a counter that went back, answered seq_reused and never
		// applied.
		var second []mutation
		for i := 1; i < 5; i++ {
			m := newVisit(ids[i], account, d.ms+1000, map[string]any{"notes": fmt.Sprintf("replayed %d", i+1)})
			if i >= 3 {
				m.Fields["notes"] = fmt.Sprintf("visit %d", i+1)
			}
			m.Seq = int64(i + 1)
			second = append(second, m)
		}
		pr := pushOK(t, env, dev.Access, second)
		if got, want := statuses(pr.Results), []string{"rejected", "rejected", "applied", "applied"}; !slices.Equal(got, want) {
			t.Errorf("seqs 2-5: statuses %q, want %q", got, want)
		}
		for _, r := range pr.Results[:2] {
			if r.Error == nil || r.Error.Code != "seq_reused" {
				t.Errorf("seq %d: error %+v, want seq_reused", r.Seq, r.Error)
			}
		}
		if pr.LastSeq != 5 {
			t.Errorf("last_seq %d, want 5", pr.LastSeq)
		}
		rep, last := pullAll(t, env, dev.Access)
		for i, id := range ids {
			if got, want := rep.live(t, "visits", id).str("notes"), fmt.Sprintf("visit %d", i+1); got != want {
				t.Errorf("visit %d: notes %q, want %q", i+1, got, want)
			}
		}
		if last.LastSeq != 5 {
			t.Errorf("pull last_seq %d, want 5", last.LastSeq)
		}
	})

	t.Run("lost response", func(t *testing.T) {
		dev := newDevice(env, "rep2@demo.test")
		v := uuid.New()
		batch := []mutation{
			newVisit(v, account, d.ms, map[string]any{"referrals": 1}),
			visitUpsert(v, d.ms+1, map[string]any{"notes": "second", "referrals": 2}),
		}
		batch[0].Seq, batch[1].Seq = 1, 2
		// The response is lost on the way back: the phone only knows it
		// sent the batch, and sends it again.
		apitest.Expect(t, pushRequest(env, dev.Access, pushBody{SchemaVersion: 1, Mutations: batch}), http.StatusOK)
		pr := pushOK(t, env, dev.Access, batch)
		if got, want := statuses(pr.Results), []string{"duplicate", "duplicate"}; !slices.Equal(got, want) {
			t.Errorf("retry: statuses %q, want %q", got, want)
		}
		rep, last := pullAll(t, env, dev.Access)
		if got := rep.count("visits"); got != 1 {
			t.Errorf("pulled %d visits, want 1", got)
		}
		c := rep.live(t, "visits", v)
		if got := string(c.Data["referrals"]); got != "2" {
			t.Errorf("referrals %s, want 2", got)
		}
		if got := c.str("notes"); got != "second" {
			t.Errorf("notes %q, want %q", got, "second")
		}
		if last.LastSeq != 2 {
			t.Errorf("pull last_seq %d, want 2", last.LastSeq)
		}
	})

	t.Run("two copies pushed concurrently", func(t *testing.T) {
		dev := newDevice(env, "rep3@demo.test")
		var visits []uuid.UUID
		const rounds = 5
		for round := 0; round < rounds; round++ {
			v, w := uuid.New(), uuid.New()
			visits = append(visits, v)
			base := int64(round * 4)
			batch := []mutation{
				newVisit(v, account, d.ms, map[string]any{"referrals": 1}),
				visitUpsert(v, d.ms+1, map[string]any{"notes": "second", "referrals": 2}),
				newVisit(w, account, d.ms, nil),
				deleteOf("visits", w, d.ms+1),
			}
			for i := range batch {
				batch[i].Seq = base + int64(i) + 1
			}
			raw, err := json.Marshal(pushBody{SchemaVersion: 1, Mutations: batch})
			if err != nil {
				t.Fatal(err)
			}
			replies := make([]rawReply, 2)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range replies {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					replies[i] = postRaw(env, dev.Access, "/v1/sync/push", raw)
				}()
			}
			close(start)
			wg.Wait()

			applied := 0
			for i, r := range replies {
				if r.err != nil {
					t.Fatalf("round %d, copy %d: %v", round, i, r.err)
				}
				apitest.CheckSpec(t, r.req, raw, r.res)
				apitest.Expect(t, r.res, http.StatusOK)
				var pr pushResponse
				r.res.JSON(t, &pr)
				if pr.LastSeq != base+4 {
					t.Errorf("round %d, copy %d: last_seq %d, want %d", round, i, pr.LastSeq, base+4)
				}
				for _, res := range pr.Results {
					switch res.Status {
					case "applied":
						applied++
					case "duplicate":
					default:
						t.Errorf("round %d, copy %d: seq %d %s, want applied or duplicate: %s", round, i, res.Seq, res.Status, r.res.Body)
					}
				}
			}
			if applied != len(batch) {
				t.Errorf("round %d: %d mutations applied over both copies, want %d (each exactly once)", round, applied, len(batch))
			}
		}
		rep, last := pullAll(t, env, dev.Access)
		if got := rep.count("visits"); got != rounds {
			t.Errorf("pulled %d live visits, want %d", got, rounds)
		}
		for _, v := range visits {
			c := rep.live(t, "visits", v)
			if got := string(c.Data["referrals"]); got != "2" {
				t.Errorf("visit %s: referrals %s, want 2", v, got)
			}
			if got := c.str("notes"); got != "second" {
				t.Errorf("visit %s: notes %q, want second", v, got)
			}
		}
		if last.LastSeq != rounds*4 {
			t.Errorf("pull last_seq %d, want %d", last.LastSeq, rounds*4)
		}
		res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/sync/conflicts", Token: dev.Access})
		apitest.Expect(t, res, http.StatusOK)
		var cs struct {
			Conflicts []conflictEntry `json:"conflicts"`
		}
		res.JSON(t, &cs)
		if len(cs.Conflicts) != 0 {
			t.Errorf("conflicts %+v, want none: a replay is not a concurrent edit", cs.Conflicts)
		}
	})
}

type rawReply struct {
	res *apitest.Response
	req *http.Request
	err error
}

// postRaw posts a JSON body without failing the test, so that it may run
// on any goroutine. The caller checks the reply against the spec.
func postRaw(env *apitest.Env, token, path string, body []byte) rawReply {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, env.Server.URL+path, bytes.NewReader(body))
	if err != nil {
		return rawReply{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := env.Server.Client().Do(req)
	if err != nil {
		return rawReply{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return rawReply{err: err}
	}
	res.Request = req
	return rawReply{res: &apitest.Response{Response: res, Body: b}, req: req}
}

// TestSyncMerge holds the conflict policy over HTTP: rep1 on two phones
// (devLow's id sorts before devHigh's) and their manager edit one visit
// concurrently, offline; the second write is pushed after the first.
func TestSyncMerge(t *testing.T) {
	d := newDemo(t)
	env := d.env
	low := newDeviceWithID(env, "rep1@demo.test", uuid.MustParse("10000000-0000-4000-8000-000000000001"))
	high := newDeviceWithID(env, "rep1@demo.test", uuid.MustParse("20000000-0000-4000-8000-000000000002"))
	mgr := newDevice(env, "manager1@demo.test")
	t0 := d.ms - 60_000 // the visit was created a minute ago

	type write struct {
		dev     *device
		del     bool
		fields  map[string]any
		ms      int64 // HLC ms
		counter int64
		// base sends base_version: the version of the visit as created.
		base bool
	}
	tests := []struct {
		name        string
		first       write
		second      write
		wantClamped [2]bool
		wantStatus  string // of the second write
		// wantConflicts of the second write, as "field kept=… server=… client=…".
		wantConflicts []string
		wantDeleted   bool
		wantData      map[string]string // raw JSON of fields after both
	}{
		{
			name:       "different fields edited concurrently both survive",
			first:      write{dev: low, fields: map[string]any{"notes": "from low"}, ms: t0 + 2000},
			second:     write{dev: high, fields: map[string]any{"outcome": "meeting"}, ms: t0 + 1000},
			wantStatus: "applied",
			wantData:   map[string]string{"notes": `"from low"`, "outcome": `"meeting"`},
		},
		{
			name:       "rep and manager edit different fields: both survive",
			first:      write{dev: mgr, fields: map[string]any{"notes": "coach: ask for the order"}, ms: t0 + 2000},
			second:     write{dev: low, fields: map[string]any{"referrals": 2}, ms: t0 + 1000},
			wantStatus: "applied",
			wantData:   map[string]string{"notes": `"coach: ask for the order"`, "referrals": `2`},
		},
		{
			name:       "same field: the later stamp wins when pushed last",
			first:      write{dev: low, fields: map[string]any{"notes": "from low"}, ms: t0 + 1000},
			second:     write{dev: high, fields: map[string]any{"notes": "from high"}, ms: t0 + 2000},
			wantStatus: "applied",
			wantData:   map[string]string{"notes": `"from high"`},
		},
		{
			name:          "same field: the later stamp wins when pushed first",
			first:         write{dev: low, fields: map[string]any{"notes": "from low"}, ms: t0 + 2000},
			second:        write{dev: high, fields: map[string]any{"notes": "from high"}, ms: t0 + 1000},
			wantStatus:    "merged",
			wantConflicts: []string{`notes kept=server server="from low" client="from high"`},
			wantData:      map[string]string{"notes": `"from low"`},
		},
		{
			name:          "same ms: the higher counter wins",
			first:         write{dev: low, fields: map[string]any{"notes": "from low"}, ms: t0 + 1000, counter: 5},
			second:        write{dev: high, fields: map[string]any{"notes": "from high"}, ms: t0 + 1000, counter: 4},
			wantStatus:    "merged",
			wantConflicts: []string{`notes kept=server server="from low" client="from high"`},
			wantData:      map[string]string{"notes": `"from low"`},
		},
		{
			name:       "same ms and counter: the higher device id wins (pushed last)",
			first:      write{dev: low, fields: map[string]any{"notes": "from low"}, ms: t0 + 1000},
			second:     write{dev: high, fields: map[string]any{"notes": "from high"}, ms: t0 + 1000},
			wantStatus: "applied",
			wantData:   map[string]string{"notes": `"from high"`},
		},
		{
			name:          "same ms and counter: the higher device id wins (pushed first)",
			first:         write{dev: high, fields: map[string]any{"notes": "from high"}, ms: t0 + 1000},
			second:        write{dev: low, fields: map[string]any{"notes": "from low"}, ms: t0 + 1000},
			wantStatus:    "merged",
			wantConflicts: []string{`notes kept=server server="from high" client="from low"`},
			wantData:      map[string]string{"notes": `"from high"`},
		},
		{
			name:       "equal values are no conflict",
			first:      write{dev: low, fields: map[string]any{"notes": "same"}, ms: t0 + 2000},
			second:     write{dev: high, fields: map[string]any{"notes": "same"}, ms: t0 + 1000},
			wantStatus: "applied",
			wantData:   map[string]string{"notes": `"same"`},
		},
		{
			// high saw the visit as created, not low's edit: its later write
			// wins, and low's lost edit is reported.
			name:          "base_version older than another device's edit: kept client",
			first:         write{dev: low, fields: map[string]any{"notes": "from low"}, ms: t0 + 1000},
			second:        write{dev: high, fields: map[string]any{"notes": "from high"}, ms: t0 + 2000, base: true},
			wantStatus:    "merged",
			wantConflicts: []string{`notes kept=client server="from low" client="from high"`},
			wantData:      map[string]string{"notes": `"from high"`},
		},
		{
			name:       "base_version older than the same device's edit: no conflict",
			first:      write{dev: low, fields: map[string]any{"notes": "first draft"}, ms: t0 + 1000},
			second:     write{dev: low, fields: map[string]any{"notes": "second draft"}, ms: t0 + 2000, base: true},
			wantStatus: "applied",
			wantData:   map[string]string{"notes": `"second draft"`},
		},
		{
			name:          "delete against a later concurrent update: delete wins, the update reported",
			first:         write{dev: mgr, fields: map[string]any{"notes": "coach note"}, ms: t0 + 2000},
			second:        write{dev: high, del: true, ms: t0 + 1000},
			wantStatus:    "merged",
			wantConflicts: []string{`notes kept=client server="coach note" client=null`},
			wantDeleted:   true,
		},
		{
			name:          "update after delete: delete wins, record unchanged",
			first:         write{dev: low, del: true, ms: t0 + 1000},
			second:        write{dev: high, fields: map[string]any{"notes": "too late", "outcome": "order"}, ms: t0 + 2000},
			wantStatus:    "merged",
			wantConflicts: []string{`_deleted kept=server server=true client=["notes","outcome"]`},
			wantDeleted:   true,
		},
		{
			// low's clock is an hour fast: its stamp is clamped to receipt
			// time, so it cannot win every later edit for an hour.
			name:        "a clock far ahead is clamped and flagged",
			first:       write{dev: low, fields: map[string]any{"notes": "from the future"}, ms: d.ms + time.Hour.Milliseconds()},
			second:      write{dev: high, fields: map[string]any{"notes": "from high"}, ms: d.ms + 60_000},
			wantClamped: [2]bool{true, false},
			wantStatus:  "applied",
			wantData:    map[string]string{"notes": `"from high"`},
		},
		{
			name:          "a clock exactly 5 minutes ahead is trusted",
			first:         write{dev: low, fields: map[string]any{"notes": "from low"}, ms: d.ms + 5*60_000},
			second:        write{dev: high, fields: map[string]any{"notes": "from high"}, ms: d.ms + 4*60_000},
			wantStatus:    "merged",
			wantConflicts: []string{`notes kept=server server="from low" client="from high"`},
			wantData:      map[string]string{"notes": `"from low"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			visit := uuid.New()
			created := low.pushOne(t, newVisit(visit, d.north[0], t0, nil))
			if created.Status != "applied" {
				t.Fatalf("create: %+v", created)
			}
			for i, w := range []write{tt.first, tt.second} {
				m := visitUpsert(visit, w.ms, w.fields)
				if w.del {
					m = deleteOf("visits", visit, w.ms)
				}
				m.HLC.Counter = w.counter
				if w.base {
					m.BaseVersion = &created.Version
				}
				r := w.dev.pushOne(t, m)
				if r.ClockClamped != tt.wantClamped[i] {
					t.Errorf("write %d: clock_clamped %t, want %t", i+1, r.ClockClamped, tt.wantClamped[i])
				}
				if i == 0 {
					if r.Status != "applied" {
						t.Fatalf("first write: %+v, want applied", r)
					}
					continue
				}
				if r.Status != tt.wantStatus {
					t.Errorf("second write: status %q, want %q (%+v)", r.Status, tt.wantStatus, r)
				}
				want := tt.wantConflicts
				if want == nil {
					want = []string{}
				}
				if got := conflictStrings(r.Conflicts); !slices.Equal(got, want) {
					t.Errorf("second write: conflicts %q, want %q", got, want)
				}
				if r.Version == 0 {
					t.Errorf("second write: no version")
				}
			}
			rep, _ := pullAll(t, env, mgr.Access)
			c, ok := rep[key("visits", visit)]
			if !ok {
				t.Fatalf("visit not pulled")
			}
			if got, want := c.Op, map[bool]string{true: "delete", false: "upsert"}[tt.wantDeleted]; got != want {
				t.Fatalf("pulled op %q, want %q", got, want)
			}
			for field, want := range tt.wantData {
				if got := string(c.Data[field]); got != want {
					t.Errorf("%s = %s, want %s", field, got, want)
				}
			}
		})
	}
}

// TestSyncConflictsVisibility holds who may read a recorded conflict: the
// rep whose record it is and their manager (and admins), nobody else.
func TestSyncConflictsVisibility(t *testing.T) {
	d := newDemo(t)
	env := d.env
	phone := newDevice(env, "rep1@demo.test")
	tablet := newDevice(env, "rep1@demo.test")
	visit := uuid.New()
	phone.pushOne(t, newVisit(visit, d.north[0], d.ms-60_000, nil))
	phone.pushOne(t, visitUpsert(visit, d.ms-2000, map[string]any{"notes": "phone"}))
	r := tablet.pushOne(t, visitUpsert(visit, d.ms-3000, map[string]any{"notes": "tablet"}))
	if r.Status != "merged" || len(r.Conflicts) != 1 || r.Conflicts[0].Kept != "server" {
		t.Fatalf("tablet's push: %+v, want merged with one kept:server conflict", r)
	}

	tests := []struct {
		email string
		want  bool
	}{
		{"rep1@demo.test", true},
		{"manager1@demo.test", true},
		{"admin@demo.test", true},
		{"rep2@demo.test", false}, // a teammate sees the rep's visits no more than their conflicts
		{"manager2@demo.test", false},
		{"rep4@demo.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			s := env.Login(tt.email)
			res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/sync/conflicts", Token: s.Access})
			apitest.Expect(t, res, http.StatusOK)
			var out struct {
				Conflicts []conflictEntry `json:"conflicts"`
			}
			res.JSON(t, &out)
			var found []conflictEntry
			for _, c := range out.Conflicts {
				if c.RecordID == visit {
					found = append(found, c)
				}
			}
			if !tt.want {
				if len(out.Conflicts) != 0 {
					t.Errorf("conflicts %+v, want none", out.Conflicts)
				}
				return
			}
			if len(found) != 1 {
				t.Fatalf("%d conflicts on the visit, want 1: %s", len(found), res.Body)
			}
			c := found[0]
			if got, want := c.String(), `notes kept=server server="phone" client="tablet"`; got != want {
				t.Errorf("conflict %s, want %s", got, want)
			}
			// Device ids are shown to their own user only: another's would
			// let the caller log in as that device (issue 13.11).
			wantDevice := uuid.Nil
			if tt.email == "rep1@demo.test" {
				wantDevice = tablet.DeviceID
			}
			if c.Entity != "visits" || c.UserID != d.users["rep1@demo.test"] || c.DeviceID != wantDevice {
				t.Errorf("conflict entity %q user %s device %s, want visits, rep1 %s, device %s",
					c.Entity, c.UserID, c.DeviceID, d.users["rep1@demo.test"], wantDevice)
			}
			if wantDevice == uuid.Nil && strings.Contains(string(res.Body), tablet.DeviceID.String()) {
				t.Errorf("%s's conflicts name rep1's device: %s", tt.email, res.Body)
			}
		})
	}
}

// TestSyncRejections pushes one batch mixing good mutations with every kind
// of bad one: each bad one is rejected on its own with a stable code naming
// the field, the good ones apply, and the next pull repeats the rejections.
func TestSyncRejections(t *testing.T) {
	d := newDemo(t)
	env := d.env
	dev := newDevice(env, "rep1@demo.test")
	rep2 := d.users["rep2@demo.test"]
	acct := d.north[1].String()
	visit := func(extra map[string]any) map[string]any {
		f := map[string]any{"account_id": acct}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}
	tests := []struct {
		name      string
		entity    string
		fields    map[string]any
		wantCode  string // "" means applied
		wantField string
	}{
		{name: "good visit", entity: "visits", fields: visit(map[string]any{"notes": "fine"})},
		{name: "own rep_id", entity: "visits", fields: visit(map[string]any{"rep_id": d.users["rep1@demo.test"].String()})},
		// The rep's own team is what the server sets: ignored, not rejected.
		{name: "own team_id", entity: "visits", fields: visit(map[string]any{"team_id": d.teams["North"].String()})},
		{name: "team_id", entity: "visits", fields: visit(map[string]any{"team_id": d.teams["South"].String()}), wantCode: "server_owned_field", wantField: "team_id"},
		{name: "version", entity: "visits", fields: visit(map[string]any{"version": 99}), wantCode: "server_owned_field", wantField: "version"},
		{name: "created_at", entity: "visits", fields: visit(map[string]any{"created_at": d.now.Add(-time.Hour).Format(time.RFC3339)}), wantCode: "server_owned_field", wantField: "created_at"},
		{name: "updated_at", entity: "visits", fields: visit(map[string]any{"updated_at": d.now.Add(-time.Hour).Format(time.RFC3339)}), wantCode: "server_owned_field", wantField: "updated_at"},
		{name: "another rep's rep_id", entity: "visits", fields: visit(map[string]any{"rep_id": rep2.String()}), wantCode: "server_owned_field", wantField: "rep_id"},
		{name: "possible_duplicate_of", entity: "accounts", fields: map[string]any{"name": "Dup Test", "possible_duplicate_of": d.north[2].String()}, wantCode: "server_owned_field", wantField: "possible_duplicate_of"},
		{name: "account team_id", entity: "accounts", fields: map[string]any{"name": "Team Test", "team_id": d.teams["South"].String()}, wantCode: "server_owned_field", wantField: "team_id"},
		{name: "unknown field", entity: "visits", fields: visit(map[string]any{"mood": "great"}), wantCode: "unknown_field", wantField: "mood"},
		{name: "hidden field", entity: "accounts", fields: map[string]any{"name": "Hidden Test", "name_key": "x"}, wantCode: "unknown_field", wantField: "name_key"},
		{name: "latitude 91", entity: "visits", fields: visit(map[string]any{"check_in_lat": 91, "check_in_lng": 10}), wantCode: "invalid_value", wantField: "check_in_lat"},
		{name: "latitude without longitude", entity: "visits", fields: visit(map[string]any{"check_in_lat": 45}), wantCode: "invalid_value", wantField: "check_in_lng"},
		{name: "order_value with three decimals", entity: "visits", fields: visit(map[string]any{"outcome": "order", "order_value": json.Number("1.234")}), wantCode: "invalid_value", wantField: "order_value"},
		{name: "negative order_value", entity: "visits", fields: visit(map[string]any{"outcome": "order", "order_value": -5}), wantCode: "invalid_value", wantField: "order_value"},
		{name: "order_value without an order", entity: "visits", fields: visit(map[string]any{"order_value": 10}), wantCode: "invalid_value", wantField: "order_value"},
		{name: "bad enum", entity: "visits", fields: visit(map[string]any{"kind": "walk_in"}), wantCode: "invalid_value", wantField: "kind"},
		{name: "started_at far in the future", entity: "visits", fields: visit(map[string]any{"started_at": d.now.Add(48 * time.Hour).Format(time.RFC3339)}), wantCode: "invalid_value", wantField: "started_at"},
		{name: "started_at not RFC 3339", entity: "visits", fields: visit(map[string]any{"started_at": "yesterday"}), wantCode: "invalid_value", wantField: "started_at"},
		{name: "ended before started", entity: "visits", fields: visit(map[string]any{"started_at": d.now.Add(-time.Hour).Format(time.RFC3339), "ended_at": d.now.Add(-2 * time.Hour).Format(time.RFC3339)}), wantCode: "invalid_value", wantField: "ended_at"},
		{name: "account_id not a UUID", entity: "visits", fields: map[string]any{"account_id": "acct-1"}, wantCode: "invalid_value", wantField: "account_id"},
		{name: "account_id null", entity: "visits", fields: map[string]any{"account_id": nil}, wantCode: "invalid_value", wantField: "account_id"},
		{name: "missing account_id", entity: "visits", fields: map[string]any{"notes": "where?"}, wantCode: "missing_required_field", wantField: "account_id"},
		{name: "referrals not whole", entity: "visits", fields: visit(map[string]any{"referrals": 1.5}), wantCode: "invalid_value", wantField: "referrals"},
		{name: "notes too long", entity: "visits", fields: visit(map[string]any{"notes": strings.Repeat("x", 4001)}), wantCode: "invalid_value", wantField: "notes"},
		{name: "activity without occurred_at", entity: "activities", fields: map[string]any{"type": "networking"}, wantCode: "missing_required_field", wantField: "occurred_at"},
		{name: "good activity", entity: "activities", fields: map[string]any{"type": "networking", "occurred_at": d.now.Add(-time.Hour).Format(time.RFC3339)}},
		{name: "good account", entity: "accounts", fields: map[string]any{"name": "Brand New Prospect", "lat": 45.1, "lng": -93.1}},
	}
	muts := make([]mutation, len(tests))
	ids := make([]uuid.UUID, len(tests))
	for i, tt := range tests {
		ids[i] = uuid.New()
		muts[i] = upsertOf(tt.entity, ids[i], d.ms, tt.fields)
	}
	pr := dev.push(t, muts...)
	if pr.LastSeq != int64(len(tests)) {
		t.Errorf("last_seq %d, want %d: a rejection is final and the seq moves past it", pr.LastSeq, len(tests))
	}
	rep, last := pullAll(t, env, dev.Access)
	if last.LastSeq != int64(len(tests)) {
		t.Errorf("pull last_seq %d, want %d", last.LastSeq, len(tests))
	}
	pulled := map[int64]syncRejection{}
	for _, r := range last.Rejections {
		pulled[r.Seq] = r
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := pr.Results[i]
			_, stored := rep[key(tt.entity, ids[i])]
			rj, inPull := pulled[muts[i].Seq]
			if tt.wantCode == "" {
				if r.Status != "applied" || r.Error != nil {
					t.Fatalf("result %+v (error %+v), want applied", r, r.Error)
				}
				if !stored {
					t.Errorf("applied, but not pulled")
				}
				if inPull {
					t.Errorf("pull lists a rejection %+v for an applied mutation", rj)
				}
				return
			}
			if r.Status != "rejected" || r.Error == nil {
				t.Fatalf("result %+v, want rejected %s", r, tt.wantCode)
			}
			if r.Error.Code != tt.wantCode || r.Error.Field != tt.wantField {
				t.Errorf("error %+v, want code %q naming %q", *r.Error, tt.wantCode, tt.wantField)
			}
			if r.Error.Message == "" {
				t.Errorf("error has no message")
			}
			if r.Version != 0 {
				t.Errorf("rejected with version %d", r.Version)
			}
			if stored {
				t.Errorf("rejected, but pulled: %+v", rep[key(tt.entity, ids[i])])
			}
			if !inPull {
				t.Fatalf("rejection not in the next pull's rejections")
			}
			if rj.Code != tt.wantCode || rj.Field != tt.wantField || rj.ID != ids[i] || rj.Entity != tt.entity || rj.Message != r.Error.Message {
				t.Errorf("pulled rejection %+v, want code %q field %q %s %s, message %q", rj, tt.wantCode, tt.wantField, tt.entity, ids[i], r.Error.Message)
			}
		})
	}
	// The good visit was pushed with its rep_id left to the server.
	if got := rep.live(t, "visits", ids[0]).str("rep_id"); got != d.users["rep1@demo.test"].String() {
		t.Errorf("rep_id %q, want rep1's %s", got, d.users["rep1@demo.test"])
	}
}

// TestSyncScope holds who pulls what: reps their own visits and activities
// and their team's accounts, managers their team, admins the organisation,
// and another organisation nothing.
func TestSyncScope(t *testing.T) {
	d := newDemo(t)
	env := d.env
	ctx := context.Background()

	// A second organisation, with its own admin.
	hash, err := env.Passwords.Hash(demo.Password)
	if err != nil {
		t.Fatal(err)
	}
	now := env.Clock.Now()
	other := models.Org{ID: uuid.New(), Name: "Other Co", CreatedAt: now}
	if err := env.DB.People().CreateOrg(ctx, other, models.User{OrgID: other.ID, ID: uuid.New(), Email: "admin@other.test", Name: "Olive Other",
		Role: models.RoleAdmin, Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}

	// Each rep logs visits; rep1 also an activity and a new account.
	owned := map[string][]string{} // email → keys of records they created
	write := func(email string, muts ...mutation) {
		t.Helper()
		dev := newDevice(env, email)
		for _, r := range dev.push(t, muts...).Results {
			if r.Status != "applied" {
				t.Fatalf("%s: %+v", email, r)
			}
		}
		for _, m := range muts {
			owned[email] = append(owned[email], m.Entity+"/"+m.ID)
		}
	}
	newAccount := uuid.New()
	write("rep1@demo.test",
		newVisit(uuid.New(), d.north[0], d.ms, nil),
		newVisit(uuid.New(), d.north[1], d.ms, nil),
		upsertOf("activities", uuid.New(), d.ms, map[string]any{"type": "referral", "occurred_at": d.now.Format(time.RFC3339)}),
		upsertOf("accounts", newAccount, d.ms, map[string]any{"name": "Fresh Prospect"}),
	)
	write("rep2@demo.test", newVisit(uuid.New(), d.north[2], d.ms, map[string]any{"notes": "rep2's call"}))
	write("rep4@demo.test", newVisit(uuid.New(), d.south[0], d.ms, map[string]any{"notes": "rep4's call"}))
	write("admin@other.test", upsertOf("accounts", uuid.New(), d.ms, map[string]any{"name": "Other Co's customer"}))

	keysOf := func(emails ...string) []string {
		var out []string
		for _, e := range emails {
			out = append(out, owned[e]...)
		}
		return out
	}
	accountKeys := func(ids []uuid.UUID) []string {
		var out []string
		for _, id := range ids {
			out = append(out, key("accounts", id))
		}
		return out
	}
	north := append(accountKeys(d.north), key("accounts", newAccount))
	south := accountKeys(d.south)

	tests := []struct {
		email string
		want  []string // every record key the user pulls
	}{
		{"rep1@demo.test", append(slices.Clone(north), slices.DeleteFunc(keysOf("rep1@demo.test"), func(k string) bool { return strings.HasPrefix(k, "accounts/") })...)},
		{"rep2@demo.test", append(slices.Clone(north), keysOf("rep2@demo.test")...)},
		{"rep3@demo.test", slices.Clone(north)},
		{"manager1@demo.test", append(slices.Clone(north), slices.DeleteFunc(keysOf("rep1@demo.test", "rep2@demo.test"), func(k string) bool { return k == key("accounts", newAccount) })...)},
		{"rep4@demo.test", append(slices.Clone(south), keysOf("rep4@demo.test")...)},
		{"manager2@demo.test", append(slices.Clone(south), keysOf("rep4@demo.test")...)},
		{"admin@demo.test", append(append(slices.Clone(north), south...), slices.DeleteFunc(keysOf("rep1@demo.test", "rep2@demo.test", "rep4@demo.test"), func(k string) bool { return k == key("accounts", newAccount) })...)},
		{"admin@other.test", keysOf("admin@other.test")},
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			s := env.Login(tt.email)
			rep, _ := pullAll(t, env, s.Access)
			var got []string
			for k := range rep {
				got = append(got, k)
			}
			want := slices.Compact(slices.Sorted(slices.Values(tt.want)))
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("pulled %d records, want %d:\nunexpected %q\nmissing    %q", len(got), len(want), minus(got, want), minus(want, got))
			}
		})
	}
}

// minus returns the elements of a not in b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestSyncWritesOutsideScope holds that nobody writes what they may not see,
// and that the rejection tells them nothing about it.
func TestSyncWritesOutsideScope(t *testing.T) {
	d := newDemo(t)
	env := d.env
	ctx := context.Background()
	const secret = "Confidential South deal"
	rep4 := newDevice(env, "rep4@demo.test")
	rep4Visit := uuid.New()
	if r := rep4.pushOne(t, newVisit(rep4Visit, d.south[0], d.ms, map[string]any{"notes": secret})); r.Status != "applied" {
		t.Fatalf("rep4's visit: %+v", r)
	}
	rep2 := newDevice(env, "rep2@demo.test")
	rep2Visit := uuid.New()
	if r := rep2.pushOne(t, newVisit(rep2Visit, d.north[0], d.ms, map[string]any{"notes": secret})); r.Status != "applied" {
		t.Fatalf("rep2's visit: %+v", r)
	}

	hash, err := env.Passwords.Hash(demo.Password)
	if err != nil {
		t.Fatal(err)
	}
	now := env.Clock.Now()
	other := models.Org{ID: uuid.New(), Name: "Other Co", CreatedAt: now}
	if err := env.DB.People().CreateOrg(ctx, other, models.User{OrgID: other.ID, ID: uuid.New(), Email: "admin@other.test", Name: "Olive Other",
		Role: models.RoleAdmin, Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}

	southName := d.names[d.south[0]]
	tests := []struct {
		name      string
		email     string
		m         mutation
		wantCode  string
		wantField string
	}{
		{"rep1 updates rep4's visit", "rep1@demo.test", visitUpsert(rep4Visit, d.ms+1000, map[string]any{"notes": "mine now"}), "not_found", ""},
		{"rep1 deletes rep4's visit", "rep1@demo.test", deleteOf("visits", rep4Visit, d.ms+1000), "not_found", ""},
		{"rep1 updates a teammate's visit", "rep1@demo.test", visitUpsert(rep2Visit, d.ms+1000, map[string]any{"notes": "mine now"}), "not_found", ""},
		{"rep1 updates a South account", "rep1@demo.test", upsertOf("accounts", d.south[0], d.ms+1000, map[string]any{"name": "Renamed"}), "not_found", ""},
		{"rep1 deletes a South account", "rep1@demo.test", deleteOf("accounts", d.south[0], d.ms+1000), "not_found", ""},
		{"rep1 logs a visit on a South account", "rep1@demo.test", newVisit(uuid.New(), d.south[0], d.ms, nil), "invalid_value", "account_id"},
		{"rep1 moves their visit to a South account", "rep1@demo.test", visitUpsert(uuid.Nil, d.ms+1000, map[string]any{"account_id": d.south[0].String()}), "invalid_value", "account_id"},
		{"manager2 updates rep1's team's account", "manager2@demo.test", upsertOf("accounts", d.north[0], d.ms+1000, map[string]any{"notes": "poach"}), "not_found", ""},
		{"manager2 updates rep2's visit", "manager2@demo.test", visitUpsert(rep2Visit, d.ms+1000, map[string]any{"notes": "poach"}), "not_found", ""},
		{"another org logs a visit on a demo account", "admin@other.test", newVisit(uuid.New(), d.north[0], d.ms, nil), "invalid_value", "account_id"},
		{"another org deletes a demo visit", "admin@other.test", deleteOf("visits", rep2Visit, d.ms+1000), "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := newDevice(env, tt.email)
			if tt.m.ID == uuid.Nil.String() {
				// A visit of the writer's own, to move.
				own := uuid.New()
				if r := dev.pushOne(t, newVisit(own, d.north[3], d.ms, nil)); r.Status != "applied" {
					t.Fatalf("own visit: %+v", r)
				}
				tt.m.ID = own.String()
			}
			r := dev.pushOne(t, tt.m)
			if r.Status != "rejected" || r.Error == nil {
				t.Fatalf("result %+v, want rejected %s", r, tt.wantCode)
			}
			if r.Error.Code != tt.wantCode || r.Error.Field != tt.wantField {
				t.Errorf("error %+v, want code %q field %q", *r.Error, tt.wantCode, tt.wantField)
			}
			for _, leak := range []string{secret, southName, d.users["rep4@demo.test"].String(), d.users["rep2@demo.test"].String(), d.teams["South"].String(), d.teams["North"].String()} {
				if strings.Contains(r.Error.Message, leak) {
					t.Errorf("message %q reveals %q", r.Error.Message, leak)
				}
			}
		})
	}

	// Nothing changed for the records' owners.
	admin := env.Login("admin@demo.test")
	rep, _ := pullAll(t, env, admin.Access)
	for _, v := range []uuid.UUID{rep4Visit, rep2Visit} {
		c := rep.live(t, "visits", v)
		if got := c.str("notes"); got != secret {
			t.Errorf("visit %s: notes %q, want %q", v, got, secret)
		}
	}
	for _, a := range []uuid.UUID{d.south[0], d.north[0]} {
		c := rep.live(t, "accounts", a)
		if got := c.str("name"); got != d.names[a] {
			t.Errorf("account %s: name %q, want %q", a, got, d.names[a])
		}
		if got := string(c.Data["notes"]); got != "null" {
			t.Errorf("account %s: notes %s, want null", a, got)
		}
	}
}

// TestSyncPullPagination pages through ~30 changes 7 at a time.
func TestSyncPullPagination(t *testing.T) {
	d := newDemo(t)
	env := d.env
	dev := newDevice(env, "rep1@demo.test")
	var muts []mutation
	for i := 0; i < 10; i++ {
		muts = append(muts, newVisit(uuid.New(), d.north[i], d.ms, map[string]any{"notes": fmt.Sprintf("call %d", i)}))
	}
	dev.push(t, muts...)

	const total = 30 // 20 North accounts and 10 visits
	seen := map[string]int{}
	cursor := ""
	var sizes []int
	for page := 0; ; page++ {
		if page > total {
			t.Fatal("pagination does not end")
		}
		pr := pullPage(t, env, dev.Access, cursor, 7)
		if pr.Reset {
			t.Fatalf("page %d: reset", page)
		}
		sizes = append(sizes, len(pr.Changes))
		for _, c := range pr.Changes {
			seen[key(c.Entity, c.ID)]++
		}
		if pr.Cursor == "" {
			t.Fatalf("page %d: no cursor", page)
		}
		cursor = pr.Cursor
		if !pr.HasMore {
			break
		}
		if len(pr.Changes) != 7 {
			t.Errorf("page %d: %d changes with has_more, want 7", page, len(pr.Changes))
		}
	}
	if want := []int{7, 7, 7, 7, 2}; !slices.Equal(sizes, want) {
		t.Errorf("page sizes %v, want %v", sizes, want)
	}
	if len(seen) != total {
		t.Errorf("pulled %d distinct records, want %d", len(seen), total)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s pulled %d times, want once", k, n)
		}
	}
	for i, m := range muts {
		if seen[key("visits", uuid.MustParse(m.ID))] != 1 {
			t.Errorf("visit %d missing", i)
		}
	}

	// At the end: nothing more, until something changes.
	pr := pullPage(t, env, dev.Access, cursor, 7)
	if len(pr.Changes) != 0 || pr.HasMore || pr.Reset {
		t.Errorf("pull at the end: %d changes, has_more %t, reset %t; want none", len(pr.Changes), pr.HasMore, pr.Reset)
	}
	if pr.Cursor == "" {
		t.Fatalf("pull at the end: no cursor")
	}
	edited := uuid.MustParse(muts[3].ID)
	dev.push(t, visitUpsert(edited, d.ms+1000, map[string]any{"notes": "edited"}))
	pr = pullPage(t, env, dev.Access, pr.Cursor, 7)
	if len(pr.Changes) != 1 || pr.Changes[0].ID != edited || pr.Changes[0].str("notes") != "edited" || pr.HasMore {
		t.Errorf("pull after an edit: %+v, want just the edited visit", pr)
	}
}

// TestSyncPullReset holds that a cursor the server cannot continue for this
// user answers reset, so the phone resyncs instead of missing changes.
func TestSyncPullReset(t *testing.T) {
	d := newDemo(t)
	env := d.env
	rep1 := newDevice(env, "rep1@demo.test")
	rep2 := newDevice(env, "rep2@demo.test")
	rep1Cursor := pullPage(t, env, rep1.Access, "", 5).Cursor
	if rep1Cursor == "" {
		t.Fatal("no cursor")
	}
	tests := []struct {
		name   string
		token  string
		cursor string
		want   bool
	}{
		{"own cursor", rep1.Access, rep1Cursor, false},
		{"own cursor on another device", env.Login("rep1@demo.test").Access, rep1Cursor, false},
		{"another user's cursor", rep2.Access, rep1Cursor, true},
		{"garbage", rep1.Access, "not-a-cursor", true},
		{"base64 of garbage", rep1.Access, "eyJ2IjoxfQ", true},
		{"truncated", rep1.Access, rep1Cursor[:len(rep1Cursor)/2], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := pullPage(t, env, tt.token, tt.cursor, 5)
			if pr.Reset != tt.want {
				t.Fatalf("reset %t, want %t", pr.Reset, tt.want)
			}
			if tt.want && len(pr.Changes) != 0 {
				t.Errorf("reset with %d changes, want none", len(pr.Changes))
			}
		})
	}

	// Moving rep1 to South changes what they may see: the old cursor
	// cannot be continued.
	admin := env.Login("admin@demo.test")
	res := env.Do(apitest.Request{Method: http.MethodPatch, Path: "/v1/users/" + d.users["rep1@demo.test"].String(), Token: admin.Access,
		Body: map[string]any{"team_id": d.teams["South"].String()}})
	apitest.Expect(t, res, http.StatusOK)
	pr := pullPage(t, env, rep1.Access, rep1Cursor, 5)
	if !pr.Reset {
		t.Fatalf("after a team change: reset false, want true")
	}
	rep, _ := pullAll(t, env, rep1.Access)
	for _, a := range d.south {
		if _, ok := rep[key("accounts", a)]; !ok {
			t.Errorf("after moving to South: account %s not pulled", a)
		}
	}
}

// TestSyncBadInputStoresNothing holds that a push or pull the server cannot
// take is answered 4xx naming the fault, and stores nothing.
func TestSyncBadInputStoresNothing(t *testing.T) {
	d := newDemo(t)
	env := d.env
	dev := newDevice(env, "rep1@demo.test")
	dev.push(t, newVisit(uuid.New(), d.north[0], d.ms, nil))

	good := func(seq int64) mutation {
		m := newVisit(uuid.New(), d.north[1], d.ms, map[string]any{"notes": "must not be stored"})
		m.Seq = seq
		return m
	}
	body := func(muts ...mutation) pushBody { return pushBody{SchemaVersion: 1, Mutations: muts} }
	goodJSON := func(seq int64) string {
		b, _ := json.Marshal(good(seq))
		return string(b)
	}
	tooMany := make([]mutation, 1001)
	for i := range tooMany {
		tooMany[i] = good(int64(i + 2))
	}
	// A bad id, entity, op, clock or fields is one mutation's rejection,
	// not the batch's: TestSyncNoPoisonPill.

	tests := []struct {
		name       string
		method     string
		query      string // pulls
		body       any    // pushes
		wantStatus int
		wantCode   string
		wantField  string // "" skips the check
	}{
		{name: "1001 mutations", method: http.MethodPost, body: body(tooMany...), wantStatus: 413, wantCode: "too_large"},
		{name: "malformed JSON", method: http.MethodPost, body: `{"schema_version":1,"mutations":[` + goodJSON(2), wantStatus: 400, wantCode: "malformed"},
		{name: "not an object", method: http.MethodPost, body: `[1,2,3]`, wantStatus: 400, wantCode: "malformed"},
		{name: "empty body", method: http.MethodPost, body: ``, wantStatus: 400, wantCode: "malformed"},
		{name: "seq as a string", method: http.MethodPost, body: `{"schema_version":1,"mutations":[` + strings.Replace(goodJSON(2), `"seq":2`, `"seq":"2"`, 1) + `]}`, wantStatus: 422, wantCode: "invalid"},
		{name: "mutations as an object", method: http.MethodPost, body: `{"schema_version":1,"mutations":{}}`, wantStatus: 422, wantCode: "invalid", wantField: "mutations"},
		{name: "unknown top-level field", method: http.MethodPost, body: `{"schema_version":1,"device":"x","mutations":[` + goodJSON(2) + `]}`, wantStatus: 422, wantCode: "invalid", wantField: "device"},
		{name: "schema_version 2", method: http.MethodPost, body: pushBody{SchemaVersion: 2, Mutations: []mutation{good(2)}}, wantStatus: 400, wantCode: "unsupported_schema", wantField: "schema_version"},
		{name: "missing schema_version", method: http.MethodPost, body: `{"mutations":[` + goodJSON(2) + `]}`, wantStatus: 422, wantCode: "invalid", wantField: "schema_version"},
		{name: "seq not increasing", method: http.MethodPost, body: body(good(3), good(3)), wantStatus: 422, wantCode: "invalid", wantField: "mutations[1].seq"},
		{name: "seq decreasing", method: http.MethodPost, body: body(good(4), good(3)), wantStatus: 422, wantCode: "invalid", wantField: "mutations[1].seq"},
		{name: "seq zero", method: http.MethodPost, body: body(good(0)), wantStatus: 422, wantCode: "invalid", wantField: "mutations[0].seq"},
		{name: "pull limit 0", method: http.MethodGet, query: "limit=0", wantStatus: 422, wantCode: "invalid", wantField: "limit"},
		{name: "pull limit 5000", method: http.MethodGet, query: "limit=5000", wantStatus: 422, wantCode: "invalid", wantField: "limit"},
		{name: "pull limit not a number", method: http.MethodGet, query: "limit=ten", wantStatus: 422, wantCode: "invalid", wantField: "limit"},
		{name: "pull schema_version 2", method: http.MethodGet, query: "schema_version=2", wantStatus: 400, wantCode: "unsupported_schema", wantField: "schema_version"},
	}
	before, beforePull := pullAll(t, env, dev.Access)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res *apitest.Response
			if tt.method == http.MethodGet {
				res = pullRequest(env, dev.Access, tt.query)
			} else {
				res = pushRequest(env, dev.Access, tt.body)
			}
			p := expectProblem(t, res, tt.wantStatus, tt.wantCode)
			if tt.wantField != "" {
				expectFields(t, p, tt.wantField)
			}
			after, afterPull := pullAll(t, env, dev.Access)
			if afterPull.LastSeq != beforePull.LastSeq {
				t.Errorf("last_seq %d, want it unchanged at %d", afterPull.LastSeq, beforePull.LastSeq)
			}
			if got, want := after.count("visits"), before.count("visits"); got != want {
				t.Errorf("%d visits, want %d: something was stored", got, want)
			}
			if len(afterPull.Rejections) != 0 {
				t.Errorf("rejections %+v, want none", afterPull.Rejections)
			}
		})
	}
}

// TestSyncMoneyExact holds that amounts travel as decimals and are stored as
// cents: what a phone sends is what every phone pulls, to the cent.
func TestSyncMoneyExact(t *testing.T) {
	d := newDemo(t)
	env := d.env
	dev := newDevice(env, "rep1@demo.test")
	tests := []struct {
		name string
		sent string // the JSON number sent
		want string // the JSON number pulled
	}{
		{"one decimal", "1250.5", "1250.5"},
		{"trailing zero", "1250.50", "1250.5"},
		{"ten cents", "0.1", "0.1"},
		{"twenty cents", "0.2", "0.2"},
		{"0.1 + 0.2", "0.3", "0.3"},
		{"seven cents", "0.07", "0.07"},
		{"price ending in 99", "19.99", "19.99"},
		{"exponent", "1e3", "1000"},
		{"whole", "42", "42"},
		{"zero", "0", "0"},
		{"largest", "10000000000", "10000000000"},
		{"cents of the largest", "9999999999.99", "9999999999.99"},
	}
	ids := make([]uuid.UUID, len(tests))
	muts := make([]mutation, len(tests))
	for i, tt := range tests {
		ids[i] = uuid.New()
		muts[i] = newVisit(ids[i], d.north[0], d.ms, map[string]any{"outcome": "order", "order_value": json.Number(tt.sent)})
	}
	pr := dev.push(t, muts...)
	other := newDevice(env, "manager1@demo.test")
	rep, _ := pullAll(t, env, other.Access)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := pr.Results[i]; r.Status != "applied" {
				t.Fatalf("push: %+v (error %+v)", r, r.Error)
			}
			if got := string(rep.live(t, "visits", ids[i]).Data["order_value"]); got != tt.want {
				t.Errorf("order_value sent as %s pulled as %s, want %s", tt.sent, got, tt.want)
			}
		})
	}

	// Conflict reports carry the amounts exactly too.
	v := ids[0]
	dev.pushOne(t, visitUpsert(v, d.ms+2000, map[string]any{"order_value": json.Number("0.3")}))
	r := other.pushOne(t, visitUpsert(v, d.ms+1000, map[string]any{"order_value": json.Number("0.1")}))
	if got, want := conflictStrings(r.Conflicts), []string{`order_value kept=server server=0.3 client=0.1`}; !slices.Equal(got, want) {
		t.Errorf("conflicts %q, want %q", got, want)
	}
}

// TestSyncVisitEditAfterAccountChanged holds that a rep's edit of their own
// visit is judged on what it changes: an account deleted, or moved out of
// the rep's sight, since the visit was logged does not make every later
// edit of the visit a rejection (and the edit lost for good). Pointing a
// visit at such an account is still refused.
func TestSyncVisitEditAfterAccountChanged(t *testing.T) {
	tests := []struct {
		name string
		// change makes the visit's account unavailable to rep1.
		change func(t *testing.T, d *demoOrg, account uuid.UUID)
		// usable is an account rep1 may log visits on after the change.
		usable func(d *demoOrg, changed uuid.UUID) uuid.UUID
	}{
		{
			name: "account deleted by the manager",
			change: func(t *testing.T, d *demoOrg, account uuid.UUID) {
				mgr := newDevice(d.env, "manager1@demo.test")
				if r := mgr.pushOne(t, deleteOf("accounts", account, d.ms+1000)); r.Status != "applied" {
					t.Fatalf("delete account: %+v", r)
				}
			},
			usable: func(d *demoOrg, changed uuid.UUID) uuid.UUID {
				return d.north[slices.IndexFunc(d.north, func(a uuid.UUID) bool { return a != changed })]
			},
		},
		{
			name: "rep moved to another team",
			change: func(t *testing.T, d *demoOrg, account uuid.UUID) {
				admin := d.env.Login("admin@demo.test")
				res := d.env.Do(apitest.Request{Method: http.MethodPatch, Path: "/v1/users/" + d.users["rep1@demo.test"].String(), Token: admin.Access,
					Body: map[string]any{"team_id": d.teams["South"].String()}})
				apitest.Expect(t, res, http.StatusOK)
			},
			usable: func(d *demoOrg, _ uuid.UUID) uuid.UUID { return d.south[1] },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDemo(t)
			dev := newDevice(d.env, "rep1@demo.test")
			// An account rep1 does not own, so that only the team shares it.
			i := slices.IndexFunc(d.north, func(a uuid.UUID) bool { return d.owner[a] != d.users["rep1@demo.test"].String() })
			account := d.north[i]
			visit := uuid.New()
			if r := dev.pushOne(t, newVisit(visit, account, d.ms, map[string]any{"notes": "logged"})); r.Status != "applied" {
				t.Fatalf("create: %+v", r)
			}
			tt.change(t, d, account)

			r := dev.pushOne(t, visitUpsert(visit, d.ms+2000, map[string]any{"notes": "edited later", "outcome": "follow_up"}))
			if r.Status != "applied" {
				t.Errorf("edit of the visit's notes: %s %+v, want applied", r.Status, r.Error)
			}
			rep, _ := pullAll(t, d.env, dev.Access)
			if got := rep.live(t, "visits", visit).str("notes"); got != "edited later" {
				t.Errorf("notes %q, want %q", got, "edited later")
			}

			// Pointing another visit at the account is refused.
			other := uuid.New()
			if r := dev.pushOne(t, newVisit(other, tt.usable(d, account), d.ms, nil)); r.Status != "applied" {
				t.Fatalf("create another visit: %+v", r)
			}
			r = dev.pushOne(t, visitUpsert(other, d.ms+3000, map[string]any{"account_id": account.String()}))
			if r.Status != "rejected" || r.Error == nil || r.Error.Code != "invalid_value" || r.Error.Field != "account_id" {
				t.Errorf("moving a visit to the account: %s %+v, want rejected invalid_value on account_id", r.Status, r.Error)
			}
		})
	}
}
