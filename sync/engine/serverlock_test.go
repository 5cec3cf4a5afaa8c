package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// TestServerLockHoldsPushes: server work that locks a record (Context.Lock)
// before reading it, and writes it back, makes a push of the same record
// wait until it commits, so that the push merges over the server's write
// instead of the server writing a stale copy over the push. (An order
// value review writes a visit a phone may be pushing at that moment.)
func TestServerLockHoldsPushes(t *testing.T) {
	f := synctest.New(t, storetest.Options{})
	ctx := context.Background()
	rep, admin := f.Principal("rep1@demo.test"), f.Principal("admin@demo.test")
	visit := uuid.New()
	f.Push(rep, engine.Mutation{Seq: 1, Entity: "visits", ID: visit, Op: engine.OpUpsert, HLC: engine.HLC{MS: f.Now().UnixMilli()},
		Fields: synctest.RawFields(t, map[string]any{"account_id": f.AccountsByTeam()[*rep.TeamID][0].String(),
			"started_at": f.Now().Add(-time.Hour).Format(time.RFC3339)})})

	read, release, serverDone, pushDone := make(chan struct{}), make(chan struct{}), make(chan error, 1), make(chan error, 1)
	go func() {
		serverDone <- f.En.Server(ctx, admin, func(c *engine.Context) error {
			if err := c.Lock("visits", visit); err != nil {
				return err
			}
			v, err := c.Get("visits", visit)
			if err != nil {
				return err
			}
			close(read)
			<-release
			next := v.Clone()
			next.Values["notes"] = "written by the server"
			return c.Put("visits", next)
		})
	}()
	<-read
	go func() {
		_, err := f.En.Push(ctx, rep, []engine.Mutation{{Seq: 2, Entity: "visits", ID: visit, Op: engine.OpUpsert,
			HLC: engine.HLC{MS: f.Now().UnixMilli() + 1}, Fields: synctest.RawFields(t, map[string]any{"referrals": 3})}})
		pushDone <- err
	}()
	var pushErr error
	early := false
	select {
	case pushErr = <-pushDone:
		early = true
		t.Errorf("the push of the locked visit went through (%v) while the server work held it", pushErr)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := <-serverDone; err != nil {
		t.Fatalf("server work: %v", err)
	}
	if !early {
		pushErr = <-pushDone
	}
	if pushErr != nil {
		t.Fatalf("push: %v", pushErr)
	}
	got, err := f.En.Get(ctx, admin, "visits", visit)
	if err != nil {
		t.Fatal(err)
	}
	if got.StringValue("notes") != "written by the server" || got.Values["referrals"] != int64(3) {
		t.Errorf("visit after both writes: notes %q, referrals %v; want the server's notes and the push's 3 referrals",
			got.StringValue("notes"), got.Values["referrals"])
	}
}
