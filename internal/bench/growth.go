package bench

import (
	"fmt"
	"io"
	"sort"
	"time"
)

// Growth with realistic spacing: the throughput phase's devices push
// their calls an hour apart, each batch later than the one before, as a
// phone syncing its days would. A push whose work grew with the rep's
// history would slow down batch after batch; the figure is, for each
// device of each round, the mean latency of its last two batches over
// that of its first two, and the report gives the median over devices
// and rounds with the range. Target: within growthTarget.
const growthTarget = 1.5

// growthResult holds the realistic-spacing growth figures.
type growthResult struct {
	Median, Min, Max float64
	N                int // devices × rounds measured; 0 when batches < 4
}

// growth is one device's last two batches' mean latency over its first
// two's; ok is false with fewer than four batches, where the two pairs
// would overlap.
func growth(lats []time.Duration) (float64, bool) {
	n := len(lats)
	if n < 4 || lats[0]+lats[1] <= 0 {
		return 0, false
	}
	return float64(lats[n-2]+lats[n-1]) / float64(lats[0]+lats[1]), true
}

func summarizeGrowth(gs []float64) growthResult {
	if len(gs) == 0 {
		return growthResult{}
	}
	s := append([]float64(nil), gs...)
	sort.Float64s(s)
	// The lower median of an even count, as percentile's nearest rank.
	return growthResult{Median: s[(len(s)-1)/2], Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// reportGrowth writes the realistic-spacing growth line of the summary.
func reportGrowth(out io.Writer, cfg Config, g growthResult) {
	label := fmt.Sprintf("push growth, batches %d–%d vs 1–2", cfg.Batches-1, cfg.Batches)
	if g.N == 0 {
		fmt.Fprintf(out, "%-42s %14s   (needs --batches ≥ 4)\n", "push growth, last two batches vs first two", "n/a")
		return
	}
	fmt.Fprintf(out, "%-42s %13.2f×   (median of %d devices × rounds, %.2f–%.2f×; target ≤ %.1f×)\n", label, g.Median, g.N, g.Min, g.Max, growthTarget)
}
