package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
	"github.com/fieldsync/fieldsync/sync/watermelondb"
)

// The WatermelonDB sync endpoint: GET pulls, POST pushes, in the protocol
// WatermelonDB's synchronize() speaks. The semantics (timestamps, created
// versus updated, conflicts, idempotency, scope changes) live in
// sync/watermelon.go; this file parses and encodes.

// watermelonPushResponse answers a push. experimentalRejectedIds is the
// name WatermelonDB's synchronize() reads from pushChanges' result: the
// records it lists stay unsynced (dirty) on the device, which pushes them
// again next time; every other record is marked synced.
type watermelonPushResponse struct {
	Written     int                   `json:"written"`
	Unchanged   int                   `json:"unchanged"`
	RejectedIDs map[string][]string   `json:"experimentalRejectedIds"`
	Rejected    []watermelonRejection `json:"rejected"`
}

type watermelonRecordRef struct {
	Table string    `json:"table"`
	ID    uuid.UUID `json:"id"`
}

type watermelonRejection struct {
	Table   string `json:"table"`
	ID      string `json:"id"` // as the phone knows it, UUID or not
	Field   string `json:"field,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// watermelonProblem is a problem document naming the records at fault.
type watermelonProblem struct {
	Problem
	Conflicts []watermelonRecordRef `json:"conflicts,omitempty"`
	Rejected  []watermelonRejection `json:"rejected,omitempty"`
}

type watermelonTableDTO struct {
	Created []map[string]json.RawMessage `json:"created"`
	Updated []map[string]json.RawMessage `json:"updated"`
	Deleted []string                     `json:"deleted"`
}

// watermelonSchema requires the sync schema_version on a pull. A push
// checks it only when present (pullSchema): WatermelonDB's pushChanges
// receives only {changes, lastPulledAt}, so an app following its
// documentation has no schema_version to send.
func watermelonSchema(c echo.Context) error {
	if c.QueryParam("schema_version") == "" {
		return models.FieldInvalid("schema_version", "is required (this server speaks %d)", engine.SchemaVersion)
	}
	return pullSchema(c)
}

// wmLastPulledAt reads last_pulled_at: null (absent, "null", "undefined" or
// 0, as WatermelonDB's first sync sends it) is 0, allowed only on pulls.
func wmLastPulledAt(c echo.Context, required bool) (int64, error) {
	raw := c.QueryParam("last_pulled_at")
	switch raw {
	case "", "null", "undefined", "0":
		if required {
			return 0, models.FieldInvalid("last_pulled_at", "is required: push with the timestamp of the pull that preceded it")
		}
		return 0, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 1 || n > watermelondb.MaxTimestamp {
		return 0, models.FieldInvalid("last_pulled_at", "must be null or a timestamp this server returned")
	}
	return n, nil
}

// watermelonMigration reads WatermelonDB's migration parameter: null, or
// {from, tables, columns}.
func watermelonMigration(c echo.Context) (bool, error) {
	raw := c.QueryParam("migration")
	if raw == "" || raw == "null" {
		return false, nil
	}
	var m struct {
		From    *int              `json:"from"`
		Tables  []string          `json:"tables"`
		Columns []json.RawMessage `json:"columns"`
	}
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m.From == nil {
		return false, models.FieldInvalid("migration", "must be null or WatermelonDB's migration object {from, tables, columns}")
	}
	return true, nil
}

func (s *Server) watermelonPull(c echo.Context) error {
	if err := watermelonSchema(c); err != nil {
		return err
	}
	last, err := wmLastPulledAt(c, false)
	if err != nil {
		return err
	}
	migration, err := watermelonMigration(c)
	if err != nil {
		return err
	}
	sp := &wmSpool{parts: map[wmSpoolKey]*wmSpoolPart{}}
	defer sp.close()
	var (
		served int
		oldest time.Time
	)
	emit := func(k watermelondb.Kind, ch engine.Change) error {
		served++
		if oldest.IsZero() || ch.Record.UpdatedAt.Before(oldest) {
			oldest = ch.Record.UpdatedAt
		}
		return sp.add(k, ch)
	}
	res, err := s.wm.Pull(c.Request().Context(), principal(c), watermelondb.PullRequest{LastPulledAt: last, Migration: migration}, emit)
	if err != nil {
		return err
	}
	s.metrics.Pulled(protocolWatermelonDB, served, oldest)
	// Only now, with the whole pull read, is the status known: a failure
	// above still answers a problem document, never half a body.
	tables := make([]string, 0, len(s.sync.Entities()))
	for name := range s.sync.Entities() {
		tables = append(tables, name)
	}
	sort.Strings(tables)
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(http.StatusOK)
	w := bufio.NewWriterSize(c.Response(), 64<<10)
	if err := sp.writeChanges(w, tables); err != nil {
		return err
	}
	tail := `},"timestamp":` + strconv.FormatInt(res.Timestamp, 10)
	if res.Replacement {
		tail += `,"experimentalStrategy":"replacement"`
	}
	if _, err := w.WriteString(tail + "}\n"); err != nil {
		return err
	}
	return w.Flush()
}

func (s *Server) watermelonPush(c echo.Context) error {
	if err := pullSchema(c); err != nil {
		return err
	}
	last, err := wmLastPulledAt(c, true)
	if err != nil {
		return err
	}
	p := principal(c)
	if err := s.admitPush(c, p); err != nil {
		return err
	}
	// The records read count against the budget as soon as the tables
	// are parsed, whether or not they make a valid push; a body that does
	// not parse counts what was parsed of it, at least an empty push.
	records, spent := 0, false
	spend := func() {
		if !spent {
			spent = true
			s.budget.spend(p, records)
		}
	}
	defer spend()
	var body map[string]json.RawMessage
	if err := decodeFetchJSON(c, &body); err != nil {
		return err
	}
	// The contract's body is {"changes": {...}}; the bare changes object
	// that WatermelonDB's documentation posts is taken too.
	tables := body
	if raw, ok := body["changes"]; ok {
		for k := range body {
			if k != "changes" {
				return &models.Error{Code: models.CodeInvalid, Message: fmt.Sprintf("unknown field %q", k),
					Fields: []models.FieldError{{Field: k, Code: "unknown_field", Message: "is not a field of this request"}}}
			}
		}
		tables = nil
		if err := json.Unmarshal(raw, &tables); err != nil {
			return models.FieldInvalid("changes", "must be an object of tables")
		}
	}
	req := watermelondb.PushRequest{LastPulledAt: last, Changes: make(map[string]*watermelondb.TableChanges, len(tables))}
	names := make([]string, 0, len(tables))
	for name := range tables {
		names = append(names, name)
	}
	sort.Strings(names) // the first fault named is always the same
	for _, name := range names {
		t, err := watermelonTable("changes."+name, tables[name])
		if err != nil {
			return err
		}
		req.Changes[name] = t
		records += len(t.Created) + len(t.Updated) + len(t.Deleted) + len(t.Unparsed) + t.UnparsedDeleted
	}
	spend()
	if err := s.wm.CheckPush(req); err != nil {
		return err
	}
	res, err := s.wm.Push(c.Request().Context(), p, req)
	var ce *watermelondb.ConflictError
	switch {
	case errors.As(err, &ce):
		p := watermelonProblem{Problem: wmProblem(c, http.StatusConflict, models.CodeConflict,
			fmt.Sprintf("%d of the pushed records changed on the server after last_pulled_at; nothing was applied: pull, then push again", len(ce.Records)))}
		for _, k := range ce.Records {
			p.Conflicts = append(p.Conflicts, watermelonRecordRef{Table: k.Entity, ID: k.ID})
		}
		return writeWatermelonProblem(c, p)
	case err != nil:
		return err
	}
	s.metrics.Pushed(protocolWatermelonDB, res.Outcomes)
	out := watermelonPushResponse{Written: res.Written, Unchanged: res.Unchanged, RejectedIDs: map[string][]string{}, Rejected: []watermelonRejection{}}
	for _, r := range res.Rejected {
		id := r.RawID
		if id == "" {
			id = r.ID.String()
		}
		out.RejectedIDs[r.Table] = append(out.RejectedIDs[r.Table], id)
		out.Rejected = append(out.Rejected, watermelonRejection{Table: r.Table, ID: id, Field: r.Field, Code: r.Code, Message: r.Message})
	}
	return writeJSON(c, http.StatusOK, out)
}

// watermelonTable parses one table of a push.
func watermelonTable(at string, raw json.RawMessage) (*watermelondb.TableChanges, error) {
	var t watermelonTableDTO
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, models.FieldInvalid(at, "must be an object of created, updated and deleted arrays")
	}
	out := &watermelondb.TableChanges{}
	rows := func(list string, in []map[string]json.RawMessage) ([]watermelondb.Row, error) {
		var rs []watermelondb.Row
		for i, cols := range in {
			rat := fmt.Sprintf("%s.%s[%d]", at, list, i)
			var id string
			if err := json.Unmarshal(cols["id"], &id); err != nil {
				return nil, models.FieldInvalid(rat+".id", "must be a UUID")
			}
			uid, err := uuid.Parse(id)
			if err != nil || len(id) != 36 {
				// Refused alone (made before the app installed a UUID
				// generator): one such record must not block the rest.
				out.Unparsed = append(out.Unparsed, id)
				continue
			}
			var changed string
			if raw, ok := cols["_changed"]; ok && string(raw) != "null" {
				if err := json.Unmarshal(raw, &changed); err != nil {
					return nil, models.FieldInvalid(rat+"._changed", "must be a comma-separated string of columns")
				}
			}
			delete(cols, "id")
			delete(cols, "_status")
			delete(cols, "_changed")
			rs = append(rs, watermelondb.Row{ID: uid, Columns: cols, Changed: watermelondb.ChangedColumns(changed)})
		}
		return rs, nil
	}
	var err error
	if out.Created, err = rows("created", t.Created); err != nil {
		return nil, err
	}
	if out.Updated, err = rows("updated", t.Updated); err != nil {
		return nil, err
	}
	for _, s := range t.Deleted {
		id, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			out.UnparsedDeleted++ // the server never held it: a no-op
			continue
		}
		out.Deleted = append(out.Deleted, id)
	}
	return out, nil
}

// wmProblem builds a problem document for c's request.
func wmProblem(c echo.Context, status int, code, detail string) Problem {
	return Problem{Type: "urn:fieldsync:problem:" + code, Title: http.StatusText(status), Status: status,
		Detail: detail, Code: code, Instance: c.Request().URL.Path}
}

// writeWatermelonProblem answers a problem document that carries more than the
// error handler's.
func writeWatermelonProblem(c echo.Context, p watermelonProblem) error {
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(p.Status)
	return jsonEncode(c.Response(), p)
}

// wmSpool collects a pull's records by table and list, in memory up to
// wmSpoolMemory bytes and beyond that in a temporary file, so that a pull of
// any size is answered grouped as WatermelonDB wants it, in one pass over
// the change feed, without holding it all in memory.
type wmSpool struct {
	parts map[wmSpoolKey]*wmSpoolPart
	limit int // bytes kept in memory; 0 means wmSpoolMemory
	mem   int
	file  *os.File
	size  int64
}

type wmSpoolKey struct {
	table string
	kind  watermelondb.Kind
}

type wmSpoolPart struct {
	n    int        // records
	segs [][2]int64 // offset and length of each piece in the file, in order
	buf  []byte     // the records after the last piece
}

const wmSpoolMemory = 1 << 20

func (s *wmSpool) add(kind watermelondb.Kind, ch engine.Change) error {
	k := wmSpoolKey{ch.Entity.Name, kind}
	p := s.parts[k]
	if p == nil {
		p = &wmSpoolPart{}
		s.parts[k] = p
	}
	before := len(p.buf)
	if p.n > 0 {
		p.buf = append(p.buf, ',')
	}
	if kind == watermelondb.Deleted {
		p.buf = append(p.buf, '"')
		p.buf = append(p.buf, ch.Record.ID.String()...)
		p.buf = append(p.buf, '"')
	} else {
		p.buf = watermelondb.AppendRecord(p.buf, ch.Entity, ch.Record)
	}
	p.n++
	s.mem += len(p.buf) - before
	limit := s.limit
	if limit == 0 {
		limit = wmSpoolMemory
	}
	if s.mem > limit {
		return s.spill()
	}
	return nil
}

// spill moves every buffered piece to the file.
func (s *wmSpool) spill() error {
	if s.file == nil {
		f, err := os.CreateTemp("", "fieldsync-watermelondb-pull-*")
		if err != nil {
			return fmt.Errorf("wmSpool pull: %w", err)
		}
		s.file = f
	}
	for _, p := range s.parts {
		if len(p.buf) == 0 {
			continue
		}
		if _, err := s.file.WriteAt(p.buf, s.size); err != nil {
			return fmt.Errorf("wmSpool pull: %w", err)
		}
		p.segs = append(p.segs, [2]int64{s.size, int64(len(p.buf))})
		s.size += int64(len(p.buf))
		p.buf = nil
	}
	s.mem = 0
	return nil
}

// writeChanges writes `{"changes":{` and every table's three lists.
func (s *wmSpool) writeChanges(w io.Writer, tables []string) error {
	if _, err := io.WriteString(w, `{"changes":{`); err != nil {
		return err
	}
	for i, t := range tables {
		sep := ","
		if i == 0 {
			sep = ""
		}
		if _, err := io.WriteString(w, sep+strconv.Quote(t)+`:{`); err != nil {
			return err
		}
		for j, kind := range []watermelondb.Kind{watermelondb.Created, watermelondb.Updated, watermelondb.Deleted} {
			name := [...]string{`"created":[`, `,"updated":[`, `,"deleted":[`}[j]
			if _, err := io.WriteString(w, name); err != nil {
				return err
			}
			if p := s.parts[wmSpoolKey{t, kind}]; p != nil {
				for _, seg := range p.segs {
					if _, err := io.Copy(w, io.NewSectionReader(s.file, seg[0], seg[1])); err != nil {
						return fmt.Errorf("read spooled pull: %w", err)
					}
				}
				if _, err := w.Write(p.buf); err != nil {
					return err
				}
			}
			if _, err := io.WriteString(w, "]"); err != nil {
				return err
			}
		}
		if _, err := io.WriteString(w, "}"); err != nil {
			return err
		}
	}
	return nil
}

func (s *wmSpool) close() {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
	}
}
