package sales_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// statements records the statements a store's writers send while on.
type statements struct {
	mu   sync.Mutex
	on   bool
	list []string
}

func (s *statements) hear(q string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on {
		s.list = append(s.list, q)
	}
}

// during returns the statements fn made the store send.
func (s *statements) during(fn func()) []string {
	s.mu.Lock()
	s.on, s.list = true, nil
	s.mu.Unlock()
	fn()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on = false
	return s.list
}

var spaces = regexp.MustCompile(`\s+`)

func brief(q string) string {
	q = spaces.ReplaceAllString(q, " ")
	if len(q) > 110 {
		q = q[:110] + "…"
	}
	return q
}

// TestPushRoundTrips holds down the statements — round trips to the
// database, each made while the push holds its transaction open — of a
// rep's kinds of push: a check-in (one new visit), its check-out (one
// update), the check-out again (its answer was lost on the way back) and a
// batch of 500 visits logged offline. A thousand phones
// checking in at once left PostgreSQL connections idle in transaction,
// waiting on the server between the dozen-odd statements a check-in made.
func TestPushRoundTrips(t *testing.T) {
	var st statements
	f := synctest.New(t, storetest.Options{OnStatement: st.hear})
	rep := f.Principal("rep1@demo.test")
	accountID := f.AccountsByTeam()[*rep.TeamID][0]
	account, err := f.En.Get(t.Context(), rep, "accounts", accountID)
	if err != nil || account == nil {
		t.Fatalf("account: %v %v", account, err)
	}
	lat, lng := *account.FloatValue("lat"), *account.FloatValue("lng")
	var seq int64
	visit := func(id uuid.UUID, start time.Time, fields map[string]any) engine.Mutation {
		seq++
		vals := map[string]any{"account_id": accountID.String(), "kind": "unscheduled", "started_at": start.Format(time.RFC3339),
			"check_in_lat": lat, "check_in_lng": lng, "check_in_accuracy_m": 12.0}
		for k, v := range fields {
			vals[k] = v
		}
		return visitMut(seq, id, f.Now(), vals)
	}
	push := func(name string, muts ...engine.Mutation) int {
		t.Helper()
		// A deadline, as every request has: the transaction's wait
		// limits come from it.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		list := st.during(func() {
			res, err := f.En.Push(ctx, rep, muts)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, r := range res.Results {
				if r.Status == engine.StatusRejected {
					t.Fatalf("%s: seq %d rejected: %+v", name, r.Seq, r.Error)
				}
			}
		})
		// Runs of one statement (a look-up per pivot) are shown once.
		var sb strings.Builder
		for i := 0; i < len(list); {
			j := i + 1
			for j < len(list) && list[j] == list[i] {
				j++
			}
			fmt.Fprintf(&sb, "\n  %4d ×%-4d %s", i+1, j-i, brief(list[i]))
			i = j
		}
		t.Logf("%s: %d statements%s", name, len(list), sb.String())
		return len(list)
	}

	// The day so far: a batch the phone logged offline.
	day := f.Now().Add(-8 * time.Hour)
	batch := make([]engine.Mutation, 500)
	for i := range batch {
		fields := map[string]any{"status": "completed", "outcome": "no_answer", "notes": fmt.Sprintf("call %d", i),
			"ended_at": day.Add(time.Duration(i)*time.Minute + 30*time.Second).Format(time.RFC3339)}
		batch[i] = visit(uuid.New(), day.Add(time.Duration(i)*time.Minute), fields)
	}
	nBatch := push("batch of 500", batch...)

	f.Advance(time.Hour)
	id := uuid.New()
	start := f.Now()
	nIn := push("check-in", visit(id, start, map[string]any{"status": "in_progress"}))

	f.Advance(20 * time.Minute)
	seq++
	// An order, which its rules weigh against the organisation's ceiling.
	checkOut := visitMut(seq, id, f.Now(), map[string]any{"status": "completed", "outcome": "order", "order_value": 420.5,
		"ended_at": f.Now().Format(time.RFC3339)})
	nOut := push("check-out", checkOut)
	nRetry := push("check-out retried", checkOut)

	// Each statement is a round trip on PostgreSQL. In process, SQLite's
	// cost little; only the small pushes' are held there, and a batch's
	// neighbour look-ups are a statement per call (see
	// sqliteDialect.nearest).
	want := map[store.Dialect]struct{ batch, in, out, retry int }{
		store.Postgres: {batch: 22, in: 11, out: 8, retry: 4},
		store.SQLite:   {batch: 1 << 30, in: 16, out: 12, retry: 4},
	}[f.DB.Dialect()]
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"batch of 500", nBatch, want.batch},
		{"check-in", nIn, want.in},
		{"check-out", nOut, want.out},
		{"check-out retried", nRetry, want.retry},
	} {
		if c.got > c.want {
			t.Errorf("%s: %d statements, want at most %d", c.name, c.got, c.want)
		}
	}
}
