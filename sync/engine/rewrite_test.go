package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// locationDue is the query of the location privacy job over visits: the
// terms of migration 00012's visits_location_due index.
func locationDue(before time.Time, limit int) engine.DueQuery {
	return engine.DueQuery{Mark: "location_redacted_at", NotNull: []string{"check_in_lat", "check_out_lat"},
		At: []string{"started_at"}, Before: before, Limit: limit}
}

// TestDueAndRewrite: Due returns the unmarked records with a position
// dated before the bound, oldest first and at most Limit; Rewrite writes a
// record as the server with a new version that a pull from an earlier
// cursor delivers, without running the AfterWrite hooks (the check-in's
// verdict is not judged again, though its position moved 50 km); a record
// Rewrite marked is never due again.
func TestDueAndRewrite(t *testing.T) {
	ctx := context.Background()
	f := synctest.New(t, storetest.Options{})
	rep, admin := f.Principal("rep1@demo.test"), f.Principal("admin@demo.test")
	accountID := f.AccountsByTeam()[*rep.TeamID][0]
	account := snapshotRecord(f, admin, "accounts", accountID)
	lat, lng := *account.FloatValue("lat"), *account.FloatValue("lng")

	// Three visits checked in at the account, an hour apart, and one
	// without a position.
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	for i, id := range ids {
		fields := map[string]any{"account_id": accountID, "kind": "unscheduled", "status": "completed",
			"started_at": f.Now().Add(time.Duration(i-4) * time.Hour).Format(time.RFC3339)}
		if i < 3 {
			fields["check_in_lat"], fields["check_in_lng"], fields["check_in_accuracy_m"] = lat, lng, 10
		}
		f.Push(rep, engine.Mutation{Seq: int64(i + 1), Entity: "visits", ID: id, Op: engine.OpUpsert,
			HLC: engine.HLC{MS: f.Now().UnixMilli(), Counter: int64(i)}, Fields: synctest.RawFields(t, fields)})
	}
	if v := snapshotRecord(f, admin, "visits", ids[0]).StringValue("verification"); v != models.CheckInVerified {
		t.Fatalf("verification before the rewrite: %q, want verified", v)
	}
	_, cursor := f.PullAll(admin, "", 500)

	due := func(before time.Time, limit int) []uuid.UUID {
		t.Helper()
		var got []uuid.UUID
		err := f.En.Server(ctx, models.Principal{OrgID: admin.OrgID}, func(c *engine.Context) error {
			recs, err := c.Due("visits", locationDue(before, limit))
			for _, r := range recs {
				got = append(got, r.ID)
			}
			return err
		})
		if err != nil {
			t.Fatalf("due: %v", err)
		}
		return got
	}
	if got := due(f.Now().Add(-150*time.Minute), 10); len(got) != 2 || got[0] != ids[0] || got[1] != ids[1] {
		t.Fatalf("due before 2.5 h ago: %v, want the two oldest visits with a position %v", got, ids[:2])
	}
	if got := due(f.Now(), 1); len(got) != 1 || got[0] != ids[0] {
		t.Fatalf("due with limit 1: %v, want the oldest %v", got, ids[0])
	}

	f.Advance(time.Minute)
	err := f.En.Server(ctx, models.Principal{OrgID: admin.OrgID}, func(c *engine.Context) error {
		recs, err := c.Due("visits", locationDue(f.Now(), 1))
		if err != nil {
			return err
		}
		next := recs[0].Clone()
		// 55 km away: out of range, were it judged. Unmarked, so that the
		// rules would judge it, had its hooks run.
		next.Values["check_in_lat"] = lat + 0.5
		return c.Rewrite("visits", next)
	})
	if err != nil {
		t.Fatalf("rewrite: %v", err)
	}
	changes, _ := f.PullAll(admin, cursor, 500)
	if len(changes) != 1 || changes[0].Record.ID != ids[0] {
		t.Fatalf("pull after the rewrite: %d changes, want the rewritten visit alone", len(changes))
	}
	got := changes[0].Record
	if v := got.FloatValue("check_in_lat"); v == nil || *v != lat+0.5 {
		t.Errorf("pulled check_in_lat = %v, want %v", v, lat+0.5)
	}
	if v := got.StringValue("verification"); v != models.CheckInVerified {
		t.Errorf("verification after the rewrite = %q, want verified (no hook runs)", v)
	}

	// Marked, it is never due again.
	err = f.En.Server(ctx, models.Principal{OrgID: admin.OrgID}, func(c *engine.Context) error {
		cur, err := c.Get("visits", ids[0])
		if err != nil {
			return err
		}
		next := cur.Clone()
		next.Values["location_redacted_at"] = c.Now
		return c.Rewrite("visits", next)
	})
	if err != nil {
		t.Fatalf("mark: %v", err)
	}
	if got := due(f.Now(), 10); len(got) != 2 || got[0] != ids[1] {
		t.Errorf("due after marking: %v, want the two unmarked visits with a position, from %v", got, ids[1])
	}

	err = f.En.Server(ctx, models.Principal{OrgID: admin.OrgID}, func(c *engine.Context) error {
		return c.Rewrite("visits", &engine.Record{ID: uuid.New()})
	})
	if err == nil {
		t.Error("Rewrite of a record that does not exist succeeded, want an error")
	}
	err = f.En.Server(ctx, models.Principal{OrgID: admin.OrgID}, func(c *engine.Context) error {
		_, err := c.Due("visits", engine.DueQuery{Mark: "notes", NotNull: []string{"check_in_lat"}, Before: f.Now(), Limit: 1})
		return err
	})
	if err == nil {
		t.Error("Due marking with a visible text field succeeded, want an error")
	}
}
