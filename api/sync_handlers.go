package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

type hlcDTO struct {
	MS      int64 `json:"ms" range:"1,9007199254740991"`
	Counter int64 `json:"counter"`
}

type mutationDTO struct {
	Seq         int64                      `json:"seq" range:"1,9007199254740991"`
	Entity      string                     `json:"entity"`
	ID          string                     `json:"id"`
	Op          string                     `json:"op"`
	Fields      map[string]json.RawMessage `json:"fields"`
	HLC         *hlcDTO                    `json:"hlc"`
	BaseVersion *int64                     `json:"base_version"`
}

type pushRequest struct {
	SchemaVersion *int `json:"schema_version"`
	// Mutations are decoded one by one (mutations): a malformed mutation
	// is its own rejection, not the batch's.
	Mutations []json.RawMessage `json:"mutations"`
}

// wellFormedPush is a push whose every mutation decodes: the body of
// almost every push, decoded in one pass (decodeWellFormed) instead of
// once into pushRequest and again mutation by mutation.
type wellFormedPush struct {
	SchemaVersion *int          `json:"schema_version"`
	Mutations     []mutationDTO `json:"mutations"`
}

// decodeWellFormed decodes raw as a wellFormedPush, or reports false
// when anything in it would not decode (the caller then decodes it as a
// pushRequest, which names each fault). Where it succeeds, it reads what
// decodeRaw and mutations would: pushRequest holds no string that
// refuseNUL would check, and each mutation decodes alike alone or in its
// array.
func decodeWellFormed(raw []byte) (wellFormedPush, bool) {
	var req wellFormedPush
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if dec.Decode(&req) != nil {
		return wellFormedPush{}, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return wellFormedPush{}, false
	}
	return req, true
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
	// ServerWrittenBy and ServerWrittenAt name the other writer: whose
	// device last wrote the stored value, and when by its clock. Null
	// when the value predates field clocks or the writer is unknown.
	ServerWrittenBy *uuid.UUID `json:"server_written_by"`
	ServerWrittenAt *time.Time `json:"server_written_at"`
	CreatedAt       time.Time  `json:"created_at"`
}

type rejectionsResponse struct {
	Rejections []rejectionDTO `json:"rejections"`
	NextCursor string         `json:"next_cursor"`
}

type conflictsResponse struct {
	Conflicts  []conflictDTO `json:"conflicts"`
	NextCursor string        `json:"next_cursor"`
}

// mutations converts the wire batch. A mutation that does not decode (a
// member of the wrong JSON type, an unknown member) is passed on as
// Malformed, an id that is not a UUID as the nil UUID and a missing clock
// as the zero one: the engine rejects that mutation alone (one bad
// mutation never sinks the others). Only a mutation without a readable
// seq, which numbers it in the envelope, refuses the batch.
func mutations(req pushRequest) ([]engine.Mutation, error) {
	out := make([]engine.Mutation, len(req.Mutations))
	for i, raw := range req.Mutations {
		var m mutationDTO
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			var head struct {
				Seq    int64           `json:"seq"`
				Entity json.RawMessage `json:"entity"`
				ID     json.RawMessage `json:"id"`
			}
			if json.Unmarshal(raw, &head) != nil {
				return nil, models.FieldInvalid(fmt.Sprintf("mutations[%d].seq", i), "must be an integer between 1 and %d in a mutation object", engine.MaxSeq)
			}
			var entity, id string
			_ = json.Unmarshal(head.Entity, &entity)
			_ = json.Unmarshal(head.ID, &id)
			uid, _ := uuid.Parse(id)
			// Name every fault of the mutation, a number out of range
			// with the range it must be in.
			var bad error = jsonError(err)
			if fields := faults("", raw, reflect.TypeFor[mutationDTO](), ""); len(fields) > 0 {
				bad = models.Invalid(fields)
			}
			var me *models.Error
			if errors.As(bad, &me) && len(me.Fields) > 0 && me.Fields[0].Code == models.CodeUnknownField {
				bad = models.FieldErr(models.CodeUnknownField, me.Message, me.Fields[0].Field, "is not a member of a mutation")
			}
			out[i] = engine.Mutation{Seq: head.Seq, Entity: entity, ID: uid, Malformed: bad}
			continue
		}
		out[i] = m.mutation()
	}
	return out, nil
}

// mutation converts a mutation that decoded: an id that is not a UUID
// becomes the nil UUID and a missing clock the zero one, for the engine
// to reject.
func (m mutationDTO) mutation() engine.Mutation {
	id, err := uuid.Parse(m.ID)
	if err != nil || len(m.ID) != 36 {
		id = uuid.Nil
	}
	var h engine.HLC
	if m.HLC != nil {
		h = engine.HLC{MS: m.HLC.MS, Counter: m.HLC.Counter}
	}
	return engine.Mutation{Seq: m.Seq, Entity: m.Entity, ID: id, Op: m.Op, Fields: m.Fields, HLC: h, BaseVersion: m.BaseVersion}
}

func (s *Server) push(c echo.Context) error {
	p := principal(c)
	if err := s.admitPush(c, p); err != nil {
		return err
	}
	schema, muts, err := s.pushBody(c, p)
	if err != nil {
		return err
	}
	if err := s.sync.CheckBatch(schema, muts); err != nil {
		return err
	}
	res, err := s.sync.Push(c.Request().Context(), p, muts)
	if err != nil {
		return err
	}
	out := pushResponse{LastSeq: res.LastSeq, Results: make([]resultDTO, len(res.Results))}
	outcomes := make([]engine.Outcome, len(res.Results))
	for i, r := range res.Results {
		out.Results[i] = resultDTO{Seq: r.Seq, Status: r.Status, Version: r.Version, Conflicts: r.Conflicts, Error: r.Error, ClockClamped: r.ClockClamped}
		outcomes[i] = engine.OutcomeOf(muts[i].Entity, r)
	}
	s.metrics.Pushed(protocolNative, outcomes)
	return writeJSON(c, http.StatusOK, out)
}

// pushBody reads a push's schema version and mutations, and spends what
// was read from p's budget, whether or not it makes a valid push.
func (s *Server) pushBody(c echo.Context, p models.Principal) (int, []engine.Mutation, error) {
	raw, err := readBody(c, false)
	if err != nil {
		s.budget.spend(p, 0)
		return 0, nil, err
	}
	if req, ok := decodeWellFormed(raw); ok {
		s.budget.spend(p, len(req.Mutations))
		if req.SchemaVersion == nil {
			return 0, nil, models.FieldInvalid("schema_version", "is required")
		}
		muts := make([]engine.Mutation, len(req.Mutations))
		for i, m := range req.Mutations {
			muts[i] = m.mutation()
		}
		return *req.SchemaVersion, muts, nil
	}
	var req pushRequest
	err = decodeRaw(raw, &req)
	s.budget.spend(p, len(req.Mutations))
	if err != nil {
		return 0, nil, err
	}
	if req.SchemaVersion == nil {
		return 0, nil, models.FieldInvalid("schema_version", "is required")
	}
	muts, err := mutations(req)
	return *req.SchemaVersion, muts, err
}

// pullSchema checks an optional schema_version query parameter (native
// pulls, WatermelonDB pushes).
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
	res, err := s.sync.PullDocs(c.Request().Context(), p, c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	var oldest time.Time
	size := 256 + len(res.Changes)*128 // the envelope and each change's members
	for _, ch := range res.Changes {
		if oldest.IsZero() || ch.Record.UpdatedAt.Before(oldest) {
			oldest = ch.Record.UpdatedAt
		}
		size += len(ch.Doc)
		if ch.Doc == nil {
			size += 512
		}
	}
	s.metrics.Pulled(protocolNative, len(res.Changes), oldest)
	// The changes are written by hand: a record's data is the encoding
	// kept with the feed (Change.Doc), appended as it is, or else encoded
	// once, straight from storage, without a map or a second pass through
	// encoding/json.
	b := make([]byte, 0, size)
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
		if ch.Doc != nil {
			b = append(b, ch.Doc...)
		} else {
			b = ch.Entity.MarshalRecord(b, ch.Record)
		}
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
			UserID: cr.UserID, ServerWrittenBy: cr.ServerUserID, CreatedAt: cr.CreatedAt}
		if at := cr.Conflict.ServerAt; !at.IsZero() {
			out.Conflicts[i].ServerWrittenAt = &at
		}
		// A device id is a login credential's second half (the session
		// and the push token are bound to it): only its own user sees it.
		if cr.UserID == p.UserID {
			out.Conflicts[i].DeviceID = &cr.DeviceID
		}
	}
	return writeJSON(c, http.StatusOK, out)
}

// rejections lists the calling device's refused mutations and
// WatermelonDB records (seq 0), newest first.
func (s *Server) rejections(c echo.Context) error {
	limit, err := intParam(c, "limit", 100, 1, 500)
	if err != nil {
		return err
	}
	rs, next, err := s.sync.Rejections(c.Request().Context(), principal(c), c.QueryParam("cursor"), limit)
	if err != nil {
		return err
	}
	out := rejectionsResponse{Rejections: make([]rejectionDTO, len(rs)), NextCursor: next}
	for i, r := range rs {
		out.Rejections[i] = rejectionDTO{Seq: r.Seq, Entity: r.Entity, ID: r.RecordID, Code: r.Code, Message: r.Message, Field: r.Field, CreatedAt: r.CreatedAt}
	}
	return writeJSON(c, http.StatusOK, out)
}
