package sales

import (
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Codes of domain rejections.
const (
	CodeInvalidTransition = models.CodeInvalidTransition
	CodeLocked            = models.CodeLocked
	CodeLimitReached      = models.CodeLimitReached
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
			{Name: "location_redacted_at", Type: engine.Time, Hidden: true}, // see privacy.go
		},
		Scope:    repScope,
		Prepare:  prepareRideAlong,
		Validate: validateRideAlong,
	}
}

func forbidden(field, msg string) error {
	return models.FieldErr(engine.CodeForbidden, msg, field, msg)
}

func invalidTransition(msg string) error {
	return models.FieldErr(CodeInvalidTransition, msg, fStatus, msg)
}

// prepareRideAlong authorises the caller and applies status changes
// through the state machine rather than last-writer-wins: the status a
// phone sends is a transition it asks for, judged against the status the
// server has when it arrives.
func prepareRideAlong(c *engine.Context, old, r *engine.Record) error {
	if r == nil { // delete: a participant withdraws it while it is requested
		if !isParty(c, old) || old.StringValue(fStatus) != models.RideRequested {
			return forbidden(fStatus, "a ride-along can only be withdrawn by a participant while it is requested; cancel it instead")
		}
		return nil
	}
	if old == nil {
		return createRideAlong(c, r)
	}
	if !isParty(c, old) {
		return forbidden(fRepID, "only the rep and their manager may change a ride-along")
	}
	if rep, ok := c.Sent[fRepID].(uuid.UUID); ok && !sameUUID(old.UUIDValue(fRepID), &rep) {
		return models.FieldErr(engine.CodeServerOwned, "rep_id cannot change", fRepID, "cannot change")
	}
	isManager := sameUUID(old.UUIDValue(fManagerID), &c.P.UserID)
	for _, f := range []string{fScheduledFor, fManagerCheckInLat, fManagerCheckInLng, fVisitID} {
		if _, sent := c.Sent[f]; sent && !isManager {
			return forbidden(f, f+" is set by the manager")
		}
	}
	to, sent := c.Sent[fStatus].(string)
	if !sent {
		return nil
	}
	delete(c.Sent, fStatus) // judged here, not merged by clock
	cur := old.StringValue(fStatus)
	ok, _, why := models.RideAlongTransition(old.StringValue(fPrevStatus), cur, to)
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
		requester := old.StringValue(fRequestedBy)
		if (requester == "manager" && !sameUUID(old.UUIDValue(fRepID), &c.P.UserID)) ||
			(requester == "rep" && !isManager) {
			return invalidTransition("only the " + map[string]string{"manager": "rep", "rep": "manager"}[requester] + " may " + map[string]string{models.RideAccepted: "accept", models.RideDeclined: "decline"}[to] + " this ride-along")
		}
	}
	r.Values[fPrevStatus] = cur
	r.Values[fStatus] = to
	if to == models.RideCompleted {
		r.Values[fCompletedAt] = c.Now
	}
	return nil
}

func isParty(c *engine.Context, r *engine.Record) bool {
	return sameUUID(r.UUIDValue(fRepID), &c.P.UserID) || sameUUID(r.UUIDValue(fManagerID), &c.P.UserID)
}

// createRideAlong lets a manager flag a rep of the team they manage, and a
// rep request their own manager.
func createRideAlong(c *engine.Context, r *engine.Record) error {
	if s, ok := c.Sent[fStatus].(string); ok && s != models.RideRequested {
		return invalidTransition("a ride-along starts as requested")
	}
	switch c.P.Role {
	case models.RoleManager:
		rep, ok := c.Sent[fRepID].(uuid.UUID)
		if !ok {
			return models.FieldErr(engine.CodeMissingRequired, "rep_id is required when a manager flags a ride-along", fRepID, "is required")
		}
		u, err := c.User(rep)
		if err != nil && models.ErrorCode(err) != models.CodeNotFound {
			return err
		}
		if err != nil || u.Role != models.RoleRep || !u.Active || c.P.TeamID == nil || !sameUUID(u.TeamID, c.P.TeamID) {
			return forbidden(fRepID, "a manager may flag only active reps of the team they manage")
		}
		team, err := c.Team(*c.P.TeamID)
		if err != nil {
			return err
		}
		if !sameUUID(team.ManagerID, &c.P.UserID) {
			return forbidden(fRepID, "a manager may flag only reps of a team they manage")
		}
		r.Values[fManagerID] = c.P.UserID
		r.Values[fRequestedBy] = "manager"
		r.Values[fTeamID] = *c.P.TeamID
	case models.RoleRep:
		if rep, ok := c.Sent[fRepID].(uuid.UUID); ok && rep != c.P.UserID {
			return forbidden(fRepID, "a rep may request a ride-along only for themselves")
		}
		if err := managerFieldsUnset(c); err != nil {
			return err
		}
		if c.P.TeamID == nil {
			return forbidden(fRepID, "a rep without a team has no manager to ask")
		}
		team, err := c.Team(*c.P.TeamID)
		if err != nil {
			return err
		}
		if team.ManagerID == nil {
			return forbidden(fRepID, "your team has no manager to ask")
		}
		r.Values[fRepID] = c.P.UserID
		r.Values[fManagerID] = *team.ManagerID
		r.Values[fRequestedBy] = "rep"
		r.Values[fTeamID] = *c.P.TeamID
		c.Sent[fRepID] = c.P.UserID
	default:
		return forbidden(fRepID, "ride-alongs are between a rep and their manager")
	}
	r.Values[fStatus] = models.RideRequested
	delete(c.Sent, fStatus)
	return nil
}

// managerFieldsUnset refuses a rep's create that carries the manager's
// check-in: it is the manager's evidence of being there, and a rep who
// sent their own coordinates would have the ride-along jointly verified.
// A null (WatermelonDB sends every column) is no value.
func managerFieldsUnset(c *engine.Context) error {
	for _, f := range []string{fManagerCheckInLat, fManagerCheckInLng} {
		if v, sent := c.Sent[f]; sent && v != nil {
			return forbidden(f, f+" is set by the manager")
		}
	}
	return nil
}

// validateRideAlong checks the bound visit and works out joint
// verification: the manager's check-in within 300 m of the rep's.
func validateRideAlong(c *engine.Context, old, r *engine.Record) error {
	mode := r.StringValue(fMode)
	if old != nil && mode != old.StringValue(fMode) {
		return forbidden(fMode, "mode cannot change")
	}
	var visit *engine.Record
	if id := r.UUIDValue(fVisitID); id != nil {
		if mode == "next_unscheduled" && (old == nil || !sameUUID(old.UUIDValue(fVisitID), id)) {
			if _, sent := c.Sent[fVisitID]; sent {
				return forbidden(fVisitID, "the server binds a next_unscheduled ride-along to the rep's next unscheduled visit")
			}
		}
		v, err := c.Get(entVisits, *id)
		if err != nil {
			return err
		}
		if v == nil || v.Deleted || !sameUUID(v.UUIDValue(fRepID), r.UUIDValue(fRepID)) {
			return models.FieldInvalid(fVisitID, "must name a visit of the ride-along's rep")
		}
		visit = v
	} else if mode == "visit" {
		return models.FieldErr(engine.CodeMissingRequired, "visit_id is required for a ride-along on a planned visit", fVisitID, "is required for mode visit")
	}
	if err := checkPair(c, r, fManagerCheckInLat, fManagerCheckInLng); err != nil {
		return err
	}
	if r.StringValue(fStatus) == models.RideCompleted && (old == nil || old.StringValue(fStatus) != models.RideCompleted) {
		if visit == nil || visit.StringValue(fStatus) != "completed" {
			return invalidTransition("a ride-along is completed only once its visit is completed")
		}
	}
	unmarkIfRelocated(c, old, r, fManagerCheckInLat, fManagerCheckInLng)
	if old != nil && (redacted(r) || redacted(visit)) {
		// Coarsened positions (privacy.go) cannot be judged again: the
		// verdict made on the precise ones stands.
		r.Values[fJointVerified] = old.Values[fJointVerified]
		return nil
	}
	r.Values[fJointVerified] = jointVerified(r, visit)
	return nil
}

func jointVerified(r, visit *engine.Record) bool {
	mlat, mlng := r.FloatValue(fManagerCheckInLat), r.FloatValue(fManagerCheckInLng)
	if visit == nil || mlat == nil || mlng == nil {
		return false
	}
	vlat, vlng := visit.FloatValue(fCheckInLat), visit.FloatValue(fCheckInLng)
	return vlat != nil && vlng != nil && DistanceM(*mlat, *mlng, *vlat, *vlng) <= models.JointVerifyRadiusM
}

// bindNextUnscheduled binds a rep's pending "next unscheduled call"
// ride-along to the first unscheduled visit that starts after the flag.
// Phones sync in any order: a call that syncs late but started before the
// one a pending ride-along was bound to takes its place.
func bindNextUnscheduled(c *engine.Context, old, v *engine.Record) error {
	if v.Deleted || v.StringValue(fKind) != "unscheduled" || old != nil && old.TimeValue(fStartedAt) != nil {
		return nil
	}
	start, rep := v.TimeValue(fStartedAt), v.UUIDValue(fRepID)
	if start == nil || rep == nil {
		return nil
	}
	// One query per rep per batch: a push of 500 visits must not look up
	// ride-alongs 500 times. Binding one drops the cached list.
	key := "pending-ride-alongs:" + rep.String()
	cached, err := c.Cached(key, func() (any, error) {
		return c.Find(entRideAlongs, map[string]any{fRepID: *rep, fMode: "next_unscheduled", fStatus: engine.AnyOf{models.RideRequested, models.RideAccepted}})
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
		if bound := ra.UUIDValue(fVisitID); bound != nil {
			bv, err := c.Get(entVisits, *bound)
			if err != nil {
				return err
			}
			if *bound == v.ID || (bv != nil && !bv.Deleted && bv.TimeValue(fStartedAt) != nil && !bv.TimeValue(fStartedAt).After(*start)) {
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
	next.Values[fVisitID] = v.ID
	next.Values[fJointVerified] = jointVerified(next, v)
	return c.Put(entRideAlongs, next)
}

// rideAlongAfterWrite makes a coaching debrief due when a ride-along is
// completed: a draft assessment for the manager, due in 48 hours.
func rideAlongAfterWrite(c *engine.Context, old, r *engine.Record) error {
	if r.Deleted || r.StringValue(fStatus) != models.RideCompleted || (old != nil && old.StringValue(fStatus) == models.RideCompleted) {
		return nil
	}
	rep, mgr := r.UUIDValue(fRepID), r.UUIDValue(fManagerID)
	if rep == nil || mgr == nil {
		return nil
	}
	due := c.Now.Add(models.DebriefDueHours * time.Hour)
	a := &engine.Record{ID: engine.NameID(c.P.OrgID, "assessment:ride_along:"+r.ID.String()), Values: map[string]any{
		fRepID: *rep, fAssessorID: *mgr, fPhase: models.PhaseRideAlong, fRideAlongID: r.ID,
		fStatus: models.AssessDraft, fDueAt: due, fTemplateVersion: int64(models.DefaultTemplate().Version),
		fTeamID: valueOr(r.UUIDValue(fTeamID)),
	}}
	_, err := c.PutNew(entAssessments, a)
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
	ras, err := c.Find(entRideAlongs, map[string]any{fStatus: models.RideRequested})
	if err != nil {
		return err
	}
	cutoff := c.Now.Add(-models.RideAlongExpiryDays * 24 * time.Hour)
	for _, ra := range ras {
		if ra.CreatedAt.After(cutoff) {
			continue
		}
		next := ra.Clone()
		next.Values[fPrevStatus] = models.RideRequested
		next.Values[fStatus] = models.RideExpired
		if err := c.Put(entRideAlongs, next); err != nil {
			return err
		}
	}
	return nil
}
