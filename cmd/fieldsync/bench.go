package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

func benchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	dbURL := fs.String("database-url", getenv("FIELDSYNC_DATABASE_URL"), "database to measure (default: a temporary SQLite file)")
	devices := fs.Int("devices", 8, "concurrent devices pushing in the throughput phase")
	batches := fs.Int("batches", 10, "batches each device pushes")
	rounds := fs.Int("rounds", 1, "throughput rounds, each measured against its own raw ceiling; the median is reported with the spread (later rounds push into larger tables)")
	size := fs.Int("batch-size", 500, "visits per batch")
	pullLimit := fs.Int("pull-limit", 1000, "page size of pulls")
	latencyDevs := fs.Int("latency-devices", 200, "concurrent devices in the latency phase")
	latencyEvery := fs.Duration("latency-every", time.Second, "how often each device of the latency phase pushes 10 visits")
	history := fs.Int("history", 10000, "visits the organisation holds before the run")
	maxConns := fs.Int("max-conns", 0, "PostgreSQL connections the server may open (default: the server's own default)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memProfile := fs.String("memprofile", "", "write the heap profile taken when the live heap was largest to this file")
	incremental := fs.String("incremental", "10000,1000000", "visit-table sizes at which to time an incremental pull of 100 changes")
	if err := parseFlags(fs, args, stderr); err != nil {
		return ignoreHelp(err)
	}
	var sizes []int
	for _, s := range strings.Split(*incremental, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return usageError{"--incremental: want comma-separated visit counts"}
		}
		sizes = append(sizes, n)
	}
	if *devices < 1 || *batches < 1 || *rounds < 1 || *size < 1 || *size > 1000 || *pullLimit < 1 || *pullLimit > 1000 || *latencyDevs < 0 || *latencyEvery <= 0 || *maxConns < 0 || *history < 0 {
		return usageError{"bench: sizes must be positive; --batch-size and --pull-limit at most 1000"}
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
		stop := watchHeap()
		defer func() {
			if err := os.WriteFile(*memProfile, stop(), 0o644); err != nil {
				fmt.Fprintln(stderr, "memprofile:", err)
			}
		}()
	}
	_, err := runBench(ctx, benchConfig{
		DatabaseURL: url, Devices: *devices, Batches: *batches, BatchSize: *size, PullLimit: *pullLimit,
		Rounds: *rounds, LatencyDevs: *latencyDevs, LatencyEvery: *latencyEvery, Incremental: sizes, MaxConns: *maxConns, History: *history,
	}, stdout, stderr)
	return err
}

// watchHeap samples the live heap as of the last garbage collection and
// keeps the heap profile of the largest: the profile of a run's end shows
// what survives it, not what made the resident set peak. The returned stop
// function ends the watch and returns that profile.
func watchHeap() func() []byte {
	done := make(chan struct{})
	out := make(chan []byte)
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var peak uint64
		var best []byte
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				out <- best
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if live := sample[0].Value.Uint64(); live > peak+peak/20 {
				var b bytes.Buffer
				if pprof.Lookup("heap").WriteTo(&b, 0) == nil {
					peak, best = live, b.Bytes()
				}
			}
		}
	}()
	return func() []byte { close(done); return <-out }
}
