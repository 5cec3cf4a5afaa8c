package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// SchemaVersion is the sync schema this server speaks. A client naming
// another gets unsupported_schema, never a silent drop.
const SchemaVersion = 1

// MaxBatch is the most mutations one push may carry.
const MaxBatch = 1000

// Ops.
const (
	OpUpsert = "upsert"
	OpDelete = "delete"
)

// Statuses of a mutation's result.
const (
	StatusApplied   = "applied"
	StatusMerged    = "merged"
	StatusDuplicate = "duplicate"
	StatusRejected  = "rejected"
)

// Rejection codes, stable for clients.
const (
	CodeNotFound        = models.CodeNotFound
	CodeInvalidValue    = models.CodeInvalidValue
	CodeUnknownField    = models.CodeUnknownField
	CodeServerOwned     = models.CodeServerOwned
	CodeReadOnly        = models.CodeReadOnly
	CodeForbidden       = models.CodeForbidden
	CodeMissingRequired = models.CodeMissingRequired
)

// Mutation is one change a device made offline.
type Mutation struct {
	Seq    int64
	Entity string
	ID     uuid.UUID
	Op     string
	Fields map[string]json.RawMessage
	HLC    HLC
	// BaseVersion is the record version the device last saw, if it says;
	// it lets the server report overwrites of edits the device never saw.
	BaseVersion *int64
	// Malformed, when set, says why the API could not read the mutation:
	// it is rejected with that error, alone.
	Malformed error
}

// RejectError is why a mutation was rejected.
type RejectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Result is what happened to one mutation.
type Result struct {
	Seq          int64
	Status       string
	Version      int64
	Conflicts    []Conflict
	Error        *RejectError
	ClockClamped bool

	key *Key // the record whose version, after the batch, the result reports
}

// Outcome is what happened to one pushed mutation (or WatermelonDB
// record), reduced to what is counted: its entity as pushed, its status
// (StatusApplied, StatusMerged, StatusDuplicate, StatusRejected), the
// rejection code and the fields of its conflicts. Entity, Code and the
// fields may name things no declaration does (an unknown table pushed by
// a newer app): whoever turns them into labels must bound them.
type Outcome struct {
	Entity    string
	Status    string
	Code      string
	Conflicts []string
}

// OutcomeOf is the outcome of a native push's mutation on entity.
func OutcomeOf(entity string, r Result) Outcome {
	o := Outcome{Entity: entity, Status: r.Status}
	if r.Error != nil {
		o.Code = r.Error.Code
	}
	for _, c := range r.Conflicts {
		o.Conflicts = append(o.Conflicts, c.Field)
	}
	return o
}

// Rejection is a rejected mutation (or WatermelonDB record) as remembered
// for the device's pulls and GET /v1/sync/rejections.
type Rejection struct {
	ID        int64 // its place in the device's list, set when stored
	Seq       int64 // 0 for a WatermelonDB record
	Entity    string
	RecordID  uuid.UUID
	Code      string
	Message   string
	Field     string
	CreatedAt time.Time
}

// ConflictRecord is a stored conflict, listed for the rep and their manager.
type ConflictRecord struct {
	ID       uuid.UUID
	Entity   string
	RecordID uuid.UUID
	Conflict Conflict
	UserID   uuid.UUID // who pushed the mutation
	DeviceID uuid.UUID
	// ServerUserID is whose device last wrote the stored value, when the
	// store knows (see Conflict.ServerDevice).
	ServerUserID *uuid.UUID
	Scope        Scope // the record's scope: who may see the conflict
	CreatedAt    time.Time
}

// ConflictPos is a place in the newest-first list of conflicts. One push's
// conflicts share a time, so the id breaks ties.
type ConflictPos struct {
	At time.Time
	ID uuid.UUID
}

// Position is a place in the change feed. Changes are ordered by the
// writing transaction's id (0 on SQLite, whose writers are serial) and then
// by version.
type Position struct {
	Txid    int64
	Version int64
}

// Before reports whether p comes before q in the feed.
func (p Position) Before(q Position) bool {
	if p.Txid != q.Txid {
		return p.Txid < q.Txid
	}
	return p.Version < q.Version
}

// Change is one entry of a pull: a record's full current state, or its
// tombstone when Record.Deleted.
type Change struct {
	Entity *Entity
	Record *Record
	Pos    Position
	// Doc, when set (Engine.PullDocs), is the record's pull encoding as
	// the store kept it with the feed — Entity.MarshalRecord's bytes —
	// and Record holds only its ID, Version, Deleted and UpdatedAt.
	Doc []byte
}

// Page is a native pull's page as the store reads it (Store.PullPage).
type Page struct {
	Changes []Change
	More    bool
	// LastSeq and Rejections are the device's last processed seq and its
	// latest rejections, newest first.
	LastSeq    int64
	Rejections []Rejection
	// Issued is the organisation's purge watermark (PurgedThrough) read
	// before the page's snapshot; Purged, read in it.
	Issued, Purged Position
}

// MaxFind bounds Tx.Find: it serves lookups by keys that match few rows.
const MaxFind = 1000

// Key names one record.
type Key struct {
	Entity string
	ID     uuid.UUID
}

// Tx is the storage work of one push, inside one transaction that holds
// the pushing device's lock.
type Tx interface {
	// LastSeq locks the device, then the records the push writes (the
	// keys given to Store.Push), until commit — writers of the same
	// records are serialised — and returns the device's last processed
	// seq. A push calls it first.
	LastSeq(ctx context.Context) (int64, error)
	// SetLastSeq records the device's last processed seq, and logs the
	// mutations processed up to it (see SeqLog).
	SetLastSeq(ctx context.Context, seq int64, log []LoggedMutation) error
	// SeqLog returns what the log holds of the device's processed
	// mutations with these seqs, and the first seq the log covers for the
	// device (seqs below it were processed before the log existed).
	SeqLog(ctx context.Context, seqs []int64) (map[int64]LoggedMutation, int64, error)
	// Load returns the stored records with these ids (tombstones too).
	Load(ctx context.Context, e *Entity, ids []uuid.UUID) (map[uuid.UUID]*Record, error)
	// Find returns live records whose fields equal the given values (nil
	// matches null), at most MaxFind of them.
	Find(ctx context.Context, e *Entity, where map[string]any) ([]*Record, error)
	// Range returns live records matching where whose Time field lies in
	// [from, to).
	Range(ctx context.Context, e *Entity, where map[string]any, field string, from, to time.Time) ([]*Record, error)
	// Latest is Range's newest limit records, newest first (equal times
	// by id, descending), leaving out the records whose ids are in skip.
	Latest(ctx context.Context, e *Entity, where map[string]any, field string, from, to time.Time, skip []uuid.UUID, limit int) ([]*Record, error)
	// Nearest answers look-ups, all at once: for each look-up and each of
	// its pivots, up to Limit live records matching Where that lie
	// strictly on Dir's side of the pivot in the order of the Time field
	// Field (ties by id), nearest first, leaving out the records whose ids
	// are in Skip. Each list is read from an index with ORDER BY … LIMIT,
	// whatever the number of records beyond it.
	Nearest(ctx context.Context, looks []StoreLook) ([][][]*Record, error)
	// User returns a user of the organisation. Errors: not_found.
	User(ctx context.Context, id uuid.UUID) (models.User, error)
	// Team returns a team of the organisation. Errors: not_found.
	Team(ctx context.Context, id uuid.UUID) (models.Team, error)
	// Org returns the organisation, with its settings.
	Org(ctx context.Context) (models.Org, error)
	// LockRecords takes the locks a push takes of the records it writes
	// (see Store.Push), until commit. Server work calls it (Context.Lock)
	// before it reads a record it will write back.
	LockRecords(ctx context.Context, keys []Key) error
	// Users lists the organisation's active users, or one team's.
	Users(ctx context.Context, teamID *uuid.UUID) ([]models.User, error)
	// NextVersions returns n new versions, increasing in commit order.
	NextVersions(ctx context.Context, n int) ([]int64, error)
	// Save upserts records and their change-feed entries.
	Save(ctx context.Context, e *Entity, recs []*Record) error
	SaveConflicts(ctx context.Context, cs []ConflictRecord) error
	SaveRejections(ctx context.Context, rs []Rejection) error
	// SaveJournal stores the entries hooks journaled (Context.Journal):
	// rows of the rules' own that are not synced records. It refuses an
	// entry of a type it does not keep.
	SaveJournal(ctx context.Context, entries []any) error
	// Due returns the records q selects (see DueQuery), oldest first, at
	// most q.Limit.
	Due(ctx context.Context, e *Entity, q DueQuery) ([]*Record, error)
	// FeedPositions returns the change-feed position of each record that
	// has one, as committed (the records are locked).
	FeedPositions(ctx context.Context, keys []Key) (map[Key]Position, error)
}

// Store is the storage the engine needs.
type Store interface {
	// Push runs fn in one transaction holding the lock of p's device and,
	// once LastSeq took them, of the records of keys (each once).
	// A transient failure is reported as models.ErrUnavailable.
	Push(ctx context.Context, p models.Principal, keys []Key, fn func(Tx) error) error
	// Server runs fn in one transaction of the organisation, for writes
	// the server makes itself (HTTP resources, scheduled jobs). LastSeq
	// and SetLastSeq are not to be called on its Tx.
	Server(ctx context.Context, orgID uuid.UUID, fn func(Tx) error) error
	// Pull returns up to limit changes after pos visible to p, and whether
	// more follow. It never returns a change of a transaction that might
	// still commit before an earlier one (see the store's comment).
	Pull(ctx context.Context, p models.Principal, entities map[string]*Entity, after Position, limit int) ([]Change, bool, error)
	// PullPage is Pull for a native pull, with the device's last seq and
	// up to rejections of its latest rejections, and the organisation's
	// purge watermark read before the page's snapshot and in it. With
	// docs, a change whose encoding the store kept carries it (Change.Doc).
	PullPage(ctx context.Context, p models.Principal, entities map[string]*Entity, after Position, limit, rejections int, docs bool) (Page, error)
	// Records returns every live record of an entity matching where,
	// outside a push, without their clocks.
	Records(ctx context.Context, orgID uuid.UUID, e *Entity, where map[string]any) ([]*Record, error)
	// DeviceState returns the device's last seq and its recent rejections.
	DeviceState(ctx context.Context, p models.Principal, limit int) (int64, []Rejection, error)
	// DeviceRejections lists the device's rejections, newest first, with
	// ids below before (0: from the newest).
	DeviceRejections(ctx context.Context, p models.Principal, before int64, limit int) ([]Rejection, error)
	// PurgeTombstones deletes up to limit of the organisation's tombstones
	// last written before before, with their feed rows, and records the
	// highest feed position it removed. It returns how many it removed.
	PurgeTombstones(ctx context.Context, orgID uuid.UUID, entities map[string]*Entity, before time.Time, limit int) (int, error)
	// PurgedThrough returns the highest feed position whose tombstone was
	// purged; a pull from below it may have missed a delete.
	PurgedThrough(ctx context.Context, orgID uuid.UUID) (Position, error)
	// Conflicts lists the conflicts p may see, newest first, after a
	// position in that order (the zero After starts at the newest).
	Conflicts(ctx context.Context, p models.Principal, after ConflictPos, limit int) ([]ConflictRecord, error)
}

// Engine applies pushes and serves pulls.
type Engine struct {
	store    Store
	entities map[string]*Entity
	now      func() time.Time
	log      *slog.Logger
}

// New returns an engine over store for the given entities.
func New(store Store, entities []*Entity, now func() time.Time, log *slog.Logger) *Engine {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := make(map[string]*Entity, len(entities))
	for _, e := range entities {
		m[e.Name] = e
	}
	return &Engine{store: store, entities: m, now: now, log: log}
}

// Find returns the live records of an entity matching where that p may
// see.
func (en *Engine) Find(ctx context.Context, p models.Principal, entity string, where map[string]any) ([]*Record, error) {
	e := en.entities[entity]
	if e == nil {
		return nil, fmt.Errorf("find: unknown entity %q", entity)
	}
	recs, err := en.store.Records(ctx, p.OrgID, e, where)
	if err != nil {
		return nil, err
	}
	out := recs[:0]
	for _, r := range recs {
		if e.Scope(r).Visible(p) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Get returns one record p may see, or not_found.
func (en *Engine) Get(ctx context.Context, p models.Principal, entity string, id uuid.UUID) (*Record, error) {
	recs, err := en.Find(ctx, p, entity, map[string]any{"id": id})
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, models.ErrNotFound
	}
	return recs[0], nil
}

// Entity returns a declared entity, or nil.
func (en *Engine) Entity(name string) *Entity { return en.entities[name] }

// Entities returns the declared entities by name.
func (en *Engine) Entities() map[string]*Entity { return en.entities }

// MaxSeq is the largest seq (and HLC ms) a device may use: the largest
// integer a JavaScript number holds exactly, so an app's counter never
// rounds.
const MaxSeq = 1<<53 - 1

// CheckBatch validates a batch's envelope before anything is read: the
// schema version, the batch size and the seq numbering, answered as one
// 4xx. Everything about one mutation (its entity, id, op, clock, fields)
// is that mutation's rejection instead (checkMutation): a phone running a
// newer app must still sync its other changes.
func (en *Engine) CheckBatch(schemaVersion int, muts []Mutation) error {
	if schemaVersion != SchemaVersion {
		return models.FieldErr(models.CodeUnsupportedSchema, fmt.Sprintf("schema_version %d is not supported; this server speaks %d", schemaVersion, SchemaVersion),
			"schema_version", fmt.Sprintf("must be %d", SchemaVersion))
	}
	if len(muts) > MaxBatch {
		return models.Errorf(models.CodeTooLarge, "a push carries at most %d mutations, got %d", MaxBatch, len(muts))
	}
	var prev int64
	for i, m := range muts {
		at := fmt.Sprintf("mutations[%d]", i)
		switch {
		case m.Seq <= 0 || m.Seq > MaxSeq:
			return models.FieldInvalid(at+".seq", "must be an integer between 1 and %d", MaxSeq)
		case i > 0 && m.Seq <= prev:
			return models.FieldInvalid(at+".seq", "must be greater than the previous mutation's seq (%d)", prev)
		}
		prev = m.Seq
	}
	return nil
}

// checkMutation refuses a mutation the engine cannot apply at all: an
// entity this server does not declare, a nil id (the API passes an id that
// is not a UUID as nil), an unknown op, a clock that is not one, an upsert
// without fields.
func (en *Engine) checkMutation(m Mutation) error {
	switch {
	case m.Malformed != nil:
		return m.Malformed
	case en.entities[m.Entity] == nil:
		return models.FieldErr(models.CodeUnknownEntity, fmt.Sprintf("this server has no entity %q", m.Entity), "entity", "is not an entity this server syncs")
	case m.ID == uuid.Nil:
		return models.FieldInvalid("id", "must be a client-generated UUID")
	case m.Op != OpUpsert && m.Op != OpDelete:
		return models.FieldInvalid("op", "must be upsert or delete")
	case m.HLC.MS <= 0 || m.HLC.Counter < 0:
		return models.FieldInvalid("hlc", "must carry a positive ms and a non-negative counter")
	case m.HLC.MS > MaxSeq:
		return models.FieldInvalid("hlc.ms", "must be an integer between 1 and %d", MaxSeq)
	case m.Op == OpUpsert && m.Fields == nil:
		return models.FieldErr(CodeMissingRequired, "fields is required for an upsert", "fields", "is required for an upsert")
	}
	return nil
}

// PushResult is the outcome of a push.
type PushResult struct {
	LastSeq int64
	Results []Result
}

// Push applies a device's batch exactly once: mutations at or below the
// device's last processed seq are duplicates; the rest are applied in seq
// order, each on its own merits. Everything — records, change feed,
// conflicts, rejections, the device's new seq — commits in one
// transaction, so a crash or a lost response leaves either all of it or
// none, and the retry then yields the same single effect.
func (en *Engine) Push(ctx context.Context, p models.Principal, muts []Mutation) (PushResult, error) {
	var out PushResult
	err := en.store.Push(ctx, p, mutationKeys(muts), func(tx Tx) error {
		b := &batch{en: en, tx: tx, ctx: ctx, p: p, now: en.now().UTC(), state: map[Key]*Record{}, dirty: map[Key]bool{}}
		res, last, err := b.run(muts)
		if err != nil {
			return err
		}
		out = PushResult{LastSeq: last, Results: res}
		return nil
	})
	if err != nil {
		return PushResult{}, err
	}
	return out, nil
}

// Server runs fn as the server's own unit of work in orgID: records fn
// puts are versioned, fed to pulls and passed through AfterWrite hooks,
// all in one transaction. p names the acting user for hooks (the zero
// Principal for scheduled jobs).
func (en *Engine) Server(ctx context.Context, p models.Principal, fn func(c *Context) error) error {
	return en.store.Server(ctx, p.OrgID, func(tx Tx) error {
		b := &batch{en: en, tx: tx, ctx: ctx, p: p, now: en.now().UTC(), state: map[Key]*Record{}, dirty: map[Key]bool{}, server: true}
		if err := fn(&Context{Context: ctx, P: p, Now: b.now, batch: b}); err != nil {
			return err
		}
		return b.flush()
	})
}

// batch is the state of one push while it is applied.
type batch struct {
	en    *Engine
	tx    Tx
	ctx   context.Context
	p     models.Principal
	now   time.Time
	state map[Key]*Record // records read or written by the batch, as they now stand
	dirty map[Key]bool
	order []Key // dirty keys in first-write order
	// stored marks the dirty keys that existed before the batch: their
	// stored copies are stale until flush (see Context.Nearest).
	stored map[Key]bool
	users  map[uuid.UUID]*models.User
	// written indexes the dirty keys by entity, and by owner where the
	// entity has one, for overlay: a server job that writes 100,000 score
	// entries and reads back one owner-day at a time must not scan them
	// all on every read.
	written written

	conflicts  []ConflictRecord
	rejections []Rejection
	journal    []any
	depth      int // nesting of AfterWrite hooks

	deferred     []deferredFn
	deferredKeys map[string]bool
	cache        map[string]any
	server       bool // Engine.Server's work, not a push
}

type deferredFn struct {
	c  *Context
	fn func(*Context) error
}

func (b *batch) run(muts []Mutation) ([]Result, int64, error) {
	last, err := b.tx.LastSeq(b.ctx)
	if err != nil {
		return nil, 0, err
	}
	results := make([]Result, len(muts))
	var todo, old []int
	for i, m := range muts {
		if m.Seq <= last {
			old = append(old, i)
			continue
		}
		todo = append(todo, i)
	}
	if len(old) > 0 {
		if err := b.judgeOld(muts, old, last, results); err != nil {
			return nil, 0, err
		}
	}
	if len(todo) == 0 {
		return results, last, nil
	}
	bad := map[int]Result{}
	valid := make([]int, 0, len(todo))
	for _, i := range todo {
		if err := b.en.checkMutation(muts[i]); err != nil {
			r, _ := rejectErr(err)
			r.Seq = muts[i].Seq
			bad[i] = r
			continue
		}
		valid = append(valid, i)
	}
	if err := b.prefetch(muts, valid); err != nil {
		return nil, 0, err
	}
	for _, i := range todo {
		m := muts[i]
		r, ok := bad[i]
		if !ok {
			if r, err = b.apply(m); err != nil {
				return nil, 0, err
			}
		}
		if r.Status == StatusRejected {
			b.rejections = append(b.rejections, Rejection{Seq: m.Seq, Entity: m.Entity, RecordID: m.ID,
				Code: r.Error.Code, Message: r.Error.Message, Field: r.Error.Field, CreatedAt: b.now})
		}
		results[i] = r
		last = m.Seq
	}
	if err := b.flush(); err != nil {
		return nil, 0, err
	}
	for i := range results {
		if k := results[i].key; k != nil {
			results[i].Version = b.state[*k].Version
		}
	}
	log := make([]LoggedMutation, len(todo))
	for i, j := range todo {
		log[i] = logged(muts[j])
	}
	if err := b.tx.SetLastSeq(b.ctx, last, log); err != nil {
		return nil, 0, err
	}
	return results, last, nil
}

// mutationKeys returns the records muts write, each once.
func mutationKeys(muts []Mutation) []Key {
	keys := make([]Key, 0, len(muts))
	seen := make(map[Key]bool, len(muts))
	for _, m := range muts {
		if k := (Key{m.Entity, m.ID}); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// prefetch loads every record the batch writes, and the records their
// reference fields name, with one query per entity. The records are
// locked already: LastSeq locked them.
func (b *batch) prefetch(muts []Mutation, todo []int) error {
	written := map[string][]uuid.UUID{}
	seen := map[Key]bool{}
	for _, i := range todo {
		k := Key{muts[i].Entity, muts[i].ID}
		if !seen[k] {
			seen[k] = true
			written[k.Entity] = append(written[k.Entity], k.ID)
		}
	}
	refs := map[string][]uuid.UUID{}
	for _, i := range todo {
		e := b.en.entities[muts[i].Entity]
		for name, raw := range muts[i].Fields {
			f := e.Field(name)
			if f == nil || f.Ref == "" {
				continue
			}
			s, err := decodeString(raw)
			if err != nil {
				continue
			}
			if id, err := uuid.Parse(s); err == nil && !seen[Key{f.Ref, id}] {
				seen[Key{f.Ref, id}] = true
				refs[f.Ref] = append(refs[f.Ref], id)
			}
		}
	}
	for _, group := range []map[string][]uuid.UUID{written, refs} {
		for name, ids := range group {
			e := b.en.entities[name]
			if e == nil {
				continue
			}
			recs, err := b.tx.Load(b.ctx, e, ids)
			if err != nil {
				return err
			}
			for id, r := range recs {
				b.state[Key{name, id}] = r
			}
		}
	}
	return nil
}

func reject(code, field, msg string) Result {
	return Result{Status: StatusRejected, Error: &RejectError{Code: code, Field: field, Message: msg}}
}

func rejectErr(err error) (Result, bool) {
	var me *models.Error
	if !errors.As(err, &me) || me.Code == models.CodeUnavailable || me.Code == models.CodeInternal {
		// A storage failure met inside a rule is not the mutation's fault:
		// it fails the push (503), and the retry applies it.
		return Result{}, false
	}
	code, field := me.Code, ""
	if len(me.Fields) > 0 {
		field = me.Fields[0].Field
	}
	if code == models.CodeInvalid {
		code = CodeInvalidValue
	}
	return reject(code, field, me.Message), true
}

// apply runs one mutation against the batch state. A rule the mutation
// breaks is a rejection (returned as a Result); only storage failures are
// errors, and they abort the whole push.
func (b *batch) apply(m Mutation) (Result, error) {
	r, err := b.applyOne(m)
	if err != nil {
		if rr, ok := rejectErr(err); ok {
			rr.Seq = m.Seq
			rr.ClockClamped = r.ClockClamped
			return rr, nil
		}
		return Result{}, err
	}
	r.Seq = m.Seq
	return r, nil
}

func (b *batch) applyOne(m Mutation) (Result, error) {
	e := b.en.entities[m.Entity]
	var res Result
	h, clamped := m.HLC.Clamp(b.now)
	h.Device = b.p.DeviceID.String()
	res.ClockClamped = clamped
	if e.ReadOnly {
		return res, models.Errorf(CodeReadOnly, "%s are computed by the server and cannot be written", m.Entity)
	}
	key := Key{m.Entity, m.ID}
	cur := b.state[key]
	c := &Context{Context: b.ctx, P: b.p, Now: b.now, batch: b, Entity: e, mut: &applying{h: h, base: m.BaseVersion, cur: cur}}
	if cur != nil && !e.Scope(cur).Visible(b.p) {
		return res, models.ErrNotFound
	}
	var (
		next      *Record
		conflicts []Conflict
	)
	if m.Op == OpDelete {
		if cur == nil {
			return res, models.Errorf(CodeNotFound, "%s %s does not exist", m.Entity, m.ID)
		}
		if cur.Deleted {
			res.Status, res.key = StatusApplied, &key
			return res, nil
		}
		if e.Prepare != nil {
			if err := e.Prepare(c, cur, nil); err != nil {
				return res, err
			}
		}
		next, conflicts = MergeDelete(e, cur, h, m.BaseVersion)
	} else {
		vals, owned, err := b.parseFields(e, m.ID, cur, m.Fields)
		if err != nil {
			return res, err
		}
		c.Sent = vals
		var base *Record
		switch {
		case cur == nil:
			base = b.newRecord(e, m.ID, h)
		case cur.Deleted:
			base = cur
		default:
			base = cur.Clone() // Prepare may set server-owned fields on it
		}
		if !base.Deleted && e.Prepare != nil {
			if err := e.Prepare(c, cur, base); err != nil {
				return res, err
			}
		}
		next, conflicts = MergeUpsert(e, base, vals, h, m.BaseVersion, 0)
		if !next.Deleted {
			if err := checkRequired(e, next); err != nil {
				return res, err
			}
			if e.Validate != nil {
				if err := e.Validate(c, cur, next); err != nil {
					return res, err
				}
			}
		}
		if err := checkOwned(owned, cur, next); err != nil {
			return res, err
		}
		conflicts = c.mut.addResolved(conflicts)
	}
	res.Status = StatusApplied
	if len(conflicts) > 0 {
		res.Status, res.Conflicts = StatusMerged, conflicts
		for _, cf := range conflicts {
			b.conflicts = append(b.conflicts, ConflictRecord{
				ID: uuid.New(), Entity: e.Name, RecordID: m.ID, Conflict: cf, UserID: b.p.UserID,
				DeviceID: b.p.DeviceID, Scope: e.Scope(next), CreatedAt: b.now,
			})
		}
	}
	res.key = &key
	if cur != nil && cur.Deleted { // an update that lost to a delete changes nothing
		return res, nil
	}
	if err := b.put(c, e, cur, next); err != nil {
		return res, err
	}
	return res, nil
}

// put records next as the new state of a record and runs the entity's
// AfterWrite hook. A hook's own puts run theirs in turn.
func (b *batch) put(c *Context, e *Entity, cur, next *Record) error {
	if key := (Key{e.Name, next.ID}); !b.dirty[key] && cur != nil {
		// Listed under its stored owner too: look-ups by that owner must
		// leave out its stale stored copy.
		if b.stored == nil {
			b.stored = map[Key]bool{}
		}
		b.stored[key] = true
		b.written.add(e, key, cur)
	}
	b.record(e, next)
	if len(e.AfterWrite) == 0 {
		return nil
	}
	b.depth++
	defer func() { b.depth-- }()
	if b.depth > 8 {
		return fmt.Errorf("after-write hooks of %s recurse too deeply", e.Name)
	}
	hc := *c
	hc.Entity = e
	for _, h := range e.AfterWrite {
		if err := h(&hc, cur, next); err != nil {
			return err
		}
	}
	return nil
}

// record notes next as the new state of a record, to be written at flush.
func (b *batch) record(e *Entity, next *Record) {
	key := Key{e.Name, next.ID}
	next.UpdatedAt = b.now
	b.state[key] = next
	if !b.dirty[key] {
		b.dirty[key] = true
		b.order = append(b.order, key)
	}
	b.written.add(e, key, next)
}

// newRecord is a record about to be created: defaults applied, stamped h.
func (b *batch) newRecord(e *Entity, id uuid.UUID, h HLC) *Record {
	r := &Record{ID: id, CreatedAt: b.now, UpdatedAt: b.now, Values: map[string]any{}, Clocks: map[string]FieldClock{}, CreatedBy: b.p.DeviceID}
	for i := range e.Fields {
		f := &e.Fields[i]
		if f.Default != nil {
			r.Values[f.Name] = f.Default
			r.Clocks[f.Name] = FieldClock{HLC: h}
		}
	}
	return r
}

// parseFields parses the fields a client sent, refusing unknown ones by
// name. Server-owned fields are not merged: an empty default or an echo of
// an audit field is dropped here, and any other value is returned in owned,
// for checkOwned to hold against what the server holds and sets (see
// owned.go).
func (b *batch) parseFields(e *Entity, id uuid.UUID, cur *Record, raw map[string]json.RawMessage) (vals, owned map[string]any, err error) {
	vals = make(map[string]any, len(raw))
	for _, name := range sortedKeys(raw) {
		f := e.Field(name)
		switch {
		case f == nil || f.Hidden:
			if isAudit(name) {
				if isEmptyDefault(raw[name]) || sentAudit(name, raw[name], id, cur) {
					continue
				}
				return nil, nil, ownedErr(name)
			}
			return nil, nil, models.FieldErr(CodeUnknownField, fmt.Sprintf("%s has no field %q", e.Name, name), name, "is not a field of "+e.Name)
		case f.Access != ClientWritable && isEmptyDefault(raw[name]):
			continue
		case f.Access == ServerOwned:
			v, ok := ownedValue(f, raw[name], b.now)
			if !ok {
				return nil, nil, ownedErr(name)
			}
			if owned == nil {
				owned = map[string]any{}
			}
			owned[name] = v
			continue
		}
		v, err := f.Parse(raw[name], b.now)
		if err != nil {
			return nil, nil, err
		}
		if f.Access == SelfOnly && v != nil && v != any(b.p.UserID) {
			if err := b.checkSelfOnly(f, v); err != nil {
				return nil, nil, err
			}
		}
		vals[name] = v
	}
	return vals, owned, nil
}

// checkSelfOnly lets a rep name only themselves in a SelfOnly field, a
// manager a member of their team, and an admin anyone in the organisation.
func (b *batch) checkSelfOnly(f *Field, v any) error {
	id, _ := v.(uuid.UUID)
	if id == b.p.UserID {
		return nil
	}
	deny := models.FieldErr(CodeServerOwned, f.Name+" must be your own id", f.Name, "must be your own id")
	if b.p.Role == models.RoleRep {
		return deny
	}
	u, err := b.user(id)
	if models.ErrorCode(err) == models.CodeNotFound {
		return deny
	}
	if err != nil {
		return err
	}
	if b.p.Role == models.RoleManager && (u.TeamID == nil || b.p.TeamID == nil || *u.TeamID != *b.p.TeamID) {
		return deny
	}
	return nil
}

func isAudit(name string) bool {
	switch name {
	case "id", "version", "created_at", "updated_at", "deleted", "deleted_at":
		return true
	}
	return false
}

func checkRequired(e *Entity, r *Record) error {
	for i := range e.Fields {
		f := &e.Fields[i]
		if f.Required && r.Values[f.Name] == nil {
			return models.FieldErr(CodeMissingRequired, f.Name+" is required", f.Name, "is required")
		}
	}
	return nil
}

func (b *batch) user(id uuid.UUID) (models.User, error) {
	if u, ok := b.users[id]; ok {
		return *u, nil
	}
	u, err := b.tx.User(b.ctx, id)
	if err != nil {
		return u, err
	}
	if b.users == nil {
		b.users = map[uuid.UUID]*models.User{}
	}
	b.users[id] = &u
	return u, nil
}

// flush runs the deferred work, then writes the batch's dirty records with
// new versions, and its conflicts and rejections.
func (b *batch) flush() error {
	// Deferred work may defer more (a recomputed score moves a standing,
	// which re-ranks the contest); run until none is left.
	for len(b.deferred) > 0 {
		d := b.deferred[0]
		b.deferred = b.deferred[1:]
		if err := d.fn(d.c); err != nil {
			return err
		}
	}
	if len(b.order) > 0 {
		versions, err := b.tx.NextVersions(b.ctx, len(b.order))
		if err != nil {
			return err
		}
		byEntity := map[string][]*Record{}
		var names []string
		for i, k := range b.order {
			r := b.state[k]
			r.Version = versions[i]
			clocks := r.FieldClocks()
			for name, fc := range clocks {
				if fc.Version == 0 {
					fc.Version = r.Version
					clocks[name] = fc
				}
			}
			if byEntity[k.Entity] == nil {
				names = append(names, k.Entity)
			}
			byEntity[k.Entity] = append(byEntity[k.Entity], r)
		}
		// Rows are written in one order whatever the batch did first —
		// entities by name, records by id — so that two pushes updating
		// the same rows (a team's standings) lock them in the same order
		// and never deadlock.
		sort.Strings(names)
		for _, name := range names {
			recs := byEntity[name]
			sort.Slice(recs, func(i, j int) bool { return bytes.Compare(recs[i].ID[:], recs[j].ID[:]) < 0 })
			b.dropNonFinite(b.en.entities[name], byEntity[name])
			if err := b.tx.Save(b.ctx, b.en.entities[name], byEntity[name]); err != nil {
				return err
			}
		}
	}
	if len(b.conflicts) > 0 {
		if err := b.tx.SaveConflicts(b.ctx, b.conflicts); err != nil {
			return err
		}
	}
	if len(b.rejections) > 0 {
		if err := b.tx.SaveRejections(b.ctx, b.rejections); err != nil {
			return err
		}
	}
	if len(b.journal) > 0 {
		if err := b.tx.SaveJournal(b.ctx, b.journal); err != nil {
			return err
		}
	}
	return nil
}

// Context is what entity hooks see of a push.
type Context struct {
	context.Context
	P      models.Principal
	Now    time.Time
	Entity *Entity
	// Sent holds the parsed fields of the mutation being applied (nil for
	// a delete).
	Sent  map[string]any
	batch *batch
	mut   *applying // the client mutation being applied; nil in server work
}

// Lookup returns a record as the batch now sees it (its own writes
// included), or nil when it does not exist, is deleted, or p may not see
// it.
func (c *Context) Lookup(entity string, id uuid.UUID) (*Record, error) {
	e := c.batch.en.entities[entity]
	k := Key{entity, id}
	r, ok := c.batch.state[k]
	if !ok {
		recs, err := c.batch.tx.Load(c, e, []uuid.UUID{id})
		if err != nil {
			return nil, err
		}
		r = recs[id]
		c.batch.state[k] = r
	}
	if r == nil || r.Deleted || !e.Scope(r).Visible(c.P) {
		return nil, nil
	}
	return r, nil
}

// User returns a user of the caller's organisation. Errors: not_found.
func (c *Context) User(id uuid.UUID) (models.User, error) { return c.batch.user(id) }

// Team returns a team of the organisation, cached for the batch.
func (c *Context) Team(id uuid.UUID) (models.Team, error) {
	v, err := c.Cached("team:"+id.String(), func() (any, error) { return c.batch.tx.Team(c, id) })
	if err != nil {
		return models.Team{}, err
	}
	return v.(models.Team), nil
}

// Lock takes a record's lock until the server's work commits, the lock a
// push holds on each record it writes. Server work that reads a record a
// phone may be pushing at the same moment, and writes it back, locks it
// first: otherwise, on PostgreSQL, it could read the record as it was
// before the push committed and write that back over the push's changes.
// It must come before the record is first read in the batch, and only in
// Engine.Server (a push takes its locks up front, in one order).
func (c *Context) Lock(entity string, id uuid.UUID) error {
	k := Key{entity, id}
	if !c.batch.server {
		return fmt.Errorf("lock %s %s: only server work locks records", entity, id)
	}
	if _, read := c.batch.state[k]; read {
		return fmt.Errorf("lock %s %s: already read in this batch", entity, id)
	}
	return c.batch.tx.LockRecords(c, []Key{k})
}

// Org returns the organisation and its settings, read once per batch.
func (c *Context) Org() (models.Org, error) {
	v, err := c.Cached("org", func() (any, error) { return c.batch.tx.Org(c) })
	if err != nil {
		return models.Org{}, err
	}
	return v.(models.Org), nil
}

// Users lists the organisation's active users, or one team's.
func (c *Context) Users(teamID *uuid.UUID) ([]models.User, error) { return c.batch.tx.Users(c, teamID) }

// Cached returns the value computed for key in this batch, computing it
// once.
func (c *Context) Cached(key string, compute func() (any, error)) (any, error) {
	if v, ok := c.batch.cache[key]; ok {
		return v, nil
	}
	v, err := compute()
	if err != nil {
		return nil, err
	}
	if c.batch.cache == nil {
		c.batch.cache = map[string]any{}
	}
	c.batch.cache[key] = v
	return v, nil
}

// Journal stores entry in the batch's transaction when it commits: an
// audit row of the rules that is not a synced record (the store's
// SaveJournal says which types it keeps).
func (c *Context) Journal(entry any) { c.batch.journal = append(c.batch.journal, entry) }

// Forget drops a cached value, after the caller changed what it holds.
func (c *Context) Forget(key string) { delete(c.batch.cache, key) }

// Defer schedules fn to run once per key before the batch is written, after
// every mutation was applied: a push of 500 visits recomputes each affected
// score bucket once, not 500 times.
func (c *Context) Defer(key string, fn func(*Context) error) {
	if c.batch.deferredKeys == nil {
		c.batch.deferredKeys = map[string]bool{}
	}
	if c.batch.deferredKeys[key] {
		return
	}
	c.batch.deferredKeys[key] = true
	cc := *c
	c.batch.deferred = append(c.batch.deferred, deferredFn{c: &cc, fn: func(c *Context) error {
		delete(c.batch.deferredKeys, key)
		return fn(c)
	}})
}

// Range returns the live records of an entity matching where whose Time
// field lies in [from, to), as the batch now sees them: stored records
// overlaid with the batch's own writes.
func (c *Context) Range(entity string, where map[string]any, field string, from, to time.Time) ([]*Record, error) {
	e := c.batch.en.entities[entity]
	if e == nil {
		return nil, fmt.Errorf("range: unknown entity %q", entity)
	}
	stored, err := c.batch.tx.Range(c, e, where, field, from, to)
	if err != nil {
		return nil, err
	}
	return c.overlay(e, stored, where, func(r *Record) bool {
		t := r.TimeValue(field)
		return t != nil && !t.Before(from) && t.Before(to)
	}), nil
}

// Find returns live records of an entity matching where, as the batch now
// sees them.
func (c *Context) Find(entity string, where map[string]any) ([]*Record, error) {
	e := c.batch.en.entities[entity]
	if e == nil {
		return nil, fmt.Errorf("find: unknown entity %q", entity)
	}
	stored, err := c.batch.tx.Find(c, e, where)
	if err != nil {
		return nil, err
	}
	return c.overlay(e, stored, where, func(*Record) bool { return true }), nil
}

// Latest returns the newest limit records Range would return, newest first
// (equal times by id, descending), as the batch now sees them: it reads
// limit rows however long the range, where Range reads them all.
func (c *Context) Latest(entity string, where map[string]any, field string, from, to time.Time, limit int) ([]*Record, error) {
	e := c.batch.en.entities[entity]
	if e == nil {
		return nil, fmt.Errorf("latest: unknown entity %q", entity)
	}
	// The store leaves out every record the batch wrote, whose stored
	// state is stale; the batch's own state of those that match is added.
	dirty := c.batch.written.byEntity[entity]
	skip := make([]uuid.UUID, len(dirty))
	for i, k := range dirty {
		skip[i] = k.ID
	}
	out, err := c.batch.tx.Latest(c, e, where, field, from, to, skip, limit)
	if err != nil {
		return nil, err
	}
	keep := func(r *Record) bool {
		t := r.TimeValue(field)
		return t != nil && !t.Before(from) && t.Before(to)
	}
	seen := map[uuid.UUID]bool{}
	for _, k := range c.batch.written.keys(e, where) {
		if r := c.batch.state[k]; !seen[k.ID] && matches(r, where, keep) {
			seen[k.ID] = true
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].TimeValue(field), out[j].TimeValue(field)
		if !a.Equal(*b) {
			return a.After(*b)
		}
		return bytes.Compare(out[i].ID[:], out[j].ID[:]) > 0
	})
	return out[:min(len(out), limit)], nil
}

// matches tells whether r is a live record whose fields equal where's and
// that keep accepts.
func matches(r *Record, where map[string]any, keep func(*Record) bool) bool {
	if r == nil || r.Deleted || !keep(r) {
		return false
	}
	for k, v := range where {
		if _, ok := v.(NotNull); ok {
			if r.Values[k] == nil {
				return false
			}
		} else if set, ok := v.(AnyOf); ok {
			if !slices.ContainsFunc(set, func(v any) bool { return Equal(r.Values[k], v) }) {
				return false
			}
		} else if !Equal(r.Values[k], v) {
			return false
		}
	}
	return true
}

// AnyOf, as a value of a where map, matches a field equal to any of its
// values; a nil among them matches a field that is null.
type AnyOf []any

// overlay replaces stored records by the batch's state of them and adds
// the batch's records that match, so hooks see their own batch's writes.
func (c *Context) overlay(e *Entity, stored []*Record, where map[string]any, keep func(*Record) bool) []*Record {
	out := make([]*Record, 0, len(stored))
	seen := make(map[uuid.UUID]bool, len(stored))
	for _, r := range stored {
		seen[r.ID] = true
		if cur, ok := c.batch.state[Key{e.Name, r.ID}]; ok {
			r = cur
		}
		if matches(r, where, keep) {
			out = append(out, r)
		}
	}
	for _, k := range c.batch.written.keys(e, where) {
		if seen[k.ID] {
			continue
		}
		seen[k.ID] = true
		if r := c.batch.state[k]; matches(r, where, keep) {
			out = append(out, r)
		}
	}
	return out
}

// written indexes a batch's dirty keys by entity and by owner (the
// entity's Owner field). A key is listed under every owner it was written
// with; overlay's match checks the record as it now stands.
type written struct {
	byEntity map[string][]Key
	byOwner  map[string]map[uuid.UUID][]Key
	owner    map[Key]uuid.UUID // the owner a key was last listed under
	listed   map[Key]bool
}

func (w *written) add(e *Entity, k Key, r *Record) {
	if w.listed == nil {
		w.byEntity, w.byOwner, w.owner, w.listed = map[string][]Key{}, map[string]map[uuid.UUID][]Key{}, map[Key]uuid.UUID{}, map[Key]bool{}
	}
	if !w.listed[k] {
		w.listed[k] = true
		w.byEntity[k.Entity] = append(w.byEntity[k.Entity], k)
	}
	if e.Owner == "" {
		return
	}
	owner, ok := r.Values[e.Owner].(uuid.UUID)
	if !ok {
		return
	}
	if last, listed := w.owner[k]; listed && last == owner {
		return
	}
	w.owner[k] = owner
	if w.byOwner[k.Entity] == nil {
		w.byOwner[k.Entity] = map[uuid.UUID][]Key{}
	}
	w.byOwner[k.Entity][owner] = append(w.byOwner[k.Entity][owner], k)
}

// keys lists the dirty keys of an entity that may match where, in
// first-write order.
func (w *written) keys(e *Entity, where map[string]any) []Key {
	if e.Owner != "" {
		if owner, ok := where[e.Owner].(uuid.UUID); ok {
			return w.byOwner[e.Name][owner]
		}
	}
	return w.byEntity[e.Name]
}

// Equal reports whether two field values are the same: times by instant,
// everything else by ==; nil equals only nil.
func Equal(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return a == b
}

// Get returns a record as the batch now sees it, whoever may see it, or
// nil when it does not exist. Tombstones are returned.
func (c *Context) Get(entity string, id uuid.UUID) (*Record, error) {
	e := c.batch.en.entities[entity]
	if e == nil {
		return nil, fmt.Errorf("get: unknown entity %q", entity)
	}
	k := Key{entity, id}
	if r, ok := c.batch.state[k]; ok {
		return r, nil
	}
	recs, err := c.batch.tx.Load(c, e, []uuid.UUID{id})
	if err != nil {
		return nil, err
	}
	c.batch.state[k] = recs[id]
	return recs[id], nil
}

// Put writes a record as the server: no client rules apply, the record
// gets a new version at commit and reaches pulls like any other change,
// and the entity's AfterWrite hook runs. r replaces the stored state; to
// change a stored record, Get it, Clone it and Put the clone.
func (c *Context) Put(entity string, r *Record) error {
	e := c.batch.en.entities[entity]
	if e == nil {
		return fmt.Errorf("put: unknown entity %q", entity)
	}
	cur, err := c.Get(entity, r.ID)
	if err != nil {
		return err
	}
	if cur == nil && r.CreatedAt.IsZero() {
		r.CreatedAt = c.batch.now
	}
	if r.Values == nil {
		r.Values = map[string]any{}
	}
	r.FieldClocks() // decodes stored clocks, or starts an empty set
	return c.batch.put(c, e, cur, r)
}

// PutNew writes r only if no record with its id exists yet, and reports
// whether it did. With ids derived from a dedupe key (NameID), it makes a
// trigger fire once however often the change behind it is replayed.
func (c *Context) PutNew(entity string, r *Record) (bool, error) {
	cur, err := c.Get(entity, r.ID)
	if err != nil || cur != nil {
		return false, err
	}
	return true, c.Put(entity, r)
}

// NameID derives a stable record id from an organisation and a key.
func NameID(orgID uuid.UUID, key string) uuid.UUID {
	return uuid.NewSHA1(orgID, []byte(key))
}
