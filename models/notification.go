package models

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Category groups notifications so a user can turn a kind of them off.
type Category string

// The categories a user can switch on and off, each with its own line in
// the app's settings.
const (
	CategoryCoaching    Category = "coaching"    // ride-along debriefs, assessments, streaks
	CategoryRideAlongs  Category = "ride_alongs" // flagged, requested, answered, cancelled
	CategoryContests    Category = "contests"    // started, ending, ended, targets, unscored visits
	CategoryStandings   Category = "standings"   // overtaken, top 3, first place
	CategoryRecognition Category = "recognition" // kudos and badges
	CategoryReminders   Category = "reminders"   // follow-ups due
)

// Categories lists every category in the order settings show them.
var Categories = []Category{CategoryCoaching, CategoryRideAlongs, CategoryContests, CategoryStandings, CategoryRecognition, CategoryReminders}

// Valid reports whether c is a known category.
func (c Category) Valid() bool {
	for _, k := range Categories {
		if c == k {
			return true
		}
	}
	return false
}

// Limits of a notification's text. FCM caps a payload at 4 KB; phones
// show a line or two.
const (
	MaxNotificationTitle = 120
	MaxNotificationBody  = 500
)

// Notification is one message to one user: a row of their in-app inbox
// and, unless preferences say otherwise, a push to their devices.
type Notification struct {
	ID       uuid.UUID // derived from UserID and DedupeKey by the writer
	UserID   uuid.UUID // the recipient
	Category Category
	// Type names the trigger, e.g. "ride_along.flagged"; the app routes
	// on it (it is repeated in Data["type"]).
	Type  string
	Title string
	Body  string
	// Data is the deep link: "type" plus the ids of the entities the
	// notification is about ("ride_along_id", "contest_id", …).
	Data map[string]string
	// DedupeKey makes the trigger fire once: the same key for the same
	// user is one notification, however often the change behind it is
	// replayed or recomputed.
	DedupeKey string
	// CollapseKey lets a newer push replace an older one still on the
	// device (Android collapse key, apns-collapse-id): standings pushes
	// share one per contest, so only the latest rank shows.
	CollapseKey string
	// Urgent pushes are not held back while the user is with a customer.
	Urgent bool
	// NotBefore holds the push back until then; zero means now.
	NotBefore time.Time
	// CreatedAt is when the notification was written (set by storage).
	CreatedAt time.Time
}

// To returns n addressed to userID.
func (n Notification) To(userID uuid.UUID) Notification {
	n.UserID = userID
	return n
}

// Validate checks that n can be written: a recipient, a known category,
// a type, a title and a dedupe key.
func (n Notification) Validate() error {
	switch {
	case n.UserID == uuid.Nil:
		return FieldInvalid("user_id", "is required")
	case !n.Category.Valid():
		return FieldInvalid("category", "unknown category %q", n.Category)
	case n.Type == "":
		return FieldInvalid("type", "is required")
	case strings.TrimSpace(n.Title) == "":
		return FieldInvalid("title", "is required")
	case n.DedupeKey == "":
		return FieldInvalid("dedupe_key", "is required: every trigger fires once per key")
	}
	return nil
}

// Clip shortens s to at most n characters, ending it with "…" when cut.
func Clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

// QuietHours is a daily window, in the user's time zone, during which
// pushes wait. Start and End are "HH:MM"; a window whose End is before its
// Start spans midnight (20:00–07:00).
type QuietHours struct {
	Start string
	End   string
}

// NotificationPreferences are one user's settings for notifications.
type NotificationPreferences struct {
	// Off lists the categories the user switched off: their notifications
	// stay in the inbox and are not pushed. Absent categories are on.
	Off map[Category]bool
	// Quiet is the quiet-hours window; nil means none.
	Quiet *QuietHours
	// DailyCap is the most pushes a day (the user's calendar day); the
	// rest go to the inbox only. 0 pushes nothing.
	DailyCap int
}

// Defaults of NotificationPreferences.
const (
	DefaultQuietStart = "20:00"
	DefaultQuietEnd   = "07:00"
	DefaultDailyCap   = 12
	MaxDailyCap       = 100
)

// DefaultNotificationPreferences are the settings of a user who never
// changed them: every category on, quiet 20:00–07:00, 12 pushes a day.
func DefaultNotificationPreferences() NotificationPreferences {
	return NotificationPreferences{
		Off:      map[Category]bool{},
		Quiet:    &QuietHours{Start: DefaultQuietStart, End: DefaultQuietEnd},
		DailyCap: DefaultDailyCap,
	}
}

// Enabled reports whether pushes of category c are on.
func (p NotificationPreferences) Enabled(c Category) bool { return !p.Off[c] }

// Validate checks the preferences, naming each field at fault.
func (p NotificationPreferences) Validate() error {
	var fields []FieldError
	for c := range p.Off {
		if !c.Valid() {
			fields = append(fields, FieldError{Field: "categories." + string(c), Code: CodeInvalid, Message: "is not a category"})
		}
	}
	if p.Quiet != nil {
		if _, err := parseClock(p.Quiet.Start); err != nil {
			fields = append(fields, FieldError{Field: "quiet_hours.start", Code: CodeInvalid, Message: err.Error()})
		}
		if _, err := parseClock(p.Quiet.End); err != nil {
			fields = append(fields, FieldError{Field: "quiet_hours.end", Code: CodeInvalid, Message: err.Error()})
		}
	}
	if p.DailyCap < 0 || p.DailyCap > MaxDailyCap {
		fields = append(fields, FieldError{Field: "daily_cap", Code: CodeInvalid, Message: fmt.Sprintf("must be from 0 to %d", MaxDailyCap)})
	}
	if len(fields) > 0 {
		return &Error{Code: CodeInvalid, Message: fields[0].Field + ": " + fields[0].Message, Fields: fields}
	}
	return nil
}

// parseClock reads "HH:MM" (24-hour) into minutes after midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("must be a time of day as HH:MM, e.g. 20:00")
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("must be a time of day as HH:MM, e.g. 20:00")
	}
	return hh*60 + mm, nil
}

// QuietUntil reports whether local lies in the window and, if so, when the
// window ends (the next End at or after local, in local's zone). A window
// whose Start equals its End is empty.
func (q QuietHours) QuietUntil(local time.Time) (time.Time, bool) {
	start, err1 := parseClock(q.Start)
	end, err2 := parseClock(q.End)
	if err1 != nil || err2 != nil || start == end {
		return time.Time{}, false
	}
	m := local.Hour()*60 + local.Minute()
	in := (start < end && m >= start && m < end) || (start > end && (m >= start || m < end))
	if !in {
		return time.Time{}, false
	}
	y, mo, d := local.Date()
	until := time.Date(y, mo, d, end/60, end%60, 0, 0, local.Location())
	if !until.After(local) {
		until = time.Date(y, mo, d+1, end/60, end%60, 0, 0, local.Location())
	}
	return until, true
}

// DayStart is the start of now's calendar day in loc: the daily cap counts
// pushes since then.
func DayStart(now time.Time, loc *time.Location) time.Time {
	l := now.In(loc)
	y, m, d := l.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// Location returns the IANA zone named tz, or UTC when it is unknown.
func Location(tz string) *time.Location {
	if loc, err := time.LoadLocation(tz); err == nil && tz != "" {
		return loc
	}
	return time.UTC
}

// DeliveryAction is what to do with a notification's push now.
type DeliveryAction string

const (
	// DeliverNow: push it.
	DeliverNow DeliveryAction = "send"
	// DeliverLater: ask again at Delivery.At.
	DeliverLater DeliveryAction = "defer"
	// DeliverInboxOnly: keep it in the inbox and never push it.
	DeliverInboxOnly DeliveryAction = "inbox_only"
)

// Delivery is a decision about one push, with the reason in a word
// (category_off, daily_cap, stale, not_before, quiet_hours, in_visit).
type Delivery struct {
	Action DeliveryAction
	At     time.Time // when to ask again, for DeliverLater
	Reason string
}

// Delivery timing.
const (
	// VisitRecheck is how soon a push held back during a customer visit
	// is looked at again: it goes out within this long of check-out.
	VisitRecheck = 2 * time.Minute
	// MaxVisitLength bounds how long a visit left in_progress holds pushes
	// back: one never checked out is taken as forgotten after this.
	MaxVisitLength = 4 * time.Hour
	// MaxPushDelay is how long after it became due a notification may
	// still be pushed; an older one is news no longer and stays in the
	// inbox.
	MaxPushDelay = 24 * time.Hour
)

// DecideDelivery decides what to do with n's push at now, for a user with
// preferences p in time zone loc who has had sentToday pushes since their
// day began and is (inVisit) checked in at a customer right now.
//
// The rules, in order: a category the user switched off, or a daily cap of
// 0, keeps the notification in the inbox only. One that became due more
// than MaxPushDelay ago is stale: inbox only. A daily cap already reached
// keeps the surplus in the inbox only. Otherwise the push waits for
// NotBefore, then for the end of quiet hours, then (unless urgent) until
// the user has checked out of a customer visit. Nothing is ever dropped:
// the inbox always has it.
func DecideDelivery(n Notification, p NotificationPreferences, loc *time.Location, now time.Time, sentToday int, inVisit bool) Delivery {
	if loc == nil {
		loc = time.UTC
	}
	due := n.CreatedAt
	if n.NotBefore.After(due) {
		due = n.NotBefore
	}
	switch {
	case !p.Enabled(n.Category):
		return Delivery{Action: DeliverInboxOnly, Reason: "category_off"}
	case p.DailyCap <= 0:
		return Delivery{Action: DeliverInboxOnly, Reason: "daily_cap"}
	case !due.IsZero() && now.Sub(due) > MaxPushDelay:
		return Delivery{Action: DeliverInboxOnly, Reason: "stale"}
	case sentToday >= p.DailyCap:
		return Delivery{Action: DeliverInboxOnly, Reason: "daily_cap"}
	case n.NotBefore.After(now):
		return Delivery{Action: DeliverLater, At: n.NotBefore, Reason: "not_before"}
	}
	if p.Quiet != nil {
		if until, quiet := p.Quiet.QuietUntil(now.In(loc)); quiet {
			return Delivery{Action: DeliverLater, At: until.UTC(), Reason: "quiet_hours"}
		}
	}
	if inVisit && !n.Urgent {
		return Delivery{Action: DeliverLater, At: now.Add(VisitRecheck), Reason: "in_visit"}
	}
	return Delivery{Action: DeliverNow}
}

// InboxPos is a place in a user's inbox, newest first. Notifications
// written in one transaction share a time, so the id breaks ties.
type InboxPos struct {
	At time.Time
	ID uuid.UUID
}
