package api_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
)

// TestPushBudget: a rep's device pushing batches of 500 back to back, as
// fast as it can, goes through while its budget lasts (10 a second, a
// burst of 1,200: three pushes, the third taking it 300 into debt) and is
// then answered 429 rate_limited with Retry-After computed from the budget
// (300 / 10 = 30 s). Meanwhile another rep of the same organisation
// pushes twenty times and is never refused: the budget is each user's.
// The refused rep's other devices, native or WatermelonDB, are refused
// too, the budget being the user's, not the device's. Once Retry-After has
// passed the rep pushes again. Without a budget the pushes all go through
// and the test fails.
func TestPushBudget(t *testing.T) {
	env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) { d.PushBudget = api.PushBudget{Rate: 10, Burst: 1200} }})
	hostile := newDevice(env, "rep1@demo.test")
	colleague := newDevice(env, "rep2@demo.test")
	wm := newWMDevice(env, "rep1@demo.test")
	wm.pull(t)

	deletes := func(d *device, n int) pushBody {
		b := pushBody{SchemaVersion: 1}
		for range n {
			d.seq++
			b.Mutations = append(b.Mutations, mutation{Seq: d.seq, Entity: "visits", ID: uuid.NewString(), Op: "delete", HLC: hlcStamp{MS: env.Clock.Now().UnixMilli()}})
		}
		return b
	}
	type answer struct {
		status     int
		code       string
		retryAfter string
	}
	answerOf := func(res *apitest.Response) answer {
		a := answer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After")}
		if res.StatusCode != http.StatusOK {
			a.code = res.Problem(t).Code
		}
		return a
	}

	var (
		wg        sync.WaitGroup
		hostileAt []answer
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		// Back to back until refused (ten at most, without a budget).
		for range 10 {
			a := answerOf(pushRequest(env, hostile.Access, deletes(hostile, 500)))
			hostileAt = append(hostileAt, a)
			if a.status != http.StatusOK {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 20 {
			if a := answerOf(pushRequest(env, colleague.Access, deletes(colleague, 10))); a.status != http.StatusOK {
				t.Errorf("colleague's push %d: %+v, want 200", i+1, a)
			}
		}
	}()
	wg.Wait()

	ok := answer{status: http.StatusOK}
	refused := func(secs string) answer { return answer{http.StatusTooManyRequests, models.CodeRateLimited, secs} }
	want := []answer{ok, ok, ok, refused("30")}
	if len(hostileAt) != len(want) {
		t.Fatalf("the back-to-back device's pushes: got %+v, want %+v", hostileAt, want)
	}
	for i := range want {
		if hostileAt[i] != want[i] {
			t.Errorf("the back-to-back device's push %d: got %+v, want %+v", i+1, hostileAt[i], want[i])
		}
	}

	// The rep's other devices share the budget: a phone's one mutation
	// and a WatermelonDB push are refused alike, 10 s later with 20 s to go.
	env.Clock.Advance(10 * time.Second)
	other := newDevice(env, "rep1@demo.test")
	if got := answerOf(pushRequest(env, other.Access, deletes(other, 1))); got != refused("20") {
		t.Errorf("the rep's other phone: got %+v, want %+v", got, refused("20"))
	}
	if got := answerOf(wm.push(t, map[string]any{"visits": map[string]any{"created": []any{}, "updated": []any{}, "deleted": []string{uuid.NewString()}}})); got != refused("20") {
		t.Errorf("the rep's WatermelonDB device: got %+v, want %+v", got, refused("20"))
	}

	// Refused pushes cost nothing: after the Retry-After first given, the
	// debt is paid and the rep's pushes go through again.
	env.Clock.Advance(20 * time.Second)
	if got := answerOf(pushRequest(env, other.Access, deletes(other, 1))); got != ok {
		t.Errorf("after Retry-After: got %+v, want 200", got)
	}
}
