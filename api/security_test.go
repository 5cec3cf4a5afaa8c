package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestRepCannotForgeJointVerification: the manager's check-in is the
// manager's to send, on create as on update. A rep who sends it with their
// own coordinates is refused, through either protocol, and no ride-along
// is stored.
func TestRepCannotForgeJointVerification(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	visit := uuid.New()
	call := o.call(o.north[0], now.Add(-time.Hour), 0, nil)
	o.pushApplied(t, "rep1", o.up("visits", visit, call))
	forged := map[string]any{"mode": "visit", "visit_id": visit.String(),
		"manager_check_in_lat": call["check_in_lat"], "manager_check_in_lng": call["check_in_lng"]}

	t.Run("native push", func(t *testing.T) {
		ra := uuid.New()
		r := o.dev["rep1"].pushOne(t, o.up("ride_alongs", ra, forged))
		if r.Status != "rejected" || r.Error == nil || r.Error.Code != "forbidden" {
			t.Fatalf("a rep creating a ride-along with the manager's check-in: %s %+v, want rejected forbidden", r.Status, r.Error)
		}
		all, _ := pullAll(t, o.env, o.dev["m1"].Access)
		if c, ok := all[key("ride_alongs", ra)]; ok {
			t.Fatalf("the refused ride-along was stored: %+v", c)
		}
	})
	t.Run("WatermelonDB", func(t *testing.T) {
		rep := newWMDevice(o.env, "rep1@demo.test")
		rep.pull(t)
		ra := uuid.New()
		row := map[string]any{"rep_id": nil, "status": "requested", "scheduled_for": nil, "note": nil}
		for k, v := range forged {
			row[k] = v
		}
		res := rep.push(t, wmTables("ride_alongs", wmCreated(wmRow(ra, "created", row))))
		p := wmProblemOf(t, res, http.StatusUnprocessableEntity, "invalid")
		if len(p.Rejected) != 1 || p.Rejected[0].Code != "forbidden" {
			t.Fatalf("rejected %+v, want the ride-along, forbidden", p.Rejected)
		}
	})
	// Control: the rep's request without the manager's fields is applied.
	o.pushApplied(t, "rep1", o.up("ride_alongs", uuid.New(), map[string]any{"mode": "visit", "visit_id": visit.String()}))
}
