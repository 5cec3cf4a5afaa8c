package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
	"github.com/fieldsync/fieldsync/telemetry"
)

// newMetricsDemo is the demo organisation on a server wired to telemetry
// as `fieldsync serve` wires it: requests, pushes and pulls through
// api.Deps.Metrics, the push slot hook, the pools and the outbox.
func newMetricsDemo(t *testing.T) (*demoOrg, *telemetry.Metrics) {
	t.Helper()
	// The metrics read the server's clock, which exists once the server
	// does: until then (the demo's first pulls), the wall clock.
	var clock atomic.Pointer[apitest.Clock]
	now := func() time.Time {
		if c := clock.Load(); c != nil {
			return c.Now()
		}
		return time.Now()
	}
	m := telemetry.New(telemetry.Options{Entities: sales.Entities(), NoRuntime: true, Now: now})
	d := newDemoWith(t, apitest.Options{PushWait: m.PushWait, Deps: func(d *api.Deps) { d.Metrics = m }})
	clock.Store(d.env.Clock)
	m.WatchPools(d.env.DB.PoolStats)
	m.WatchOutbox(d.env.DB.Outbox().OutboxBacklog)
	return d, m
}

// scrape is one read of /metrics: each sample by series name, with its
// labels.
type scrape []sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrapeMetrics serves /metrics as --metrics-addr does and parses the
// text format.
func scrapeMetrics(t *testing.T, m *telemetry.Metrics) (scrape, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: status %d\n%s", rec.Code, rec.Body)
	}
	var out scrape
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out = append(out, s)
	}
	return out, rec.Body.String()
}

// parseSample reads `name{k="v",...} value`; values hold no escaped
// quotes in these tests.
func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	sp := strings.LastIndexByte(line, ' ')
	head, val := line[:sp], line[sp+1:]
	v, err := strconv.ParseFloat(val, 64)
	if err != nil {
		return s, err
	}
	s.value = v
	name, labels, ok := strings.Cut(head, "{")
	s.name = name
	if ok {
		labels = strings.TrimSuffix(labels, "}")
		for labels != "" {
			k, rest, _ := strings.Cut(labels, `="`)
			v, rest, _ := strings.Cut(rest, `"`)
			s.labels[k] = v
			labels = strings.TrimPrefix(rest, ",")
		}
	}
	return s, nil
}

// sum adds the samples of name whose labels include want.
func (sc scrape) sum(name string, want map[string]string) float64 {
	var v float64
	for _, s := range sc {
		if s.name == name && hasLabels(s.labels, want) {
			v += s.value
		}
	}
	return v
}

// has reports whether a sample of name with labels including want exists.
func (sc scrape) has(name string, want map[string]string) bool {
	for _, s := range sc {
		if s.name == name && hasLabels(s.labels, want) {
			return true
		}
	}
	return false
}

func hasLabels(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// deltas lists, as "name{labels} +n", every sample of the named series
// that changed between two scrapes.
func deltas(before, after scrape, name string) []string {
	key := func(s sample) string {
		ks := make([]string, 0, len(s.labels))
		for k, v := range s.labels {
			ks = append(ks, k+"="+v)
		}
		sort.Strings(ks)
		return s.name + "{" + strings.Join(ks, ",") + "}"
	}
	was := map[string]float64{}
	for _, s := range before {
		if s.name == name {
			was[key(s)] = s.value
		}
	}
	var out []string
	for _, s := range after {
		if s.name == name && s.value != was[key(s)] {
			out = append(out, key(s)+" +"+strconv.FormatFloat(s.value-was[key(s)], 'f', -1, 64))
		}
	}
	sort.Strings(out)
	return out
}

// TestMetricsPushOutcomes: a native push whose mutations end applied,
// duplicate, rejected and merged counts exactly those, by entity and
// code, with the conflict by entity and field and the batch's size; an
// entity the client made up is counted as "other", never by its name.
func TestMetricsPushOutcomes(t *testing.T) {
	d, m := newMetricsDemo(t)
	env := d.env
	phone := newDevice(env, "rep1@demo.test")
	tablet := newDevice(env, "rep1@demo.test")
	account := d.north[0]
	visit, other := uuid.New(), uuid.New()
	first := newVisit(visit, account, d.ms, map[string]any{"notes": "first"})
	phone.push(t, first)
	// The tablet's later edit of the notes reaches the server first.
	tablet.push(t, visitUpsert(visit, d.ms+2000, map[string]any{"notes": "from the tablet"}))

	before, _ := scrapeMetrics(t, m)
	made := "gadgets_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	muts := []mutation{
		first, // seq 1 again: a duplicate
		newVisit(other, account, d.ms, nil),
		upsertOf(made, uuid.New(), d.ms, map[string]any{"name": "x"}),
		visitUpsert(visit, d.ms+1000, map[string]any{"notes": "from the phone"}),
	}
	for i := range muts {
		muts[i].Seq = int64(i + 1)
	}
	res := pushOK(t, env, phone.Access, muts)
	if got, want := strings.Join(statuses(res.Results), ","), "duplicate,applied,rejected,merged"; got != want {
		t.Fatalf("statuses %s, want %s", got, want)
	}
	after, body := scrapeMetrics(t, m)

	got := deltas(before, after, "fieldsync_sync_mutations_total")
	want := []string{
		"fieldsync_sync_mutations_total{code=,entity=visits,protocol=native,status=applied} +1",
		"fieldsync_sync_mutations_total{code=,entity=visits,protocol=native,status=duplicate} +1",
		"fieldsync_sync_mutations_total{code=,entity=visits,protocol=native,status=merged} +1",
		"fieldsync_sync_mutations_total{code=unknown_entity,entity=other,protocol=native,status=rejected} +1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("mutation counts changed by\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got = deltas(before, after, "fieldsync_sync_conflicts_total")
	want = []string{"fieldsync_sync_conflicts_total{entity=visits,field=notes,protocol=native} +1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("conflict counts changed by %q, want %q", got, want)
	}
	native := map[string]string{"protocol": "native"}
	if n := after.sum("fieldsync_sync_push_batch_size_count", native) - before.sum("fieldsync_sync_push_batch_size_count", native); n != 1 {
		t.Errorf("push batch size observed %v more times, want 1", n)
	}
	if n := after.sum("fieldsync_sync_push_batch_size_sum", native) - before.sum("fieldsync_sync_push_batch_size_sum", native); n != 4 {
		t.Errorf("push batch size grew by %v, want 4", n)
	}
	if n := after.sum("fieldsync_sync_push_slot_wait_seconds_count", nil) - before.sum("fieldsync_sync_push_slot_wait_seconds_count", nil); n != 1 {
		t.Errorf("push slot wait observed %v more times, want 1", n)
	}
	if strings.Contains(body, "gadgets") {
		t.Errorf("/metrics names the entity the client made up")
	}
	if !after.has("fieldsync_http_requests_total", map[string]string{"route": "/v1/sync/push", "status": "200", "method": "POST"}) {
		t.Errorf("/metrics lacks the push route's request count")
	}
}

// TestMetricsWatermelonPush: the WatermelonDB push counts its records the
// same way: written applied, held already duplicate, refused rejected.
func TestMetricsWatermelonPush(t *testing.T) {
	d, m := newMetricsDemo(t)
	dev := newWMDevice(d.env, "rep1@demo.test")
	dev.pull(t)
	visit := uuid.New()
	changes := wmTables("visits", wmCreated(wmVisit(visit, d.north[0], d.ms, nil)),
		"gizmos", wmCreated(wmRow(uuid.New(), "created", map[string]any{"name": "x"})))

	before, _ := scrapeMetrics(t, m)
	dev.pushOK(t, changes)
	if r := dev.pushOK(t, changes); r.Written != 0 || r.Unchanged != 1 {
		t.Fatalf("second push: %+v, want the visit unchanged", r)
	}
	after, body := scrapeMetrics(t, m)
	got := deltas(before, after, "fieldsync_sync_mutations_total")
	want := []string{
		"fieldsync_sync_mutations_total{code=,entity=visits,protocol=watermelondb,status=applied} +1",
		"fieldsync_sync_mutations_total{code=,entity=visits,protocol=watermelondb,status=duplicate} +1",
		"fieldsync_sync_mutations_total{code=unknown_entity,entity=other,protocol=watermelondb,status=rejected} +2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("mutation counts changed by\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wm := map[string]string{"protocol": "watermelondb"}
	if n := after.sum("fieldsync_sync_push_batch_size_sum", wm) - before.sum("fieldsync_sync_push_batch_size_sum", wm); n != 4 {
		t.Errorf("push batch sizes grew by %v, want 4 (two pushes of two records)", n)
	}
	if strings.Contains(body, "gizmos") {
		t.Errorf("/metrics names the table the client made up")
	}
}

// TestMetricsPull: a pull records how many changes it served and how old
// the oldest was (not the newest), for both protocols.
func TestMetricsPull(t *testing.T) {
	d, m := newMetricsDemo(t)
	env := d.env
	// Everything the demo seeded was written at the clock's start; a
	// visit comes half an hour later, and the pulls half an hour after.
	env.Clock.Advance(30 * time.Minute)
	newDevice(env, "rep1@demo.test").push(t, newVisit(uuid.New(), d.north[0], env.Clock.Now().UnixMilli(), nil))
	env.Clock.Advance(30 * time.Minute)
	rep := env.Login("rep1@demo.test")
	before, _ := scrapeMetrics(t, m)
	page := pullPage(t, env, rep.Access, "", engine.MaxPullLimit)
	wm := newWMDevice(env, "rep1@demo.test")
	wmRes := wm.pull(t)
	served := 0
	for _, tc := range wmRes.Changes {
		served += len(tc.Created) + len(tc.Updated) + len(tc.Deleted)
	}
	visits := 0
	for _, c := range page.Changes {
		if c.Entity == "visits" {
			visits++
		}
	}
	if page.HasMore || visits != 1 || served != len(page.Changes) {
		t.Fatalf("pulls served %d changes (%d visits, more: %v) and %d; want everything, the visit among them, twice",
			len(page.Changes), visits, page.HasMore, served)
	}

	after, _ := scrapeMetrics(t, m)
	grew := func(name string, labels map[string]string) float64 {
		return after.sum(name, labels) - before.sum(name, labels)
	}
	for _, tt := range []struct {
		protocol string
		changes  int
	}{
		{"native", len(page.Changes)},
		{"watermelondb", served},
	} {
		p := map[string]string{"protocol": tt.protocol}
		if n := grew("fieldsync_sync_pull_page_size_count", p); n != 1 {
			t.Errorf("%s: pull page size observed %v times, want 1", tt.protocol, n)
		}
		if n := grew("fieldsync_sync_pull_page_size_sum", p); n != float64(tt.changes) {
			t.Errorf("%s: pull page sizes sum to %v, want %d", tt.protocol, n, tt.changes)
		}
		if n := grew("fieldsync_sync_pull_lag_seconds_count", p); n != 1 {
			t.Errorf("%s: pull lag observed %v times, want 1", tt.protocol, n)
		}
		if n := grew("fieldsync_sync_pull_lag_seconds_sum", p); n != 3600 {
			t.Errorf("%s: pull lag %v s, want 3600 (the seed, an hour ago)", tt.protocol, n)
		}
	}
}

// TestMetricsOutbox: the outbox series count the notifications not yet
// delivered and the age of the oldest, read at scrape time.
func TestMetricsOutbox(t *testing.T) {
	d, m := newMetricsDemo(t)
	env := d.env
	ctx := context.Background()
	pending := map[string]string{"status": "pending"}
	sc, _ := scrapeMetrics(t, m)
	if n := sc.sum("fieldsync_notification_outbox_depth", pending); n != 0 {
		t.Fatalf("outbox depth before any notification: %v", n)
	}
	if !sc.has("fieldsync_notification_outbox_depth", map[string]string{"status": "deferred"}) {
		t.Errorf("no outbox depth of deferred rows (zero counts are served too)")
	}

	u, err := env.DB.People().UserByEmail(ctx, "rep1@demo.test")
	if err != nil {
		t.Fatal(err)
	}
	en := engine.New(env.DB.Feed(), sales.Entities(), env.Clock.Now, nil)
	contest := uuid.New()
	for i, n := range []models.Notification{
		models.ContestStartedNotification(contest, "Spring Blitz", env.Clock.Now().Add(72*time.Hour)),
		models.EnteredTop3Notification(contest, "Spring Blitz", 3),
		models.ReachedFirstNotification(contest, "Spring Blitz"),
	} {
		if i > 0 {
			env.Clock.Advance(time.Minute)
		}
		if err := en.Server(ctx, models.Principal{OrgID: u.OrgID}, func(c *engine.Context) error { return sales.Notify(c, n.To(u.ID)) }); err != nil {
			t.Fatal(err)
		}
	}
	env.Clock.Advance(10 * time.Minute)

	sc, _ = scrapeMetrics(t, m)
	if n := sc.sum("fieldsync_notification_outbox_depth", pending); n != 3 {
		t.Errorf("outbox depth of pending rows %v, want 3", n)
	}
	if n := sc.sum("fieldsync_notification_outbox_oldest_age_seconds", pending); n != 12*60 {
		t.Errorf("oldest pending row is %v s old, want 720", n)
	}
	if n := sc.sum("fieldsync_notification_outbox_read_errors_total", nil); n != 0 {
		t.Errorf("outbox read errors %v", n)
	}
}

// TestMetricsPools: the database pools' statistics are served as
// fieldsync_db_* series by pool (the go_sql_* series are gone).
func TestMetricsPools(t *testing.T) {
	d, m := newMetricsDemo(t)
	d.env.Login("rep1@demo.test")
	sc, body := scrapeMetrics(t, m)
	pools := []string{"main", "probe"}
	if d.env.DB.Dialect() == "sqlite" {
		pools = append(pools, "read")
	}
	for _, pool := range pools {
		p := map[string]string{"pool": pool}
		for _, name := range []string{"fieldsync_db_waits_total", "fieldsync_db_wait_seconds_total", "fieldsync_db_connections_closed_total"} {
			if !sc.has(name, p) {
				t.Errorf("no %s{pool=%q}", name, pool)
			}
		}
		for _, state := range []string{"in_use", "idle"} {
			if !sc.has("fieldsync_db_connections", map[string]string{"pool": pool, "state": state}) {
				t.Errorf("no fieldsync_db_connections{pool=%q,state=%q}", pool, state)
			}
		}
		if n := sc.sum("fieldsync_db_connections_max", p); n < 1 {
			t.Errorf("fieldsync_db_connections_max{pool=%q} = %v, want at least 1", pool, n)
		}
	}
	if n := sc.sum("fieldsync_db_connections", map[string]string{"pool": "main"}); n < 1 {
		t.Errorf("the main pool has %v connections open after a login, want some", n)
	}
	if strings.Contains(body, "go_sql_") {
		t.Errorf("/metrics still serves go_sql_* series")
	}
}
