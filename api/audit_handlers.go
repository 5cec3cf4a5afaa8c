package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
)

// auditEntryDTO is an audit log entry on the wire.
type auditEntryDTO struct {
	ID         uuid.UUID       `json:"id"`
	ActorID    *uuid.UUID      `json:"actor_id"`
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   uuid.UUID       `json:"object_id"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	At         time.Time       `json:"at"`
}

type auditResponse struct {
	Entries    []auditEntryDTO `json:"entries"`
	NextCursor string          `json:"next_cursor"`
}

// auditCursor is the opaque position of GET /v1/audit: the last entry of
// the page.
type auditCursor struct {
	At time.Time `json:"t"`
	ID uuid.UUID `json:"i"`
}

func encodeAuditCursor(e models.AuditEntry) string {
	b, _ := json.Marshal(auditCursor{At: e.At.UTC(), ID: e.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeAuditCursor(s string) (*models.AuditPos, error) {
	if s == "" {
		return nil, nil
	}
	bad := models.FieldInvalid("cursor", "must be the next_cursor of a previous page")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	var ac auditCursor
	if err := json.Unmarshal(b, &ac); err != nil || ac.ID == uuid.Nil || ac.At.IsZero() {
		return nil, bad
	}
	return &models.AuditPos{At: ac.At, ID: ac.ID}, nil
}

// maxObjectTypeLen bounds the object_type filter.
const maxObjectTypeLen = 64

// listAudit pages through the caller's organisation's audit log, newest
// first, for admins only; managers and reps are refused (403) whatever
// they ask. Filters: actor (a user id), object_type, object_id, and
// from/to (RFC 3339 instants, or YYYY-MM-DD days read in time_zone, UTC by
// default, a day as to counting whole).
func (s *Server) listAudit(c echo.Context) error {
	p := principal(c)
	if p.Role != models.RoleAdmin {
		return errAdminOnly
	}
	if s.audit == nil {
		return models.ErrUnavailable
	}
	var faults []models.FieldError
	fault := func(err error) {
		var me *models.Error
		if errors.As(err, &me) {
			faults = append(faults, me.Fields...)
		}
	}
	var f models.AuditFilter
	limit, err := intParam(c, "limit", defaultPageLimit, 1, maxPageLimit)
	fault(err)
	f.After, err = decodeAuditCursor(c.QueryParam("cursor"))
	fault(err)
	for _, q := range []struct {
		name string
		dst  **uuid.UUID
	}{{"actor", &f.ActorID}, {"object_id", &f.ObjectID}} {
		if raw := c.QueryParam(q.name); raw != "" {
			id, err := parseUUID(q.name, raw)
			fault(err)
			*q.dst = &id
		}
	}
	f.ObjectType = c.QueryParam("object_type")
	if len(f.ObjectType) > maxObjectTypeLen {
		fault(models.FieldInvalid("object_type", "must be at most %d characters", maxObjectTypeLen))
	}
	loc := time.UTC
	if tz := c.QueryParam("time_zone"); tz != "" {
		if err := models.ValidateTimeZone("time_zone", tz); err != nil {
			fault(err)
		} else {
			loc, _ = time.LoadLocation(tz)
		}
	}
	for _, q := range []struct {
		name string
		dst  **time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		raw := c.QueryParam(q.name)
		if raw == "" {
			continue
		}
		v, err := models.ParseTimeOrDate(q.name, raw)
		if err != nil {
			fault(err)
			continue
		}
		t := v.Start(loc)
		if q.name == "to" {
			t = v.End(loc)
		}
		*q.dst = &t
	}
	if len(faults) > 0 {
		return models.Invalid(faults)
	}
	if f.From != nil && f.To != nil && !f.To.After(*f.From) {
		return models.FieldInvalid("to", "must be after from")
	}
	entries, err := s.audit.Entries(c.Request().Context(), p.OrgID, f, limit+1)
	if err != nil {
		return err
	}
	out := auditResponse{Entries: make([]auditEntryDTO, 0, min(len(entries), limit))}
	if len(entries) > limit {
		entries = entries[:limit]
		out.NextCursor = encodeAuditCursor(entries[limit-1])
	}
	for _, e := range entries {
		out.Entries = append(out.Entries, auditEntryDTO{
			ID: e.ID, ActorID: e.ActorID, Action: e.Action, ObjectType: e.ObjectType, ObjectID: e.ObjectID,
			Before: e.Before, After: e.After, At: e.At,
		})
	}
	return writeJSON(c, http.StatusOK, out)
}
