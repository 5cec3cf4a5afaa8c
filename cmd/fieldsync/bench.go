package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/internal/bench"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/sync/engine"
)

func benchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCommand("bench", "[flags]")
	fs := c.fs
	dbURL := fs.String("database-url", getenv("FIELDSYNC_DATABASE_URL"), "database to measure (default: a temporary SQLite file)")
	devices := fs.Int("devices", 8, "concurrent devices pushing in the throughput phase")
	batches := fs.Int("batches", 10, "batches each device pushes")
	rounds := fs.Int("rounds", 1, "throughput rounds, each measured against its own raw ceiling; the median is reported with the spread (later rounds push into larger tables)")
	size := fs.Int("batch-size", 500, "visits per batch")
	pullLimit := fs.Int("pull-limit", 1000, "page size of pulls")
	latencyDevs := fs.Int("latency-devices", 200, "concurrent devices in the latency phase")
	latencyEvery := fs.Duration("latency-every", time.Second, "how often each device of the latency phase pushes 10 visits")
	history := fs.Int("history", 10000, "visits the organisation holds before the run")
	teamDevs := fs.Int("team-devices", 0, "devices of the team phase, which push batches of 200–1,000 visits all at once while GET /v1/me, pulls and /readyz are timed (0 skips it; the issue's team is 20)")
	teamBatches := fs.Int("team-batches", 3, "batches each device of the team phase pushes")
	sameMinute := fs.Bool("same-minute", false, "add the same-minute phase: one device pushes 20 batches of --batch-size calls all stamped with the same minute; reports the median latency of the last two pushes against the first two (target: within 2×)")
	hostile := fs.Bool("hostile", false, "add the hostile phase after the latency phase: all latency devices but one, paced, alone and then three times while one more device pushes batches of --batch-size back to back (retrying after Retry-After on 429) and alone again; reports the median p99 of the runs beside it over the median p99 of the runs alone (target: within 1.25×)")
	hostilePushes := fs.Int("hostile-pushes", bench.DefaultHostilePushes, "hostile phase: pushes of each paced device in each of the phase's eight runs")
	mutationRate := fs.Float64("user-mutation-rate", api.DefaultPushBudget.Rate, "hostile phase: the server's --user-mutation-rate, mutations a second per user (0: no budget); the other phases push back to back on purpose and run without a budget")
	mutationBurst := fs.Int("user-mutation-burst", api.DefaultPushBudget.Burst, "hostile phase: the server's --user-mutation-burst")
	maxConns := fs.Int("max-conns", 0, "PostgreSQL connections the server may open (default: the server's own default)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memProfile := fs.String("memprofile", "", "write the heap profile taken when the live heap was largest to this file")
	incremental := fs.String("incremental", "10000,1000000", "visit-table sizes at which to time an incremental pull of 100 changes")
	scenario := fs.String("scenario", "", "\"field-day\" runs the field-day scenario instead of the phases above: phones of reps and managers through a compressed working day, open-loop")
	dayDevices := fs.Int("day-devices", 1000, "field day: phones, reps in teams of --team-size with a manager each")
	teamSize := fs.Int("team-size", 10, "field day: reps per team")
	duration := fs.Duration("duration", 5*time.Minute, "field day: the length of the compressed day (8 hours of visit times)")
	calls := fs.Int("calls", 6, "field day: calls each rep makes in the day, each a check-in, an activity and a check-out push")
	pullEvery := fs.Duration("pull-every", time.Minute, "field day: how often every phone pulls from its cursor")
	standingsEvery := fs.Duration("standings-every", 30*time.Second, "field day: how often a manager reads the contest standings")
	replicas := fs.String("replicas", "1", "field day: comma-separated replica counts to run in turn (e.g. 1,2,3), each replica a server with its own pool (PostgreSQL only beyond 1)")
	reportJSON := fs.String("report-json", "", "field day: write the report as JSON to this file")
	reportSVG := fs.String("report-svg", "", "field day: write a chart of p99 latency per endpoint per 10 s window to this SVG file")
	if err := c.parse(args, stdout); err != nil {
		return ignoreHelp(err)
	}
	if *scenario != "" && *scenario != "field-day" {
		return c.usageErr("--scenario: want field-day")
	}
	var replicaCounts []int
	for _, s := range strings.Split(*replicas, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return c.usageErr("--replicas: want comma-separated counts of at least 1")
		}
		replicaCounts = append(replicaCounts, n)
	}
	if *dayDevices < 2 || *teamSize < 1 || *duration <= 0 || *calls < 1 || *pullEvery <= 0 || *standingsEvery <= 0 {
		return c.usageErr("field day: --day-devices at least 2, sizes and durations positive")
	}
	var sizes []int
	for _, s := range strings.Split(*incremental, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return c.usageErr("--incremental: want comma-separated visit counts")
		}
		sizes = append(sizes, n)
	}
	if *hostile && *latencyDevs < 2 {
		return c.usageErr("--hostile needs --latency-devices of at least 2")
	}
	if *mutationRate < 0 || *mutationBurst < engine.MaxBatch {
		return c.usageErr("--user-mutation-rate at least 0, --user-mutation-burst at least %d", engine.MaxBatch)
	}
	if *devices < 1 || *batches < 1 || *rounds < 1 || *size < 1 || *size > 1000 || *pullLimit < 1 || *pullLimit > 1000 || *latencyDevs < 0 || *latencyEvery <= 0 || *maxConns < 0 || *history < 0 || *teamDevs < 0 || *teamBatches < 1 || *hostilePushes < 1 {
		return c.usageErr("sizes must be positive; --batch-size and --pull-limit at most 1000")
	}
	url := *dbURL
	if url == "" {
		dir, err := os.MkdirTemp("", "fieldsync-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		url = "sqlite:" + filepath.Join(dir, "bench.db")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		stop := bench.WatchHeap()
		defer func() {
			if err := os.WriteFile(*memProfile, stop(), 0o644); err != nil {
				fmt.Fprintln(stderr, "memprofile:", err)
			}
		}()
	}
	if *scenario == "field-day" {
		return fieldDay(ctx, bench.FieldDayConfig{DatabaseURL: url, Server: benchServer(api.PushBudget{}), Devices: *dayDevices, TeamSize: *teamSize, Duration: *duration,
			Calls: *calls, PullEvery: *pullEvery, StandingsEvery: *standingsEvery, Replicas: replicaCounts, MaxConns: *maxConns}, *reportJSON, *reportSVG, stdout, stderr)
	}
	_, err := bench.Run(ctx, bench.Config{
		DatabaseURL: url, Server: benchServer(api.PushBudget{}), HostileServer: benchServer(api.PushBudget{Rate: *mutationRate, Burst: *mutationBurst}), Devices: *devices, Batches: *batches, BatchSize: *size, PullLimit: *pullLimit,
		Rounds: *rounds, LatencyDevs: *latencyDevs, LatencyEvery: *latencyEvery, Incremental: sizes, MaxConns: *maxConns, History: *history,
		TeamDevices: *teamDevs, TeamBatches: *teamBatches, SameMinute: *sameMinute, Hostile: *hostile, HostilePushes: *hostilePushes,
	}, stdout, stderr)
	return err
}

// fieldDay runs the field-day scenario and writes its reports.
func fieldDay(ctx context.Context, cfg bench.FieldDayConfig, jsonPath, svgPath string, stdout, stderr io.Writer) error {
	rep, err := bench.FieldDay(ctx, cfg, stdout, stderr)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path  string
		write func(io.Writer) error
	}{{jsonPath, rep.WriteJSON}, {svgPath, rep.WriteSVG}} {
		if f.path == "" {
			continue
		}
		out, err := os.Create(f.path)
		if err != nil {
			return err
		}
		if err := f.write(out); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
	}
	return nil
}

// benchServer wires the real API for a bench run, as serve does but with
// cheap password hashes, no login rate limit, a body limit that takes the
// largest batches, and budget as each user's budget of mutations: none
// for the phases that measure capacity by pushing back to back, serve's
// for the hostile phase, which measures what the budget protects.
func benchServer(budget api.PushBudget) func(db *store.DB) (http.Handler, error) {
	return func(db *store.DB) (http.Handler, error) { return benchHandler(db, budget) }
}

func benchHandler(db *store.DB, budget api.PushBudget) (http.Handler, error) {
	tokens, err := auth.NewTokens(strings.Repeat("b", 40), nil, time.Now)
	if err != nil {
		return nil, err
	}
	eng := engine.New(db.Feed(), sales.Entities(), time.Now, nil)
	srv := api.New(api.Deps{Store: db.People(), Sync: eng, WatermelonStore: db.Feed(), Notifications: db.Outbox(), Idempotency: db.Idempotency(), Tokens: tokens, Passwords: auth.NewPasswords(auth.TestArgon2),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})), BodyLimit: 64 << 20, Ready: db.Ready,
		LoginPolicy: auth.LoginPolicy{PairFree: 1 << 20, EmailFree: 1 << 20, BaseDelay: time.Second, MaxDelay: time.Second, Forget: time.Minute},
		PushBudget:  budget})
	return srv.Handler(), nil
}
