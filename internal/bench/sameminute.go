package bench

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Same-minute phase: one device that stamps every call with the same
// minute (a phone whose clock stuck, or an app bug) pushes
// sameMinuteBatches batches of --batch-size (500) calls, one after another.
// Each push meets all the calls of that minute pushed before it: a push
// whose work grew with them (verification read every call of the rep
// within the cooldown) took 21× longer by the eighth push. The figure is
// the median latency of the last two pushes over that of the first two.
const sameMinuteBatches = 20

// sameMinuteResult holds the figures of the same-minute phase.
type sameMinuteResult struct {
	Size              int // calls a push
	Latencies         []time.Duration
	FirstTwo, LastTwo time.Duration
}

// Ratio is the last two pushes' median latency over the first two's.
func (r sameMinuteResult) Ratio() float64 {
	if r.FirstTwo <= 0 {
		return 0
	}
	return float64(r.LastTwo) / float64(r.FirstTwo)
}

func (w *world) sameMinutePhase(base string, rep models.User, size int, bar *bar) (sameMinuteResult, error) {
	res := sameMinuteResult{Size: size}
	d := &device{user: rep}
	if err := w.login(base, d); err != nil {
		return res, err
	}
	minute := w.start.Add(-time.Hour).Truncate(time.Minute)
	bodies := make([][]byte, sameMinuteBatches)
	for i := range bodies {
		bodies[i] = w.sameMinuteBatch(d, minute, size)
	}
	for _, body := range bodies {
		var pr struct {
			Results []struct{ Status string } `json:"results"`
		}
		t0 := time.Now()
		if err := w.call(base, http.MethodPost, "/v1/sync/push", d.token, body, &pr); err != nil {
			return res, err
		}
		res.Latencies = append(res.Latencies, time.Since(t0))
		for _, r := range pr.Results {
			if r.Status != engine.StatusApplied {
				return res, fmt.Errorf("a same-minute mutation was %s", r.Status)
			}
		}
		bar.step()
	}
	n := len(res.Latencies)
	res.FirstTwo = (res.Latencies[0] + res.Latencies[1]) / 2
	res.LastTwo = (res.Latencies[n-2] + res.Latencies[n-1]) / 2
	return res, nil
}

// sameMinuteBatch builds a push of n new completed unscheduled visits, all
// started at minute, checked in at the account; one in three takes an
// order, as in visitBatch.
func (w *world) sameMinuteBatch(d *device, minute time.Time, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"schema_version":1,"mutations":[`)
	now := time.Now().UTC()
	at := minute.Format(time.RFC3339)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		d.seq++
		outcome := `"outcome":"order","order_value":` + strconv.Itoa(100+i) + `.50`
		switch d.seq % 3 {
		case 1:
			outcome = `"outcome":"no_answer"`
		case 2:
			outcome = `"outcome":"meeting"`
		}
		fmt.Fprintf(&b, `{"seq":%d,"entity":"visits","id":"%s","op":"upsert","hlc":{"ms":%d,"counter":%d},"fields":{"account_id":"%s",%s,"started_at":"%s","check_in_lat":44.97,"check_in_lng":-93.26,"check_in_accuracy_m":12,"notes":"Same-minute visit %d"}}`,
			d.seq, uuid.NewString(), now.UnixMilli(), i, w.account, outcome, at, d.seq)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// reportSameMinute writes the same-minute phase's lines of the summary.
func reportSameMinute(out io.Writer, r sameMinuteResult) {
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	fmt.Fprintf(out, "\nsame minute: 1 device × %d pushes of %d calls stamped with one minute\n", sameMinuteBatches, r.Size)
	fmt.Fprintf(out, "%-42s %14s\n", "push latency, first two (median)", ms(r.FirstTwo))
	fmt.Fprintf(out, "%-42s %14s   (%.2f× the first two; target ≤ 2×)\n", "push latency, last two (median)", ms(r.LastTwo), r.Ratio())
	var all []string
	for _, l := range r.Latencies {
		all = append(all, ms(l))
	}
	fmt.Fprintf(out, "%-42s %v\n", "each push", all)
}
