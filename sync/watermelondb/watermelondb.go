// Package watermelondb adapts the sync engine to WatermelonDB's sync protocol
// (https://watermelondb.dev/docs/Sync/Backend): a React Native app calls
// synchronize(), which pulls `{changes, timestamp}` since its
// `last_pulled_at`, applies them, and pushes its local changes with that
// timestamp. Pushes go through the same batch machinery as the native
// protocol (rules, scope, server-owned fields, hooks, conflicts), pulls
// through the same gap-free change feed. What WatermelonDB lacks — a
// device seq, client clocks, a reset signal — is made up for here, as
// follows.
//
// # The timestamp
//
// `timestamp` (which the client sends back as `last_pulled_at`) is not a
// clock. It is a position in the change feed below which the client has
// seen everything it may see, plus a fingerprint of the scope it was issued
// under, packed into one positive integer below 2^53 so that JavaScript
// holds it exactly:
//
//	timestamp = value << 13 | scope       (value < 2^40, 1 <= scope < 2^13)
//
// value is the feed horizon the pull read up to (Store.FeedHorizon, taken
// before the pull's first page):
//
//   - On PostgreSQL, one below the oldest transaction id among the
//     organisation's feed writers still running (or the next id, when none
//     is): every writer with an id at or below it had finished when the
//     pull began, so every feed row they wrote was visible to every page
//     of the pull (each page only hides rows of writers at or above its
//     own, later, horizon). Decoded, it
//     is Position{Txid: value, Version: MaxInt64}: "everything written by
//     transactions up to value".
//   - On SQLite, writers are serial and versions are handed out in commit
//     order: value is the last committed version, Position{Version: value}.
//
// A pull reads the feed from last_pulled_at up to the horizon and stops
// there. Changes committed while it runs land above the horizon (their
// transactions are newer than the organisation's oldest feed writer
// running when it began, or their versions larger than the last committed
// one) and are left for the next pull, so no change is ever skipped, and
// no record appears twice in one response. Because horizons only grow, a user's timestamps never go
// backwards while their scope stays the same (WatermelonDB logs it when
// they do; after a scope change with no write anywhere in between, on
// SQLite, they may). A timestamp whose value lies beyond the
// current horizon (a database restored from a backup, a forged number) is
// treated like a scope change below: a full resync.
//
// The 13 low bits fingerprint the organisation, user, role and team the
// timestamp was issued to (FNV-1a, reduced to 1..8191). A role or team
// change makes the fingerprint differ, and the next pull is a full
// replacement sync (see below). Unlike the native cursor, which carries
// role and team exactly, a number has no room for them: two scopes share
// a fingerprint with probability 1/8191, and such a change goes unnoticed
// (signing out, which resets the local database, recovers from it).
//
// # Pull
//
// Records are sent as WatermelonDB raw records: the native wire names,
// `id`, `version`, `created_at` and `updated_at`, times as Unix
// milliseconds, JSON fields as JSON text in a string; never `_status` or
// `_changed`. Tombstones go to `deleted`. A live record goes to `created`
// only when the client provably cannot hold it, and to `updated` otherwise
// (WatermelonDB creates an `updated` record it lacks, but re-creates a
// `created` one the user deleted locally and has not pushed yet: a
// resurrected delete):
//
//   - never when the pulling device created it (sync_changes.created_by):
//     the device echoes its own creates as updates;
//   - on the first pull (last_pulled_at null), every other live record;
//   - on later pulls, a record whose only write is the one being sent
//     (created_version = version: it never had a feed position at or below
//     last_pulled_at), or, on SQLite, whose creating version lies above
//     last_pulled_at.
//
// The first pull skips tombstones: the client holds nothing yet.
//
// Scope: a user's role or team change (a fingerprint mismatch) answers a
// full sync from the start of the feed with `experimentalStrategy:
// "replacement"` (WatermelonDB 0.25+): every visible record as `updated`,
// every visible tombstone in `deleted`, every table listed. WatermelonDB
// then destroys local records absent from the pull — those that left the
// user's scope — except its unpushed creates, and keeps its unpushed
// deletes of records still present, since `updated` never re-creates a
// locally deleted record. A pull naming a `migration` is answered with the
// same full sync without replacement, so newly added columns are filled.
//
// # Push
//
// The push applies in one transaction: a stale record refuses all of it,
// a record the rules refuse is left out of it:
//
//  1. Conflicts. If a pushed record changed after last_pulled_at, i.e.
//     its feed position lies above it, and its latest write is not this
//     device's own, nothing is applied and the answer is 409 listing
//     every such {table, id}: the client pulls, merges per column and
//     pushes again, as WatermelonDB's documentation prescribes. The
//     latest write counts as the device's own when a field clock of the
//     record's current version carries the device: a push whose response
//     was lost, retried with the same last_pulled_at, is not a conflict
//     with itself (which would loop forever). A delete of a deleted record
//     never conflicts, and a record out of the caller's sight is left to
//     the rules (step 3: not_found), never reported, which would reveal it.
//  2. Rows become mutations. `_status` and `_changed` are stripped, and so
//     are `version`, `created_at` and `updated_at` (WatermelonDB maintains
//     its own). An `updated` row of a record the server holds sends only
//     its `_changed` columns; a `created` row (or an update of a record the
//     server lacks) sends every column, except nulls the client did not
//     change, so defaults apply and null server-owned columns are not
//     offered. Columns equal to the stored values are dropped, and a
//     record left with none is not written at all. A server-owned column
//     the client really changed is offered, and rejected. (One exception
//     to "not written": when the client already pulled the stored version
//     yet sends other audit values — WatermelonDB keeps its own
//     updated_at when the echo of a push whose response was lost arrives
//     while the edit is still pending — the record is given a new version,
//     unchanged and without running hooks, so the next pull corrects the
//     client's copy.)
//  3. Each mutation is applied by the engine's batch, in dependency order
//     (tables referenced by others first, deletes last), under the native
//     rules. A record the rules refuse is left out, with its refusal
//     recorded for the device (GET /v1/sync/rejections), and so is a record
//     whose reference column names a record this push refused
//     (dependency_rejected), and every created or updated record of a
//     table this server does not sync (unknown_entity; deletes there are
//     no-ops). The rest is applied and committed, and the refused ids are
//     answered in experimentalRejectedIds. WatermelonDB (0.28,
//     sync/impl/markAsSynced.js) then marks every pushed record synced
//     except those, which stay dirty and are pushed again next time: one
//     bad record never blocks the device's other changes. A refusal
//     applies nothing of that record, since the engine rejects before it
//     writes.
//
// WatermelonDB has no client clock, so each written record is stamped
// with the server's receipt time, or just after the newest field clock of
// the stored record when that is later (a native device's clock may run
// up to five minutes ahead): the push has seen the stored state (step 1),
// so its edit is causally later and wins the fields it changed. Fields it
// did not change keep their clocks, so a concurrent native edit of another
// field survives the per-field merge.
//
// Exactly once without a seq: a WatermelonDB push carries states, not
// operations. `created` is an upsert, deleting a missing or deleted record
// (or one out of the caller's sight, which is missing to them) is a no-op,
// and equal values are dropped, so a push applied twice — a
// retry after a lost response, with the same or a newer last_pulled_at —
// writes nothing the second time (no new version, no hook runs again) and
// succeeds. The device's pushes are serialised by its device lock, so a
// retry racing the original waits for it and then finds nothing to do.
//
// An upsert of a record deleted on the server loses (delete wins, and the
// conflict is recorded as in the native protocol); the tombstone is then
// written again so that it moves past the client's last_pulled_at and the
// client's next pull deletes its copy rather than keeping it forever.
package watermelondb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// WatermelonDB protocol limits.
const (
	// PageSize is how many feed entries a WatermelonDB pull
	// reads at a time; the response is assembled page by page.
	PageSize = engine.DefaultPullLimit
	// MaxPush is the most records one WatermelonDB push may
	// carry. WatermelonDB pushes everything pending at once, so it is
	// more generous than MaxBatch; the body limit applies as well.
	MaxPush = 5000
	// MaxTimestamp is the largest timestamp: JavaScript's
	// Number.MAX_SAFE_INTEGER.
	MaxTimestamp = 1<<53 - 1

	wmScopeBits = 13
	wmValueBits = 40
)

// Store is what the WatermelonDB protocol needs of storage besides the
// engine.
type Store interface {
	// FeedHorizon returns a position at or below which every change has
	// committed and is visible to every pull that starts afterwards, and
	// above which every later change will land. It only grows.
	FeedHorizon(ctx context.Context, orgID uuid.UUID) (engine.Position, error)
	// CreatedVersions returns the version the first write of each record
	// produced, for the records of the organisation that exist.
	CreatedVersions(ctx context.Context, orgID uuid.UUID, keys []engine.Key) (map[engine.Key]int64, error)
}

// Protocol serves WatermelonDB's pulls and pushes over an engine.
type Protocol struct {
	en    *engine.Engine
	store Store
}

// New returns the protocol over en, whose storage is store.
func New(en *engine.Engine, store Store) *Protocol {
	return &Protocol{en: en, store: store}
}

// wmScope fingerprints who a timestamp was issued to, in 1..8191.
func wmScope(p models.Principal) int64 {
	h := fnv.New32a()
	h.Write(p.OrgID[:])
	h.Write(p.UserID[:])
	h.Write([]byte(p.Role))
	if p.TeamID != nil {
		h.Write(p.TeamID[:])
	}
	return int64(h.Sum32()%(1<<wmScopeBits-1)) + 1
}

// encodeTimestamp packs a feed horizon and a scope fingerprint
// (see the file comment).
func encodeTimestamp(h engine.Position, scope int64) (int64, error) {
	v := h.Version
	if h.Txid != 0 {
		v = h.Txid
	}
	if v < 0 || v >= 1<<wmValueBits {
		return 0, fmt.Errorf("watermelondb: feed position %d does not fit a timestamp", v)
	}
	return v<<wmScopeBits | scope, nil
}

// decodeTimestamp unpacks a timestamp into the feed position it
// stands for, in the form of the current horizon h. ok is false when the
// position lies beyond h: this server never issued it.
func decodeTimestamp(ts int64, h engine.Position) (pos engine.Position, scope int64, ok bool) {
	v, scope := ts>>wmScopeBits, ts&(1<<wmScopeBits-1)
	if h.Txid != 0 {
		return engine.Position{Txid: v, Version: math.MaxInt64}, scope, v <= h.Txid
	}
	return engine.Position{Version: v}, scope, v <= h.Version
}

// Kind is the list of a pull a change goes to.
type Kind int

// Kinds of WatermelonDB changes.
const (
	Created Kind = iota
	Updated
	Deleted
)

// PullRequest is a WatermelonDB pull.
type PullRequest struct {
	// LastPulledAt is the client's last timestamp; 0 when it never pulled.
	LastPulledAt int64
	// Migration is set when the client names a schema migration: it
	// needs full records to fill the columns it added.
	Migration bool
}

// PullResult ends a WatermelonDB pull.
type PullResult struct {
	Timestamp int64
	// Replacement asks the client to replace its tables with the pulled
	// records (experimentalStrategy "replacement"): the user's scope
	// changed.
	Replacement bool
}

type wmMode int

const (
	wmInitial     wmMode = iota // never pulled: created, no tombstones
	wmIncremental               // since last_pulled_at
	wmFull                      // from the start, all as updated (migration)
	wmReplace                   // from the start, all as updated, replacement (scope changed)
)

// WatermelonPull streams the changes p may see since req.LastPulledAt to
// emit, page by page, each with the list it belongs to, and returns the
// new timestamp. Nothing is held in memory beyond one page. emit must not
// keep the Change after it returns.
func (w *Protocol) Pull(ctx context.Context, p models.Principal, req PullRequest, emit func(Kind, engine.Change) error) (PullResult, error) {
	horizon, err := w.store.FeedHorizon(ctx, p.OrgID)
	if err != nil {
		return PullResult{}, err
	}
	scope := wmScope(p)
	mode := wmInitial
	var after engine.Position
	if req.LastPulledAt > 0 {
		pos, sc, ok := decodeTimestamp(req.LastPulledAt, horizon)
		switch {
		case !ok || sc != scope:
			mode = wmReplace
		case req.Migration:
			mode = wmFull
		default:
			mode, after = wmIncremental, pos
		}
	}
	// A client that last pulled below a purged tombstone may hold a record
	// whose delete it can no longer be told: it gets a replacement sync.
	purgedAbove := func(pos engine.Position) (bool, error) {
		purged, err := w.en.PurgedThrough(ctx, p.OrgID)
		return pos.Before(purged), err
	}
	if mode == wmIncremental {
		below, err := purgedAbove(after)
		if err != nil {
			return PullResult{}, err
		}
		if below {
			mode, after = wmReplace, engine.Position{}
		}
	}
	since := after
	for {
		changes, more, err := w.en.PullFrom(ctx, p, after, PageSize)
		if err != nil {
			return PullResult{}, err
		}
		done := !more
		n := len(changes)
		for i, ch := range changes {
			if horizon.Before(ch.Pos) {
				// Written after the pull began: the next pull's.
				n, done = i, true
				break
			}
		}
		page := changes[:n]
		var created map[engine.Key]int64
		if mode == wmIncremental {
			if created, err = w.createdVersions(ctx, p, page); err != nil {
				return PullResult{}, err
			}
		}
		for _, ch := range page {
			kind, send := wmClassify(mode, p, since, ch, created)
			if !send {
				continue
			}
			if err := emit(kind, ch); err != nil {
				return PullResult{}, err
			}
		}
		if done {
			break
		}
		if len(changes) == 0 {
			// A whole page of feed entries this build cannot load: the
			// position cannot move past them.
			return PullResult{}, fmt.Errorf("watermelondb pull: no progress after %+v", after)
		}
		after = changes[len(changes)-1].Pos
	}
	if mode == wmIncremental {
		// A purge that committed while the pages were read may have taken
		// a delete this response should carry; the retry replaces.
		if below, err := purgedAbove(since); err != nil || below {
			return PullResult{}, errors.Join(models.ErrUnavailable, err)
		}
	}
	ts, err := encodeTimestamp(horizon, scope)
	if err != nil {
		return PullResult{}, err
	}
	return PullResult{Timestamp: ts, Replacement: mode == wmReplace}, nil
}

// createdVersions looks up the creating versions of the live records of a
// page that the device did not create itself.
func (w *Protocol) createdVersions(ctx context.Context, p models.Principal, page []engine.Change) (map[engine.Key]int64, error) {
	var keys []engine.Key
	for _, ch := range page {
		if !ch.Record.Deleted && ch.Record.CreatedBy != p.DeviceID {
			keys = append(keys, engine.Key{Entity: ch.Entity.Name, ID: ch.Record.ID})
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return w.store.CreatedVersions(ctx, p.OrgID, keys)
}

// wmClassify says which list of a pull a change goes to, and whether it is
// sent at all (see the file comment).
func wmClassify(mode wmMode, p models.Principal, since engine.Position, ch engine.Change, created map[engine.Key]int64) (Kind, bool) {
	r := ch.Record
	if r.Deleted {
		return Deleted, mode != wmInitial
	}
	own := r.CreatedBy == p.DeviceID
	switch mode {
	case wmInitial:
		if own {
			return Updated, true
		}
		return Created, true
	case wmIncremental:
		if own {
			return Updated, true
		}
		cv, ok := created[engine.Key{Entity: ch.Entity.Name, ID: r.ID}]
		if ok && (cv == r.Version || (since.Txid == 0 && cv > since.Version)) {
			return Created, true
		}
	}
	return Updated, true
}

// AppendRecord appends r, a record of e, as a WatermelonDB raw record: `id`,
// `version`, `created_at`, `updated_at` and every field under its wire
// name, times as Unix milliseconds, JSON fields as JSON text in a string
// (WatermelonDB columns are strings, numbers or booleans).
func AppendRecord(b []byte, e *engine.Entity, r *engine.Record) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, r.ID.String()...)
	b = append(b, `","version":`...)
	b = strconv.AppendInt(b, r.Version, 10)
	b = append(b, `,"created_at":`...)
	b = strconv.AppendInt(b, r.CreatedAt.UnixMilli(), 10)
	b = append(b, `,"updated_at":`...)
	b = strconv.AppendInt(b, r.UpdatedAt.UnixMilli(), 10)
	for i := range e.Fields {
		f := &e.Fields[i]
		if f.Hidden {
			continue
		}
		b = append(b, ',')
		b = engine.AppendString(b, f.Name)
		b = append(b, ':')
		v := r.Values[f.Name]
		switch {
		case v == nil:
			b = append(b, "null"...)
		case f.Type == engine.Time:
			t, _ := v.(time.Time)
			b = strconv.AppendInt(b, t.UnixMilli(), 10)
		case f.Type == engine.JSON:
			s, _ := v.(string)
			if s == "" {
				b = append(b, "null"...)
			} else {
				b = engine.AppendString(b, s)
			}
		default:
			b = f.AppendValue(b, v)
		}
	}
	return append(b, '}')
}

// Row is one record of a WatermelonDB push.
type Row struct {
	ID uuid.UUID
	// Columns are the row's columns by name, without id, _status and
	// _changed.
	Columns map[string]json.RawMessage
	// Changed lists the columns the client changed since it last synced
	// the record (`_changed`).
	Changed []string
}

// TableChanges are a table's records in a WatermelonDB push.
type TableChanges struct {
	Created []Row
	Updated []Row
	Deleted []uuid.UUID
	// Unparsed are the ids of created and updated records that are not
	// UUIDs: each is refused alone. UnparsedDeleted counts deletes of such
	// ids, no-ops since the server never held one.
	Unparsed        []string
	UnparsedDeleted int
}

// PushRequest is a WatermelonDB push.
type PushRequest struct {
	LastPulledAt int64
	Changes      map[string]*TableChanges
}

// PushResult counts what a push did.
type PushResult struct {
	// Written counts the records written.
	Written int
	// Unchanged counts the records the server already held as pushed
	// (equal values, deletes of missing or deleted records).
	Unchanged int
	// Rejected lists the records the rules refused, left out of the push
	// (the client's experimentalRejectedIds).
	Rejected []Rejection
	// Outcomes has one entry per pushed record, for metrics: written
	// records are applied (or merged, when the rules resolved a
	// conflict), unchanged ones duplicates (the server held them as
	// pushed, as after a retry), refused ones rejected with their code.
	Outcomes []engine.Outcome
}

// ConflictError refuses a push some of whose records changed on
// the server after its last_pulled_at: the client must pull first.
type ConflictError struct {
	Records []engine.Key // Entity is the table
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%d pushed records changed on the server after last_pulled_at", len(e.Records))
}

// Rejection is one record of a push the rules refused.
type Rejection struct {
	Table   string
	ID      uuid.UUID
	RawID   string // the id as pushed, when it is not a UUID (ID is nil)
	Code    string // a rejection code (invalid_value, server_owned_field, ...)
	Field   string // "" when the record as a whole was refused
	Message string
}

// CheckPush validates a push's shape before anything is read.
// Errors: invalid (duplicate or nil id), too_large. A table this server
// does not sync is not an error: its records are refused one by one.
func (w *Protocol) CheckPush(req PushRequest) error {
	n := 0
	for _, name := range slices.Sorted(maps.Keys(req.Changes)) {
		t := req.Changes[name]
		if t == nil {
			continue
		}
		count := len(t.Created) + len(t.Updated) + len(t.Deleted) + len(t.Unparsed) + t.UnparsedDeleted
		if count == 0 {
			continue // WatermelonDB lists every local table, local-only ones too
		}
		at := "changes." + name
		n += count
		seen := make(map[uuid.UUID]bool, count)
		check := func(id uuid.UUID) error {
			if id == uuid.Nil {
				return models.FieldInvalid(at, "has a record without a UUID id")
			}
			if seen[id] {
				return models.FieldInvalid(at, "lists record %s more than once", id)
			}
			seen[id] = true
			return nil
		}
		for _, rows := range [][]Row{t.Created, t.Updated} {
			for _, r := range rows {
				if err := check(r.ID); err != nil {
					return err
				}
			}
		}
		for _, id := range t.Deleted {
			if err := check(id); err != nil {
				return err
			}
		}
	}
	if n > MaxPush {
		return models.Errorf(models.CodeTooLarge, "a push carries at most %d records, got %d", MaxPush, n)
	}
	return nil
}

// wmOp is one record of a push, in application order.
type wmOp struct {
	e       *engine.Entity
	id      uuid.UUID
	op      string
	row     Row
	created bool
}

// plan orders a push: creates and updates table by table,
// referenced tables first, then deletes in the reverse order.
func (w *Protocol) plan(req PushRequest) []wmOp {
	order := w.order()
	var ops []wmOp
	for _, e := range order {
		t := req.Changes[e.Name]
		if t == nil {
			continue
		}
		for _, r := range t.Created {
			ops = append(ops, wmOp{e: e, id: r.ID, op: engine.OpUpsert, row: r, created: true})
		}
		for _, r := range t.Updated {
			ops = append(ops, wmOp{e: e, id: r.ID, op: engine.OpUpsert, row: r})
		}
	}
	for i := len(order) - 1; i >= 0; i-- {
		e := order[i]
		t := req.Changes[e.Name]
		if t == nil {
			continue
		}
		for _, id := range t.Deleted {
			ops = append(ops, wmOp{e: e, id: id, op: engine.OpDelete})
		}
	}
	return ops
}

// order lists the entities so that an entity comes after those
// its reference fields point at (ties, and cycles, by name).
func (w *Protocol) order() []*engine.Entity {
	entities := w.en.Entities()
	names := slices.Sorted(maps.Keys(entities))
	placed := make(map[string]bool, len(names))
	var out []*engine.Entity
	for len(out) < len(names) {
		progress := false
		for _, name := range names {
			if placed[name] {
				continue
			}
			ready := true
			for _, f := range entities[name].Fields {
				if f.Ref != "" && f.Ref != name && entities[f.Ref] != nil && !placed[f.Ref] {
					ready = false
					break
				}
			}
			if ready {
				placed[name] = true
				out = append(out, entities[name])
				progress = true
			}
		}
		if !progress { // a cycle: place the first remaining by name
			for _, name := range names {
				if !placed[name] {
					placed[name] = true
					out = append(out, entities[name])
					break
				}
			}
		}
	}
	return out
}

// Push applies a WatermelonDB push (see the file comment): everything the
// rules accept, with the refused records in the result. Errors:
// *ConflictError (nothing applied, pull first), unavailable.
func (w *Protocol) Push(ctx context.Context, p models.Principal, req PushRequest) (PushResult, error) {
	horizon, err := w.store.FeedHorizon(ctx, p.OrgID)
	if err != nil {
		return PushResult{}, err
	}
	since, _, ok := decodeTimestamp(req.LastPulledAt, horizon)
	if !ok {
		// Not a position this server reached: the client has seen
		// nothing that can be vouched for.
		since = engine.Position{}
	}
	ops := w.plan(req)
	muts := make([]engine.Mutation, len(ops))
	for i, o := range ops {
		muts[i] = engine.Mutation{Seq: int64(i + 1), Entity: o.e.Name, ID: o.id, Op: o.op, Fields: o.row.Columns}
	}
	var out PushResult
	err = w.en.PushBatch(ctx, p, engine.Keys(muts), func(b *engine.Batch) error {
		out = PushResult{}
		if err := b.Prefetch(muts); err != nil {
			return err
		}
		pos, err := conflicts(b, ops, since)
		if err != nil {
			return err
		}
		refused := map[engine.Key]bool{}
		unchanged := func(table string, n int) {
			out.Unchanged += n
			for range n {
				out.Outcomes = append(out.Outcomes, engine.Outcome{Entity: table, Status: engine.StatusDuplicate})
			}
		}
		rejected := func(table, code string) {
			out.Outcomes = append(out.Outcomes, engine.Outcome{Entity: table, Status: engine.StatusRejected, Code: code})
		}
		reject := func(table string, id uuid.UUID, rej *engine.RejectError) {
			rejected(table, rej.Code)
			out.Rejected = append(out.Rejected, Rejection{Table: table, ID: id, Code: rej.Code, Field: rej.Field, Message: rej.Message})
			refused[engine.Key{Entity: table, ID: id}] = true
			b.Reject(engine.Rejection{Entity: table, RecordID: id, Code: rej.Code, Field: rej.Field, Message: rej.Message})
		}
		for _, name := range unknownTables(w.en, req) {
			t := req.Changes[name]
			for _, rows := range [][]Row{t.Created, t.Updated} {
				for _, r := range rows {
					reject(name, r.ID, &engine.RejectError{Code: models.CodeUnknownEntity, Message: "this server does not sync the table " + name})
				}
			}
			// Deleting what the server never had is a no-op, as for any
			// missing record.
			unchanged(name, len(t.Deleted))
		}
		for _, name := range slices.Sorted(maps.Keys(req.Changes)) {
			t := req.Changes[name]
			if t == nil {
				continue
			}
			for _, raw := range t.Unparsed {
				msg := fmt.Sprintf("id %q is not a UUID: this server keeps only records with UUID ids (install a UUID id generator, and create the record anew)", raw)
				rejected(name, engine.CodeInvalidValue)
				out.Rejected = append(out.Rejected, Rejection{Table: name, RawID: raw, Code: engine.CodeInvalidValue, Field: "id", Message: msg})
				b.Reject(engine.Rejection{Entity: name, Code: engine.CodeInvalidValue, Field: "id", Message: msg})
			}
			unchanged(name, t.UnparsedDeleted)
		}
		for i, o := range ops {
			k := engine.Key{Entity: o.e.Name, ID: o.id}
			if rej := refusedDependency(o, refused); rej != nil {
				reject(o.e.Name, o.id, rej)
				continue
			}
			p, ok := pos[k]
			seen := ok && !since.Before(p) // the client pulled the stored version
			res, rej, err := apply(b, muts[i], o, seen)
			if err != nil {
				return err
			}
			switch {
			case rej != nil:
				reject(o.e.Name, o.id, rej)
			case res != nil:
				out.Written++
				out.Outcomes = append(out.Outcomes, engine.OutcomeOf(o.e.Name, *res))
			default:
				unchanged(o.e.Name, 1)
			}
		}
		return nil
	})
	if err != nil {
		return PushResult{}, err
	}
	return out, nil
}

// unknownTables lists, by name, the tables of a push this server does not
// sync that carry records.
func unknownTables(en *engine.Engine, req PushRequest) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(req.Changes)) {
		if t := req.Changes[name]; t != nil && en.Entity(name) == nil && len(t.Created)+len(t.Updated)+len(t.Deleted) > 0 {
			out = append(out, name)
		}
	}
	return out
}

// refusedDependency refuses a created or updated record whose reference
// column names a record this push refused: applied alone it would point
// at a record the server does not hold as the device does (WatermelonDB
// keeps both dirty and pushes them again together).
func refusedDependency(o wmOp, refused map[engine.Key]bool) *engine.RejectError {
	if o.op != engine.OpUpsert || len(refused) == 0 {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(o.row.Columns)) {
		f := o.e.Field(name)
		if f == nil || f.Ref == "" {
			continue
		}
		var s string
		if json.Unmarshal(o.row.Columns[name], &s) != nil {
			continue
		}
		if id, err := uuid.Parse(s); err == nil && refused[engine.Key{Entity: f.Ref, ID: id}] {
			return &engine.RejectError{Code: models.CodeDependencyRefused, Field: name,
				Message: fmt.Sprintf("%s names %s %s, which this push refused", name, f.Ref, id)}
		}
	}
	return nil
}

// conflicts refuses the push when a record it writes changed after since
// by anyone but this device (see the file comment). It returns the feed
// positions of the visible records the push names.
func conflicts(b *engine.Batch, ops []wmOp, since engine.Position) (map[engine.Key]engine.Position, error) {
	p := b.Principal()
	var keys []engine.Key
	for _, o := range ops {
		k := engine.Key{Entity: o.e.Name, ID: o.id}
		if cur := b.Current(k); cur != nil && o.e.Scope(cur).Visible(p) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	pos, err := b.FeedPositions(keys)
	if err != nil {
		return nil, err
	}
	var conflicts []engine.Key
	for _, o := range ops {
		k := engine.Key{Entity: o.e.Name, ID: o.id}
		cur := b.Current(k)
		at, ok := pos[k]
		if !ok || (o.op == engine.OpDelete && cur.Deleted) {
			continue
		}
		if since.Before(at) && !engine.LastWrittenBy(cur, p.DeviceID) {
			conflicts = append(conflicts, k)
		}
	}
	if len(conflicts) > 0 {
		return nil, &ConflictError{Records: conflicts}
	}
	return pos, nil
}

// apply applies one record of a push. It returns the engine's result
// when the record was written (nil when the server held it already), or
// why the rules refused it; errors are storage failures. seen says the
// client's last pull delivered the stored version.
func apply(b *engine.Batch, m engine.Mutation, o wmOp, seen bool) (*engine.Result, *engine.RejectError, error) {
	key := engine.Key{Entity: o.e.Name, ID: o.id}
	cur := b.Current(key)
	visible := cur != nil && o.e.Scope(cur).Visible(b.Principal())
	if o.op == engine.OpDelete {
		if !visible || cur.Deleted {
			// Deleting what is missing, deleted, or out of sight (which is
			// missing to this user) is a no-op: retried deletes succeed.
			return nil, nil, nil
		}
	} else {
		fields, rej := columnFields(o, cur, visible, b.Now())
		if rej != nil {
			return nil, rej, nil
		}
		if visible && !cur.Deleted && len(fields) == 0 {
			// The server holds this already. When the client has pulled
			// the stored version yet holds other audit values (its pull
			// came while its own edit of them was pending, as after a
			// lost push response), announce the record again, unchanged,
			// so that its next pull corrects them.
			if seen && wmAuditDiffers(o.row, cur) {
				b.Touch(key)
			}
			return nil, nil, nil
		}
		m.Fields = fields
	}
	m.HLC = wmStamp(cur, b.Now())
	r, err := b.Apply(m)
	if err != nil {
		return nil, nil, err
	}
	if r.Status == engine.StatusRejected {
		return nil, r.Error, nil
	}
	if cur != nil && cur.Deleted {
		// The update lost to a delete the client has not seen: write the
		// tombstone again, past its last_pulled_at, so its next pull
		// deletes the copy it still holds.
		b.Touch(key)
	}
	return &r, nil, nil
}

// wmStamp is the clock of a WatermelonDB write: the receipt time, or just
// after the newest field clock of the stored record when that is later.
func wmStamp(cur *engine.Record, now time.Time) engine.HLC {
	h := engine.HLC{MS: now.UnixMilli()}
	if cur == nil {
		return h
	}
	for _, fc := range cur.FieldClocks() {
		if fc.MS > h.MS || (fc.MS == h.MS && fc.Counter >= h.Counter) {
			h = engine.HLC{MS: fc.MS, Counter: fc.Counter + 1}
		}
	}
	return h
}

// wmAuditDiffers reports whether a pushed row carries audit columns that
// differ from the stored record's.
func wmAuditDiffers(row Row, cur *engine.Record) bool {
	for name, raw := range row.Columns {
		var want int64
		switch name {
		case "created_at":
			want = cur.CreatedAt.UnixMilli()
		case "updated_at":
			want = cur.UpdatedAt.UnixMilli()
		case "version":
			want = cur.Version
		default:
			continue
		}
		if n, err := engine.ParseNumber(raw); err != nil || n != float64(want) {
			return true
		}
	}
	return false
}

// wmIgnored are columns of a pushed row that are never written: the
// server's audit fields, which WatermelonDB apps mirror (and WatermelonDB
// itself sets created_at and updated_at on local writes).
var wmIgnored = map[string]bool{"version": true, "created_at": true, "updated_at": true}

// columnFields turns a pushed row into the fields of an upsert (see
// step 2 of the file comment).
// A record out of the caller's sight is treated as missing here; the
// engine refuses the write as not_found.
func columnFields(o wmOp, cur *engine.Record, visible bool, now time.Time) (map[string]json.RawMessage, *engine.RejectError) {
	live := visible && !cur.Deleted
	full := o.created || !live
	changed := make(map[string]bool, len(o.row.Changed))
	for _, c := range o.row.Changed {
		changed[c] = true
	}
	out := map[string]json.RawMessage{}
	for _, name := range slices.Sorted(maps.Keys(o.row.Columns)) {
		if wmIgnored[name] || (!full && !changed[name]) {
			continue
		}
		raw := o.row.Columns[name]
		f := o.e.Field(name)
		if f == nil || f.Hidden {
			out[name] = raw // refused by the engine, by name
			continue
		}
		v, rej := wmNative(f, raw)
		if rej != nil {
			return nil, rej
		}
		if full && string(v) == "null" && !changed[name] {
			continue
		}
		if live {
			if pv, err := f.Parse(v, now); err == nil && wmEqual(pv, cur.Values[name]) {
				continue
			}
		}
		out[name] = v
	}
	return out, nil
}

// wmNative converts a WatermelonDB column value to the native wire form
// f.Parse reads: Unix milliseconds to RFC 3339 (0, WatermelonDB's empty
// number, to null), "" to null for UUIDs, JSON text in a string to JSON.
func wmNative(f *engine.Field, raw json.RawMessage) (json.RawMessage, *engine.RejectError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return json.RawMessage("null"), nil
	}
	switch f.Type {
	case engine.Time:
		if raw[0] == '"' || string(raw) == "null" {
			return raw, nil // RFC 3339 is accepted too
		}
		n, err := engine.ParseNumber(raw)
		if err != nil || n != math.Trunc(n) || math.Abs(n) > 1e15 {
			return nil, &engine.RejectError{Code: engine.CodeInvalidValue, Field: f.Name, Message: f.Name + " must be Unix milliseconds"}
		}
		if n == 0 {
			return json.RawMessage("null"), nil
		}
		b := time.UnixMilli(int64(n)).UTC().AppendFormat([]byte{'"'}, time.RFC3339Nano)
		return append(b, '"'), nil
	case engine.UUID:
		if string(raw) == `""` {
			return json.RawMessage("null"), nil
		}
	case engine.JSON:
		if raw[0] != '"' {
			return raw, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, &engine.RejectError{Code: engine.CodeInvalidValue, Field: f.Name, Message: f.Name + " must be JSON text"}
		}
		if s == "" {
			return json.RawMessage("null"), nil
		}
		if !json.Valid([]byte(s)) {
			return nil, &engine.RejectError{Code: engine.CodeInvalidValue, Field: f.Name, Message: f.Name + " must be JSON text"}
		}
		return json.RawMessage(s), nil
	}
	return raw, nil
}

// wmEqual compares a parsed value with a stored one.
func wmEqual(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return reflect.DeepEqual(a, b)
}

// ChangedColumns splits a WatermelonDB `_changed` value.
func ChangedColumns(changed string) []string {
	var out []string
	for _, c := range strings.Split(changed, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}
