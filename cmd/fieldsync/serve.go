package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync"
	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/config"
	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/sync/engine"
	"github.com/fieldsync/fieldsync/telemetry"
)

func newLogger(format, level string, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serveUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: fieldsync serve [--demo] [flags]")
	config.PrintFlags(w)
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv, io.Discard)
	if errors.Is(err, flag.ErrHelp) {
		serveUsage(stdout)
		return nil
	}
	if err != nil {
		return usageError{cmd: "serve", msg: err.Error(), usage: serveUsage}
	}
	log := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	warnOfSharedSecrets(cfg, getenv, log)

	metrics := telemetry.New(telemetry.Options{Entities: sales.Entities()})
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Logger: log, PushWait: metrics.PushWait})
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: the workers started below are
	// stopped by later defers, which wait for them, before it closes.
	defer db.Close()
	if cfg.NoMigrate {
		st, err := db.MigrationStatus(ctx)
		if err != nil {
			return err
		}
		if st.Behind() {
			return fmt.Errorf("the schema is at version %d but this build needs %d; run `fieldsync migrate up` or start without --no-migrate", st.Current, st.Latest)
		}
	} else {
		applied, err := db.Migrate(ctx)
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			log.Info("migrated database", "versions", applied)
		}
	}

	secret := cfg.JWTSecret
	if secret == "" && cfg.Demo {
		if secret, err = demoSecret(db, log); err != nil {
			return err
		}
	}
	tokens, err := auth.NewTokens(secret, cfg.JWTPreviousSecrets, time.Now)
	if err != nil {
		return err
	}
	passwords := auth.NewPasswords(auth.DefaultArgon2)

	eng := engine.New(db.Feed(), sales.Entities(), time.Now, log)
	if cfg.Demo {
		seeded, err := demo.Seed(ctx, db, passwords, time.Now())
		if err != nil {
			return err
		}
		if seeded {
			if err := demo.SeedHistory(ctx, db, eng, time.Now()); err != nil {
				return err
			}
		}
		printDemo(stdout, seeded)
	}

	metrics.WatchPools(db.PoolStats)
	metrics.WatchOutbox(db.Outbox().OutboxBacklog)
	stopScheduler := startScheduler(ctx, scheduled{
		orgs: db.People().OrgIDs,
		tick: func(ctx context.Context, org uuid.UUID) error {
			return eng.Server(ctx, models.Principal{OrgID: org}, sales.Tick)
		},
		purge:  eng.PurgeTombstones,
		expire: db.Idempotency().Purge,
		redact: func(ctx context.Context, org uuid.UUID, before time.Time) (int, error) {
			return sales.RedactAllLocations(ctx, eng, org, before, sales.RedactBatch)
		},
		locationRetention: cfg.LocationRetention,
	}, log, time.Minute, cfg.TombstoneRetention)
	defer stopScheduler()
	stopNotifications, err := startNotifications(ctx, cfg, db, eng, log, metrics.Dispatched)
	if err != nil {
		return err
	}
	defer stopNotifications()
	srv := api.New(api.Deps{
		Store: db.People(), Sync: eng, WatermelonStore: db.Feed(), Notifications: db.Outbox(), Idempotency: db.Idempotency(), Audit: db.AuditLog(), Reports: db.Reports(), Tokens: tokens, Passwords: passwords, Logger: log, Metrics: metrics,
		Spec: fieldsync.OpenAPI, BodyLimit: cfg.BodyLimitBytes, TrustedProxies: cfg.TrustedProxies,
		CORSOrigins: cfg.CORSOrigins, HSTSMaxAge: cfg.HSTSMaxAge,
		Version: moduleVersion(), Ready: db.Ready, PushTimeout: cfg.PushTimeout, RequestTimeout: cfg.RequestTimeout,
		PushBudget: api.PushBudget{Rate: cfg.UserMutationRate, Burst: cfg.UserMutationBurst},
	})
	if cfg.MetricsAddr != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsAddr, metrics.Handler(), log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	return listenAndServe(ctx, cfg.Addr, srv.Handler(), log, db.Dialect())
}

// serveMetrics serves /metrics, and nothing else, on a listener of its own
// until stop is called.
func serveMetrics(addr string, metrics http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("metrics listening", "addr", ln.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
	}, nil
}

// scheduled is the work of the scheduler: in serve, the store's list of
// organisations and the engine's time-based rules.
type scheduled struct {
	orgs  func(ctx context.Context) ([]uuid.UUID, error)
	tick  func(ctx context.Context, org uuid.UUID) error
	purge func(ctx context.Context, org uuid.UUID, before time.Time) (int, error)
	// expire drops kept Idempotency-Key answers past their 24 hours.
	expire func(ctx context.Context) (int64, error)
	// redact coarsens an organisation's positions dated before before
	// (location privacy), when set, hourly with the purge.
	redact            func(ctx context.Context, org uuid.UUID, before time.Time) (int, error)
	locationRetention time.Duration
}

// startScheduler runs schedule in a goroutine. stop cancels it and waits
// until it has returned, so that a tick in progress never meets a closed
// database; serve calls it before closing the database, on every way out.
func startScheduler(ctx context.Context, jobs scheduled, log *slog.Logger, every, retention time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		schedule(ctx, jobs, log, every, retention)
	}()
	return func() { cancel(); <-done }
}

// schedule runs the domain's time-based rules every interval until ctx
// ends: contests start, end and finalize, stale ride-along requests
// expire. Each organisation's tick is one transaction and idempotent, so
// several replicas may run it at once. Hourly, it purges tombstones older
// than retention and coarsens positions older than the location retention
// (in transactions of sales.RedactBatch records, each idempotent too).
func schedule(ctx context.Context, jobs scheduled, log *slog.Logger, every, retention time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastPurge time.Time
	for {
		purge := time.Since(lastPurge) >= time.Hour
		if purge {
			lastPurge = time.Now()
		}
		if purge && jobs.expire != nil {
			if _, err := jobs.expire(ctx); err != nil && ctx.Err() == nil {
				log.Warn("scheduler: expire idempotency keys", "err", err)
			}
		}
		orgs, err := jobs.orgs(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("scheduler: list organisations", "err", err)
		}
		for _, org := range orgs {
			if err := jobs.tick(ctx, org); err != nil && ctx.Err() == nil {
				log.Warn("scheduler: tick", "org", org, "err", err)
			}
			if !purge {
				continue
			}
			n, err := jobs.purge(ctx, org, time.Now().Add(-retention))
			if err != nil && ctx.Err() == nil {
				log.Warn("scheduler: purge tombstones", "org", org, "err", err)
			}
			if n > 0 {
				log.Info("purged tombstones", "org", org, "count", n, "retention", retention)
			}
			if jobs.redact == nil {
				continue
			}
			n, err = jobs.redact(ctx, org, time.Now().Add(-jobs.locationRetention))
			if err != nil && ctx.Err() == nil {
				log.Warn("scheduler: coarsen locations", "org", org, "err", err)
			}
			if n > 0 {
				log.Info("coarsened locations", "org", org, "records", n, "retention", jobs.locationRetention)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drainLimit is how long a shutdown lets requests in flight finish.
const drainLimit = 20 * time.Second

// errShuttingDown ends requests still running at the drain limit: they
// roll back and answer 503, and the client retries on another replica.
var errShuttingDown = models.Errorf(models.CodeUnavailable, "the server is shutting down; retry")

// listenAndServe serves until ctx ends, then stops taking connections and
// lets requests in flight finish (up to drainLimit).
func listenAndServe(ctx context.Context, addr string, h http.Handler, log *slog.Logger, dialect store.Dialect) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	log.Info("fieldsync listening", "addr", ln.Addr().String(), "database", string(dialect), "version", moduleVersion())
	return serveUntil(ctx, ln, h, log, drainLimit)
}

// serveUntil serves on ln until ctx ends, then drains. Requests still
// running after drain are cancelled, so their transactions roll back and
// they answer 503; the server then stops cleanly.
func serveUntil(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, drain time.Duration) error {
	// Requests do not end with ctx (a SIGTERM): they get drain to finish.
	// Past it, this cancels them.
	base, cancelRequests := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelRequests(nil)
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      config.WriteTimeout,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down; finishing requests in flight", "limit", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("drain limit reached; cancelling the requests still in flight (they roll back and answer 503)", "limit", drain)
		cancelRequests(errShuttingDown)
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = hs.Shutdown(rctx)
	}
	if err != nil {
		_ = hs.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// warnOfSharedSecrets warns of each secret file the settings name
// (FIELDSYNC_*_FILE, the Firebase key) that others may read.
func warnOfSharedSecrets(cfg config.Config, getenv func(string) string, log *slog.Logger) {
	for _, o := range config.Options {
		if o.File && getenv(o.Env) == "" {
			if path := getenv(o.Env + "_FILE"); path != "" {
				store.WarnIfReadableByOthers(log, path, o.Env+"_FILE")
			}
		}
	}
	if cfg.FirebaseCredentialsFile != "" {
		store.WarnIfReadableByOthers(log, cfg.FirebaseCredentialsFile, "firebase credentials")
	}
}

// demoSecret keeps a generated secret beside the SQLite file (or in the
// working directory on PostgreSQL) so demo tokens survive restarts.
func demoSecret(db *store.DB, log *slog.Logger) (string, error) {
	path := ".fieldsync-demo-secret"
	if db.Path != "" {
		path = filepath.Join(filepath.Dir(db.Path), filepath.Base(db.Path)+".jwt-secret")
	}
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= auth.MinSecretLen {
		store.WarnIfReadableByOthers(log, path, "demo jwt secret")
		return strings.TrimSpace(string(b)), nil
	}
	var raw [48]byte
	_, _ = rand.Read(raw[:])
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep demo jwt secret: %w", err)
	}
	return secret, nil
}

func printDemo(w io.Writer, seeded bool) {
	if seeded {
		fmt.Fprintf(w, "Seeded the demo organisation %q.\n", demo.OrgName)
	} else {
		fmt.Fprintln(w, "Database already has data; demo seeding skipped.")
	}
	fmt.Fprintf(w, "Demo logins (password %q):\n", demo.Password)
	for _, l := range demo.Logins() {
		team := ""
		if l.Team != "" {
			team = " team " + l.Team
		}
		fmt.Fprintf(w, "  %-20s %-8s%s\n", l.Email, l.Role, team)
	}
}
