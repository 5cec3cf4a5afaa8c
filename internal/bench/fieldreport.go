package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// fieldTable writes the field day's figures: a table per run, then the
// curve over replica counts.
func fieldTable(out io.Writer, r FieldDayReport) {
	fmt.Fprintf(out, "\nfieldsync bench field-day on %s (%d cores): %d devices (%d reps, %d managers, %d teams), %s day, %d calls per rep, pulls every %s, standings every %s\n",
		r.Dialect, r.Cores, r.Devices, r.Reps, r.Managers, r.Teams, secs(r.DurationS), r.Calls, secs(r.PullEveryS), secs(r.StandingsEvery))
	for _, run := range r.Runs {
		fmt.Fprintf(out, "\n%d replica(s): %d requests in %.1f s (%.1f/s, %.1f pushes/s), %d errors (%.2f%%), %d rejected mutations; load %s → %s\n",
			run.Replicas, run.Requests, run.ElapsedS, run.RequestsPerSecond, run.PushesPerSecond, run.Errors, 100*run.ErrorRate, run.RejectedMutations, run.LoadBefore, run.LoadAfter)
		fmt.Fprintf(out, "%-12s %8s %7s %10s %10s %10s %10s\n", "endpoint", "count", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms")
		for _, e := range run.Endpoints {
			fmt.Fprintf(out, "%-12s %8d %7d %10.1f %10.1f %10.1f %10.1f\n", e.Name, e.Count, e.Errors, e.P50MS, e.P95MS, e.P99MS, e.MaxMS)
		}
		limit := "unlimited"
		if run.PoolLimit > 0 {
			limit = fmt.Sprint(run.PoolLimit)
		}
		fmt.Fprintf(out, "peak RSS %.1f MB; pool in use ≤ %d, open ≤ %d of %s, %d waits (%.1f s)", float64(run.PeakRSSBytes)/(1<<20), run.PoolInUseMax, run.PoolOpenMax, limit, run.PoolWaits, run.PoolWaitS)
		if r.Dialect == "postgres" {
			fmt.Fprintf(out, "; pg_stat_activity ≤ %d", run.PGConnections)
		}
		fmt.Fprintln(out)
		for _, e := range run.Endpoints {
			if e.FirstError != "" {
				fmt.Fprintf(out, "first %s error: %s\n", e.Name, e.FirstError)
			}
		}
	}
	if len(r.Runs) > 1 {
		fmt.Fprintf(out, "\n%-9s %10s %10s %10s %10s %14s %8s %11s %9s\n", "replicas", "req/s", "pushes/s", "push p99", "pull p99", "standings p99", "errors", "pool waits", "pg conns")
		for _, run := range r.Runs {
			fmt.Fprintf(out, "%-9d %10.1f %10.1f %8.0fms %8.0fms %12.0fms %8d %11d %9d\n", run.Replicas, run.RequestsPerSecond, run.PushesPerSecond,
				run.Endpoints[epPush].P99MS, run.Endpoints[epPull].P99MS, run.Endpoints[epStandings].P99MS, run.Errors, run.PoolWaits, run.PGConnections)
		}
		fmt.Fprintln(out, "(replicas share this process and its cores: the curve shows the database's share of the cost, not the scaling of separate machines)")
	}
	fmt.Fprintf(out, "process peak RSS (VmHWM) %.1f MB\n", float64(r.PeakRSSBytes)/(1<<20))
}

func secs(s float64) string {
	return (time.Duration(s * float64(time.Second))).String()
}

// WriteJSON writes the report as indented JSON.
func (r FieldDayReport) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// svgColors colour the endpoints, in epNames order.
var svgColors = [epCount]string{"#7f7f7f", "#9467bd", "#d62728", "#1f77b4", "#2ca02c"}

// WriteSVG draws p99 latency per endpoint per window as polylines, one
// panel per run (replica count), by hand: no charting dependency.
func (r FieldDayReport) WriteSVG(w io.Writer) error {
	const (
		width  = 820
		panelH = 280
		left   = 70
		right  = 130
		top    = 40
		bottom = 40
	)
	var b bytes.Buffer
	height := 30 + len(r.Runs)*panelH
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">%s</text>`+"\n", left, esc(fmt.Sprintf("fieldsync field day on %s: p99 latency per %s window, %d devices", r.Dialect, secs(r.WindowS), r.Devices)))
	for i, run := range r.Runs {
		y0 := 30 + i*panelH
		plotW, plotH := width-left-right, panelH-top-bottom
		xMax := math.Max(r.DurationS, r.WindowS)
		for _, win := range run.Windows {
			xMax = math.Max(xMax, win.StartS+r.WindowS)
		}
		yMax := 1.0
		for _, win := range run.Windows {
			for _, v := range win.P99MS {
				yMax = math.Max(yMax, v)
			}
		}
		yMax = niceCeil(yMax)
		x := func(s float64) float64 { return float64(left) + s/xMax*float64(plotW) }
		y := func(ms float64) float64 { return float64(y0+top+plotH) - ms/yMax*float64(plotH) }
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13">%s</text>`+"\n", left, y0+top-12,
			esc(fmt.Sprintf("%d replica(s): %.1f requests/s, %d errors, load %s", run.Replicas, run.RequestsPerSecond, run.Errors, run.LoadAfter)))
		// Axes and grid.
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, y0+top, plotW, plotH)
		for k := 0; k <= 4; k++ {
			v := yMax * float64(k) / 4
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), left+plotW, y(v))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, esc(fmt.Sprintf("%g ms", v)))
		}
		for k := 0; k <= 5; k++ {
			s := xMax * float64(k) / 5
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(s), y0+top+plotH+16, esc(fmt.Sprintf("%.0f s", s)))
		}
		// One polyline per endpoint, a point at the middle of each window
		// that had requests of it.
		for ep, name := range epNames {
			var pts []string
			for _, win := range run.Windows {
				if v, ok := win.P99MS[name]; ok {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(win.StartS+r.WindowS/2), y(v)))
				}
			}
			if len(pts) == 0 {
				continue
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`+"\n", svgColors[ep], strings.Join(pts, " "), esc(name+" p99"))
			for _, pt := range pts {
				xy := strings.SplitN(pt, ",", 2)
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`+"\n", xy[0], xy[1], svgColors[ep])
			}
		}
		for ep, name := range epNames {
			ly := y0 + top + 14 + ep*18
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", left+plotW+12, ly-4, left+plotW+32, ly-4, svgColors[ep])
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", left+plotW+38, ly, esc(name))
		}
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
