package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// Pull limits.
const (
	DefaultPullLimit = 500
	MaxPullLimit     = 1000
	// RecentRejections is how many of a device's latest rejections a pull
	// repeats, so a phone that lost a push response still learns them.
	RecentRejections = 50
)

// cursor is the opaque pull position. It also records whose it is and the
// scope it was issued under: a cursor of another user, or issued before the
// user's role or team changed, cannot be continued and answers reset.
type cursor struct {
	V    int        `json:"v"`
	Org  uuid.UUID  `json:"o"`
	User uuid.UUID  `json:"u"`
	Role string     `json:"r"`
	Team *uuid.UUID `json:"t,omitempty"`
	Txid int64      `json:"x"`
	Ver  int64      `json:"n"`
	// PX and PN are the organisation's purge watermark (PurgedThrough)
	// as read before the page the cursor ends was read; zero when no
	// tombstone had been purged (or the cursor predates the field). See
	// Pull for why it is carried.
	PX int64 `json:"px,omitempty"`
	PN int64 `json:"pn,omitempty"`
}

const cursorVersion = 1

// EncodeCursor makes the opaque cursor for p at pos, carrying no purge
// watermark: should any tombstone have been purged above pos, a pull from
// it is reset.
func EncodeCursor(p models.Principal, pos Position) string {
	return encodeCursor(p, pos, Position{})
}

// encodeCursor makes the opaque cursor for p at pos, issued when the
// organisation's purge watermark was purged.
func encodeCursor(p models.Principal, pos, purged Position) string {
	b, _ := json.Marshal(cursor{V: cursorVersion, Org: p.OrgID, User: p.UserID, Role: string(p.Role), Team: p.TeamID, Txid: pos.Txid, Ver: pos.Version,
		PX: purged.Txid, PN: purged.Version})
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor; ok is false when it is corrupt, of another
// user or organisation, or from before a change of the user's scope.
func DecodeCursor(p models.Principal, s string) (pos Position, ok bool) {
	pos, _, ok = decodeCursor(p, s)
	return pos, ok
}

// decodeCursor is DecodeCursor that also returns the purge watermark the
// cursor was issued under.
func decodeCursor(p models.Principal, s string) (pos, purged Position, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Position{}, Position{}, false
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.V != cursorVersion {
		return Position{}, Position{}, false
	}
	sameTeam := (c.Team == nil && p.TeamID == nil) || (c.Team != nil && p.TeamID != nil && *c.Team == *p.TeamID)
	if c.Org != p.OrgID || c.User != p.UserID || c.Role != string(p.Role) || !sameTeam || c.Txid < 0 || c.Ver < 0 {
		return Position{}, Position{}, false
	}
	return Position{Txid: c.Txid, Version: c.Ver}, Position{Txid: c.PX, Version: c.PN}, true
}

// PullResult is a page of changes.
type PullResult struct {
	Changes    []Change
	Cursor     string
	HasMore    bool
	Reset      bool
	LastSeq    int64
	Rejections []Rejection
}

// Pull returns the changes p may see after the cursor (from the beginning
// when it is empty), each with its full record. A cursor that cannot be
// continued — not this user's, issued under another role or team, or
// older than a purged tombstone (see PurgeTombstones) — answers Reset with
// no changes: the client drops its replica and pulls from the beginning.
//
// "Older than a purged tombstone" means: a tombstone above the cursor's
// position was purged after the cursor was issued. Only then may the client
// hold a record whose delete it can no longer be told. A cursor issued
// after the purge, above or below the purged positions, is whole: the
// client read the feed as the purge left it. Every resync from scratch
// after a purge pages through such cursors, below the watermark until its
// last pages; resetting them would restart the resync forever. So each
// cursor carries the purge watermark read before its page was read, and a
// pull resets only when the watermark as its own page saw it is above the
// cursor's position and has moved since.
//
// The page's watermark is read in the page's own snapshot (Page.Purged),
// which is what the check needs: a purge writes the watermark in the
// transaction that removes the tombstones, so a purge that took a
// tombstone from this page committed before the page's snapshot and shows
// in it; one that commits later left the page whole, and shows as a move
// on the next pull, since the cursor carries the watermark read before
// this page (Page.Issued). A read after the page, as a separate statement,
// would only add resets of whole pages.
//
// The watermark is the highest position purged: a later purge below it
// would not move it, which needs a tombstone written later than one
// already purged yet placed before it in the feed; with retentions of days
// and transactions of seconds, that does not happen.
func (en *Engine) Pull(ctx context.Context, p models.Principal, rawCursor string, limit int) (PullResult, error) {
	return en.pull(ctx, p, rawCursor, limit, false)
}

// PullDocs is Pull for callers that send the changes as JSON (the native
// endpoint): a change whose pull encoding the store kept with the feed
// carries it in Doc, and its Record holds only ID, Version, Deleted and
// UpdatedAt; the others carry their full records.
func (en *Engine) PullDocs(ctx context.Context, p models.Principal, rawCursor string, limit int) (PullResult, error) {
	return en.pull(ctx, p, rawCursor, limit, true)
}

func (en *Engine) pull(ctx context.Context, p models.Principal, rawCursor string, limit int, docs bool) (PullResult, error) {
	if limit <= 0 {
		limit = DefaultPullLimit
	}
	if limit > MaxPullLimit {
		limit = MaxPullLimit
	}
	var out PullResult
	var after, seen Position
	if rawCursor != "" {
		pos, purged, ok := decodeCursor(p, rawCursor)
		if !ok {
			seq, rejections, err := en.store.DeviceState(ctx, p, RecentRejections)
			if err != nil {
				return PullResult{}, err
			}
			return PullResult{Reset: true, HasMore: true, Changes: []Change{}, LastSeq: seq, Rejections: rejections}, nil
		}
		after, seen = pos, purged
	}
	page, err := en.store.PullPage(ctx, p, en.entities, after, limit, RecentRejections, docs)
	if err != nil {
		return PullResult{}, err
	}
	out.LastSeq, out.Rejections = page.LastSeq, page.Rejections
	if after != (Position{}) && after.Before(page.Purged) && page.Purged != seen {
		out.Reset, out.HasMore, out.Changes = true, true, []Change{}
		return out, nil
	}
	if len(page.Changes) > 0 {
		after = page.Changes[len(page.Changes)-1].Pos
	}
	out.Changes, out.HasMore, out.Cursor = page.Changes, page.More, encodeCursor(p, after, page.Issued)
	return out, nil
}

// PurgeBatch is how many tombstones one purge transaction removes.
const PurgeBatch = 1000

// PurgeTombstones removes the organisation's tombstones last written
// before before, in transactions of PurgeBatch, and returns how many it
// removed. Devices whose cursor lies below a removed tombstone are reset
// by their next pull, since they may not have seen that delete.
func (en *Engine) PurgeTombstones(ctx context.Context, orgID uuid.UUID, before time.Time) (int, error) {
	total := 0
	for {
		n, err := en.store.PurgeTombstones(ctx, orgID, en.entities, before, PurgeBatch)
		total += n
		if err != nil || n < PurgeBatch {
			return total, err
		}
	}
}

// PullFrom is Pull for callers that keep their own position (the
// WatermelonDB endpoint).
func (en *Engine) PullFrom(ctx context.Context, p models.Principal, after Position, limit int) ([]Change, bool, error) {
	return en.store.Pull(ctx, p, en.entities, after, limit)
}

// Conflicts lists the conflicts p may see, newest first, from an opaque
// cursor (empty: the newest), and the cursor of the next page ("" when
// there is none). Errors: invalid (cursor).
func (en *Engine) Conflicts(ctx context.Context, p models.Principal, rawCursor string, limit int) ([]ConflictRecord, string, error) {
	var after ConflictPos
	if rawCursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(rawCursor)
		if err == nil {
			err = json.Unmarshal(b, &after)
		}
		if err != nil || after.ID == uuid.Nil {
			return nil, "", models.FieldInvalid("cursor", "is not a cursor this server issued")
		}
	}
	cs, err := en.store.Conflicts(ctx, p, after, limit+1)
	if err != nil || len(cs) <= limit {
		return cs, "", err
	}
	cs = cs[:limit]
	last := cs[len(cs)-1]
	b, _ := json.Marshal(ConflictPos{At: last.CreatedAt, ID: last.ID})
	return cs, base64.RawURLEncoding.EncodeToString(b), nil
}

// Rejections lists the rejections of p's device, native mutations and
// WatermelonDB records alike, newest first, from an opaque cursor (empty:
// the newest), and the cursor of the next page ("" when there is none).
// Errors: invalid (cursor).
func (en *Engine) Rejections(ctx context.Context, p models.Principal, rawCursor string, limit int) ([]Rejection, string, error) {
	var before int64
	if rawCursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(rawCursor)
		if err == nil {
			before, err = strconv.ParseInt(string(b), 10, 64)
		}
		if err != nil || before <= 0 {
			return nil, "", models.FieldInvalid("cursor", "is not a cursor this server issued")
		}
	}
	rs, err := en.store.DeviceRejections(ctx, p, before, limit+1)
	if err != nil || len(rs) <= limit {
		return rs, "", err
	}
	rs = rs[:limit]
	return rs, base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(rs[len(rs)-1].ID, 10))), nil
}
