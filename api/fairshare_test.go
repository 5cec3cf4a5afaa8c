package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// TestPushBeyondFairShare: while two pushes of a rep are in progress, a
// third — native or WatermelonDB — waits the share's bound and is answered
// 429 rate_limited with Retry-After: 1; once they finish, the rep pushes
// again.
func TestPushBeyondFairShare(t *testing.T) {
	env := apitest.New(t, apitest.Options{PushShareWait: 200 * time.Millisecond})
	ctx := context.Background()
	rep := newDevice(env, "rep1@demo.test")
	wm := newWMDevice(env, "rep1@demo.test")
	wm.pull(t)
	u, err := env.DB.People().UserByEmail(ctx, "rep1@demo.test")
	if err != nil {
		t.Fatal(err)
	}
	// Two pushes of the rep's, from a third device, held open.
	release := make(chan struct{})
	held := make(chan error, 2)
	for range 2 {
		p := models.Principal{OrgID: u.OrgID, UserID: u.ID, TeamID: u.TeamID, Role: u.Role, DeviceID: uuid.New()}
		go func() {
			held <- env.DB.Feed().Push(ctx, p, nil, func(engine.Tx) error { <-release; return nil })
		}()
	}
	time.Sleep(100 * time.Millisecond) // both take the rep's places

	check := func(name string, res *apitest.Response) {
		t.Helper()
		apitest.Expect(t, res, http.StatusTooManyRequests)
		if p := res.Problem(t); p.Code != models.CodeRateLimited {
			t.Errorf("%s: code %q, want rate_limited", name, p.Code)
		}
		if got := res.Header.Get("Retry-After"); got != "1" {
			t.Errorf("%s: Retry-After %q, want 1", name, got)
		}
	}
	check("native push", pushRequest(env, rep.Access, pushBody{SchemaVersion: 1, Mutations: []mutation{
		{Seq: 1, Entity: "visits", ID: uuid.NewString(), Op: "delete", HLC: hlcStamp{MS: env.Clock.Now().UnixMilli()}}}}))
	check("WatermelonDB push", wm.push(t, map[string]any{"visits": map[string]any{"created": []any{}, "updated": []any{}, "deleted": []string{uuid.NewString()}}}))

	close(release)
	for range 2 {
		if err := <-held; err != nil {
			t.Fatalf("held push: %v", err)
		}
	}
	rep.seq = 0
	res := pushRequest(env, rep.Access, pushBody{SchemaVersion: 1, Mutations: []mutation{
		{Seq: 1, Entity: "visits", ID: uuid.NewString(), Op: "delete", HLC: hlcStamp{MS: env.Clock.Now().UnixMilli()}}}})
	apitest.Expect(t, res, http.StatusOK)
}
