package models_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/models"
)

// TestRideAlongTransitionValid checks every (from, to) pair against the
// state machine of the issue: requested → accepted | declined | cancelled |
// expired; accepted → completed | cancelled; nothing else.
func TestRideAlongTransitionValid(t *testing.T) {
	edges := map[string]bool{
		"requested→accepted":  true,
		"requested→declined":  true,
		"requested→cancelled": true,
		"requested→expired":   true,
		"accepted→completed":  true,
		"accepted→cancelled":  true,
	}
	for _, from := range models.RideAlongStatuses {
		for _, to := range models.RideAlongStatuses {
			name := from + "→" + to
			t.Run(name, func(t *testing.T) {
				if got, want := models.RideAlongTransitionValid(from, to), edges[name]; got != want {
					t.Errorf("RideAlongTransitionValid(%q, %q) = %v, want %v", from, to, got, want)
				}
			})
		}
	}
	if got := models.RideAlongTransitionValid("", models.RideRequested); got {
		t.Errorf("RideAlongTransitionValid(\"\", requested) = true, want false: creation is not an edge")
	}
}

func TestRideAlongTransition(t *testing.T) {
	tests := []struct {
		name          string
		prev, cur, to string
		wantOK        bool
		wantOverrides bool
		wantWhy       string // a substring of why, when refused
	}{
		{name: "no change is accepted", cur: models.RideAccepted, to: models.RideAccepted, wantOK: true},
		{name: "edge requested to accepted", cur: models.RideRequested, to: models.RideAccepted, wantOK: true},
		{name: "edge requested to declined", cur: models.RideRequested, to: models.RideDeclined, wantOK: true},
		{name: "edge requested to cancelled", cur: models.RideRequested, to: models.RideCancelled, wantOK: true},
		{name: "edge accepted to completed", prev: models.RideRequested, cur: models.RideAccepted, to: models.RideCompleted, wantOK: true},
		{name: "edge accepted to cancelled", prev: models.RideRequested, cur: models.RideAccepted, to: models.RideCancelled, wantOK: true},
		// Two people moved the ride-along from the same status offline.
		{name: "cancel outranks a concurrent decline", prev: models.RideRequested, cur: models.RideDeclined, to: models.RideCancelled, wantOK: true, wantOverrides: true},
		{name: "decline loses to a concurrent cancel", prev: models.RideRequested, cur: models.RideCancelled, to: models.RideDeclined, wantWhy: "already cancelled; it cannot become declined"},
		{name: "accept loses to a concurrent cancel", prev: models.RideRequested, cur: models.RideCancelled, to: models.RideAccepted, wantWhy: "already cancelled; it cannot become accepted"},
		{name: "accept outranks the server's expiry", prev: models.RideRequested, cur: models.RideExpired, to: models.RideAccepted, wantOK: true, wantOverrides: true},
		{name: "decline outranks the server's expiry", prev: models.RideRequested, cur: models.RideExpired, to: models.RideDeclined, wantOK: true, wantOverrides: true},
		{name: "decline outranks a concurrent accept", prev: models.RideRequested, cur: models.RideAccepted, to: models.RideDeclined, wantOK: true, wantOverrides: true},
		{name: "accept loses to a concurrent decline", prev: models.RideRequested, cur: models.RideDeclined, to: models.RideAccepted, wantWhy: "already declined"},
		{name: "completion outranks a concurrent cancel", prev: models.RideAccepted, cur: models.RideCancelled, to: models.RideCompleted, wantOK: true, wantOverrides: true},
		{name: "cancel loses to a concurrent completion", prev: models.RideAccepted, cur: models.RideCompleted, to: models.RideCancelled, wantWhy: "already completed; it cannot become cancelled"},
		// Not concurrent: the change was never an edge from where it came.
		{name: "completed is final", prev: models.RideAccepted, cur: models.RideCompleted, to: models.RideAccepted, wantWhy: "already completed"},
		{name: "declined cannot be accepted later", prev: models.RideRequested, cur: models.RideDeclined, to: models.RideCompleted, wantWhy: "already declined"},
		{name: "requested cannot jump to completed", cur: models.RideRequested, to: models.RideCompleted, wantWhy: "already requested; it cannot become completed"},
		{name: "no override without a previous status", cur: models.RideCancelled, to: models.RideCompleted, wantWhy: "already cancelled"},
		{name: "back to requested is never allowed", prev: models.RideRequested, cur: models.RideAccepted, to: models.RideRequested, wantWhy: "cannot become requested"},
		{name: "expired is not revived by a cancel from accepted", prev: models.RideRequested, cur: models.RideExpired, to: models.RideCompleted, wantWhy: "already expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, overrides, why := models.RideAlongTransition(tt.prev, tt.cur, tt.to)
			if ok != tt.wantOK || overrides != tt.wantOverrides {
				t.Fatalf("RideAlongTransition(%q, %q, %q) = ok %v overrides %v (%q), want ok %v overrides %v",
					tt.prev, tt.cur, tt.to, ok, overrides, why, tt.wantOK, tt.wantOverrides)
			}
			if ok && why != "" {
				t.Errorf("why = %q for an accepted change, want empty", why)
			}
			if !ok && !strings.Contains(why, tt.wantWhy) {
				t.Errorf("why = %q, want it to contain %q", why, tt.wantWhy)
			}
		})
	}
}

// TestRideAlongConcurrentTransitionsCommute applies every pair of
// transitions two parties may make from the same status, in both orders,
// the way the server does (the second is judged against the first's
// result), and requires the same final status either way.
func TestRideAlongConcurrentTransitionsCommute(t *testing.T) {
	apply := func(prev, cur, to string) (string, string) {
		ok, _, _ := models.RideAlongTransition(prev, cur, to)
		if !ok || to == cur {
			return prev, cur
		}
		return cur, to
	}
	for _, from := range []string{models.RideRequested, models.RideAccepted} {
		var outs []string
		for _, s := range models.RideAlongStatuses {
			if models.RideAlongTransitionValid(from, s) {
				outs = append(outs, s)
			}
		}
		for i, a := range outs {
			for _, b := range outs[i+1:] {
				t.Run(fmt.Sprintf("%s: %s vs %s", from, a, b), func(t *testing.T) {
					p1, s1 := apply("", from, a)
					_, ab := apply(p1, s1, b)
					p2, s2 := apply("", from, b)
					_, ba := apply(p2, s2, a)
					if ab != ba {
						t.Errorf("%s then %s ends %s; %s then %s ends %s", a, b, ab, b, a, ba)
					}
				})
			}
		}
	}
}

func TestRideAlongRequiredActor(t *testing.T) {
	tests := []struct {
		to, want string
	}{
		{models.RideAccepted, "counterparty"},
		{models.RideDeclined, "counterparty"},
		{models.RideExpired, "server"},
		{models.RideCancelled, "either"},
		{models.RideCompleted, "either"},
	}
	for _, tt := range tests {
		t.Run(tt.to, func(t *testing.T) {
			if got := models.RideAlongRequiredActor(tt.to); got != tt.want {
				t.Errorf("RideAlongRequiredActor(%q) = %q, want %q", tt.to, got, tt.want)
			}
		})
	}
}

func TestVerifyCheckIn(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	fix := models.CheckIn{Lat: f(44.97), Lng: f(-93.26), AccuracyM: f(20)}
	tests := []struct {
		name    string
		ci      models.CheckIn
		dist    *float64
		speed   *float64
		revisit bool
		want    string
	}{
		{name: "at the account", ci: fix, dist: f(12), want: models.CheckInVerified},
		{name: "exactly 250 m away", ci: fix, dist: f(250), want: models.CheckInVerified},
		{name: "just over 250 m", ci: fix, dist: f(250.5), want: models.CheckInOutOfRange},
		{name: "two kilometres away", ci: fix, dist: f(2000), want: models.CheckInOutOfRange},
		{name: "accuracy exactly 100 m", ci: models.CheckIn{Lat: fix.Lat, Lng: fix.Lng, AccuracyM: f(100)}, dist: f(10), want: models.CheckInVerified},
		{name: "poor accuracy", ci: models.CheckIn{Lat: fix.Lat, Lng: fix.Lng, AccuracyM: f(101)}, dist: f(10), want: models.CheckInUnverifiable},
		{name: "no accuracy reported", ci: models.CheckIn{Lat: fix.Lat, Lng: fix.Lng}, dist: f(10), want: models.CheckInUnverifiable},
		{name: "no fix", ci: models.CheckIn{AccuracyM: f(5)}, want: models.CheckInUnverifiable},
		{name: "account without coordinates", ci: fix, dist: nil, want: models.CheckInUnverifiable},
		{name: "implausible speed", ci: fix, dist: f(10), speed: f(450), want: models.CheckInSuspicious},
		{name: "speed at the limit is plausible", ci: fix, dist: f(10), speed: f(models.MaxPlausibleSpeedKmh), want: models.CheckInVerified},
		{name: "revisit within the cooldown", ci: fix, dist: f(10), revisit: true, want: models.CheckInSuspicious},
		{name: "suspicious outranks out of range", ci: fix, dist: f(5000), revisit: true, want: models.CheckInSuspicious},
		{name: "unverifiable outranks suspicious", ci: models.CheckIn{Lat: fix.Lat, Lng: fix.Lng, AccuracyM: f(500)}, dist: f(10), speed: f(900), want: models.CheckInUnverifiable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := models.VerifyCheckIn(tt.ci, tt.dist, tt.speed, tt.revisit); got != tt.want {
				t.Errorf("VerifyCheckIn = %q, want %q", got, tt.want)
			}
		})
	}
}
