package models

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// The builders below are the words of every notification: one function per
// trigger, each returning a Notification with its category, type, title,
// body, deep-link data, dedupe key and (for standings) collapse key. The
// caller addresses it (.To(userID)) and writes it in the transaction of the
// change that caused it (sales.Notify). Times passed in should already
// be in the recipient's time zone.

// Notification types, repeated in Data["type"] for the app's router.
const (
	NotificationRideAlongFlagged   = "ride_along.flagged"
	NotificationRideAlongRequested = "ride_along.requested"
	NotificationRideAlongAccepted  = "ride_along.accepted"
	NotificationRideAlongDeclined  = "ride_along.declined"
	NotificationRideAlongCancelled = "ride_along.cancelled"
	NotificationRideAlongExpired   = "ride_along.expired"
	NotificationDebriefDue         = "ride_along.debrief_due"
	NotificationAssessmentShared   = "assessment.shared"
	NotificationAssessmentDue      = "assessment.due"
	NotificationUnscheduledStreak  = "coaching.unscheduled_streak"
	NotificationFollowUpDue        = "visit.follow_up_due"
	NotificationRecognition        = "recognition.received"
	NotificationContestStarted     = "contest.started"
	NotificationContestEnding      = "contest.ending_24h"
	NotificationContestEnded       = "contest.ended"
	NotificationContestFinalized   = "contest.finalized"
	NotificationOvertaken          = "standings.overtaken"
	NotificationEnteredTop3        = "standings.top3"
	NotificationReachedFirst       = "standings.first"
	NotificationTargetHalf         = "contest.target_50"
	NotificationTargetReached      = "contest.target_100"
	NotificationVisitDidNotScore   = "contest.visit_not_scored"
	NotificationOrderValueReview   = "visit.order_value_review"
)

// StreakLength is how many unscheduled calls in a row without an order make
// a streak worth a manager's attention.
const StreakLength = 5

func newNotification(cat Category, typ, title, body, dedupe string, data map[string]string) Notification {
	d := map[string]string{"type": typ}
	for k, v := range data {
		d[k] = v
	}
	return Notification{
		Category: cat, Type: typ, Data: d, DedupeKey: dedupe,
		Title: Clip(title, MaxNotificationTitle), Body: Clip(body, MaxNotificationBody),
	}
}

// StandingsCollapseKey is the collapse key of a contest's standings pushes.
func StandingsCollapseKey(contestID uuid.UUID) string { return "standings:" + contestID.String() }

// meetingTime formats a meeting time for a body: "Tue 14 Nov at 10:30".
func meetingTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("Mon 2 Jan at 15:04")
}

func callAt(account string) string {
	if account == "" {
		return "a call"
	}
	return account
}

// RideAlongFlaggedNotification tells a rep that their manager will join a call. With no
// account the manager flagged the rep's next unscheduled call.
func RideAlongFlaggedNotification(rideAlongID uuid.UUID, managerName, accountName string, on time.Time) Notification {
	body := managerName + " wants to join your next unscheduled call and coach you on it."
	if accountName != "" {
		body = fmt.Sprintf("%s will join you at %s", managerName, accountName)
		if !on.IsZero() {
			body += " on " + meetingTime(on)
		}
		body += ". Accept or decline in the app."
	}
	return newNotification(CategoryRideAlongs, NotificationRideAlongFlagged, "Ride-along with "+managerName, body,
		"ride_along:"+rideAlongID.String()+":flagged", map[string]string{"ride_along_id": rideAlongID.String()})
}

// RideAlongRequestedNotification tells a manager that a rep asked them along.
func RideAlongRequestedNotification(rideAlongID uuid.UUID, repName, accountName string, on time.Time) Notification {
	body := fmt.Sprintf("%s asked you to join their call at %s", repName, callAt(accountName))
	if !on.IsZero() {
		body += " on " + meetingTime(on)
	}
	return newNotification(CategoryRideAlongs, NotificationRideAlongRequested, "Ride-along requested by "+repName, body+".",
		"ride_along:"+rideAlongID.String()+":requested", map[string]string{"ride_along_id": rideAlongID.String()})
}

// RideAlongAcceptedNotification tells the requester that the other side said yes.
func RideAlongAcceptedNotification(rideAlongID uuid.UUID, byName, accountName string, on time.Time) Notification {
	body := fmt.Sprintf("%s accepted the ride-along at %s", byName, callAt(accountName))
	if !on.IsZero() {
		body += " on " + meetingTime(on)
	}
	return newNotification(CategoryRideAlongs, NotificationRideAlongAccepted, "Ride-along accepted", body+".",
		"ride_along:"+rideAlongID.String()+":accepted", map[string]string{"ride_along_id": rideAlongID.String()})
}

// RideAlongDeclinedNotification tells the requester that the other side said no.
func RideAlongDeclinedNotification(rideAlongID uuid.UUID, byName, accountName string) Notification {
	return newNotification(CategoryRideAlongs, NotificationRideAlongDeclined, "Ride-along declined",
		fmt.Sprintf("%s declined the ride-along at %s.", byName, callAt(accountName)),
		"ride_along:"+rideAlongID.String()+":declined", map[string]string{"ride_along_id": rideAlongID.String()})
}

// RideAlongCancelledNotification tells the other side that a ride-along is off.
func RideAlongCancelledNotification(rideAlongID uuid.UUID, byName, accountName string) Notification {
	return newNotification(CategoryRideAlongs, NotificationRideAlongCancelled, "Ride-along cancelled",
		fmt.Sprintf("%s cancelled the ride-along at %s.", byName, callAt(accountName)),
		"ride_along:"+rideAlongID.String()+":cancelled", map[string]string{"ride_along_id": rideAlongID.String()})
}

// RideAlongExpiredNotification tells the requester that nobody answered in time.
func RideAlongExpiredNotification(rideAlongID uuid.UUID, accountName string) Notification {
	return newNotification(CategoryRideAlongs, NotificationRideAlongExpired, "Ride-along request expired",
		fmt.Sprintf("The ride-along at %s was not answered in time. Ask again for another call.", callAt(accountName)),
		"ride_along:"+rideAlongID.String()+":expired", map[string]string{"ride_along_id": rideAlongID.String()})
}

// DebriefDueNotification prompts a coaching debrief 48 hours after a completed
// ride-along; otherName is the other person on the call.
func DebriefDueNotification(rideAlongID uuid.UUID, otherName, accountName string) Notification {
	return newNotification(CategoryCoaching, NotificationDebriefDue, "Time to debrief your ride-along",
		fmt.Sprintf("Two days ago you and %s were at %s. Take ten minutes to go over what worked and what to try next.", otherName, callAt(accountName)),
		"ride_along:"+rideAlongID.String()+":debrief", map[string]string{"ride_along_id": rideAlongID.String()})
}

func countOf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// AssessmentSharedNotification tells a rep that their manager shared an assessment:
// "4 done right, 2 to work on".
func AssessmentSharedNotification(assessmentID uuid.UUID, managerName string, doneRight, toWork int) Notification {
	return newNotification(CategoryCoaching, NotificationAssessmentShared, managerName+" shared an assessment",
		fmt.Sprintf("%d done right, %d to work on.", doneRight, toWork),
		"assessment:"+assessmentID.String()+":shared", map[string]string{"assessment_id": assessmentID.String()})
}

// AssessmentDueNotification reminds a manager to assess a rep at a contest's start
// (phase "start") or end ("end").
func AssessmentDueNotification(contestID uuid.UUID, contestName string, repID uuid.UUID, repName, phase string) Notification {
	body := fmt.Sprintf("%s has started: record %s's starting assessment so you can see what changes.", contestName, repName)
	if phase == "end" {
		body = fmt.Sprintf("%s has ended: record %s's closing assessment and compare it with the start.", contestName, repName)
	}
	return newNotification(CategoryCoaching, NotificationAssessmentDue, "Assess "+repName, body,
		"assessment_due:"+contestID.String()+":"+repID.String()+":"+phase,
		map[string]string{"contest_id": contestID.String(), "rep_id": repID.String(), "phase": phase})
}

// UnscheduledStreakNotification tells a manager that a rep made n unscheduled calls in
// a row without an order, and suggests a ride-along. firstVisitID is the
// streak's first call: the streak fires once.
func UnscheduledStreakNotification(repID uuid.UUID, repName string, n int, firstVisitID, lastVisitID uuid.UUID) Notification {
	return newNotification(CategoryCoaching, NotificationUnscheduledStreak, fmt.Sprintf("%s: %d walk-ins without an order", repName, n),
		fmt.Sprintf("%s has made %s in a row without an order. Joining the next one on a ride-along could help.", repName, countOf(n, "unscheduled call", "unscheduled calls")),
		"unscheduled_streak:"+repID.String()+":"+firstVisitID.String(),
		map[string]string{"rep_id": repID.String(), "visit_id": lastVisitID.String()})
}

// FollowUpDueNotification reminds a rep of a follow-up they planned on a visit.
// followUpAt is part of the dedupe key: moving the follow-up reminds again.
func FollowUpDueNotification(visitID, accountID uuid.UUID, accountName string, followUpAt time.Time) Notification {
	data := map[string]string{"visit_id": visitID.String()}
	if accountID != uuid.Nil {
		data["account_id"] = accountID.String()
	}
	return newNotification(CategoryReminders, NotificationFollowUpDue, "Follow up with "+callAt(accountName),
		fmt.Sprintf("You planned to follow up with %s now. Call or drop by while it is fresh.", callAt(accountName)),
		fmt.Sprintf("follow_up:%s:%d", visitID, followUpAt.Unix()), data)
}

// RecognitionReceivedNotification tells a user that someone recognised them; what is
// the kudos text or the badge's name.
func RecognitionReceivedNotification(recognitionID uuid.UUID, fromName, what string) Notification {
	body := what
	if body == "" {
		body = "Open the app to see what for."
	}
	return newNotification(CategoryRecognition, NotificationRecognition, fromName+" recognised you", body,
		"recognition:"+recognitionID.String(), map[string]string{"recognition_id": recognitionID.String()})
}

// ContestStartedNotification announces a contest to a participant.
func ContestStartedNotification(contestID uuid.UUID, name string, ends time.Time) Notification {
	body := "Every call counts, scheduled or not."
	if !ends.IsZero() {
		body = "It runs until " + ends.Format("Mon 2 Jan") + ". Every call counts, scheduled or not."
	}
	return newNotification(CategoryContests, NotificationContestStarted, name+" has started", body,
		"contest:"+contestID.String()+":started", map[string]string{"contest_id": contestID.String()})
}

// ContestEnding24hNotification warns a participant a day before the end, with their
// rank (0 when unranked).
func ContestEnding24hNotification(contestID uuid.UUID, name string, rank, of int) Notification {
	body := "A day to go. Every call still counts."
	if rank > 0 {
		body = fmt.Sprintf("You're #%d of %d with a day to go. One more order could move you up.", rank, of)
	}
	if rank == 1 {
		body = fmt.Sprintf("You lead %d people with a day to go. Keep it up.", of)
	}
	return newNotification(CategoryContests, NotificationContestEnding, name+" ends in 24 hours", body,
		"contest:"+contestID.String()+":ending_24h", map[string]string{"contest_id": contestID.String()})
}

// ContestEndedNotification tells a participant that scoring stopped.
func ContestEndedNotification(contestID uuid.UUID, name string) Notification {
	return newNotification(CategoryContests, NotificationContestEnded, name+" has ended",
		"Scoring has stopped. Final results follow once late visits have synced.",
		"contest:"+contestID.String()+":ended", map[string]string{"contest_id": contestID.String()})
}

// ContestFinalizedNotification gives a participant their final rank.
func ContestFinalizedNotification(contestID uuid.UUID, name string, rank, of int) Notification {
	body := "The final standings are in."
	if rank > 0 {
		body = fmt.Sprintf("You finished #%d of %d.", rank, of)
	}
	return newNotification(CategoryContests, NotificationContestFinalized, "Final results: "+name, body,
		"contest:"+contestID.String()+":finalized", map[string]string{"contest_id": contestID.String()})
}

// OvertakenNotification tells a participant that the rival next to them passed them.
// It fires at most once an hour per contest (hour picks the hour), and it
// shares the contest's standings collapse key.
func OvertakenNotification(contestID uuid.UUID, contestName, byName string, rank int, hour time.Time) Notification {
	n := newNotification(CategoryStandings, NotificationOvertaken, byName+" just passed you",
		fmt.Sprintf("You're now #%d in %s. A call or two could win it back.", rank, contestName),
		fmt.Sprintf("standings:%s:overtaken:%d", contestID, hour.UTC().Truncate(time.Hour).Unix()),
		map[string]string{"contest_id": contestID.String(), "rank": fmt.Sprint(rank)})
	n.CollapseKey = StandingsCollapseKey(contestID)
	return n
}

// EnteredTop3Notification fires once per contest when a participant first reaches the
// top three.
func EnteredTop3Notification(contestID uuid.UUID, contestName string, rank int) Notification {
	n := newNotification(CategoryStandings, NotificationEnteredTop3, "You're in the top 3",
		fmt.Sprintf("You're #%d in %s. Keep it up.", rank, contestName),
		"standings:"+contestID.String()+":top3", map[string]string{"contest_id": contestID.String(), "rank": fmt.Sprint(rank)})
	n.CollapseKey = StandingsCollapseKey(contestID)
	return n
}

// ReachedFirstNotification fires once per contest when a participant first leads it.
func ReachedFirstNotification(contestID uuid.UUID, contestName string) Notification {
	n := newNotification(CategoryStandings, NotificationReachedFirst, "You're #1",
		fmt.Sprintf("You lead %s. Everyone is chasing you now.", contestName),
		"standings:"+contestID.String()+":first", map[string]string{"contest_id": contestID.String(), "rank": "1"})
	n.CollapseKey = StandingsCollapseKey(contestID)
	return n
}

// TargetHalfNotification fires once per contest at 50 % of the participant's target.
func TargetHalfNotification(contestID uuid.UUID, contestName string) Notification {
	return newNotification(CategoryContests, NotificationTargetHalf, "Halfway to your target",
		fmt.Sprintf("You've reached 50%% of your target in %s.", contestName),
		"contest:"+contestID.String()+":target_50", map[string]string{"contest_id": contestID.String()})
}

// TargetReachedNotification fires once per contest at 100 % of the target.
func TargetReachedNotification(contestID uuid.UUID, contestName string) Notification {
	return newNotification(CategoryContests, NotificationTargetReached, "Target reached",
		fmt.Sprintf("You've hit your target in %s. Everything from here is extra.", contestName),
		"contest:"+contestID.String()+":target_100", map[string]string{"contest_id": contestID.String()})
}

// VisitDidNotScoreNotification tells a rep why a visit earned no points in a contest,
// e.g. reason "check-in 1.2 km from Acme Hardware".
func VisitDidNotScoreNotification(visitID, contestID uuid.UUID, contestName, reason string) Notification {
	return newNotification(CategoryContests, NotificationVisitDidNotScore, "A visit didn't score",
		fmt.Sprintf("Your visit didn't count in %s: %s.", contestName, reason),
		"visit:"+visitID.String()+":unscored:"+contestID.String(),
		map[string]string{"visit_id": visitID.String(), "contest_id": contestID.String()})
}

// OrderValueReviewNotification asks a rep's manager to review an order
// value above the organisation's ceiling: the visit scores nothing until
// they approve it. The value is part of the dedupe key: a rep who changes
// it to another value above the ceiling asks again.
func OrderValueReviewNotification(visitID, repID uuid.UUID, repName, accountName string, cents int64) Notification {
	where := ""
	if accountName != "" {
		where = " at " + accountName
	}
	return newNotification(CategoryContests, NotificationOrderValueReview, repName+": an order value to review",
		fmt.Sprintf("%s logged an order of %.2f%s, above your organisation's ceiling. It scores nothing until you approve it.", repName, float64(cents)/100, where),
		fmt.Sprintf("order_value_review:%s:%d", visitID, cents),
		map[string]string{"visit_id": visitID.String(), "rep_id": repID.String()})
}
