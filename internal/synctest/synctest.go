// Package synctest is the fixture the sync tests share: a fresh database
// (SQLite, or PostgreSQL when FIELDSYNC_TEST_DATABASE_URL is set) seeded
// with the demo organisation, and an engine over it with the field-sales
// entities and a clock the test moves.
package synctest

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Fixture is a seeded database and an engine over it. The engine's clock is
// the fixture's, which tests move.
type Fixture struct {
	T     testing.TB
	DB    *store.DB
	En    *engine.Engine
	Clock *atomic.Int64 // unix nanoseconds, shared by the copies On returns
}

// Start is when every fixture's clock starts.
var Start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// New opens a fresh database, seeds the demo organisation and returns an
// engine over it. opt.Now is replaced by the fixture's clock.
func New(t testing.TB, opt storetest.Options) *Fixture {
	t.Helper()
	f := &Fixture{T: t, Clock: new(atomic.Int64)}
	f.Clock.Store(Start.UnixNano())
	opt.Now = f.Now
	f.DB = storetest.MustOpenDBWith(t, opt)
	if _, err := demo.Seed(context.Background(), f.DB, auth.NewPasswords(auth.TestArgon2), f.Now()); err != nil {
		t.Fatalf("seed demo: %v", err)
	}
	f.En = engine.New(f.DB.Feed(), sales.Entities(), f.Now, nil)
	return f
}

// On returns the fixture reporting to t, for a subtest.
func (f *Fixture) On(t testing.TB) *Fixture {
	g := *f
	g.T = t
	return &g
}

// Now is the fixture's clock.
func (f *Fixture) Now() time.Time { return time.Unix(0, f.Clock.Load()).UTC() }

// Advance moves the fixture's clock forward.
func (f *Fixture) Advance(d time.Duration) { f.Clock.Add(int64(d)) }

// Principal returns a principal for a seeded user on a new device.
func (f *Fixture) Principal(email string) models.Principal {
	f.T.Helper()
	u, err := f.DB.People().UserByEmail(context.Background(), email)
	if err != nil {
		f.T.Fatalf("user %s: %v", email, err)
	}
	return models.Principal{OrgID: u.OrgID, UserID: u.ID, Role: u.Role, TeamID: u.TeamID, DeviceID: uuid.New(), SessionID: uuid.New()}
}

// PullAll pulls as p from cursor until has_more is false, limit changes a
// page, and returns the changes and the final cursor. It fails the test on
// a reset.
func (f *Fixture) PullAll(p models.Principal, cursor string, limit int) ([]engine.Change, string) {
	f.T.Helper()
	var out []engine.Change
	for pages := 0; ; pages++ {
		if pages > 10000 {
			f.T.Fatalf("pull as %s: no end after %d pages", p.Role, pages)
		}
		res, err := f.En.Pull(context.Background(), p, cursor, limit)
		if err != nil {
			f.T.Fatalf("pull as %s: %v", p.Role, err)
		}
		if res.Reset {
			f.T.Fatalf("pull as %s: unexpected reset", p.Role)
		}
		out = append(out, res.Changes...)
		cursor = res.Cursor
		if !res.HasMore {
			return out, cursor
		}
	}
}

// Push pushes muts as p and fails the test on an error or a rejection.
func (f *Fixture) Push(p models.Principal, muts ...engine.Mutation) engine.PushResult {
	f.T.Helper()
	res, err := f.En.Push(context.Background(), p, muts)
	if err != nil {
		f.T.Fatalf("push: %v", err)
	}
	for _, r := range res.Results {
		if r.Status == engine.StatusRejected {
			f.T.Fatalf("push: seq %d rejected: %+v", r.Seq, r.Error)
		}
	}
	return res
}

// AccountsByTeam returns the seeded accounts' ids by team, ordered by name
// and then id.
func (f *Fixture) AccountsByTeam() map[uuid.UUID][]uuid.UUID {
	f.T.Helper()
	changes, _ := f.PullAll(f.Principal("admin@demo.test"), "", 1000)
	var accounts []*engine.Record
	for _, c := range changes {
		if c.Entity.Name == "accounts" && !c.Record.Deleted {
			accounts = append(accounts, c.Record)
		}
	}
	slices.SortFunc(accounts, func(a, b *engine.Record) int {
		if c := strings.Compare(a.StringValue("name"), b.StringValue("name")); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	out := map[uuid.UUID][]uuid.UUID{}
	for _, a := range accounts {
		team := a.UUIDValue("team_id")
		if team == nil {
			f.T.Fatalf("account %s has no team", a.ID)
		}
		out[*team] = append(out[*team], a.ID)
	}
	return out
}

// RawFields encodes field values as a mutation carries them.
func RawFields(t testing.TB, vals map[string]any) map[string]json.RawMessage {
	t.Helper()
	out := make(map[string]json.RawMessage, len(vals))
	for k, v := range vals {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode %s: %v", k, err)
		}
		out[k] = b
	}
	return out
}
