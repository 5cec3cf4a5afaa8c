package models_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

func TestDecideDelivery(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	// 2026-03-10 12:00 in Chicago (CDT, UTC-5): midday, outside quiet hours.
	noon := time.Date(2026, 3, 10, 17, 0, 0, 0, time.UTC)
	defaults := models.DefaultNotificationPreferences()
	off := models.DefaultNotificationPreferences()
	off.Off[models.CategoryStandings] = true
	noQuiet := models.DefaultNotificationPreferences()
	noQuiet.Quiet = nil
	capZero := models.DefaultNotificationPreferences()
	capZero.DailyCap = 0
	dayShift := models.DefaultNotificationPreferences()
	dayShift.Quiet = &models.QuietHours{Start: "09:00", End: "17:00"}
	same := models.DefaultNotificationPreferences()
	same.Quiet = &models.QuietHours{Start: "00:00", End: "00:00"}

	n := func(cat models.Category, created time.Time) models.Notification {
		return models.Notification{UserID: uuid.New(), Category: cat, Type: "t", Title: "x", DedupeKey: "k", CreatedAt: created}
	}
	urgent := n(models.CategoryRideAlongs, noon)
	urgent.Urgent = true
	later := n(models.CategoryReminders, noon)
	later.NotBefore = noon.Add(3 * time.Hour)
	staleDeferred := n(models.CategoryContests, noon.Add(-30*time.Hour))
	staleDeferred.NotBefore = noon.Add(-2 * time.Hour) // due two hours ago: not stale

	tests := []struct {
		name      string
		n         models.Notification
		prefs     models.NotificationPreferences
		now       time.Time
		sentToday int
		inVisit   bool
		want      models.Delivery
	}{
		{"midday, defaults: send", n(models.CategoryStandings, noon), defaults, noon, 0, false,
			models.Delivery{Action: models.DeliverNow}},
		{"category switched off: inbox only", n(models.CategoryStandings, noon), off, noon, 0, false,
			models.Delivery{Action: models.DeliverInboxOnly, Reason: "category_off"}},
		{"other categories stay on", n(models.CategoryCoaching, noon), off, noon, 0, false,
			models.Delivery{Action: models.DeliverNow}},
		{"cap reached: surplus inbox only", n(models.CategoryContests, noon), defaults, noon, 12, false,
			models.Delivery{Action: models.DeliverInboxOnly, Reason: "daily_cap"}},
		{"one under the cap: send", n(models.CategoryContests, noon), defaults, noon, 11, false,
			models.Delivery{Action: models.DeliverNow}},
		{"cap of zero: inbox only", n(models.CategoryContests, noon), capZero, noon, 0, false,
			models.Delivery{Action: models.DeliverInboxOnly, Reason: "daily_cap"}},
		{"21:30 local: defer to 07:00 next morning", n(models.CategoryContests, noon), defaults,
			time.Date(2026, 3, 11, 2, 30, 0, 0, time.UTC), 0, false,
			models.Delivery{Action: models.DeliverLater, At: time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC), Reason: "quiet_hours"}},
		{"05:00 local: defer to 07:00 the same morning", n(models.CategoryContests, noon), defaults,
			time.Date(2026, 3, 11, 10, 0, 0, 0, time.UTC), 0, false,
			models.Delivery{Action: models.DeliverLater, At: time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC), Reason: "quiet_hours"}},
		{"07:00 local sharp: quiet hours are over", n(models.CategoryContests, noon), defaults,
			time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC), 0, false,
			models.Delivery{Action: models.DeliverNow}},
		{"19:59 local: not yet quiet", n(models.CategoryContests, noon), defaults,
			time.Date(2026, 3, 11, 0, 59, 0, 0, time.UTC), 0, false,
			models.Delivery{Action: models.DeliverNow}},
		{"quiet hours across a DST change end at local 07:00", n(models.CategoryContests, time.Date(2026, 3, 8, 3, 0, 0, 0, time.UTC)), defaults,
			// 2026-03-07 22:00 CST; clocks go forward at 02:00 on the 8th, so 07:00 CDT is 12:00 UTC.
			time.Date(2026, 3, 8, 4, 0, 0, 0, time.UTC), 0, false,
			models.Delivery{Action: models.DeliverLater, At: time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC), Reason: "quiet_hours"}},
		{"no quiet hours: send at night", n(models.CategoryContests, noon), noQuiet,
			time.Date(2026, 3, 11, 4, 0, 0, 0, time.UTC), 0, false,
			models.Delivery{Action: models.DeliverNow}},
		{"equal start and end mean no quiet hours", n(models.CategoryContests, noon), same,
			time.Date(2026, 3, 11, 4, 0, 0, 0, time.UTC), 0, false,
			models.Delivery{Action: models.DeliverNow}},
		{"a window within the day", n(models.CategoryContests, noon), dayShift, noon, 0, false,
			models.Delivery{Action: models.DeliverLater, At: time.Date(2026, 3, 10, 22, 0, 0, 0, time.UTC), Reason: "quiet_hours"}},
		{"checked in at a customer: non-urgent waits", n(models.CategoryStandings, noon), defaults, noon, 0, true,
			models.Delivery{Action: models.DeliverLater, At: noon.Add(models.VisitRecheck), Reason: "in_visit"}},
		{"checked in at a customer: urgent goes", urgent, defaults, noon, 0, true,
			models.Delivery{Action: models.DeliverNow}},
		{"urgent still waits for quiet hours", urgent, defaults, time.Date(2026, 3, 11, 4, 0, 0, 0, time.UTC), 0, false,
			models.Delivery{Action: models.DeliverLater, At: time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC), Reason: "quiet_hours"}},
		{"not before: wait for it", later, defaults, noon, 0, false,
			models.Delivery{Action: models.DeliverLater, At: noon.Add(3 * time.Hour), Reason: "not_before"}},
		{"category off wins over quiet hours", n(models.CategoryStandings, noon), off, time.Date(2026, 3, 11, 4, 0, 0, 0, time.UTC), 0, false,
			models.Delivery{Action: models.DeliverInboxOnly, Reason: "category_off"}},
		{"a day late: stale, inbox only", n(models.CategoryContests, noon.Add(-25*time.Hour)), defaults, noon, 0, false,
			models.Delivery{Action: models.DeliverInboxOnly, Reason: "stale"}},
		{"staleness counts from not_before", staleDeferred, defaults, noon, 0, false,
			models.Delivery{Action: models.DeliverNow}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := models.DecideDelivery(tt.n, tt.prefs, chicago, tt.now, tt.sentToday, tt.inVisit)
			if got.Action != tt.want.Action || !got.At.Equal(tt.want.At) || got.Reason != tt.want.Reason {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDayStart(t *testing.T) {
	chicago, _ := time.LoadLocation("America/Chicago")
	// 03:00 UTC on the 11th is 22:00 on the 10th in Chicago.
	got := models.DayStart(time.Date(2026, 3, 11, 3, 0, 0, 0, time.UTC), chicago)
	if want := time.Date(2026, 3, 10, 5, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("got %s, want %s", got.UTC(), want)
	}
}

func TestNotificationPreferencesValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*models.NotificationPreferences)
		fields []string // the fields at fault, none for valid
	}{
		{"defaults", func(*models.NotificationPreferences) {}, nil},
		{"no quiet hours", func(p *models.NotificationPreferences) { p.Quiet = nil }, nil},
		{"cap of zero", func(p *models.NotificationPreferences) { p.DailyCap = 0 }, nil},
		{"cap of 101", func(p *models.NotificationPreferences) { p.DailyCap = 101 }, []string{"daily_cap"}},
		{"negative cap", func(p *models.NotificationPreferences) { p.DailyCap = -1 }, []string{"daily_cap"}},
		{"24:00", func(p *models.NotificationPreferences) { p.Quiet.Start = "24:00" }, []string{"quiet_hours.start"}},
		{"7:00 without the zero", func(p *models.NotificationPreferences) { p.Quiet.End = "7:00" }, []string{"quiet_hours.end"}},
		{"both wrong", func(p *models.NotificationPreferences) { p.Quiet = &models.QuietHours{Start: "late", End: "12:60"} },
			[]string{"quiet_hours.start", "quiet_hours.end"}},
		{"unknown category", func(p *models.NotificationPreferences) { p.Off["memes"] = true }, []string{"categories.memes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := models.DefaultNotificationPreferences()
			tt.edit(&p)
			err := p.Validate()
			var got []string
			if me, ok := err.(*models.Error); ok {
				for _, f := range me.Fields {
					got = append(got, f.Field)
				}
			} else if err != nil {
				t.Fatalf("err = %v, want *models.Error", err)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("fields at fault %q, want %q", got, tt.fields)
			}
		})
	}
}

// TestNotificationTexts checks that every builder gives a valid
// notification with the words and deep link a rep needs.
func TestNotificationTexts(t *testing.T) {
	id, next, contest, rep, visit := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	at := time.Date(2026, 11, 17, 10, 30, 0, 0, time.UTC)
	tests := []struct {
		name            string
		n               models.Notification
		cat             models.Category
		title, body     string // substrings
		dataKey, dataID string
	}{
		{"flagged", models.RideAlongFlaggedNotification(id, "Dana North", "Acme Hardware", at), models.CategoryRideAlongs,
			"Ride-along with Dana North", "Dana North will join you at Acme Hardware on Tue 17 Nov at 10:30.", "ride_along_id", id.String()},
		{"flagged next call", models.RideAlongFlaggedNotification(next, "Dana North", "", time.Time{}), models.CategoryRideAlongs,
			"Dana North", "your next unscheduled call", "ride_along_id", next.String()},
		{"requested", models.RideAlongRequestedNotification(id, "Riley Park", "Acme Hardware", at), models.CategoryRideAlongs,
			"requested by Riley Park", "Riley Park asked you to join their call at Acme Hardware", "ride_along_id", id.String()},
		{"accepted", models.RideAlongAcceptedNotification(id, "Dana North", "Acme Hardware", at), models.CategoryRideAlongs,
			"accepted", "Dana North accepted", "ride_along_id", id.String()},
		{"declined", models.RideAlongDeclinedNotification(id, "Riley Park", "Acme Hardware"), models.CategoryRideAlongs,
			"declined", "Riley Park declined the ride-along at Acme Hardware.", "ride_along_id", id.String()},
		{"cancelled", models.RideAlongCancelledNotification(id, "Dana North", "Acme Hardware"), models.CategoryRideAlongs,
			"cancelled", "Dana North cancelled", "ride_along_id", id.String()},
		{"expired", models.RideAlongExpiredNotification(id, "Acme Hardware"), models.CategoryRideAlongs,
			"expired", "was not answered in time", "ride_along_id", id.String()},
		{"debrief", models.DebriefDueNotification(id, "Riley Park", "Acme Hardware"), models.CategoryCoaching,
			"debrief", "you and Riley Park were at Acme Hardware", "ride_along_id", id.String()},
		{"assessment shared", models.AssessmentSharedNotification(id, "Dana North", 4, 2), models.CategoryCoaching,
			"Dana North shared an assessment", "4 done right, 2 to work on.", "assessment_id", id.String()},
		{"assessment due", models.AssessmentDueNotification(contest, "Spring Blitz", rep, "Riley Park", "start"), models.CategoryCoaching,
			"Assess Riley Park", "Spring Blitz has started", "contest_id", contest.String()},
		{"streak", models.UnscheduledStreakNotification(rep, "Riley Park", 5, visit, visit), models.CategoryCoaching,
			"Riley Park: 5 walk-ins without an order", "ride-along", "rep_id", rep.String()},
		{"follow-up", models.FollowUpDueNotification(visit, id, "Acme Hardware", at), models.CategoryReminders,
			"Follow up with Acme Hardware", "Acme Hardware", "visit_id", visit.String()},
		{"recognition", models.RecognitionReceivedNotification(id, "Dana North", "Great cold call at Acme"), models.CategoryRecognition,
			"Dana North recognised you", "Great cold call at Acme", "recognition_id", id.String()},
		{"started", models.ContestStartedNotification(contest, "Spring Blitz", at), models.CategoryContests,
			"Spring Blitz has started", "until Tue 17 Nov", "contest_id", contest.String()},
		{"ending", models.ContestEnding24hNotification(contest, "Spring Blitz", 3, 12), models.CategoryContests,
			"ends in 24 hours", "You're #3 of 12", "contest_id", contest.String()},
		{"ended", models.ContestEndedNotification(contest, "Spring Blitz"), models.CategoryContests,
			"Spring Blitz has ended", "Scoring has stopped", "contest_id", contest.String()},
		{"finalized", models.ContestFinalizedNotification(contest, "Spring Blitz", 2, 12), models.CategoryContests,
			"Final results: Spring Blitz", "You finished #2 of 12.", "contest_id", contest.String()},
		{"overtaken", models.OvertakenNotification(contest, "Spring Blitz", "Jordan Lee", 4, at), models.CategoryStandings,
			"Jordan Lee just passed you", "You're now #4 in Spring Blitz", "contest_id", contest.String()},
		{"top 3", models.EnteredTop3Notification(contest, "Spring Blitz", 3), models.CategoryStandings,
			"top 3", "#3 in Spring Blitz", "contest_id", contest.String()},
		{"first", models.ReachedFirstNotification(contest, "Spring Blitz"), models.CategoryStandings,
			"#1", "You lead Spring Blitz", "contest_id", contest.String()},
		{"target half", models.TargetHalfNotification(contest, "Spring Blitz"), models.CategoryContests,
			"Halfway", "50% of your target", "contest_id", contest.String()},
		{"target reached", models.TargetReachedNotification(contest, "Spring Blitz"), models.CategoryContests,
			"Target reached", "hit your target", "contest_id", contest.String()},
		{"did not score", models.VisitDidNotScoreNotification(visit, contest, "Spring Blitz", "check-in 1.2 km from Acme Hardware"), models.CategoryContests,
			"didn't score", "check-in 1.2 km from Acme Hardware", "visit_id", visit.String()},
	}
	keys := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.n.To(rep)
			if err := n.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if n.Category != tt.cat {
				t.Errorf("category %q, want %q", n.Category, tt.cat)
			}
			if !strings.Contains(n.Title, tt.title) {
				t.Errorf("title %q, want it to contain %q", n.Title, tt.title)
			}
			if !strings.Contains(n.Body, tt.body) {
				t.Errorf("body %q, want it to contain %q", n.Body, tt.body)
			}
			if n.Data["type"] != n.Type || n.Data[tt.dataKey] != tt.dataID {
				t.Errorf("data %v, want type %q and %s=%s", n.Data, n.Type, tt.dataKey, tt.dataID)
			}
			if other, dup := keys[n.DedupeKey]; dup {
				t.Errorf("dedupe key %q is also %s's", n.DedupeKey, other)
			}
			keys[n.DedupeKey] = tt.name
		})
	}
}

func TestStandingsShareACollapseKeyPerContest(t *testing.T) {
	c1, c2 := uuid.New(), uuid.New()
	at := time.Date(2026, 11, 17, 10, 30, 0, 0, time.UTC)
	a := models.OvertakenNotification(c1, "A", "Jo", 4, at)
	b := models.EnteredTop3Notification(c1, "A", 3)
	c := models.ReachedFirstNotification(c2, "B")
	if a.CollapseKey == "" || a.CollapseKey != b.CollapseKey || a.CollapseKey == c.CollapseKey {
		t.Errorf("collapse keys %q, %q, %q: want one per contest", a.CollapseKey, b.CollapseKey, c.CollapseKey)
	}
	// Overtaken fires at most once an hour: the same hour is the same key.
	if x, y := models.OvertakenNotification(c1, "A", "Jo", 4, at), models.OvertakenNotification(c1, "A", "Sam", 5, at.Add(20*time.Minute)); x.DedupeKey != y.DedupeKey {
		t.Errorf("overtaken twice in one hour: keys %q and %q differ", x.DedupeKey, y.DedupeKey)
	}
	if x, y := models.OvertakenNotification(c1, "A", "Jo", 4, at), models.OvertakenNotification(c1, "A", "Jo", 4, at.Add(time.Hour)); x.DedupeKey == y.DedupeKey {
		t.Error("overtaken an hour apart: the same key")
	}
}
