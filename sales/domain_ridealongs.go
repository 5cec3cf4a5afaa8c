package sales

import (
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Codes of domain rejections.
const (
	CodeInvalidTransition = "invalid_transition"
	CodeLocked            = "locked"
	CodeLimitReached      = "limit_reached"
)

// RideAlongs are a manager joining a rep on a call to coach: flagged by the
// manager, or requested by the rep.
func RideAlongs() *engine.Entity {
	return &engine.Entity{
		Name: "ride_alongs",
		Fields: []engine.Field{
			{Name: "rep_id", Type: engine.UUID},
			{Name: "manager_id", Type: engine.UUID, Access: engine.ServerOwned},
			{Name: "visit_id", Type: engine.UUID, Ref: "visits"},
			{Name: "mode", Type: engine.Enum, Enum: []string{"visit", "next_unscheduled"}, Required: true},
			{Name: "status", Type: engine.Enum, Enum: models.RideAlongStatuses, Default: models.RideRequested, Required: true},
			{Name: "requested_by", Type: engine.Enum, Enum: []string{"manager", "rep"}, Access: engine.ServerOwned},
			{Name: "scheduled_for", Type: engine.Time},
			{Name: "note", Type: engine.Text},
			latField("manager_check_in_lat"),
			lngField("manager_check_in_lng"),
			{Name: "joint_verified", Type: engine.Bool, Access: engine.ServerOwned},
			{Name: "completed_at", Type: engine.Time, Access: engine.ServerOwned},
			{Name: "team_id", Type: engine.UUID, Access: engine.ServerOwned},
			{Name: "prev_status", Type: engine.String, Hidden: true},
		},
		Scope:    repScope,
		Prepare:  prepareRideAlong,
		Validate: validateRideAlong,
	}
}

func forbidden(field, msg string) error {
	return &models.Error{Code: engine.CodeForbidden, Message: msg, Fields: []models.FieldError{{Field: field, Code: engine.CodeForbidden, Message: msg}}}
}

func invalidTransition(msg string) error {
	return &models.Error{Code: CodeInvalidTransition, Message: msg, Fields: []models.FieldError{{Field: "status", Code: CodeInvalidTransition, Message: msg}}}
}

// prepareRideAlong authorises the caller and applies status changes
// through the state machine rather than last-writer-wins: the status a
// phone sends is a transition it asks for, judged against the status the
// server has when it arrives.
func prepareRideAlong(c *engine.Context, old, r *engine.Record) error {
	if r == nil { // delete: a participant withdraws it while it is requested
		if !isParty(c, old) || old.StringValue("status") != models.RideRequested {
			return forbidden("status", "a ride-along can only be withdrawn by a participant while it is requested; cancel it instead")
		}
		return nil
	}
	if old == nil {
		return createRideAlong(c, r)
	}
	if !isParty(c, old) {
		return forbidden("rep_id", "only the rep and their manager may change a ride-along")
	}
	if rep, ok := c.Sent["rep_id"].(uuid.UUID); ok && !sameUUID(old.UUIDValue("rep_id"), &rep) {
		return &models.Error{Code: engine.CodeServerOwned, Message: "rep_id cannot change", Fields: []models.FieldError{{Field: "rep_id", Code: engine.CodeServerOwned, Message: "cannot change"}}}
	}
	isManager := sameUUID(old.UUIDValue("manager_id"), &c.P.UserID)
	for _, f := range []string{"scheduled_for", "manager_check_in_lat", "manager_check_in_lng", "visit_id"} {
		if _, sent := c.Sent[f]; sent && !isManager {
			return forbidden(f, f+" is set by the manager")
		}
	}
	to, sent := c.Sent["status"].(string)
	if !sent {
		return nil
	}
	delete(c.Sent, "status") // judged here, not merged by clock
	cur := old.StringValue("status")
	ok, _, why := models.RideAlongTransition(old.StringValue("prev_status"), cur, to)
	if !ok {
		return invalidTransition(why)
	}
	if to == cur {
		return nil
	}
	switch models.RideAlongRequiredActor(to) {
	case "server":
		return invalidTransition("only the server expires a ride-along")
	case "counterparty":
		requester := old.StringValue("requested_by")
		if (requester == "manager" && !sameUUID(old.UUIDValue("rep_id"), &c.P.UserID)) ||
			(requester == "rep" && !isManager) {
			return invalidTransition("only the " + map[string]string{"manager": "rep", "rep": "manager"}[requester] + " may " + map[string]string{models.RideAccepted: "accept", models.RideDeclined: "decline"}[to] + " this ride-along")
		}
	}
	r.Values["prev_status"] = cur
	r.Values["status"] = to
	if to == models.RideCompleted {
		r.Values["completed_at"] = c.Now
	}
	return nil
}

func isParty(c *engine.Context, r *engine.Record) bool {
	return sameUUID(r.UUIDValue("rep_id"), &c.P.UserID) || sameUUID(r.UUIDValue("manager_id"), &c.P.UserID)
}

// createRideAlong lets a manager flag a rep of the team they manage, and a
// rep request their own manager.
func createRideAlong(c *engine.Context, r *engine.Record) error {
	if s, ok := c.Sent["status"].(string); ok && s != models.RideRequested {
		return invalidTransition("a ride-along starts as requested")
	}
	switch c.P.Role {
	case models.RoleManager:
		rep, ok := c.Sent["rep_id"].(uuid.UUID)
		if !ok {
			return &models.Error{Code: engine.CodeMissingRequired, Message: "rep_id is required when a manager flags a ride-along", Fields: []models.FieldError{{Field: "rep_id", Code: engine.CodeMissingRequired, Message: "is required"}}}
		}
		u, err := c.User(rep)
		if err != nil && models.ErrorCode(err) != models.CodeNotFound {
			return err
		}
		if err != nil || u.Role != models.RoleRep || !u.Active || c.P.TeamID == nil || !sameUUID(u.TeamID, c.P.TeamID) {
			return forbidden("rep_id", "a manager may flag only active reps of the team they manage")
		}
		team, err := c.Team(*c.P.TeamID)
		if err != nil {
			return err
		}
		if !sameUUID(team.ManagerID, &c.P.UserID) {
			return forbidden("rep_id", "a manager may flag only reps of a team they manage")
		}
		r.Values["manager_id"] = c.P.UserID
		r.Values["requested_by"] = "manager"
		r.Values["team_id"] = *c.P.TeamID
	case models.RoleRep:
		if rep, ok := c.Sent["rep_id"].(uuid.UUID); ok && rep != c.P.UserID {
			return forbidden("rep_id", "a rep may request a ride-along only for themselves")
		}
		if c.P.TeamID == nil {
			return forbidden("rep_id", "a rep without a team has no manager to ask")
		}
		team, err := c.Team(*c.P.TeamID)
		if err != nil {
			return err
		}
		if team.ManagerID == nil {
			return forbidden("rep_id", "your team has no manager to ask")
		}
		r.Values["rep_id"] = c.P.UserID
		r.Values["manager_id"] = *team.ManagerID
		r.Values["requested_by"] = "rep"
		r.Values["team_id"] = *c.P.TeamID
		c.Sent["rep_id"] = c.P.UserID
	default:
		return forbidden("rep_id", "ride-alongs are between a rep and their manager")
	}
	r.Values["status"] = models.RideRequested
	delete(c.Sent, "status")
	return nil
}

// validateRideAlong checks the bound visit and works out joint
// verification: the manager's check-in within 300 m of the rep's.
func validateRideAlong(c *engine.Context, old, r *engine.Record) error {
	mode := r.StringValue("mode")
	if old != nil && mode != old.StringValue("mode") {
		return forbidden("mode", "mode cannot change")
	}
	var visit *engine.Record
	if id := r.UUIDValue("visit_id"); id != nil {
		if mode == "next_unscheduled" && (old == nil || !sameUUID(old.UUIDValue("visit_id"), id)) {
			if _, sent := c.Sent["visit_id"]; sent {
				return forbidden("visit_id", "the server binds a next_unscheduled ride-along to the rep's next unscheduled visit")
			}
		}
		v, err := c.Get("visits", *id)
		if err != nil {
			return err
		}
		if v == nil || v.Deleted || !sameUUID(v.UUIDValue("rep_id"), r.UUIDValue("rep_id")) {
			return models.FieldInvalid("visit_id", "must name a visit of the ride-along's rep")
		}
		visit = v
	} else if mode == "visit" {
		return &models.Error{Code: engine.CodeMissingRequired, Message: "visit_id is required for a ride-along on a planned visit", Fields: []models.FieldError{{Field: "visit_id", Code: engine.CodeMissingRequired, Message: "is required for mode visit"}}}
	}
	if err := bothOrNeither(r, "manager_check_in_lat", "manager_check_in_lng"); err != nil {
		return err
	}
	if r.StringValue("status") == models.RideCompleted && (old == nil || old.StringValue("status") != models.RideCompleted) {
		if visit == nil || visit.StringValue("status") != "completed" {
			return invalidTransition("a ride-along is completed only once its visit is completed")
		}
	}
	r.Values["joint_verified"] = jointVerified(r, visit)
	return nil
}

func jointVerified(r, visit *engine.Record) bool {
	mlat, mlng := r.FloatValue("manager_check_in_lat"), r.FloatValue("manager_check_in_lng")
	if visit == nil || mlat == nil || mlng == nil {
		return false
	}
	vlat, vlng := visit.FloatValue("check_in_lat"), visit.FloatValue("check_in_lng")
	return vlat != nil && vlng != nil && DistanceM(*mlat, *mlng, *vlat, *vlng) <= models.JointVerifyRadiusM
}

// bindNextUnscheduled binds a rep's pending "next unscheduled call"
// ride-along to the first unscheduled visit that starts after the flag.
// Phones sync in any order: a call that syncs late but started before the
// one a pending ride-along was bound to takes its place.
func bindNextUnscheduled(c *engine.Context, old, v *engine.Record) error {
	if v.Deleted || v.StringValue("kind") != "unscheduled" || old != nil && old.TimeValue("started_at") != nil {
		return nil
	}
	start, rep := v.TimeValue("started_at"), v.UUIDValue("rep_id")
	if start == nil || rep == nil {
		return nil
	}
	// One query per rep per batch: a push of 500 visits must not look up
	// ride-alongs 500 times. Binding one drops the cached list.
	key := "pending-ride-alongs:" + rep.String()
	cached, err := c.Cached(key, func() (any, error) {
		return c.Find("ride_alongs", map[string]any{"rep_id": *rep, "mode": "next_unscheduled", "status": engine.AnyOf{models.RideRequested, models.RideAccepted}})
	})
	if err != nil {
		return err
	}
	ras := cached.([]*engine.Record)
	var pick *engine.Record
	for _, ra := range ras {
		if ra.CreatedAt.After(*start) || (pick != nil && !ra.CreatedAt.Before(pick.CreatedAt)) {
			continue
		}
		if bound := ra.UUIDValue("visit_id"); bound != nil {
			bv, err := c.Get("visits", *bound)
			if err != nil {
				return err
			}
			if *bound == v.ID || (bv != nil && !bv.Deleted && bv.TimeValue("started_at") != nil && !bv.TimeValue("started_at").After(*start)) {
				continue // bound to this call, or to one before it
			}
		}
		pick = ra
	}
	if pick == nil {
		return nil
	}
	c.Forget(key)
	next := pick.Clone()
	next.Values["visit_id"] = v.ID
	next.Values["joint_verified"] = jointVerified(next, v)
	return c.Put("ride_alongs", next)
}

// rideAlongAfterWrite makes a coaching debrief due when a ride-along is
// completed: a draft assessment for the manager, due in 48 hours.
func rideAlongAfterWrite(c *engine.Context, old, r *engine.Record) error {
	if r.Deleted || r.StringValue("status") != models.RideCompleted || (old != nil && old.StringValue("status") == models.RideCompleted) {
		return nil
	}
	rep, mgr := r.UUIDValue("rep_id"), r.UUIDValue("manager_id")
	if rep == nil || mgr == nil {
		return nil
	}
	due := c.Now.Add(models.DebriefDueHours * time.Hour)
	a := &engine.Record{ID: engine.NameID(c.P.OrgID, "assessment:ride_along:"+r.ID.String()), Values: map[string]any{
		"rep_id": *rep, "assessor_id": *mgr, "phase": models.PhaseRideAlong, "ride_along_id": r.ID,
		"status": models.AssessDraft, "due_at": due, "template_version": int64(models.DefaultTemplate().Version),
		"team_id": valueOr(r.UUIDValue("team_id")),
	}}
	_, err := c.PutNew("assessments", a)
	return err
}

func valueOr(id *uuid.UUID) any {
	if id == nil {
		return nil
	}
	return *id
}

// ExpireRideAlongs moves requested ride-alongs older than seven days to
// expired. It runs as a scheduled server job.
func ExpireRideAlongs(c *engine.Context) error {
	ras, err := c.Find("ride_alongs", map[string]any{"status": models.RideRequested})
	if err != nil {
		return err
	}
	cutoff := c.Now.Add(-models.RideAlongExpiryDays * 24 * time.Hour)
	for _, ra := range ras {
		if ra.CreatedAt.After(cutoff) {
			continue
		}
		next := ra.Clone()
		next.Values["prev_status"] = models.RideRequested
		next.Values["status"] = models.RideExpired
		if err := c.Put("ride_alongs", next); err != nil {
			return err
		}
	}
	return nil
}
