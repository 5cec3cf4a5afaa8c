package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// orgDTO is the caller's organisation and its settings. Money is in units
// of the organisation's currency, with at most two decimals, as visits
// carry it.
type orgDTO struct {
	ID                uuid.UUID       `json:"id"`
	Name              string          `json:"name"`
	CreatedAt         time.Time       `json:"created_at"`
	OrderValueCeiling json.RawMessage `json:"order_value_ceiling"`
}

func orgOut(o models.Org) orgDTO {
	return orgDTO{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt,
		OrderValueCeiling: json.RawMessage(ceilingField.AppendValue(nil, o.OrderValueCeilingCents))}
}

// patchOrgRequest is the body of PATCH /v1/org; absent fields are left
// alone.
type patchOrgRequest struct {
	OrderValueCeiling json.RawMessage `json:"order_value_ceiling"`
}

// ceilingField parses order_value_ceiling as visits parse order_value.
var ceilingField = engine.Field{Name: "order_value_ceiling", Type: engine.Money, Max: float64(models.MaxOrderValueCeilingCents / 100)}

func (s *Server) getOrg(c echo.Context) error {
	p := principal(c)
	o, err := s.store.Org(c.Request().Context(), p.OrgID)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, orgOut(o))
}

// patchOrg changes the organisation's settings: admins only.
func (s *Server) patchOrg(c echo.Context) error {
	p := principal(c)
	if p.Role != models.RoleAdmin {
		return errAdminOnly
	}
	var req patchOrgRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var set models.OrgSettings
	if len(req.OrderValueCeiling) > 0 {
		v, err := ceilingField.Parse(req.OrderValueCeiling, s.now())
		if err != nil {
			return err
		}
		cents, ok := v.(int64)
		if !ok {
			return models.FieldInvalid(ceilingField.Name, "must be a number")
		}
		set.OrderValueCeilingCents = &cents
	}
	o, err := s.store.UpdateOrgSettings(c.Request().Context(), p.OrgID, p.UserID, set)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, orgOut(o))
}

// reviewRequest is the body of the order value approval and rejection.
type reviewRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) approveOrderValue(c echo.Context) error {
	return s.reviewOrderValue(c, models.OrderValueApproved)
}

func (s *Server) rejectOrderValue(c echo.Context) error {
	return s.reviewOrderValue(c, models.OrderValueRejected)
}

// reviewOrderValue records a decision on a visit's order value above the
// organisation's ceiling and answers with the visit as committed.
func (s *Server) reviewOrderValue(c echo.Context, decision string) error {
	id, err := parseUUID("id", c.Param("id"))
	if err != nil {
		return err
	}
	var req reviewRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	p := principal(c)
	err = s.sync.Server(c.Request().Context(), p, func(sc *engine.Context) error {
		_, err := sales.ReviewOrderValue(sc, id, decision, req.Reason)
		return err
	})
	if err != nil {
		return err
	}
	r, err := s.sync.Get(c.Request().Context(), p, "visits", id)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.sync.Entity("visits").MarshalRecord(nil, r))
}
