package models

import "fmt"

// Ride-along statuses.
const (
	RideRequested = "requested"
	RideAccepted  = "accepted"
	RideDeclined  = "declined"
	RideCompleted = "completed"
	RideCancelled = "cancelled"
	RideExpired   = "expired"
)

// RideAlongStatuses lists every status.
var RideAlongStatuses = []string{RideRequested, RideAccepted, RideDeclined, RideCompleted, RideCancelled, RideExpired}

// rideNext is the state machine: the statuses each status may move to.
var rideNext = map[string][]string{
	RideRequested: {RideAccepted, RideDeclined, RideCancelled, RideExpired},
	RideAccepted:  {RideCompleted, RideCancelled},
}

// rideRank orders outcomes for concurrent transitions from one status: the
// higher rank wins whichever arrives first. A completed call happened, so it
// beats a cancel; a cancel beats a decline; anything a person did beats the
// server's expiry.
var rideRank = map[string]int{RideExpired: 1, RideAccepted: 2, RideDeclined: 3, RideCancelled: 4, RideCompleted: 5}

// RideAlongTransitionValid reports whether from → to is an edge of the
// state machine.
func RideAlongTransitionValid(from, to string) bool {
	for _, s := range rideNext[from] {
		if s == to {
			return true
		}
	}
	return false
}

// RideAlongTransition decides a requested status change. cur is the status
// on the server and prev the status it came from (empty if none). A change
// that is no edge from cur still wins when it is an edge from prev and
// outranks cur: two people moved the ride-along from prev at once, offline,
// and the outcome must not depend on which phone synced first. ok false
// means the change is refused, and why says so in words for the loser.
func RideAlongTransition(prev, cur, to string) (ok bool, overrides bool, why string) {
	switch {
	case cur == to:
		return true, false, ""
	case RideAlongTransitionValid(cur, to):
		return true, false, ""
	case prev != "" && RideAlongTransitionValid(prev, to) && rideRank[to] > rideRank[cur]:
		return true, true, ""
	}
	return false, false, fmt.Sprintf("the ride-along is already %s; it cannot become %s", cur, to)
}

// RideAlongRequiredActor says who may move a ride-along to status to:
// "counterparty" (the one who did not request it), "either" (the rep or
// the manager), or "server".
func RideAlongRequiredActor(to string) string {
	switch to {
	case RideAccepted, RideDeclined:
		return "counterparty"
	case RideExpired:
		return "server"
	}
	return "either"
}

// Distances that verify presence, in metres.
const (
	JointVerifyRadiusM   = 300 // manager's check-in to the rep's visit
	VisitVerifyRadiusM   = 250 // visit check-in to its account
	VisitVerifyAccuracyM = 100 // reported GPS accuracy at most
	MaxPlausibleSpeedKmh = 200 // faster between check-ins is suspicious
	RevisitCooldownHours = 4   // the same account again within this is suspicious
	RideAlongExpiryDays  = 7
	DebriefDueHours      = 48
)

// Check-in verification results.
const (
	CheckInVerified     = "verified"
	CheckInOutOfRange   = "out_of_range"
	CheckInUnverifiable = "unverifiable"
	CheckInSuspicious   = "suspicious"
)

// CheckIn is what verification needs to know of a visit's check-in.
type CheckIn struct {
	Lat, Lng  *float64
	AccuracyM *float64
}

// VerifyCheckIn classifies a visit's check-in. distToAccountM is the
// distance to the account (nil when the account has no coordinates);
// speedKmh the implied speed from the rep's previous check-in (nil when
// none); revisit whether the rep checked in at the same account within the
// cooldown.
func VerifyCheckIn(ci CheckIn, distToAccountM, speedKmh *float64, revisit bool) string {
	switch {
	case ci.Lat == nil || ci.Lng == nil || ci.AccuracyM == nil || *ci.AccuracyM > VisitVerifyAccuracyM || distToAccountM == nil:
		return CheckInUnverifiable
	case speedKmh != nil && *speedKmh > MaxPlausibleSpeedKmh, revisit:
		return CheckInSuspicious
	case *distToAccountM > VisitVerifyRadiusM:
		return CheckInOutOfRange
	}
	return CheckInVerified
}
