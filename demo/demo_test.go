package demo_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// TestDemoLooksLive: a new user on any day sees a contest running today
// and one finished, and coordinates as a phone would report them, not
// 44.997800000000005.
func TestDemoLooksLive(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	db := storetest.MustOpenDBWith(t, storetest.Options{Now: func() time.Time { return now }})
	if _, err := demo.Seed(ctx, db, auth.NewPasswords(auth.TestArgon2), now); err != nil {
		t.Fatal(err)
	}
	en := engine.New(db.Feed(), sales.Entities(), func() time.Time { return now }, nil)
	if err := demo.SeedHistory(ctx, db, en, now); err != nil {
		t.Fatal(err)
	}
	org, err := db.People().OrgByName(ctx, demo.OrgName)
	if err != nil {
		t.Fatal(err)
	}
	admin := models.Principal{OrgID: org.ID, Role: models.RoleAdmin}

	contests, err := en.Find(ctx, admin, "contests", nil)
	if err != nil {
		t.Fatal(err)
	}
	var running, finished int
	for _, c := range contests {
		from, to := c.TimeValue("starts_at"), c.TimeValue("ends_at")
		switch {
		case from == nil || to == nil:
			t.Errorf("contest %s without dates", c.StringValue("name"))
		case !from.After(now) && to.After(now):
			running++
		case to.Before(now):
			finished++
		}
	}
	if running == 0 || finished == 0 {
		t.Errorf("%d running and %d finished contests today, want at least one of each", running, finished)
	}

	for entity, fields := range map[string][]string{
		"accounts": {"lat", "lng"},
		"visits":   {"check_in_lat", "check_in_lng"},
	} {
		recs, err := en.Find(ctx, admin, entity, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			t.Fatalf("no demo %s", entity)
		}
		for _, r := range recs {
			for _, f := range fields {
				v := r.FloatValue(f)
				if v == nil {
					continue
				}
				s := strconv.FormatFloat(*v, 'f', -1, 64)
				if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i-1 > 6 {
					t.Fatalf("%s %s = %s, want at most 6 decimals (about 10 cm)", entity, f, s)
				}
			}
		}
	}
}
