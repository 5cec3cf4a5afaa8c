// Package telemetry defines every Prometheus series fieldsync serves on
// /metrics, and nothing else does: the HTTP layer, the sync engine's
// pushes and pulls, the push slot, the notification dispatcher and
// outbox, and the database pools. The other packages know no Prometheus:
// they report through small interfaces and hooks (api.Metrics,
// store.Options.PushWait, notifications.Options.Report,
// store.DB.PoolStats), which cmd/fieldsync wires to a *Metrics.
//
// Label values are bounded: an entity or field label is one the sync
// declarations name (or "other"), a rejection code one of the codes
// models declares (or "other"), never a string as a client sent it.
package telemetry

import (
	"context"
	"database/sql"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/notifications"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Protocols, the protocol label of the sync series.
const (
	Native       = "native"       // /v1/sync/push and /v1/sync/pull
	WatermelonDB = "watermelondb" // /v1/sync/watermelondb
)

// Other is the label value of an entity, field or code that is not
// declared: an unknown table a newer app pushed, say.
const Other = "other"

// Options tune New.
type Options struct {
	// Entities are the declared sync entities: the only entity and
	// field label values (without them every entity is "other").
	Entities []*engine.Entity
	// OutboxTimeout bounds a scrape's read of the outbox backlog
	// (WatchOutbox); 0 means 2 s. A slow database makes the scrape miss
	// the outbox series, not hang.
	OutboxTimeout time.Duration
	// Now is the clock of the pull lag and the outbox age; nil is
	// time.Now.
	Now func() time.Time
	// NoRuntime leaves out the Go runtime and process collectors (tests
	// that build many registries).
	NoRuntime bool
}

// Metrics holds the registry and every series. Its methods are safe for
// concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time
	// outboxTimeout is Options.OutboxTimeout.
	outboxTimeout time.Duration
	names         []string // every series name this package defines

	fields map[string]map[string]bool // entity → field, the declared labels
	codes  map[string]bool

	httpRequests *prometheus.CounterVec
	httpLatency  *prometheus.HistogramVec

	mutations   *prometheus.CounterVec
	conflicts   *prometheus.CounterVec
	pushBatch   *prometheus.HistogramVec
	pullPage    *prometheus.HistogramVec
	pullLag     *prometheus.HistogramVec
	pushWait    prometheus.Histogram
	notifSends  *prometheus.CounterVec
	tokensGone  prometheus.Counter
	outboxFails prometheus.Counter
}

// New registers every series on a fresh registry.
func New(opt Options) *Metrics {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.OutboxTimeout <= 0 {
		opt.OutboxTimeout = 2 * time.Second
	}
	m := &Metrics{reg: prometheus.NewRegistry(), now: opt.Now, outboxTimeout: opt.OutboxTimeout, fields: map[string]map[string]bool{}, codes: map[string]bool{}}
	for _, e := range opt.Entities {
		fs := map[string]bool{engine.DeletedField: true}
		for _, f := range e.Fields {
			fs[f.Name] = true
		}
		m.fields[e.Name] = fs
	}
	for _, c := range models.Codes {
		m.codes[c] = true
	}

	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: m.name("fieldsync_http_requests_total"),
		Help: "HTTP requests by method, route and status.",
	}, []string{"method", "route", "status"})
	m.httpLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    m.name("fieldsync_http_request_duration_seconds"),
		Help:    "HTTP request latency by method and route.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"method", "route"})

	m.mutations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: m.name("fieldsync_sync_mutations_total"),
		Help: "Pushed mutations (WatermelonDB: records) by protocol, entity, status (applied, merged, duplicate, rejected) and rejection code (empty unless rejected).",
	}, []string{"protocol", "entity", "status", "code"})
	m.conflicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: m.name("fieldsync_sync_conflicts_total"),
		Help: "Field conflicts recorded by pushes, by protocol, entity and field (_deleted: an update lost to a delete).",
	}, []string{"protocol", "entity", "field"})
	m.pushBatch = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    m.name("fieldsync_sync_push_batch_size"),
		Help:    "Mutations (WatermelonDB: records) per applied push, by protocol.",
		Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500},
	}, []string{"protocol"})
	m.pullPage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    m.name("fieldsync_sync_pull_page_size"),
		Help:    "Changes per pull response, by protocol (a WatermelonDB pull answers all its pages at once).",
		Buckets: []float64{0, 1, 10, 50, 100, 250, 500, 1000, 5000, 25000},
	}, []string{"protocol"})
	m.pullLag = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    m.name("fieldsync_sync_pull_lag_seconds"),
		Help:    "Age of the oldest change a pull response served (now minus its server write time), by protocol; pulls that served no change are not observed.",
		Buckets: []float64{1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400, 30 * 86400},
	}, []string{"protocol"})
	m.pushWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    m.name("fieldsync_sync_push_slot_wait_seconds"),
		Help:    "Time a push waited for its turn to the database pool (the push concurrency limit), including waits that ended with the request's deadline.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	m.notifSends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: m.name("fieldsync_notifications_dispatched_total"),
		Help: "Outbox rows a dispatcher handled, by result: sent, retry (failed, will retry), dead (given up), deferred (quiet hours, a visit), inbox_only (not pushed: preferences, cap, no device).",
	}, []string{"result"})
	m.tokensGone = prometheus.NewCounter(prometheus.CounterOpts{
		Name: m.name("fieldsync_notification_tokens_removed_total"),
		Help: "Push tokens removed because FCM reported them unregistered or invalid.",
	})
	m.outboxFails = prometheus.NewCounter(prometheus.CounterOpts{
		Name: m.name("fieldsync_notification_outbox_read_errors_total"),
		Help: "Scrapes whose read of the outbox backlog failed or timed out (the outbox series are then missing from that scrape).",
	})
	m.reg.MustRegister(m.httpRequests, m.httpLatency, m.mutations, m.conflicts, m.pushBatch, m.pullPage, m.pullLag,
		m.pushWait, m.notifSends, m.tokensGone, m.outboxFails)
	m.names = append(m.names, scrapeNames...)
	for _, r := range []string{ResultSent, ResultRetry, ResultDead, ResultDeferred, ResultInboxOnly} {
		m.notifSends.WithLabelValues(r) // every result shows, at 0
	}

	if !opt.NoRuntime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// WatchOutbox serves the notification outbox's backlog, read at each
// scrape by read (store.Outbox.OutboxBacklog) within OutboxTimeout.
// Call it once.
func (m *Metrics) WatchOutbox(read func(ctx context.Context) ([]notifications.Backlog, error)) {
	m.reg.MustRegister(&outboxCollector{
		read: read, timeout: m.outboxTimeout, now: m.now, fails: m.outboxFails,
		depth: outboxDepth, age: outboxAge,
	})
}

// WatchPools serves the database pools' statistics, read at each scrape
// by read (store.DB.PoolStats). Call it once.
func (m *Metrics) WatchPools(read func() map[string]sql.DBStats) {
	m.reg.MustRegister(&poolCollector{read: read})
}

// The scrape-time series' descriptions. Their names are in m.names
// through scrapeNames.
var (
	outboxDepth = prometheus.NewDesc("fieldsync_notification_outbox_depth",
		"Outbox rows not yet delivered, by status: pending (due now or at a retry), deferred (held for quiet hours or a visit), sending (leased to a dispatcher).",
		[]string{"status"}, nil)
	outboxAge = prometheus.NewDesc("fieldsync_notification_outbox_oldest_age_seconds",
		"Age of the oldest undelivered outbox row by status (0 when there is none).",
		[]string{"status"}, nil)
	poolConns = prometheus.NewDesc("fieldsync_db_connections",
		"Open connections of a database pool by state: in_use or idle.", []string{"pool", "state"}, nil)
	poolMax = prometheus.NewDesc("fieldsync_db_connections_max",
		"Most connections a database pool may open.", []string{"pool"}, nil)
	poolWaits = prometheus.NewDesc("fieldsync_db_waits_total",
		"Times a query waited for a free connection of a database pool.", []string{"pool"}, nil)
	poolWaitSecs = prometheus.NewDesc("fieldsync_db_wait_seconds_total",
		"Time spent waiting for a free connection of a database pool.", []string{"pool"}, nil)
	poolClosed = prometheus.NewDesc("fieldsync_db_connections_closed_total",
		"Connections a database pool closed, by reason: max_idle, max_idle_time or max_lifetime.", []string{"pool", "reason"}, nil)
)

// scrapeNames name the series of the collectors above.
var scrapeNames = []string{
	"fieldsync_notification_outbox_depth", "fieldsync_notification_outbox_oldest_age_seconds",
	"fieldsync_db_connections", "fieldsync_db_connections_max", "fieldsync_db_waits_total",
	"fieldsync_db_wait_seconds_total", "fieldsync_db_connections_closed_total",
}

// name records a series name as this package's and returns it.
func (m *Metrics) name(n string) string {
	m.names = append(m.names, n)
	return n
}

// Names lists every fieldsync_ series name New defines, sorted, whether
// or not it has a sample yet (a histogram's _bucket, _sum and _count
// series are named by its base name).
func (m *Metrics) Names() []string {
	out := slices.Clone(m.names)
	slices.Sort(out)
	return out
}

// Registry is the registry every series is on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
// `fieldsync serve --metrics-addr` serves it on a listener of its own,
// off the API's router.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Request counts one HTTP request. route is the router's pattern (never
// the raw path); a method the API does not route is counted as "other",
// since any token is a valid method for a client to send.
func (m *Metrics) Request(method, route string, status int, took time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = Other
	}
	m.httpRequests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.httpLatency.WithLabelValues(method, route).Observe(took.Seconds())
}

// Pushed counts an applied push's outcomes, one per mutation (or
// WatermelonDB record), and its size.
func (m *Metrics) Pushed(protocol string, outcomes []engine.Outcome) {
	protocol = m.protocol(protocol)
	m.pushBatch.WithLabelValues(protocol).Observe(float64(len(outcomes)))
	for _, o := range outcomes {
		entity := m.entity(o.Entity)
		status, code := o.Status, ""
		switch status {
		case engine.StatusApplied, engine.StatusMerged, engine.StatusDuplicate:
		case engine.StatusRejected:
			code = m.code(o.Code)
		default:
			status = Other
		}
		m.mutations.WithLabelValues(protocol, entity, status, code).Inc()
		for _, f := range o.Conflicts {
			m.conflicts.WithLabelValues(protocol, entity, m.field(entity, f)).Inc()
		}
	}
}

// Pulled records one pull response: how many changes it served, and, when
// it served any, the lag of the oldest (its server write time).
func (m *Metrics) Pulled(protocol string, changes int, oldest time.Time) {
	protocol = m.protocol(protocol)
	m.pullPage.WithLabelValues(protocol).Observe(float64(changes))
	if changes > 0 && !oldest.IsZero() {
		m.pullLag.WithLabelValues(protocol).Observe(max(m.now().Sub(oldest).Seconds(), 0))
	}
}

// PushWait records one push's wait for the push slot
// (store.Options.PushWait).
func (m *Metrics) PushWait(d time.Duration) { m.pushWait.Observe(d.Seconds()) }

// Results of fieldsync_notifications_dispatched_total.
const (
	ResultSent      = "sent"
	ResultRetry     = "retry"
	ResultDead      = "dead"
	ResultDeferred  = "deferred"
	ResultInboxOnly = "inbox_only"
)

// Dispatched counts one dispatcher batch (notifications.Options.Report).
func (m *Metrics) Dispatched(st notifications.Stats) {
	for r, n := range map[string]int{ResultSent: st.Sent, ResultRetry: st.Retried, ResultDead: st.Dead,
		ResultDeferred: st.Deferred, ResultInboxOnly: st.InboxOnly} {
		if n > 0 {
			m.notifSends.WithLabelValues(r).Add(float64(n))
		}
	}
	if st.TokensRemoved > 0 {
		m.tokensGone.Add(float64(st.TokensRemoved))
	}
}

func (m *Metrics) protocol(p string) string {
	if p == Native || p == WatermelonDB {
		return p
	}
	return Other
}

func (m *Metrics) entity(e string) string {
	if m.fields[e] != nil {
		return e
	}
	return Other
}

// field is f when entity declares it; entity is already a label.
func (m *Metrics) field(entity, f string) string {
	if m.fields[entity][f] {
		return f
	}
	return Other
}

func (m *Metrics) code(c string) string {
	if m.codes[c] {
		return c
	}
	return Other
}

// outboxCollector reads the outbox backlog at scrape time.
type outboxCollector struct {
	read       func(ctx context.Context) ([]notifications.Backlog, error)
	timeout    time.Duration
	now        func() time.Time
	fails      prometheus.Counter
	depth, age *prometheus.Desc
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.depth; ch <- c.age }

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	bs, err := c.read(ctx)
	if err != nil {
		// The failure is counted, not served as an invalid metric: that
		// would fail the whole scrape, and with it every other series.
		c.fails.Inc()
		return
	}
	now := c.now()
	for _, b := range bs {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(b.Count), b.Status)
		age := 0.0
		if b.Count > 0 && !b.Oldest.IsZero() {
			age = max(now.Sub(b.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age, b.Status)
	}
}

// poolCollector reads database/sql's pool statistics at scrape time.
type poolCollector struct {
	read func() map[string]sql.DBStats
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolConns, poolMax, poolWaits, poolWaitSecs, poolClosed} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for name, st := range c.read() {
		ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(st.InUse), name, "in_use")
		ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(st.Idle), name, "idle")
		ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(st.MaxOpenConnections), name)
		ch <- prometheus.MustNewConstMetric(poolWaits, prometheus.CounterValue, float64(st.WaitCount), name)
		ch <- prometheus.MustNewConstMetric(poolWaitSecs, prometheus.CounterValue, st.WaitDuration.Seconds(), name)
		ch <- prometheus.MustNewConstMetric(poolClosed, prometheus.CounterValue, float64(st.MaxIdleClosed), name, "max_idle")
		ch <- prometheus.MustNewConstMetric(poolClosed, prometheus.CounterValue, float64(st.MaxIdleTimeClosed), name, "max_idle_time")
		ch <- prometheus.MustNewConstMetric(poolClosed, prometheus.CounterValue, float64(st.MaxLifetimeClosed), name, "max_lifetime")
	}
}
