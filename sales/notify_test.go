package sales_test

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/synctest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// visitMut is an upsert of a visit with the given fields.
func visitMut(seq int64, id uuid.UUID, at time.Time, fields map[string]any) engine.Mutation {
	raw := map[string]json.RawMessage{}
	for k, v := range fields {
		b, _ := json.Marshal(v)
		raw[k] = b
	}
	return engine.Mutation{Seq: seq, Entity: "visits", ID: id, Op: engine.OpUpsert, Fields: raw,
		HLC: engine.HLC{MS: at.UnixMilli(), Counter: seq}}
}

// notificationsOf counts a user's notifications of a type.
func notificationsOf(f *synctest.Fixture, user uuid.UUID, typ string) int {
	f.T.Helper()
	var n int
	err := f.DB.Gorm().Raw(`SELECT count(*) FROM notifications WHERE user_id = ? AND type = ?`, user.String(), typ).Row().Scan(&n)
	if err != nil {
		f.T.Fatalf("count notifications: %v", err)
	}
	return n
}

// unscheduledCall returns a maker of completed unscheduled calls at
// account, some hours before the fixture's now.
func unscheduledCall(f *synctest.Fixture, account uuid.UUID) func(seq int64, id uuid.UUID, hoursAgo int, outcome string) engine.Mutation {
	return func(seq int64, id uuid.UUID, hoursAgo int, outcome string) engine.Mutation {
		return visitMut(seq, id, f.Now(), map[string]any{
			"account_id": account.String(), "kind": "unscheduled", "status": "completed", "outcome": outcome,
			"started_at": f.Now().Add(-time.Duration(hoursAgo) * time.Hour).Format(time.RFC3339),
		})
	}
}

// TestUnscheduledStreakNotifiesManagerOnce: five unscheduled calls in a row
// without an order tell the rep's manager once, however the batch is
// replayed; a sixth call does not fire again; after an order, a new streak
// fires anew.
func TestUnscheduledStreakNotifiesManagerOnce(t *testing.T) {
	f := synctest.New(t, storetest.Options{})
	rep, mgr := f.Principal("rep1@demo.test"), f.Principal("manager1@demo.test")
	account := f.AccountsByTeam()[*rep.TeamID][0]
	call := unscheduledCall(f, account)
	ids := make([]uuid.UUID, 12)
	for i := range ids {
		ids[i] = uuid.New()
	}
	var batch []engine.Mutation
	for i := 0; i < 4; i++ {
		batch = append(batch, call(int64(i+1), ids[i], 20-i, "no_answer"))
	}
	f.Push(rep, batch...)
	if n := notificationsOf(f, mgr.UserID, models.NotificationUnscheduledStreak); n != 0 {
		t.Fatalf("after four calls: %d notifications", n)
	}
	// The fifth call comes in an offline batch, pushed twice (a lost
	// response), and then again from another device with new seqs.
	fifth := []engine.Mutation{call(5, ids[4], 15, "not_interested")}
	f.Push(rep, fifth...)
	f.Push(rep, fifth...)
	other := rep
	other.DeviceID = uuid.New()
	f.Push(other, call(1, ids[4], 15, "not_interested"))
	if n := notificationsOf(f, mgr.UserID, models.NotificationUnscheduledStreak); n != 1 {
		t.Fatalf("after five calls pushed three times: %d notifications, want 1", n)
	}
	// A sixth call lengthens the streak: no new notification.
	f.Push(rep, call(6, ids[5], 14, "none"))
	if n := notificationsOf(f, mgr.UserID, models.NotificationUnscheduledStreak); n != 1 {
		t.Fatalf("after six calls: %d notifications, want 1", n)
	}
	// The rep, not the manager, never sees it; the manager pulls it.
	changes, _ := f.PullAll(mgr, "", 500)
	found := false
	for _, ch := range changes {
		if ch.Entity.Name == sales.NotificationsEntity {
			found = true
			if ch.Record.StringValue("title") != "Riley Park: 6 walk-ins without an order" && ch.Record.StringValue("title") != "Riley Park: 5 walk-ins without an order" {
				t.Errorf("title %q", ch.Record.StringValue("title"))
			}
		}
	}
	if !found {
		t.Error("the manager's pull has no notification")
	}
	repChanges, _ := f.PullAll(rep, "", 500)
	for _, ch := range repChanges {
		if ch.Entity.Name == sales.NotificationsEntity {
			t.Errorf("the rep pulled the manager's notification %s", ch.Record.ID)
		}
	}
	// An order ends the streak; five more calls start a new one.
	f.Push(rep, call(7, ids[6], 13, "order"))
	for i := 7; i < 12; i++ {
		f.Push(rep, call(int64(i+1), ids[i], 19-i, "no_answer"))
	}
	if n := notificationsOf(f, mgr.UserID, models.NotificationUnscheduledStreak); n != 2 {
		t.Fatalf("after a second streak: %d notifications, want 2", n)
	}
}

// TestFollowUpReminders: a follow-up in the future is reminded by the
// scheduled job once it is due, once however often the job runs; one
// already due when its visit syncs is reminded at once.
func TestFollowUpReminders(t *testing.T) {
	f := synctest.New(t, storetest.Options{})
	ctx := context.Background()
	rep := f.Principal("rep1@demo.test")
	account := f.AccountsByTeam()[*rep.TeamID][0]
	due := f.Now().Add(2 * time.Hour)
	f.Push(rep,
		visitMut(1, uuid.New(), f.Now(), map[string]any{"account_id": account.String(), "outcome": "follow_up",
			"started_at": f.Now().Add(-time.Hour).Format(time.RFC3339), "follow_up_at": due.Format(time.RFC3339)}),
		visitMut(2, uuid.New(), f.Now(), map[string]any{"account_id": account.String(), "outcome": "follow_up",
			"started_at": f.Now().Add(-3 * time.Hour).Format(time.RFC3339), "follow_up_at": f.Now().Add(-time.Hour).Format(time.RFC3339)}),
	)
	if n := notificationsOf(f, rep.UserID, models.NotificationFollowUpDue); n != 1 {
		t.Fatalf("after the push: %d reminders, want 1 (the one already due)", n)
	}
	job := func() int {
		t.Helper()
		n, err := sales.NotifyFollowUps(ctx, f.En, rep.OrgID, f.Now().Add(-sales.FollowUpLookback), f.Now())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := job(); n != 0 {
		t.Errorf("before it is due: the job wrote %d", n)
	}
	f.Advance(2*time.Hour + time.Minute)
	if n := job(); n != 1 {
		t.Errorf("once due: the job wrote %d, want 1", n)
	}
	if n := job(); n != 0 {
		t.Errorf("run again: the job wrote %d, want 0", n)
	}
	if n := notificationsOf(f, rep.UserID, models.NotificationFollowUpDue); n != 2 {
		t.Errorf("%d reminders, want 2", n)
	}
}

// TestNotifyFiresOnce: Notify with the same dedupe key, within one
// transaction or across several, writes one notification; another user
// with the same key gets their own.
func TestNotifyFiresOnce(t *testing.T) {
	f := synctest.New(t, storetest.Options{})
	ctx := context.Background()
	rep, rep2 := f.Principal("rep1@demo.test"), f.Principal("rep2@demo.test")
	contest := uuid.New()
	n := models.EnteredTop3Notification(contest, "Spring Blitz", 3)
	for i := 0; i < 3; i++ {
		err := f.En.Server(ctx, models.Principal{OrgID: rep.OrgID}, func(c *engine.Context) error {
			if err := sales.Notify(c, n.To(rep.UserID)); err != nil {
				return err
			}
			return sales.Notify(c, n.To(rep.UserID))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := notificationsOf(f, rep.UserID, models.NotificationEnteredTop3); got != 1 {
		t.Errorf("%d notifications, want 1", got)
	}
	err := f.En.Server(ctx, models.Principal{OrgID: rep.OrgID}, func(c *engine.Context) error {
		return sales.Notify(c, n.To(rep2.UserID))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := notificationsOf(f, rep2.UserID, models.NotificationEnteredTop3); got != 1 {
		t.Errorf("the other user: %d notifications, want 1", got)
	}
	// A malformed notification is refused.
	err = f.En.Server(ctx, models.Principal{OrgID: rep.OrgID}, func(c *engine.Context) error {
		return sales.Notify(c, models.Notification{UserID: rep.UserID, Category: "memes", Type: "x", Title: "x", DedupeKey: "k"})
	})
	if models.ErrorCode(err) != models.CodeInvalid {
		t.Errorf("unknown category: %v, want invalid", err)
	}
	// Clients cannot push notifications.
	res, err := f.En.Push(ctx, rep, []engine.Mutation{{Seq: 1, Entity: sales.NotificationsEntity, ID: uuid.New(), Op: engine.OpUpsert,
		Fields: map[string]json.RawMessage{"read_at": json.RawMessage(`"2026-03-02T09:00:00Z"`)}, HLC: engine.HLC{MS: f.Now().UnixMilli()}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Results[0]; r.Status != engine.StatusRejected || r.Error.Code != engine.CodeReadOnly {
		t.Errorf("push of a notification: %+v, want rejected read_only_entity", r)
	}
}

// TestStreakReadsPastTheNewestCalls: a streak longer than the calls a push
// reads first is still counted from its first call, and a batch that
// turns a stored order into a call without one joins the streaks on
// either side of it.
func TestStreakReadsPastTheNewestCalls(t *testing.T) {
	f := synctest.New(t, storetest.Options{})
	rep, mgr := f.Principal("rep1@demo.test"), f.Principal("manager1@demo.test")
	account := f.AccountsByTeam()[*rep.TeamID][0]
	call := unscheduledCall(f, account)
	titles := func() []string {
		var out []string
		changes, _ := f.PullAll(mgr, "", 500)
		for _, ch := range changes {
			if ch.Entity.Name == sales.NotificationsEntity && ch.Record.StringValue("type") == models.NotificationUnscheduledStreak {
				out = append(out, ch.Record.StringValue("title"))
			}
		}
		sort.Strings(out)
		return out
	}

	// Two calls without an order, an order, then three more: no streak.
	order := uuid.New()
	f.Push(rep, call(1, uuid.New(), 100, "no_answer"), call(2, uuid.New(), 99, "none"), call(3, order, 98, "order"),
		call(4, uuid.New(), 97, "no_answer"), call(5, uuid.New(), 96, "no_answer"), call(6, uuid.New(), 95, "not_interested"))
	if got := titles(); len(got) != 0 {
		t.Fatalf("no streak yet, got %q", got)
	}
	// The order is corrected to none: six calls in a row without one.
	f.Push(rep, call(7, order, 98, "none"))
	if got := titles(); len(got) != 1 || got[0] != "Riley Park: 6 walk-ins without an order" {
		t.Fatalf("after the order was corrected: %q", got)
	}

	// A later order, then one offline day of 70 calls without one, in a
	// single push: one notification, counting all 70.
	f.Push(rep, call(8, uuid.New(), 90, "order"))
	var day []engine.Mutation
	for i := 0; i < 70; i++ {
		day = append(day, call(int64(9+i), uuid.New(), 80-i, "no_answer"))
	}
	f.Push(rep, day...)
	want := []string{"Riley Park: 6 walk-ins without an order", "Riley Park: 70 walk-ins without an order"}
	if got := titles(); !slices.Equal(got, want) {
		t.Fatalf("after 70 calls: %q, want %q", got, want)
	}
	// One more call lengthens that streak and notifies nobody again.
	f.Push(rep, call(79, uuid.New(), 5, "none"))
	if got := titles(); !slices.Equal(got, want) {
		t.Fatalf("after a 71st call: %q, want %q", got, want)
	}
}
