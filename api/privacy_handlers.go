package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
)

// PersonalDataStore is what the personal-data routes need of the people
// store; Store implementations that serve them implement it too.
type PersonalDataStore interface {
	// PersonalProfile returns a user's profile, sessions and push-token
	// registrations. Errors: not_found.
	PersonalProfile(ctx context.Context, orgID, userID uuid.UUID) (models.PersonalProfile, error)
	// ErasePerson anonymises a user's profile, deactivates them and
	// revokes their sessions and push tokens. Errors: not_found.
	ErasePerson(ctx context.Context, orgID, id uuid.UUID) (models.User, error)
}

type sessionDTO struct {
	ID         uuid.UUID  `json:"id"`
	DeviceID   uuid.UUID  `json:"device_id"`
	DeviceName string     `json:"device_name"`
	Platform   string     `json:"platform"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt time.Time  `json:"last_used_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// redactedToken stands for a push token in an export: the token reaches
// the device, so it is never handed out.
const redactedToken = "[redacted]"

type pushTokenDTO struct {
	DeviceID  uuid.UUID `json:"device_id"`
	Platform  string    `json:"platform"`
	Token     string    `json:"token"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type personalExportDTO struct {
	ExportedAt time.Time                    `json:"exported_at"`
	User       userDTO                      `json:"user"`
	Sessions   []sessionDTO                 `json:"sessions"`
	PushTokens []pushTokenDTO               `json:"push_tokens"`
	Records    map[string][]json.RawMessage `json:"records"`
}

type erasureDTO struct {
	User              userDTO `json:"user"`
	RecordsAnonymised int     `json:"records_anonymised"`
}

// personalDataSubject authorises a personal-data request on the user of
// the path: admins only, in their own organisation. Others get 403 for a
// user they can see and 404 for anyone else, as for PATCH /v1/users/{id};
// an id of another organisation is 404 to everyone.
func (s *Server) personalDataSubject(c echo.Context) (models.Principal, PersonalDataStore, uuid.UUID, error) {
	p := principal(c)
	id, err := parseUUID("id", c.Param("id"))
	if err != nil {
		return p, nil, id, err
	}
	u, err := s.store.User(c.Request().Context(), p.OrgID, id)
	if err != nil {
		return p, nil, id, err
	}
	if p.Role != models.RoleAdmin {
		if !p.CanSeeUser(u) {
			return p, nil, id, models.ErrNotFound
		}
		return p, nil, id, errAdminOnly
	}
	ps, ok := s.store.(PersonalDataStore)
	if !ok || s.sync == nil {
		return p, nil, id, models.Errorf(models.CodeInternal, "personal data routes need a PersonalDataStore and the sync engine")
	}
	return p, ps, id, nil
}

// exportUser answers everything fieldsync keeps about one person: the
// profile, sessions and devices, push-token registrations (tokens
// redacted) and their synced records (sales.PersonalData) in the wire form
// of pulls — visits with positions and notes included.
func (s *Server) exportUser(c echo.Context) error {
	p, ps, id, err := s.personalDataSubject(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	prof, err := ps.PersonalProfile(ctx, p.OrgID, id)
	if err != nil {
		return err
	}
	data, err := sales.PersonalData(ctx, s.sync, p, id)
	if err != nil {
		return err
	}
	out := personalExportDTO{
		ExportedAt: s.now().UTC(), User: fullUser(prof.User),
		Sessions:   make([]sessionDTO, len(prof.Sessions)),
		PushTokens: make([]pushTokenDTO, len(prof.PushTokens)),
		Records:    make(map[string][]json.RawMessage, len(data)),
	}
	for i, ss := range prof.Sessions {
		out.Sessions[i] = sessionDTO(ss)
	}
	for i, t := range prof.PushTokens {
		out.PushTokens[i] = pushTokenDTO{DeviceID: t.DeviceID, Platform: t.Platform, Token: redactedToken, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	}
	for entity, recs := range data {
		e := s.sync.Entity(entity)
		list := make([]json.RawMessage, len(recs))
		for i, r := range recs {
			list[i] = e.MarshalRecord(nil, r)
		}
		out.Records[entity] = list
	}
	return writeJSON(c, http.StatusOK, out)
}

// erasePersonalData anonymises one person: the people store's part first
// (profile, sessions, push tokens, conflicts: the person is signed out and
// can push nothing more), then their synced records through the sync
// engine, so that phones pull the anonymised values. Both parts are
// idempotent: if the second fails, repeating the request completes it.
func (s *Server) erasePersonalData(c echo.Context) error {
	p, ps, id, err := s.personalDataSubject(c)
	if err != nil {
		return err
	}
	if id == p.UserID {
		return invalid([]models.FieldError{{Field: "id", Code: models.CodeInvalid, Message: "an admin cannot erase themselves; another admin must"}})
	}
	ctx := c.Request().Context()
	u, err := ps.ErasePerson(ctx, p.OrgID, id)
	if err != nil {
		return err
	}
	n, err := sales.ErasePersonalData(ctx, s.sync, p, id)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, erasureDTO{User: fullUser(u), RecordsAnonymised: n})
}
