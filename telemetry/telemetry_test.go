package telemetry_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/notifications"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
	"github.com/fieldsync/fieldsync/telemetry"
)

// exercised is a Metrics with a sample in every series, over fake pools
// and a fake outbox.
func exercised(t *testing.T) *telemetry.Metrics {
	t.Helper()
	m := telemetry.New(telemetry.Options{Entities: sales.Entities(), NoRuntime: true})
	m.WatchPools(func() map[string]sql.DBStats { return map[string]sql.DBStats{"main": {MaxOpenConnections: 4}} })
	m.WatchOutbox(func(context.Context) ([]notifications.Backlog, error) {
		return []notifications.Backlog{{Status: notifications.StatusPending, Count: 1, Oldest: time.Now().Add(-time.Minute)}}, nil
	})
	m.Request("GET", "/healthz", 200, time.Millisecond)
	m.Pushed(telemetry.Native, []engine.Outcome{
		{Entity: "visits", Status: engine.StatusMerged, Conflicts: []string{"notes"}},
		{Entity: "visits", Status: engine.StatusRejected, Code: "invalid_value"},
	})
	m.Pulled(telemetry.WatermelonDB, 3, time.Now().Add(-time.Second))
	m.PushWait(time.Millisecond)
	m.Dispatched(notifications.Stats{Sent: 1, TokensRemoved: 1})
	return m
}

// TestNamesAreRegistered: Names lists exactly the fieldsync_ series the
// registry serves, so the dashboard check below checks against the truth.
func TestNamesAreRegistered(t *testing.T) {
	m := exercised(t)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, f := range fams {
		served = append(served, f.GetName())
	}
	slices.Sort(served)
	if got, want := strings.Join(m.Names(), "\n"), strings.Join(served, "\n"); got != want {
		t.Errorf("Names:\n%s\nregistry serves:\n%s", got, want)
	}
	for _, n := range served {
		if !strings.HasPrefix(n, "fieldsync_") {
			t.Errorf("series %s lacks the fieldsync_ prefix", n)
		}
	}
}

// TestDashboardSeriesExist: every fieldsync_ series the sample Grafana
// dashboard queries is one telemetry defines (a histogram's _bucket,
// _sum and _count by its name), and every panel queries one.
func TestDashboardSeriesExist(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "fieldsync-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	m := telemetry.New(telemetry.Options{NoRuntime: true})
	known := map[string]bool{}
	for _, n := range m.Names() {
		known[n] = true
	}
	series := regexp.MustCompile(`\bfieldsync_[a-zA-Z0-9_:]+`)
	exprs := 0
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("panel: %v", err)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				exprs++
				names := series.FindAllString(tg.Expr, -1)
				if len(names) == 0 {
					t.Errorf("panel %q: %q queries no fieldsync_ series", p.Title, tg.Expr)
				}
				for _, n := range names {
					base := n
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						if s, ok := strings.CutSuffix(n, suf); ok && known[s] {
							base = s
						}
					}
					if !known[base] {
						t.Errorf("panel %q queries %s, which telemetry does not define", p.Title, n)
					}
				}
			}
		}
	}
	walk(dash.Panels)
	if exprs < 10 {
		t.Errorf("the dashboard has %d queries; is it the right file?", exprs)
	}
}

// TestLabelsAreBounded: whatever a client sends, labels take only
// declared entities, fields, codes and methods, or "other".
func TestLabelsAreBounded(t *testing.T) {
	m := telemetry.New(telemetry.Options{Entities: sales.Entities(), NoRuntime: true})
	m.Pushed("carrier-pigeon", []engine.Outcome{
		{Entity: "gadgets", Status: engine.StatusRejected, Code: "made_up_code"},
		{Entity: "visits", Status: engine.StatusMerged, Conflicts: []string{"no_such_field", "notes"}},
		{Entity: "visits", Status: "exploded"},
	})
	m.Request("BREW", "/v1/me", 405, time.Millisecond)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			var ls []string
			for _, l := range s.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			got = append(got, f.GetName()+"{"+strings.Join(ls, ",")+"}")
		}
	}
	for _, want := range []string{
		"fieldsync_sync_mutations_total{code=other,entity=other,protocol=other,status=rejected}",
		"fieldsync_sync_mutations_total{code=,entity=visits,protocol=other,status=merged}",
		"fieldsync_sync_mutations_total{code=,entity=visits,protocol=other,status=other}",
		"fieldsync_sync_conflicts_total{entity=visits,field=other,protocol=other}",
		"fieldsync_sync_conflicts_total{entity=visits,field=notes,protocol=other}",
		"fieldsync_http_requests_total{method=other,route=/v1/me,status=405}",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no %s in\n%s", want, strings.Join(got, "\n"))
		}
	}
	for _, s := range got {
		for _, bad := range []string{"gadgets", "made_up_code", "no_such_field", "exploded", "carrier-pigeon", "BREW"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s carries the client's %q", s, bad)
			}
		}
	}
}
