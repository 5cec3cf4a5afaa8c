package notifications_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/notifications"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// recorder is a Sender that accepts everything and counts sends per
// notification.
type recorder struct {
	mu    sync.Mutex
	sends map[uuid.UUID]int
	total int
}

func newRecorder() *recorder { return &recorder{sends: map[uuid.UUID]int{}} }

func (r *recorder) Send(_ context.Context, msgs []notifications.Message) []notifications.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]notifications.Result, len(msgs))
	for i, m := range msgs {
		r.sends[m.NotificationID]++
		r.total++
		out[i] = notifications.Result{ID: fmt.Sprint(r.total)}
	}
	return out
}

func (r *recorder) count(id uuid.UUID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sends[id]
}

// TestQuietHoursDefer: at 21:00 in the user's zone a push waits until
// 07:00, then goes.
func TestQuietHoursDefer(t *testing.T) {
	f := newFixture(t)
	rec := newRecorder()
	f.register("rep1@demo.test", "tok")
	// 21:00 CDT on 10 March is 02:00 UTC on the 11th.
	f.setClock(time.Date(2026, 3, 11, 2, 0, 0, 0, time.UTC))
	id := f.notify(f.note("rep1@demo.test", models.CategoryContests))[0]
	d := f.dispatcher(rec)

	if st := f.runOnce(d); st.Deferred != 1 || st.Sent != 0 {
		t.Fatalf("at 21:00: %+v, want deferred", st)
	}
	got := f.wantStatus(id, notifications.StatusDeferred)
	morning := time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC) // 07:00 CDT
	if got.Next == nil || !got.Next.Equal(morning) || got.LastError != "quiet_hours" {
		t.Errorf("delivery %+v, want deferred to %s for quiet_hours", got, morning)
	}
	f.setClock(morning.Add(-time.Minute))
	if st := f.runOnce(d); st.Claimed != 0 {
		t.Errorf("at 06:59: claimed %d", st.Claimed)
	}
	f.setClock(morning)
	if st := f.runOnce(d); st.Sent != 1 {
		t.Errorf("at 07:00: %+v, want sent", st)
	}
	if rec.count(id) != 1 {
		t.Errorf("sent %d times", rec.count(id))
	}
}

// TestCheckInDefersNonUrgent: while the rep has a visit in progress,
// non-urgent pushes wait and urgent ones go; after check-out the rest go.
func TestCheckInDefersNonUrgent(t *testing.T) {
	f := newFixture(t)
	rec := newRecorder()
	f.register("rep1@demo.test", "tok")
	rep := f.principal("rep1@demo.test", uuid.New())
	visit := uuid.New()
	f.pushVisit(rep, 1, visit, map[string]any{
		"account_id": f.account(*rep.TeamID).String(), "kind": "unscheduled", "status": "in_progress",
		"started_at": f.now().Add(-10 * time.Minute).Format(time.RFC3339),
	})
	urgent := f.note("rep1@demo.test", models.CategoryRideAlongs)
	urgent.Urgent = true
	ids := f.notify(f.note("rep1@demo.test", models.CategoryStandings), urgent)
	d := f.dispatcher(rec)

	if st := f.runOnce(d); st.Sent != 1 || st.Deferred != 1 {
		t.Fatalf("during the visit: %+v, want the urgent one sent and the other deferred", st)
	}
	got := f.wantStatus(ids[0], notifications.StatusDeferred)
	if got.LastError != "in_visit" {
		t.Errorf("deferred for %q, want in_visit", got.LastError)
	}
	f.wantStatus(ids[1], notifications.StatusSent)

	f.advance(models.VisitRecheck)
	if st := f.runOnce(d); st.Deferred != 1 {
		t.Errorf("still at the customer: %+v, want deferred again", st)
	}
	f.pushVisit(rep, 2, visit, map[string]any{"status": "completed", "ended_at": f.now().Format(time.RFC3339)})
	f.advance(models.VisitRecheck)
	if st := f.runOnce(d); st.Sent != 1 {
		t.Errorf("after check-out: %+v, want sent", st)
	}
	if rec.count(ids[0]) != 1 || rec.count(ids[1]) != 1 {
		t.Errorf("sends %d and %d, want one each", rec.count(ids[0]), rec.count(ids[1]))
	}
}

// TestDailyCapTurnsSurplusIntoInboxOnly: with a cap of 3, three of five go
// out and two stay in the inbox; the next day the cap starts over.
func TestDailyCapTurnsSurplusIntoInboxOnly(t *testing.T) {
	f := newFixture(t)
	rec := newRecorder()
	f.register("rep1@demo.test", "tok")
	f.setPrefs("rep1@demo.test", func(p *models.NotificationPreferences) { p.DailyCap = 3 })
	var ns []models.Notification
	for i := 0; i < 5; i++ {
		ns = append(ns, f.note("rep1@demo.test", models.CategoryContests))
	}
	ids := f.notify(ns...)
	d := f.dispatcher(rec)
	if st := f.runOnce(d); st.Sent != 3 || st.InboxOnly != 2 {
		t.Fatalf("%+v, want 3 sent and 2 inbox only", st)
	}
	inbox := 0
	for _, id := range ids {
		if dl := f.delivery(id); dl.Status == notifications.StatusInboxOnly {
			inbox++
			if dl.LastError != "daily_cap" {
				t.Errorf("inbox only for %q, want daily_cap", dl.LastError)
			}
		}
	}
	if inbox != 2 {
		t.Errorf("%d inbox only, want 2", inbox)
	}
	// Later the same day: still capped.
	f.advance(time.Hour)
	f.notify(f.note("rep1@demo.test", models.CategoryContests))
	if st := f.runOnce(d); st.InboxOnly != 1 {
		t.Errorf("an hour later: %+v, want inbox only", st)
	}
	// Tomorrow at 08:00 local: a fresh day.
	f.setClock(time.Date(2026, 3, 11, 13, 0, 0, 0, time.UTC))
	f.notify(f.note("rep1@demo.test", models.CategoryContests))
	if st := f.runOnce(d); st.Sent != 1 {
		t.Errorf("next day: %+v, want sent", st)
	}
}

// TestPreferencesAndRecipients: a category switched off, a user without a
// device and a deactivated user keep their notifications in the inbox.
func TestPreferencesAndRecipients(t *testing.T) {
	f := newFixture(t)
	rec := newRecorder()
	f.register("rep1@demo.test", "tok1")
	f.register("rep3@demo.test", "tok3")
	f.setPrefs("rep1@demo.test", func(p *models.NotificationPreferences) { p.Off[models.CategoryStandings] = true })
	rep3 := f.user("rep3@demo.test")
	off := false
	if _, err := f.db.People().UpdateUser(f.ctx(), rep3.OrgID, rep3.ID, models.UserPatch{Active: &off}); err != nil {
		t.Fatal(err)
	}
	ids := f.notify(
		f.note("rep1@demo.test", models.CategoryStandings), // switched off
		f.note("rep1@demo.test", models.CategoryCoaching),  // on
		f.note("rep2@demo.test", models.CategoryCoaching),  // no device
		f.note("rep3@demo.test", models.CategoryCoaching),  // deactivated
	)
	f.runOnce(f.dispatcher(rec))
	for i, want := range []struct{ status, reason string }{
		{notifications.StatusInboxOnly, "category_off"},
		{notifications.StatusSent, ""},
		{notifications.StatusInboxOnly, "no_device"},
		{notifications.StatusInboxOnly, "inactive"},
	} {
		got := f.delivery(ids[i])
		if got.Status != want.status || got.LastError != want.reason {
			t.Errorf("notification %d: %s (%s), want %s (%s)", i, got.Status, got.LastError, want.status, want.reason)
		}
	}
	if got := f.tokens("rep3@demo.test"); len(got) != 0 {
		t.Errorf("deactivated user still has tokens %q", got)
	}
}

// TestLapsedLeaseIsReclaimed: rows claimed by a dispatcher that died are
// claimed again once the lease lapses, and its late outcome is ignored.
func TestLapsedLeaseIsReclaimed(t *testing.T) {
	f := newFixture(t)
	rec := newRecorder()
	f.register("rep1@demo.test", "tok")
	id := f.notify(f.note("rep1@demo.test", models.CategoryCoaching))[0]
	// A dispatcher claims the row and dies before sending.
	dead := uuid.New()
	claimed, err := f.db.Outbox().ClaimNotifications(f.ctx(), notifications.Claim{Now: f.now(), Limit: 10, Lease: 2 * time.Minute, LeaseID: dead},
		func(due []notifications.Due, _ map[notifications.UserKey]*notifications.Recipient) []notifications.Step {
			return make([]notifications.Step, len(due))[:0:0]
		})
	if err == nil {
		t.Fatalf("a plan with the wrong number of steps: claimed %d, want an error", len(claimed))
	}
	claimed, err = f.db.Outbox().ClaimNotifications(f.ctx(), notifications.Claim{Now: f.now(), Limit: 10, Lease: 2 * time.Minute, LeaseID: dead},
		func(due []notifications.Due, _ map[notifications.UserKey]*notifications.Recipient) []notifications.Step {
			steps := make([]notifications.Step, len(due))
			for i := range steps {
				steps[i].Status = notifications.StatusSending
			}
			return steps
		})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %d rows, %v", len(claimed), err)
	}
	d := f.dispatcher(rec)
	f.advance(time.Minute)
	if st := f.runOnce(d); st.Claimed != 0 {
		t.Fatalf("while leased: claimed %d", st.Claimed)
	}
	f.advance(time.Minute + time.Second)
	if st := f.runOnce(d); st.Sent != 1 {
		t.Fatalf("after the lease lapsed: %+v, want sent", st)
	}
	// The dead dispatcher's outcome arrives late: ignored.
	err = f.db.Outbox().FinishNotifications(f.ctx(), []notifications.Outcome{{OrgID: claimed[0].OrgID, ID: id, LeaseID: dead, Status: notifications.StatusDead, Error: "late"}})
	if err != nil {
		t.Fatal(err)
	}
	f.wantStatus(id, notifications.StatusSent)
}

// TestReadDoesNotUndoDelivery: marking a notification read rewrites the
// record through the engine, and must leave its delivery state alone.
func TestReadDoesNotUndoDelivery(t *testing.T) {
	f := newFixture(t)
	rec := newRecorder()
	f.register("rep1@demo.test", "tok")
	id := f.notify(f.note("rep1@demo.test", models.CategoryCoaching))[0]
	f.runOnce(f.dispatcher(rec))
	before := f.wantStatus(id, notifications.StatusSent)
	r, err := sales.ReadNotification(f.ctx(), f.en, f.principal("rep1@demo.test", uuid.New()), id)
	if err != nil || r.TimeValue("read_at") == nil {
		t.Fatalf("read: %v", err)
	}
	after := f.wantStatus(id, notifications.StatusSent)
	if after.Attempts != before.Attempts || after.SentAt == nil || !after.SentAt.Equal(*before.SentAt) {
		t.Errorf("delivery changed by a read: %+v → %+v", before, after)
	}
	if _, err := sales.ReadNotification(f.ctx(), f.en, f.principal("rep2@demo.test", uuid.New()), id); models.ErrorCode(err) != models.CodeNotFound {
		t.Errorf("another user reads it: %v, want not_found", err)
	}
}

// loadOrg is an organisation of users with one device each, on a
// database that two store handles (two replicas' pools) share.
type loadOrg struct {
	dbs   [2]*store.DB
	org   uuid.UUID
	users []uuid.UUID
}

func newLoadOrg(t *testing.T, users int, cap func(i int) int) *loadOrg {
	t.Helper()
	ctx := context.Background()
	clock := func() time.Time { return start }
	dbURL := storetest.URL(t)
	l := &loadOrg{org: uuid.New()}
	for i := range l.dbs {
		db, err := store.Open(ctx, dbURL, store.Options{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		l.dbs[i] = db
	}
	db := l.dbs[0]
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	admin := models.User{OrgID: l.org, ID: uuid.New(), Email: "admin@load.test", Name: "Admin", Role: models.RoleAdmin, Active: true, TimeZone: "UTC", PasswordHash: "x", CreatedAt: start, UpdatedAt: start}
	if err := db.People().CreateOrg(ctx, models.Org{ID: l.org, Name: "Load Co", CreatedAt: start}, admin); err != nil {
		t.Fatal(err)
	}
	for u := 0; u < users; u++ {
		user := models.User{OrgID: l.org, ID: uuid.New(), Email: fmt.Sprintf("rep%d@load.test", u), Name: fmt.Sprintf("Rep %d", u),
			Role: models.RoleRep, Active: true, TimeZone: "UTC", PasswordHash: "x", CreatedAt: start, UpdatedAt: start}
		if err := db.People().CreateUser(ctx, user); err != nil {
			t.Fatal(err)
		}
		p := models.Principal{OrgID: l.org, UserID: user.ID, Role: models.RoleRep, DeviceID: uuid.New()}
		if err := db.Outbox().PutPushToken(ctx, p, "tok-"+user.ID.String(), "ios"); err != nil {
			t.Fatal(err)
		}
		if err := db.Outbox().SetNotificationPreferences(ctx, l.org, user.ID, models.NotificationPreferences{DailyCap: cap(u)}); err != nil {
			t.Fatal(err)
		}
		l.users = append(l.users, user.ID)
	}
	return l
}

// notify writes per notifications for each user and returns them.
func (l *loadOrg) notify(t *testing.T, per func(i int) int) []models.Notification {
	t.Helper()
	var ns []models.Notification
	for i, u := range l.users {
		for j := 0; j < per(i); j++ {
			ns = append(ns, models.RecognitionReceivedNotification(uuid.New(), "Admin", "Thanks").To(u))
		}
	}
	// Short transactions: PostgreSQL tests of other packages, running at
	// the same time on the same cluster, wait for the oldest transaction
	// anywhere to end before they pull.
	en := engine.New(l.dbs[0].Feed(), sales.Entities(), func() time.Time { return start }, nil)
	for from := 0; from < len(ns); from += 250 {
		part := ns[from:min(from+250, len(ns))]
		err := en.Server(context.Background(), models.Principal{OrgID: l.org}, func(c *engine.Context) error {
			for _, n := range part {
				if err := sales.Notify(c, n); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

// dispatch runs one dispatcher per store handle at once until both find
// nothing left, and returns their stats.
func (l *loadOrg) dispatch(t *testing.T, s notifications.Sender, batch int) [2]notifications.Stats {
	t.Helper()
	var (
		wg    sync.WaitGroup
		stats [2]notifications.Stats
		errs  [2]error
	)
	for i, db := range l.dbs {
		d := notifications.NewDispatcher(db.Outbox(), s, notifications.Options{Now: func() time.Time { return start }})
		d.Batch = batch
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				st, err := d.RunOnce(context.Background())
				if err != nil {
					errs[i] = err
					return
				}
				stats[i].Claimed += st.Claimed
				stats[i].Sent += st.Sent
				stats[i].InboxOnly += st.InboxOnly
				if st.Claimed == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("dispatcher %d: %v", i, err)
		}
	}
	t.Logf("dispatcher 1: %+v; dispatcher 2: %+v", stats[0], stats[1])
	return stats
}

func (l *loadOrg) statuses(t *testing.T) string {
	t.Helper()
	var byStatus []struct {
		Status string
		N      int
	}
	if err := l.dbs[0].Gorm().Raw(`SELECT status, count(*) AS n FROM notifications GROUP BY status ORDER BY status`).Scan(&byStatus).Error; err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(byStatus)
	return string(b)
}

// TestConcurrentDispatchersSendEachOnce runs two dispatchers, each on its
// own connection pool as two replicas would be, over one outbox of a few
// thousand rows: every notification is sent exactly once.
func TestConcurrentDispatchersSendEachOnce(t *testing.T) {
	users, perUser := 40, 75 // 3,000 rows
	if os.Getenv(storetest.EnvURL) == "" {
		users, perUser = 8, 50 // SQLite's writers are serial: keep it short
	}
	l := newLoadOrg(t, users, func(int) int { return models.MaxDailyCap })
	ns := l.notify(t, func(int) int { return perUser })
	rec := newRecorder()
	stats := l.dispatch(t, rec, 50)
	if stats[0].Claimed+stats[1].Claimed != len(ns) {
		t.Errorf("claimed %d in all, want %d", stats[0].Claimed+stats[1].Claimed, len(ns))
	}
	for _, n := range ns {
		id := sales.NotificationID(l.org, n.UserID, n.DedupeKey)
		if got := rec.count(id); got != 1 {
			t.Fatalf("notification %s sent %d times, want once", id, got)
		}
	}
	if rec.total != len(ns) {
		t.Errorf("%d sends, want %d", rec.total, len(ns))
	}
	if got, want := l.statuses(t), fmt.Sprintf(`[{"Status":"sent","N":%d}]`, len(ns)); got != want {
		t.Errorf("statuses %s, want %s", got, want)
	}
}

// TestConcurrentDispatchersHoldTheCap: two dispatchers claiming one user's
// notifications a few at a time, at once, send exactly the daily cap.
func TestConcurrentDispatchersHoldTheCap(t *testing.T) {
	l := newLoadOrg(t, 1, func(int) int { return 10 })
	l.notify(t, func(int) int { return 60 })
	rec := newRecorder()
	l.dispatch(t, rec, 3)
	if rec.total != 10 {
		t.Errorf("%d pushes, want the cap of 10", rec.total)
	}
	if got, want := l.statuses(t), `[{"Status":"inbox_only","N":50},{"Status":"sent","N":10}]`; got != want {
		t.Errorf("statuses %s, want %s", got, want)
	}
}

// pushVisit pushes one visit mutation as p.
func (f *fixture) pushVisit(p models.Principal, seq int64, id uuid.UUID, fields map[string]any) {
	f.t.Helper()
	raw := map[string]json.RawMessage{}
	for k, v := range fields {
		b, _ := json.Marshal(v)
		raw[k] = b
	}
	res, err := f.en.Push(f.ctx(), p, []engine.Mutation{{Seq: seq, Entity: "visits", ID: id, Op: engine.OpUpsert, Fields: raw,
		HLC: engine.HLC{MS: f.now().UnixMilli(), Counter: seq}}})
	if err != nil {
		f.t.Fatalf("push visit: %v", err)
	}
	if r := res.Results[0]; r.Status != engine.StatusApplied {
		f.t.Fatalf("push visit: %s %+v", r.Status, r.Error)
	}
}

// account returns an account of a team.
func (f *fixture) account(team uuid.UUID) uuid.UUID {
	f.t.Helper()
	var id string
	if err := f.db.Gorm().Raw(`SELECT id FROM accounts WHERE team_id = ? ORDER BY id LIMIT 1`, team.String()).Row().Scan(&id); err != nil {
		f.t.Fatalf("account: %v", err)
	}
	return uuid.MustParse(id)
}

// TestLogSenderTellsOfHeldPushes: on the embedded default (no Firebase), a
// push held for quiet hours is logged with when it will go, so a demo user
// watching the log sees why nothing came.
func TestLogSenderTellsOfHeldPushes(t *testing.T) {
	f := newFixture(t)
	f.register("rep1@demo.test", "tok")
	f.setClock(time.Date(2026, 3, 11, 2, 0, 0, 0, time.UTC)) // 21:00 CDT
	id := f.notify(f.note("rep1@demo.test", models.CategoryContests))[0]
	var logs syncLog
	d := f.dispatcher(notifications.LogSender{Log: slog.New(slog.NewJSONHandler(&logs, nil))})
	if st := f.runOnce(d); st.Deferred != 1 {
		t.Fatalf("at 21:00: %+v, want deferred", st)
	}
	var held map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(logs.bytes()), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err == nil && rec["notification_id"] == id.String() {
			held = rec
		}
	}
	if held == nil {
		t.Fatalf("no log line names the held notification %s:\n%s", id, logs.bytes())
	}
	if held["until"] != "2026-03-11T12:00:00Z" || held["reason"] != "quiet_hours" {
		t.Errorf("held line %v, want until 2026-03-11T12:00:00Z (07:00 CDT) for quiet_hours", held)
	}
}

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// TestDispatcherReports: Options.Report is told each batch's Stats, the
// same RunOnce returns, once its outcomes are recorded.
func TestDispatcherReports(t *testing.T) {
	f := newFixture(t)
	f.register("rep1@demo.test", "tok")
	f.setClock(time.Date(2026, 3, 11, 17, 0, 0, 0, time.UTC)) // noon CDT
	f.notify(f.note("rep1@demo.test", models.CategoryContests))
	var reported []notifications.Stats
	d := notifications.NewDispatcher(f.db.Outbox(), newRecorder(), notifications.Options{Now: f.now,
		Rand: func() float64 { return 0 }, Report: func(st notifications.Stats) { reported = append(reported, st) }})
	st := f.runOnce(d)
	if st.Sent != 1 {
		t.Fatalf("RunOnce: %+v, want one sent", st)
	}
	if len(reported) != 1 || reported[0] != st {
		t.Errorf("reported %+v, want [%+v]", reported, st)
	}
}
