package api_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/apitest"
)

// TestIdempotencyKey: a POST retried with the same Idempotency-Key and
// body — a phone that lost the answer — gets the first answer and has one
// effect; the same key with another body is refused; keys are per user and
// last 24 hours.
func TestIdempotencyKey(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	body := contestBody("Once", now.Add(time.Hour), now.Add(48*time.Hour), nil)
	post := func(who, key string, body any) *apitest.Response {
		return o.env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/contests", Token: o.dev[who].Access, Body: body,
			Header: http.Header{"Idempotency-Key": {key}}})
	}
	count := func() int {
		res := o.do("admin", http.MethodGet, "/v1/contests", nil)
		apitest.Expect(t, res, http.StatusOK)
		var l struct {
			Contests []wireContest `json:"contests"`
		}
		res.JSON(t, &l)
		return len(l.Contests)
	}
	before := count()

	first := post("admin", "k-1", body)
	apitest.Expect(t, first, http.StatusCreated)
	again := post("admin", "k-1", body)
	apitest.Expect(t, again, http.StatusCreated)
	if string(again.Body) != string(first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %s (replayed %q), want the first answer %s again", again.Body, again.Header.Get("Idempotent-Replayed"), first.Body)
	}
	if got := count(); got != before+1 {
		t.Errorf("%d contests after a create and its retry, want %d", got, before+1)
	}

	other := contestBody("Twice", now.Add(time.Hour), now.Add(48*time.Hour), nil)
	p := expectProblem(t, post("admin", "k-1", other), http.StatusUnprocessableEntity, "invalid")
	expectFields(t, p, "Idempotency-Key")

	// Another user's key of the same name is theirs.
	apitest.Expect(t, post("m1", "k-1", contestBody("North own", now.Add(time.Hour), now.Add(48*time.Hour), nil)), http.StatusCreated)

	// A refused request is kept too: the retry gets the same refusal.
	bad := map[string]any{"name": "", "starts_at": "x", "ends_at": "y"}
	expectProblem(t, post("admin", "k-bad", bad), http.StatusUnprocessableEntity, "invalid")
	if res := post("admin", "k-bad", bad); res.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry of a refused request was run again, want the stored refusal")
	}

	// After 24 hours the key is free again.
	o.env.Clock.Advance(25 * time.Hour)
	o.relogin()
	apitest.Expect(t, post("admin", "k-1", other), http.StatusCreated)

	for _, key := range []string{"é", strings.Repeat("a", 300)} {
		expectProblem(t, post("admin", key, body), http.StatusUnprocessableEntity, "invalid")
	}
}

// TestIdempotencyKeyConcurrent: the same request sent twice at once has one
// effect; the loser is told to retry (409) or gets the stored answer.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	body := contestBody("Race", now.Add(time.Hour), now.Add(48*time.Hour), nil)
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := o.env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/contests", Token: o.dev["admin"].Access, Body: body,
				Header: http.Header{"Idempotency-Key": {"race"}}})
			statuses[i] = res.StatusCode
		}()
	}
	wg.Wait()
	res := o.do("admin", http.MethodGet, "/v1/contests", nil)
	var l struct {
		Contests []wireContest `json:"contests"`
	}
	res.JSON(t, &l)
	n := 0
	for _, c := range l.Contests {
		if c.Name == "Race" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d contests from 8 concurrent sends of one key, want 1 (statuses %v)", n, statuses)
	}
	for _, s := range statuses {
		if s != http.StatusCreated && s != http.StatusConflict {
			t.Errorf("statuses %v, want only 201 and 409", statuses)
			break
		}
	}
}
