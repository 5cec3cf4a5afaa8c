package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// contestRequest is the body of POST and PATCH /v1/contests. Absent fields
// of a PATCH are left alone.
type contestRequest struct {
	Name       *string              `json:"name"`
	StartsAt   *string              `json:"starts_at"`
	EndsAt     *string              `json:"ends_at"`
	TimeZone   *string              `json:"time_zone"`
	TeamID     *string              `json:"team_id"`
	Rules      *models.ScoringRules `json:"rules"`
	Targets    *map[string]float64  `json:"targets"`
	GraceHours *int                 `json:"grace_hours"`
}

func (req contestRequest) input() (sales.ContestInput, error) {
	in := sales.ContestInput{Name: req.Name, TimeZone: req.TimeZone, Rules: req.Rules, GraceHours: req.GraceHours}
	for _, t := range []struct {
		field string
		raw   *string
		dst   **models.TimeOrDate
	}{{"starts_at", req.StartsAt, &in.StartsAt}, {"ends_at", req.EndsAt, &in.EndsAt}} {
		if t.raw == nil {
			continue
		}
		v, err := models.ParseTimeOrDate(t.field, *t.raw)
		if err != nil {
			return in, err
		}
		*t.dst = &v
	}
	if req.TeamID != nil {
		id, err := parseUUID("team_id", *req.TeamID)
		if err != nil {
			return in, err
		}
		in.TeamID = &id
	}
	if req.Targets != nil {
		in.HasTargets, in.Targets = true, map[uuid.UUID]float64{}
		for k, v := range *req.Targets {
			id, err := parseUUID("targets", k)
			if err != nil {
				return in, models.FieldInvalid("targets", "key %q is not a rep id", k)
			}
			in.Targets[id] = v
		}
	}
	return in, nil
}

// writeRecords answers with records of one entity under key, each encoded
// as pulls encode it.
func writeRecords(c echo.Context, status int, e *engine.Entity, key string, recs []*engine.Record, next string) error {
	b := []byte(`{"` + key + `":[`)
	for i, r := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.MarshalRecord(b, r)
	}
	b = append(b, `],"next_cursor":`...)
	b = engine.AppendString(b, next)
	b = append(b, '}')
	return c.Blob(status, echo.MIMEApplicationJSON, b)
}

func (s *Server) listContests(c echo.Context) error {
	p := principal(c)
	recs, err := s.sync.Find(c.Request().Context(), p, "contests", nil)
	if err != nil {
		return err
	}
	// Latest start first.
	page, next, err := paginate(c, recs, func(r *engine.Record) string {
		return keyOf(descTime(*r.TimeValue("starts_at")), r.ID.String())
	})
	if err != nil {
		return err
	}
	return writeRecords(c, http.StatusOK, s.sync.Entity("contests"), "contests", page, next)
}

// contest finds a contest the caller may see; others answer 404.
func (s *Server) contest(c echo.Context) (*engine.Record, error) {
	id, err := parseUUID("id", c.Param("id"))
	if err != nil {
		return nil, err
	}
	return s.sync.Get(c.Request().Context(), principal(c), "contests", id)
}

func (s *Server) getContest(c echo.Context) error {
	r, err := s.contest(c)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.sync.Entity("contests").MarshalRecord(nil, r))
}

func (s *Server) createContest(c echo.Context) error {
	var req contestRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in, err := req.input()
	if err != nil {
		return err
	}
	var id uuid.UUID
	err = s.sync.Server(c.Request().Context(), principal(c), func(sc *engine.Context) error {
		r, err := sales.CreateContest(sc, in)
		if r != nil {
			id = r.ID
		}
		return err
	})
	if err != nil {
		return err
	}
	return s.answerContest(c, http.StatusCreated, id)
}

func (s *Server) patchContest(c echo.Context) error {
	id, err := parseUUID("id", c.Param("id"))
	if err != nil {
		return err
	}
	var req contestRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	in, err := req.input()
	if err != nil {
		return err
	}
	err = s.sync.Server(c.Request().Context(), principal(c), func(sc *engine.Context) error {
		_, err := sales.UpdateContest(sc, id, in)
		return err
	})
	if err != nil {
		return err
	}
	return s.answerContest(c, http.StatusOK, id)
}

// answerContest answers with a contest as committed (its version is set at
// commit).
func (s *Server) answerContest(c echo.Context, status int, id uuid.UUID) error {
	r, err := s.sync.Get(c.Request().Context(), principal(c), "contests", id)
	if err != nil {
		return err
	}
	return c.Blob(status, echo.MIMEApplicationJSON, s.sync.Entity("contests").MarshalRecord(nil, r))
}

// contestStandings lists a contest's standings by rank.
func (s *Server) contestStandings(c echo.Context) error {
	r, err := s.contest(c)
	if err != nil {
		return err
	}
	recs, err := s.sync.Find(c.Request().Context(), principal(c), "standings", map[string]any{"contest_id": r.ID})
	if err != nil {
		return err
	}
	page, next, err := paginate(c, recs, func(r *engine.Record) string {
		rank, _ := r.Values["rank"].(int64)
		return keyOf(ascInt(rank), r.ID.String())
	})
	if err != nil {
		return err
	}
	return writeRecords(c, http.StatusOK, s.sync.Entity("standings"), "standings", page, next)
}

// contestScoreEntries explains every point: the ledger of one rep (a rep
// sees their own; a manager their team's; an admin anyone's).
func (s *Server) contestScoreEntries(c echo.Context) error {
	r, err := s.contest(c)
	if err != nil {
		return err
	}
	p := principal(c)
	rep := p.UserID
	if raw := c.QueryParam("rep_id"); raw != "" {
		if rep, err = parseUUID("rep_id", raw); err != nil {
			return err
		}
	}
	recs, err := s.sync.Find(c.Request().Context(), p, "score_entries", map[string]any{"contest_id": r.ID, "rep_id": rep})
	if err != nil {
		return err
	}
	// A rep out of the caller's reach looks like a rep with no points,
	// never like a forbidden one: Find returns only what p may see.
	page, next, err := paginate(c, recs, func(r *engine.Record) string {
		return keyOf(ascTime(r.CreatedAt), ascInt(r.Version), r.ID.String())
	})
	if err != nil {
		return err
	}
	return writeRecords(c, http.StatusOK, s.sync.Entity("score_entries"), "entries", page, next)
}

type productivityDTO struct {
	RepID            uuid.UUID        `json:"rep_id"`
	TeamID           *uuid.UUID       `json:"team_id"`
	Visits           int64            `json:"visits"`
	UnscheduledCalls int64            `json:"unscheduled_calls"`
	VerifiedCalls    int64            `json:"verified_calls"`
	VerifiedCallRate float64          `json:"verified_call_rate"`
	Orders           int64            `json:"orders"`
	OutcomeValue     json.Number      `json:"outcome_value"`
	Activities       map[string]int64 `json:"activities"`
	ActivityCost     json.Number      `json:"activity_cost"`
	Productivity     float64          `json:"productivity"`
}

type productivityResponse struct {
	From time.Time         `json:"from"`
	To   time.Time         `json:"to"`
	Reps []productivityDTO `json:"reps"`
}

func money(cents int64) json.Number {
	return json.Number(strconv.FormatFloat(float64(cents)/100, 'f', -1, 64))
}

// productivity reports outcome value against activity cost per rep:
// managers see their team, admins the organisation (or one team), reps
// themselves.
func (s *Server) productivity(c echo.Context) error {
	p := principal(c)
	var faults []models.FieldError
	fault := func(err error) {
		var me *models.Error
		if errors.As(err, &me) {
			faults = append(faults, me.Fields...)
		}
	}
	loc := time.UTC
	if tz := c.QueryParam("time_zone"); tz != "" {
		if err := models.ValidateTimeZone("time_zone", tz); err != nil {
			fault(err)
		} else {
			loc, _ = time.LoadLocation(tz)
		}
	}
	parse := func(name string) models.TimeOrDate {
		raw := c.QueryParam(name)
		if raw == "" {
			fault(models.FieldInvalid(name, "is required (RFC 3339 or YYYY-MM-DD)"))
			return models.TimeOrDate{}
		}
		v, err := models.ParseTimeOrDate(name, raw)
		fault(err)
		return v
	}
	fromIn, toIn := parse("from"), parse("to")
	if len(faults) > 0 {
		return models.Invalid(faults)
	}
	from, to := fromIn.Start(loc), toIn.End(loc)
	if !to.After(from) || to.Sub(from) > 400*24*time.Hour {
		return models.FieldInvalid("to", "must be after from, and at most 400 days later")
	}
	var team *uuid.UUID
	switch p.Role {
	case models.RoleAdmin:
		if raw := c.QueryParam("team_id"); raw != "" {
			id, err := parseUUID("team_id", raw)
			if err != nil {
				return err
			}
			team = &id
		}
	default:
		if p.TeamID == nil {
			return writeJSON(c, http.StatusOK, productivityResponse{From: from, To: to, Reps: []productivityDTO{}})
		}
		if raw := c.QueryParam("team_id"); raw != "" {
			id, err := parseUUID("team_id", raw)
			if err != nil {
				return err
			}
			if id != *p.TeamID {
				return models.ErrNotFound
			}
		}
		team = p.TeamID
	}
	rows, err := s.reports.Productivity(c.Request().Context(), p.OrgID, team, from, to)
	if err != nil {
		return err
	}
	out := productivityResponse{From: from, To: to, Reps: []productivityDTO{}}
	for _, r := range rows {
		if p.Role == models.RoleRep && r.RepID != p.UserID {
			continue
		}
		out.Reps = append(out.Reps, productivityDTO{
			RepID: r.RepID, TeamID: r.TeamID, Visits: r.Visits, UnscheduledCalls: r.UnscheduledCalls,
			VerifiedCalls: r.VerifiedCalls, VerifiedCallRate: r.VerifiedCallRate(), Orders: r.Orders,
			OutcomeValue: money(r.OutcomeValueCents), Activities: r.ActivityCounts, ActivityCost: money(r.ActivityCostCents),
			Productivity: r.Productivity(),
		})
	}
	sort.Slice(out.Reps, func(i, j int) bool { return out.Reps[i].RepID.String() < out.Reps[j].RepID.String() })
	return writeJSON(c, http.StatusOK, out)
}
