package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

type hlcDTO struct {
	MS      int64 `json:"ms"`
	Counter int64 `json:"counter"`
}

type mutationDTO struct {
	Seq         int64                      `json:"seq"`
	Entity      string                     `json:"entity"`
	ID          string                     `json:"id"`
	Op          string                     `json:"op"`
	Fields      map[string]json.RawMessage `json:"fields"`
	HLC         *hlcDTO                    `json:"hlc"`
	BaseVersion *int64                     `json:"base_version"`
}

type pushRequest struct {
	SchemaVersion *int          `json:"schema_version"`
	Mutations     []mutationDTO `json:"mutations"`
}

type resultDTO struct {
	Seq          int64               `json:"seq"`
	Status       string              `json:"status"`
	Version      int64               `json:"version,omitempty"`
	Conflicts    []engine.Conflict   `json:"conflicts,omitempty"`
	Error        *engine.RejectError `json:"error,omitempty"`
	ClockClamped bool                `json:"clock_clamped,omitempty"`
}

type pushResponse struct {
	LastSeq int64       `json:"last_seq"`
	Results []resultDTO `json:"results"`
}

type rejectionDTO struct {
	Seq       int64     `json:"seq"`
	Entity    string    `json:"entity"`
	ID        uuid.UUID `json:"id"`
	Code      string    `json:"code"`
	Message   string    `json:"message"`
	Field     string    `json:"field,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

type conflictDTO struct {
	ID          uuid.UUID       `json:"id"`
	Entity      string          `json:"entity"`
	RecordID    uuid.UUID       `json:"record_id"`
	Field       string          `json:"field"`
	Kept        string          `json:"kept"`
	ServerValue json.RawMessage `json:"server_value"`
	ClientValue json.RawMessage `json:"client_value"`
	UserID      uuid.UUID       `json:"user_id"`
	DeviceID    *uuid.UUID      `json:"device_id"`
	CreatedAt   time.Time       `json:"created_at"`
}

type conflictsResponse struct {
	Conflicts  []conflictDTO `json:"conflicts"`
	NextCursor string        `json:"next_cursor"`
}

// mutations converts the wire batch, refusing structural mistakes (bad
// UUIDs, missing clocks) for the whole batch: they are client bugs, not
// offline edits to judge one by one.
func mutations(req pushRequest) ([]engine.Mutation, error) {
	out := make([]engine.Mutation, len(req.Mutations))
	for i, m := range req.Mutations {
		at := fmt.Sprintf("mutations[%d]", i)
		id, err := parseUUID(at+".id", m.ID)
		if err != nil {
			return nil, err
		}
		if m.HLC == nil {
			return nil, models.FieldInvalid(at+".hlc", "is required")
		}
		out[i] = engine.Mutation{Seq: m.Seq, Entity: m.Entity, ID: id, Op: m.Op, Fields: m.Fields,
			HLC: engine.HLC{MS: m.HLC.MS, Counter: m.HLC.Counter}, BaseVersion: m.BaseVersion}
	}
	return out, nil
}

func (s *Server) push(c echo.Context) error {
	var req pushRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.SchemaVersion == nil {
		return models.FieldInvalid("schema_version", "is required")
	}
	muts, err := mutations(req)
	if err != nil {
		return err
	}
	if err := s.sync.CheckBatch(*req.SchemaVersion, muts); err != nil {
		return err
	}
	res, err := s.sync.Push(c.Request().Context(), principal(c), muts)
	if err != nil {
		return err
	}
	out := pushResponse{LastSeq: res.LastSeq, Results: make([]resultDTO, len(res.Results))}
	for i, r := range res.Results {
		out.Results[i] = resultDTO{Seq: r.Seq, Status: r.Status, Version: r.Version, Conflicts: r.Conflicts, Error: r.Error, ClockClamped: r.ClockClamped}
	}
	return writeJSON(c, http.StatusOK, out)
}

// pullSchema checks an optional schema_version query parameter.
func pullSchema(c echo.Context) error {
	raw := c.QueryParam("schema_version")
	if raw == "" {
		return nil
	}
	if v, err := strconv.Atoi(raw); err != nil || v != engine.SchemaVersion {
		return &models.Error{Code: models.CodeUnsupportedSchema, Message: fmt.Sprintf("schema_version %q is not supported; this server speaks %d", raw, engine.SchemaVersion),
			Fields: []models.FieldError{{Field: "schema_version", Code: models.CodeUnsupportedSchema, Message: fmt.Sprintf("must be %d", engine.SchemaVersion)}}}
	}
	return nil
}

// intParam reads an optional integer query parameter within [lo, hi].
func intParam(c echo.Context, name string, def, lo, hi int) (int, error) {
	raw := c.QueryParam(name)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		return 0, models.FieldInvalid(name, "must be a whole number from %d to %d", lo, hi)
	}
	return n, nil
}

func (s *Server) pull(c echo.Context) error {
	if err := pullSchema(c); err != nil {
		return err
	}
	limit, err := intParam(c, "limit", engine.DefaultPullLimit, 1, engine.MaxPullLimit)
	if err != nil {
		return err
	}
	p := principal(c)
	res, err := s.sync.Pull(c.Request().Context(), p, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	// The changes are written by hand: records are encoded once, straight
	// from storage, without a map or a second pass through encoding/json.
	b := make([]byte, 0, 256+len(res.Changes)*512)
	b = append(b, `{"changes":[`...)
	for i, ch := range res.Changes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"entity":"`...)
		b = append(b, ch.Entity.Name...)
		b = append(b, `","id":"`...)
		b = append(b, ch.Record.ID.String()...)
		b = append(b, `","version":`...)
		b = strconv.AppendInt(b, ch.Record.Version, 10)
		if ch.Record.Deleted {
			b = append(b, `,"op":"delete"}`...)
			continue
		}
		b = append(b, `,"op":"upsert","data":`...)
		b = ch.Entity.MarshalRecord(b, ch.Record)
		b = append(b, '}')
	}
	rejections := make([]rejectionDTO, len(res.Rejections))
	for i, r := range res.Rejections {
		rejections[i] = rejectionDTO{Seq: r.Seq, Entity: r.Entity, ID: r.RecordID, Code: r.Code, Message: r.Message, Field: r.Field, CreatedAt: r.CreatedAt}
	}
	rest, err := json.Marshal(struct {
		Cursor     string         `json:"cursor"`
		HasMore    bool           `json:"has_more"`
		Reset      bool           `json:"reset"`
		LastSeq    int64          `json:"last_seq"`
		Rejections []rejectionDTO `json:"rejections"`
	}{res.Cursor, res.HasMore, res.Reset, res.LastSeq, rejections})
	if err != nil {
		return fmt.Errorf("encode pull: %w", err)
	}
	b = append(b, "],"...)
	b = append(b, rest[1:]...)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

func (s *Server) conflicts(c echo.Context) error {
	limit, err := intParam(c, "limit", 100, 1, 500)
	if err != nil {
		return err
	}
	cs, next, err := s.sync.Conflicts(c.Request().Context(), principal(c), c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	p := principal(c)
	out := conflictsResponse{Conflicts: make([]conflictDTO, len(cs)), NextCursor: next}
	for i, cr := range cs {
		out.Conflicts[i] = conflictDTO{ID: cr.ID, Entity: cr.Entity, RecordID: cr.RecordID, Field: cr.Conflict.Field,
			Kept: cr.Conflict.Kept, ServerValue: cr.Conflict.ServerValue, ClientValue: cr.Conflict.ClientValue,
			UserID: cr.UserID, CreatedAt: cr.CreatedAt}
		// A device id is a login credential's second half (the session
		// and the push token are bound to it): only its own user sees it.
		if cr.UserID == p.UserID {
			out.Conflicts[i].DeviceID = &cr.DeviceID
		}
	}
	return writeJSON(c, http.StatusOK, out)
}
