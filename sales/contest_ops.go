package sales

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// ContestInput is a contest as an admin or manager writes it over HTTP.
// Nil fields of an update are left alone.
type ContestInput struct {
	Name *string
	// StartsAt and EndsAt may be bare dates, read in the contest's time
	// zone; a date as the end counts whole.
	StartsAt   *models.TimeOrDate
	EndsAt     *models.TimeOrDate
	TimeZone   *string
	TeamID     *uuid.UUID
	Rules      *models.ScoringRules
	Targets    map[uuid.UUID]float64
	HasTargets bool
	GraceHours *int
}

func invalidField(field, format string, args ...any) error {
	return models.FieldInvalid(field, format, args...)
}

// canManageContest: admins manage every contest, managers those of the team
// they manage.
func canManageContest(c *engine.Context, team *uuid.UUID) error {
	switch c.P.Role {
	case models.RoleAdmin:
		return nil
	case models.RoleManager:
		if team != nil && c.P.TeamID != nil && *team == *c.P.TeamID {
			t, err := c.Team(*team)
			if err != nil {
				return err
			}
			if sameUUID(t.ManagerID, &c.P.UserID) {
				return nil
			}
		}
		return models.Errorf(models.CodeForbidden, "a manager may run contests only for the team they manage")
	}
	return models.Errorf(models.CodeForbidden, "only admins and managers run contests")
}

// CreateContest creates a contest as a draft; one whose start has passed
// starts at once.
func CreateContest(c *engine.Context, in ContestInput) (*engine.Record, error) {
	if in.TeamID == nil && c.P.Role == models.RoleManager {
		// A manager runs contests only for the team they manage: leaving
		// the team out means that one.
		in.TeamID = c.P.TeamID
	}
	if err := canManageContest(c, in.TeamID); err != nil {
		return nil, err
	}
	if in.Name == nil || strings.TrimSpace(*in.Name) == "" {
		return nil, invalidField(fName, "is required")
	}
	if in.StartsAt == nil {
		return nil, invalidField(fStartsAt, "is required")
	}
	if in.EndsAt == nil {
		return nil, invalidField(fEndsAt, "is required")
	}
	if in.TeamID != nil {
		if _, err := c.Team(*in.TeamID); err != nil {
			if models.ErrorCode(err) == models.CodeNotFound {
				return nil, invalidField(fTeamID, "must name a team of this organisation")
			}
			return nil, err
		}
	}
	r := &engine.Record{ID: uuid.New(), Values: map[string]any{
		fStatus: models.ContestStatusDraft, fRulesVersion: int64(1), fOwnerID: c.P.UserID,
		fGraceHours: int64(models.DefaultGraceHours), fTimeZone: "UTC",
	}}
	if in.TimeZone == nil {
		tz := "UTC"
		in.TimeZone = &tz
	}
	if in.Rules == nil {
		def := models.DefaultScoringRules()
		in.Rules = &def
	}
	if err := applyContestInput(c, r, in); err != nil {
		return nil, err
	}
	if err := c.Put(entContests, r); err != nil {
		return nil, err
	}
	after := contestAudit(r)
	after[fName], after[fTeamID] = r.Values[fName], r.Values[fTeamID]
	Audit(c, models.AuditEntry{Action: models.ActionContestCreate, ObjectType: models.AuditContest, ObjectID: r.ID,
		After: models.AuditJSON(after)})
	return r, AdvanceContest(c, r.ID)
}

func applyContestInput(c *engine.Context, r *engine.Record, in ContestInput) error {
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		if err := models.ValidateName(fName, name); err != nil {
			return err
		}
		r.Values[fName] = name
	}
	if in.TimeZone != nil {
		if err := models.ValidateTimeZone(fTimeZone, *in.TimeZone); err != nil {
			return err
		}
		r.Values[fTimeZone] = *in.TimeZone
	}
	if in.StartsAt != nil || in.EndsAt != nil {
		loc, err := time.LoadLocation(r.StringValue(fTimeZone))
		if err != nil {
			loc = time.UTC // stored zones were validated; this is belt and braces
		}
		if in.StartsAt != nil {
			r.Values[fStartsAt] = in.StartsAt.Start(loc)
		}
		if in.EndsAt != nil {
			r.Values[fEndsAt] = in.EndsAt.End(loc)
		}
	}
	if in.TeamID != nil {
		r.Values[fTeamID] = *in.TeamID
	}
	s, e := r.TimeValue(fStartsAt), r.TimeValue(fEndsAt)
	if s != nil && e != nil {
		if !e.After(*s) {
			return invalidField(fEndsAt, "must be after starts_at")
		}
		if e.Sub(*s) > 366*24*time.Hour {
			return invalidField(fEndsAt, "a contest lasts at most a year")
		}
	}
	if in.GraceHours != nil {
		if *in.GraceHours < 0 || *in.GraceHours > 24*30 {
			return invalidField(fGraceHours, "must be between 0 and 720")
		}
		r.Values[fGraceHours] = int64(*in.GraceHours)
	}
	if in.Rules != nil {
		if err := in.Rules.Validate(fRules); err != nil {
			return err
		}
		b, _ := json.Marshal(in.Rules)
		r.Values[fRules] = string(b)
	}
	if in.HasTargets {
		for rep, t := range in.Targets {
			if err := targetRep(c, r.UUIDValue(fTeamID), rep); err != nil {
				return err
			}
			if !(t >= models.MinTarget && t <= models.MaxTarget) {
				return invalidField(fTargets, "target of %s must be between %g and %g points", rep, float64(models.MinTarget), float64(models.MaxTarget))
			}
		}
		m := make(map[string]float64, len(in.Targets))
		for k, v := range in.Targets {
			m[k.String()] = v
		}
		b, _ := json.Marshal(m)
		r.Values[fTargets] = string(b)
	}
	return nil
}

// targetRep checks that a target names a rep the contest is for: of its
// team, or of the organisation for a contest without one. Every refusal
// reads the same, so that a manager learns nothing about ids outside the
// team (not even that one names a rep elsewhere).
func targetRep(c *engine.Context, team *uuid.UUID, rep uuid.UUID) error {
	u, err := c.User(rep)
	if err != nil && models.ErrorCode(err) != models.CodeNotFound {
		return err
	}
	if err != nil || u.Role != models.RoleRep || (team != nil && !sameUUID(u.TeamID, team)) {
		if team != nil {
			return invalidField(fTargets, "%s is not a rep of the contest's team", rep)
		}
		return invalidField(fTargets, "%s is not a rep of this organisation", rep)
	}
	return nil
}

// UpdateContest changes a contest. Rules freeze when it starts: a later
// change of rules or targets makes a new rules version, is audited, and
// recomputes the contest. A finalized contest never changes.
func UpdateContest(c *engine.Context, id uuid.UUID, in ContestInput) (*engine.Record, error) {
	cur, err := c.Get(entContests, id)
	if err != nil {
		return nil, err
	}
	if cur == nil || cur.Deleted || !teamOrOrgScope(cur).Visible(c.P) {
		return nil, models.ErrNotFound
	}
	if err := canManageContest(c, cur.UUIDValue(fTeamID)); err != nil {
		return nil, err
	}
	status := cur.StringValue(fStatus)
	if status == models.ContestStatusFinalized {
		return nil, models.Errorf(models.CodeConflict, "a finalized contest does not change")
	}
	if in.TeamID != nil && !sameUUID(cur.UUIDValue(fTeamID), in.TeamID) {
		return nil, invalidField(fTeamID, "a contest's participants cannot change")
	}
	started := status != models.ContestStatusDraft
	if started && (in.StartsAt != nil || in.TimeZone != nil) {
		return nil, invalidField(fStartsAt, "a started contest keeps its start and time zone")
	}
	next := cur.Clone()
	if err := applyContestInput(c, next, in); err != nil {
		return nil, err
	}
	rulesChanged := next.StringValue(fRules) != cur.StringValue(fRules) || next.StringValue(fTargets) != cur.StringValue(fTargets)
	if started && rulesChanged {
		v, _ := cur.Values[fRulesVersion].(int64)
		next.Values[fRulesVersion] = v + 1
		c.Journal(models.RuleVersion{ContestID: id, Version: v + 1, Rules: next.StringValue(fRules),
			Targets: next.StringValue(fTargets), ChangedBy: c.P.UserID, ChangedAt: c.Now})
	}
	if err := c.Put(entContests, next); err != nil {
		return nil, err
	}
	if rulesChanged {
		Audit(c, models.AuditEntry{Action: models.ActionContestRules, ObjectType: models.AuditContest, ObjectID: id,
			Before: models.AuditJSON(contestAudit(cur)), After: models.AuditJSON(contestAudit(next))})
	}
	c.Forget("scoring-contests")
	if started && (rulesChanged || !engine.Equal(cur.Values[fEndsAt], next.Values[fEndsAt])) {
		if err := RecomputeContest(c, next); err != nil {
			return nil, err
		}
	}
	return next, AdvanceContest(c, id)
}

// AdvanceContest moves a contest along draft → active → ended → finalized
// as its times pass. Starting creates every participant's standing and
// scores what already happened in the window; finalizing freezes it.
func AdvanceContest(c *engine.Context, id uuid.UUID) error {
	for {
		cur, err := c.Get(entContests, id)
		if err != nil || cur == nil {
			return err
		}
		cv, err := viewContest(cur)
		if err != nil {
			return err
		}
		var to string
		switch {
		case cv.status == models.ContestStatusDraft && !c.Now.Before(cv.start):
			to = models.ContestStatusActive
		case cv.status == models.ContestStatusActive && !c.Now.Before(cv.end):
			to = models.ContestStatusEnded
		case cv.status == models.ContestStatusEnded && !c.Now.Before(cv.end.Add(cv.grace)):
			to = models.ContestStatusFinalized
		default:
			return nil
		}
		next := cur.Clone()
		next.Values[fStatus] = to
		if err := c.Put(entContests, next); err != nil {
			return err
		}
		c.Forget("scoring-contests")
		if to == models.ContestStatusActive {
			if err := RecomputeContest(c, next); err != nil {
				return err
			}
		}
		if to == models.ContestStatusActive || to == models.ContestStatusEnded {
			if err := assessmentsDue(c, cv, to); err != nil {
				return err
			}
		}
		ncv, err := viewContest(next)
		if err != nil {
			return err
		}
		if err := notifyContestStatus(c, ncv, to); err != nil {
			return err
		}
	}
}

// assessmentsDue makes a coaching assessment due for every participant at
// a contest's start and end, assigned to their team's manager.
func assessmentsDue(c *engine.Context, cv *contestView, status string) error {
	phase := models.PhaseContestStart
	if status == models.ContestStatusEnded {
		phase = models.PhaseContestEnd
	}
	users, err := c.Users(cv.team)
	if err != nil {
		return err
	}
	for _, u := range users {
		if u.Role != models.RoleRep || u.TeamID == nil {
			continue
		}
		team, err := c.Team(*u.TeamID)
		if err != nil {
			return err
		}
		if team.ManagerID == nil {
			continue
		}
		a := &engine.Record{ID: engine.NameID(c.P.OrgID, fmt.Sprintf("assessment:%s:%s:%s", phase, cv.id, u.ID)), Values: map[string]any{
			fRepID: u.ID, fAssessorID: *team.ManagerID, fPhase: phase, fContestID: cv.id,
			fStatus: models.AssessDraft, fDueAt: c.Now.Add(7 * 24 * time.Hour),
			fTemplateVersion: int64(models.DefaultTemplate().Version), fTeamID: *u.TeamID,
		}}
		created, err := c.PutNew(entAssessments, a)
		if err != nil {
			return err
		}
		if created {
			n := models.AssessmentDueNotification(cv.id, cv.rec.StringValue(fName), u.ID, u.Name, phase)
			if err := Notify(c, n.To(*team.ManagerID)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Tick runs the organisation's scheduled rules: contests move along their
// lifecycle and stale ride-along requests expire. It is idempotent.
func Tick(c *engine.Context) error {
	for _, st := range []string{models.ContestStatusDraft, models.ContestStatusActive, models.ContestStatusEnded} {
		cs, err := c.Find(entContests, map[string]any{fStatus: st})
		if err != nil {
			return err
		}
		for _, r := range cs {
			if err := AdvanceContest(c, r.ID); err != nil {
				return err
			}
			if st == models.ContestStatusActive {
				cur, err := c.Get(entContests, r.ID)
				if err != nil {
					return err
				}
				cv, err := viewContest(cur)
				if err != nil {
					return err
				}
				if err := notifyEnding24h(c, cv); err != nil {
					return err
				}
			}
		}
	}
	return ExpireRideAlongs(c)
}
