package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
)

// userDTO is a user on the wire. Reps see their teammates with id, name,
// role and team only; the other fields are then omitted.
type userDTO struct {
	ID        uuid.UUID  `json:"id"`
	OrgID     *uuid.UUID `json:"org_id,omitempty"`
	Email     string     `json:"email,omitempty"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	TeamID    *uuid.UUID `json:"team_id"`
	Active    *bool      `json:"active,omitempty"`
	TimeZone  string     `json:"time_zone,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func fullUser(u models.User) userDTO {
	return userDTO{
		ID: u.ID, OrgID: &u.OrgID, Email: u.Email, Name: u.Name, Role: string(u.Role), TeamID: u.TeamID,
		Active: &u.Active, TimeZone: u.TimeZone, CreatedAt: &u.CreatedAt, UpdatedAt: &u.UpdatedAt,
	}
}

// userFor shows u as p may see it.
func userFor(p models.Principal, u models.User) userDTO {
	if p.Role == models.RoleRep && u.ID != p.UserID {
		return userDTO{ID: u.ID, Name: u.Name, Role: string(u.Role), TeamID: u.TeamID}
	}
	return fullUser(u)
}

type usersResponse struct {
	Users      []userDTO `json:"users"`
	NextCursor string    `json:"next_cursor"`
}

type createUserRequest struct {
	Email    string  `json:"email"`
	Name     string  `json:"name"`
	Role     string  `json:"role"`
	TeamID   *string `json:"team_id"`
	Password string  `json:"password"`
	TimeZone string  `json:"time_zone"`
}

type patchUserRequest struct {
	Name   *string         `json:"name"`
	Role   *string         `json:"role"`
	TeamID json.RawMessage `json:"team_id"` // null removes the user from their team
	Active *bool           `json:"active"`
}

type teamDTO struct {
	ID        uuid.UUID  `json:"id"`
	Name      string     `json:"name"`
	ManagerID *uuid.UUID `json:"manager_id"`
	CreatedAt time.Time  `json:"created_at"`
}

type teamsResponse struct {
	Teams      []teamDTO `json:"teams"`
	NextCursor string    `json:"next_cursor"`
}

type createTeamRequest struct {
	Name      string  `json:"name"`
	ManagerID *string `json:"manager_id"`
}

var errAdminOnly = models.Errorf(models.CodeForbidden, "only an admin may do this")

func (s *Server) me(c echo.Context) error {
	p := principal(c)
	u, err := s.store.User(c.Request().Context(), p.OrgID, p.UserID)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, fullUser(u))
}

// listUsers answers admins with the organisation (optionally one team),
// managers and reps with their own team.
func (s *Server) listUsers(c echo.Context) error {
	p := principal(c)
	var team *uuid.UUID
	if p.Role == models.RoleAdmin {
		if raw := c.QueryParam("team_id"); raw != "" {
			id, err := parseUUID("team_id", raw)
			if err != nil {
				return err
			}
			team = &id
		}
	} else {
		if p.TeamID == nil {
			u, err := s.store.User(c.Request().Context(), p.OrgID, p.UserID)
			if err != nil {
				return err
			}
			return writeJSON(c, http.StatusOK, usersResponse{Users: []userDTO{fullUser(u)}})
		}
		team = p.TeamID
	}
	users, err := s.store.Users(c.Request().Context(), p.OrgID, team)
	if err != nil {
		return err
	}
	page, next, err := paginate(c, users, func(u models.User) string { return keyOf(u.Name, u.ID.String()) })
	if err != nil {
		return err
	}
	out := usersResponse{Users: make([]userDTO, 0, len(page)), NextCursor: next}
	for _, u := range page {
		out.Users = append(out.Users, userFor(p, u))
	}
	return writeJSON(c, http.StatusOK, out)
}

// getUser answers 404 for anyone outside the caller's scope, in or out of
// the organisation, so ids reveal nothing.
func (s *Server) getUser(c echo.Context) error {
	p := principal(c)
	id, err := parseUUID("id", c.Param("id"))
	if err != nil {
		return err
	}
	u, err := s.store.User(c.Request().Context(), p.OrgID, id)
	if err != nil {
		return err
	}
	if !p.CanSeeUser(u) {
		return models.ErrNotFound
	}
	return writeJSON(c, http.StatusOK, userFor(p, u))
}

func (s *Server) createUser(c echo.Context) error {
	p := principal(c)
	if p.Role != models.RoleAdmin {
		return errAdminOnly
	}
	var req createUserRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	now := s.now().UTC()
	u := models.User{
		OrgID: p.OrgID, ID: uuid.New(), Email: models.NormalizeEmail(req.Email), Name: strings.TrimSpace(req.Name),
		Role: models.Role(req.Role), Active: true, TimeZone: req.TimeZone, CreatedAt: now, UpdatedAt: now,
	}
	if u.TimeZone == "" {
		u.TimeZone = "UTC"
	}
	errs := collect(
		models.ValidateEmail("email", u.Email),
		models.ValidateName("name", u.Name),
		validateRole(req.Role),
		models.ValidatePassword("password", req.Password),
		models.ValidateTimeZone("time_zone", u.TimeZone),
	)
	if req.TeamID != nil {
		id, err := parseUUID("team_id", *req.TeamID)
		errs = append(errs, fieldErrors(err)...)
		u.TeamID = &id
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	hash, err := s.passwords.Hash(req.Password)
	if err != nil {
		return err
	}
	u.PasswordHash = hash
	if err := s.store.CreateUser(c.Request().Context(), u); err != nil {
		return err
	}
	return writeJSON(c, http.StatusCreated, fullUser(u))
}

func (s *Server) patchUser(c echo.Context) error {
	p := principal(c)
	id, err := parseUUID("id", c.Param("id"))
	if err != nil {
		return err
	}
	if p.Role != models.RoleAdmin {
		// Others learn nothing about ids outside their scope.
		u, err := s.store.User(c.Request().Context(), p.OrgID, id)
		if err != nil {
			return err
		}
		if !p.CanSeeUser(u) {
			return models.ErrNotFound
		}
		return errAdminOnly
	}
	var req patchUserRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var patch models.UserPatch
	var errs []models.FieldError
	if req.Name != nil {
		name := strings.TrimSpace(*req.Name)
		errs = append(errs, fieldErrors(models.ValidateName("name", name))...)
		patch.Name = &name
	}
	if req.Role != nil {
		errs = append(errs, fieldErrors(validateRole(*req.Role))...)
		r := models.Role(*req.Role)
		patch.Role = &r
	}
	if len(req.TeamID) > 0 {
		if string(req.TeamID) == "null" {
			patch.ClearTeam = true
		} else {
			var raw string
			if json.Unmarshal(req.TeamID, &raw) != nil {
				errs = append(errs, models.FieldError{Field: "team_id", Code: models.CodeInvalid, Message: "must be a UUID or null"})
			} else {
				tid, err := parseUUID("team_id", raw)
				errs = append(errs, fieldErrors(err)...)
				patch.TeamID = &tid
			}
		}
	}
	if req.Active != nil {
		if !*req.Active && id == p.UserID {
			errs = append(errs, models.FieldError{Field: "active", Code: models.CodeInvalid, Message: "an admin cannot deactivate themselves"})
		}
		patch.Active = req.Active
	}
	if id == p.UserID && patch.Role != nil && *patch.Role != models.RoleAdmin {
		errs = append(errs, models.FieldError{Field: "role", Code: models.CodeInvalid, Message: "an admin cannot demote themselves"})
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	u, err := s.store.UpdateUser(c.Request().Context(), p.OrgID, id, patch)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, fullUser(u))
}

func (s *Server) listTeams(c echo.Context) error {
	p := principal(c)
	teams, err := s.store.Teams(c.Request().Context(), p.OrgID)
	if err != nil {
		return err
	}
	var visible []models.Team
	for _, t := range teams {
		if p.Role == models.RoleAdmin || (p.TeamID != nil && *p.TeamID == t.ID) {
			visible = append(visible, t)
		}
	}
	page, next, err := paginate(c, visible, func(t models.Team) string { return keyOf(t.Name, t.ID.String()) })
	if err != nil {
		return err
	}
	out := teamsResponse{Teams: []teamDTO{}, NextCursor: next}
	for _, t := range page {
		out.Teams = append(out.Teams, teamOut(t))
	}
	return writeJSON(c, http.StatusOK, out)
}

func (s *Server) createTeam(c echo.Context) error {
	p := principal(c)
	if p.Role != models.RoleAdmin {
		return errAdminOnly
	}
	var req createTeamRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t := models.Team{OrgID: p.OrgID, ID: uuid.New(), Name: strings.TrimSpace(req.Name), CreatedAt: s.now().UTC()}
	errs := fieldErrors(models.ValidateName("name", t.Name))
	if req.ManagerID != nil {
		id, err := parseUUID("manager_id", *req.ManagerID)
		errs = append(errs, fieldErrors(err)...)
		t.ManagerID = &id
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	if err := s.store.CreateTeam(c.Request().Context(), t); err != nil {
		return err
	}
	return writeJSON(c, http.StatusCreated, teamOut(t))
}

func teamOut(t models.Team) teamDTO {
	return teamDTO{ID: t.ID, Name: t.Name, ManagerID: t.ManagerID, CreatedAt: t.CreatedAt}
}

func validateRole(r string) error {
	if !models.Role(r).Valid() {
		return models.FieldInvalid("role", "must be rep, manager or admin")
	}
	return nil
}

// fieldErrors unpacks the field errors of a validation error.
func fieldErrors(err error) []models.FieldError {
	if err == nil {
		return nil
	}
	if me, ok := err.(*models.Error); ok && len(me.Fields) > 0 {
		return me.Fields
	}
	return []models.FieldError{{Field: "", Code: models.CodeInvalid, Message: err.Error()}}
}

func collect(errs ...error) []models.FieldError {
	var out []models.FieldError
	for _, err := range errs {
		out = append(out, fieldErrors(err)...)
	}
	return out
}

// invalid reports every field at fault at once, so a form can mark them all.
func invalid(errs []models.FieldError) error {
	return models.Invalid(errs)
}
