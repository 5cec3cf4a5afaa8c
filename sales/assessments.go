package sales

import (
	"encoding/json"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Assessments are a manager's coaching assessment of a rep: at a contest's
// start and end, and after a ride-along. Behaviours are scored done right
// or done wrong against the organisation's template.
func Assessments() *engine.Entity {
	return &engine.Entity{
		Name: "assessments",
		Fields: []engine.Field{
			{Name: "rep_id", Type: engine.UUID, Required: true},
			{Name: "assessor_id", Type: engine.UUID, Access: engine.ServerOwned},
			{Name: "phase", Type: engine.Enum, Enum: []string{models.PhaseContestStart, models.PhaseContestEnd, models.PhaseRideAlong}, Required: true},
			{Name: "contest_id", Type: engine.UUID, Ref: "contests"},
			{Name: "ride_along_id", Type: engine.UUID, Ref: "ride_alongs"},
			{Name: "behaviours", Type: engine.JSON, MaxLen: 32 << 10},
			{Name: "status", Type: engine.Enum, Enum: []string{models.AssessDraft, models.AssessShared, models.AssessAcknowledged}, Default: models.AssessDraft, Required: true},
			{Name: "rep_comment", Type: engine.Text},
			{Name: "due_at", Type: engine.Time, Access: engine.ServerOwned},
			{Name: "template_version", Type: engine.Int, Min: 1, Max: 1 << 30, Access: engine.ServerOwned},
			{Name: "team_id", Type: engine.UUID, Access: engine.ServerOwned},
		},
		Scope:    assessmentScope,
		Prepare:  prepareAssessment,
		Validate: validateAssessment,
	}
}

// assessmentScope keeps a draft between the assessor, the team's manager
// and admins; the rep sees it once it is shared.
func assessmentScope(r *engine.Record) engine.Scope {
	if r.StringValue(fStatus) == models.AssessDraft {
		return engine.Scope{TeamID: r.UUIDValue(fTeamID), UserID: r.UUIDValue(fAssessorID), Visibility: engine.VisOwner}
	}
	return repScope(r)
}

var assessmentNext = map[string]string{models.AssessDraft: models.AssessShared, models.AssessShared: models.AssessAcknowledged}

// prepareAssessment: only the rep's manager assesses; the rep may only
// acknowledge a shared assessment and comment on it; an acknowledged
// assessment is locked.
func prepareAssessment(c *engine.Context, old, r *engine.Record) error {
	if old != nil && old.StringValue(fStatus) == models.AssessAcknowledged {
		return models.Errorf(CodeLocked, "an acknowledged assessment is locked")
	}
	if r == nil {
		if old.StringValue(fStatus) != models.AssessDraft || !sameUUID(old.UUIDValue(fAssessorID), &c.P.UserID) {
			return forbidden(fStatus, "only the assessor may delete an assessment, and only a draft")
		}
		return nil
	}
	if old == nil {
		rep, _ := c.Sent[fRepID].(uuid.UUID)
		if err := checkAssessor(c, rep); err != nil {
			return err
		}
		r.Values[fAssessorID] = c.P.UserID
		u, err := c.User(rep)
		if err != nil {
			return err
		}
		r.Values[fTeamID] = valueOr(u.TeamID)
		r.Values[fTemplateVersion] = int64(models.DefaultTemplate().Version)
	}
	isRep := old != nil && sameUUID(old.UUIDValue(fRepID), &c.P.UserID)
	if isRep {
		for f := range c.Sent {
			if f != fStatus && f != fRepComment {
				return forbidden(f, "a rep may only acknowledge an assessment and comment on it")
			}
		}
	} else if old != nil {
		if err := checkAssessor(c, *old.UUIDValue(fRepID)); err != nil {
			return err
		}
		if _, sent := c.Sent[fRepComment]; sent {
			return forbidden(fRepComment, "only the rep comments on their assessment")
		}
		if rep, ok := c.Sent[fRepID].(uuid.UUID); ok && !sameUUID(old.UUIDValue(fRepID), &rep) {
			return forbidden(fRepID, "rep_id cannot change")
		}
	}
	to, sent := c.Sent[fStatus].(string)
	if !sent {
		return nil
	}
	delete(c.Sent, fStatus)
	cur := models.AssessDraft
	if old != nil {
		cur = old.StringValue(fStatus)
	}
	if to == cur {
		return nil
	}
	switch {
	case assessmentNext[cur] != to:
		return invalidTransition("an assessment goes draft → shared → acknowledged; it is " + cur)
	case to == models.AssessShared && isRep, to == models.AssessAcknowledged && !isRep:
		return invalidTransition("the manager shares an assessment and the rep acknowledges it")
	}
	r.Values[fStatus] = to
	return nil
}

// checkAssessor requires the caller to be the manager of rep's team.
func checkAssessor(c *engine.Context, rep uuid.UUID) error {
	deny := forbidden(fRepID, "only the rep's manager assesses them")
	if c.P.Role != models.RoleManager || c.P.TeamID == nil {
		return deny
	}
	u, err := c.User(rep)
	if err != nil && models.ErrorCode(err) != models.CodeNotFound {
		return err
	}
	if err != nil || !sameUUID(u.TeamID, c.P.TeamID) || u.ID == c.P.UserID {
		return deny
	}
	team, err := c.Team(*c.P.TeamID)
	if err != nil {
		return err
	}
	if !sameUUID(team.ManagerID, &c.P.UserID) {
		return deny
	}
	return nil
}

func validateAssessment(c *engine.Context, old, r *engine.Record) error {
	bs, err := models.ParseBehaviours(r.StringValue(fBehaviours), models.DefaultTemplate())
	if err != nil {
		return err
	}
	if bs != nil {
		// Stored in canonical form: keys as the template spells them.
		b, _ := json.Marshal(bs)
		r.Values[fBehaviours] = string(b)
	}
	if old != nil && engine.Equal(old.Values[fRideAlongID], r.Values[fRideAlongID]) && engine.Equal(old.Values[fContestID], r.Values[fContestID]) {
		return nil
	}
	rep := r.UUIDValue(fRepID)
	switch r.StringValue(fPhase) {
	case models.PhaseRideAlong:
		id := r.UUIDValue(fRideAlongID)
		if id == nil {
			return models.FieldErr(engine.CodeMissingRequired, "ride_along_id is required for a ride-along assessment", fRideAlongID, "is required for phase ride_along")
		}
		ra, err := c.Get(entRideAlongs, *id)
		if err != nil {
			return err
		}
		if ra == nil || ra.Deleted || !sameUUID(ra.UUIDValue(fRepID), rep) || ra.StringValue(fStatus) != models.RideCompleted {
			return models.FieldInvalid(fRideAlongID, "must name a completed ride-along with this rep")
		}
	default:
		id := r.UUIDValue(fContestID)
		if id == nil {
			return models.FieldErr(engine.CodeMissingRequired, "contest_id is required for a contest assessment", fContestID, "is required for a contest phase")
		}
		ct, err := c.Get(entContests, *id)
		if err != nil {
			return err
		}
		if ct == nil || ct.Deleted || !teamOrOrgScope(ct).Visible(c.P) || !(ct.UUIDValue(fTeamID) == nil || sameUUID(ct.UUIDValue(fTeamID), r.UUIDValue(fTeamID))) {
			return models.FieldInvalid(fContestID, "must name a contest the rep takes part in")
		}
	}
	return nil
}
