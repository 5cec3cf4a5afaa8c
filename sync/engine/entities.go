package engine

import (
	"math"
	"strings"
	"unicode"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// Entities returns the synced entities, freshly declared.
func Entities() []*Entity {
	es := []*Entity{Accounts(), Visits(), Activities(), RideAlongs(), Assessments(), Contests(), ScoreEntries(), Standings(), Recognitions(), Notifications()}
	registerDomainRules(es)
	registerDomainNotifications(es)
	registerNotifyTriggers(es)
	return es
}

// registerDomainRules wires the rules that follow from a change into the
// entities it touches. Hooks run in the order added.
func registerDomainRules(es []*Entity) {
	OnWrite(es, "visits", verifyHook)
	OnWrite(es, "visits", bindNextUnscheduled)
	OnWrite(es, "visits", scoreHook("started_at"))
	OnWrite(es, "activities", scoreHook("occurred_at"))
	OnWrite(es, "ride_alongs", rideAlongAfterWrite)
}

var (
	latField = func(name string) Field { return Field{Name: name, Type: Float, Min: -90, Max: 90} }
	lngField = func(name string) Field { return Field{Name: name, Type: Float, Min: -180, Max: 180} }
)

// DuplicateRadiusM is how close a new prospect must be to an existing
// account of the same normalised name to be flagged as its possible
// duplicate.
const DuplicateRadiusM = 150

// Accounts are customers and prospects, shared by a team.
func Accounts() *Entity {
	return &Entity{
		Name: "accounts",
		Fields: []Field{
			{Name: "name", Type: String, Required: true},
			{Name: "address", Type: String, MaxLen: 300},
			{Name: "city", Type: String, MaxLen: 100},
			latField("lat"),
			lngField("lng"),
			{Name: "status", Type: Enum, Enum: []string{"prospect", "customer"}, Default: "prospect", Required: true},
			{Name: "phone", Type: String, MaxLen: 50},
			{Name: "notes", Type: Text},
			{Name: "owner_rep_id", Type: UUID},
			{Name: "team_id", Type: UUID, Access: ServerOwned},
			{Name: "possible_duplicate_of", Type: UUID, Access: ServerOwned},
			{Name: "name_key", Type: String, Hidden: true},
		},
		Scope: func(r *Record) Scope {
			if t := r.UUIDValue("team_id"); t != nil {
				return Scope{TeamID: t, UserID: r.UUIDValue("owner_rep_id"), Visibility: VisTeam}
			}
			return Scope{Visibility: VisOrg}
		},
		Prepare: func(c *Context, old, r *Record) error {
			if old == nil && r != nil {
				// A new account belongs to its creator's team; an admin's
				// (who has none) is shared with the organisation.
				if c.P.TeamID != nil {
					r.Values["team_id"] = *c.P.TeamID
				}
			}
			return nil
		},
		Validate: validateAccount,
	}
}

func validateAccount(c *Context, old, r *Record) error {
	if err := bothOrNeither(r, "lat", "lng"); err != nil {
		return err
	}
	if owner := r.UUIDValue("owner_rep_id"); owner != nil && (old == nil || !sameUUID(old.UUIDValue("owner_rep_id"), owner)) {
		u, err := c.User(*owner)
		if err != nil && models.ErrorCode(err) != models.CodeNotFound {
			return err
		}
		team := r.UUIDValue("team_id")
		if err != nil || !u.Active || u.Role == models.RoleAdmin || (team != nil && !sameUUID(u.TeamID, team)) {
			return models.FieldInvalid("owner_rep_id", "must be an active rep or manager of the account's team")
		}
	}
	key := NameKey(r.StringValue("name"))
	r.Values["name_key"] = key
	if old == nil && r.StringValue("status") == "prospect" {
		return flagDuplicate(c, r, key)
	}
	return nil
}

// flagDuplicate marks a prospect created offline that matches an existing
// account of its team by normalised name within DuplicateRadiusM. It flags
// rather than merges: the rep may really have found a second branch.
func flagDuplicate(c *Context, r *Record, key string) error {
	lat, lng := r.FloatValue("lat"), r.FloatValue("lng")
	if key == "" || lat == nil || lng == nil {
		return nil
	}
	where := map[string]any{"name_key": key, "team_id": nil}
	if t := r.UUIDValue("team_id"); t != nil {
		where["team_id"] = *t
	}
	cands, err := c.Find("accounts", where)
	if err != nil {
		return err
	}
	for _, a := range cands {
		if a.ID == r.ID {
			continue
		}
		alat, alng := a.FloatValue("lat"), a.FloatValue("lng")
		if alat != nil && alng != nil && DistanceM(*lat, *lng, *alat, *alng) <= DuplicateRadiusM {
			r.Values["possible_duplicate_of"] = a.ID
			return nil
		}
	}
	return nil
}

// NameKey normalises a business name for duplicate detection: case,
// punctuation, spacing and legal suffixes do not make two names differ.
func NameKey(name string) string {
	var words []string
	for _, w := range strings.FieldsFunc(strings.ToLower(name), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		switch w {
		case "inc", "llc", "ltd", "co", "corp", "company", "the", "gmbh", "plc", "and":
			continue
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}

// DistanceM is the great-circle distance in metres between two points.
func DistanceM(lat1, lng1, lat2, lng2 float64) float64 {
	const r = 6371000.0
	rad := math.Pi / 180
	dlat, dlng := (lat2-lat1)*rad, (lng2-lng1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlng/2)*math.Sin(dlng/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// Visits are a rep's calls on accounts, scheduled or not.
func Visits() *Entity {
	return &Entity{
		Name: "visits",
		Fields: []Field{
			{Name: "account_id", Type: UUID, Ref: "accounts", Required: true},
			{Name: "kind", Type: Enum, Enum: []string{"scheduled", "unscheduled"}, Default: "unscheduled", Required: true},
			{Name: "status", Type: Enum, Enum: []string{"planned", "in_progress", "completed", "cancelled"}, Default: "completed", Required: true},
			{Name: "planned_at", Type: Time},
			{Name: "started_at", Type: Time, NotFuture: true},
			{Name: "ended_at", Type: Time, NotFuture: true},
			latField("check_in_lat"),
			lngField("check_in_lng"),
			{Name: "check_in_accuracy_m", Type: Float, Min: 0, Max: 100000},
			latField("check_out_lat"),
			lngField("check_out_lng"),
			{Name: "outcome", Type: Enum, Enum: []string{"none", "no_answer", "not_interested", "follow_up", "meeting", "demo", "order"}, Default: "none", Required: true},
			{Name: "order_value", Type: Money, Max: 1e10},
			{Name: "referrals", Type: Int, Min: 0, Max: 1000, Default: int64(0), Required: true},
			{Name: "follow_up_at", Type: Time},
			{Name: "notes", Type: Text},
			{Name: "rep_id", Type: UUID, Access: SelfOnly},
			{Name: "team_id", Type: UUID, Access: ServerOwned},
			{Name: "verification", Type: Enum, Enum: []string{models.CheckInVerified, models.CheckInOutOfRange, models.CheckInUnverifiable, models.CheckInSuspicious}, Access: ServerOwned},
			{Name: "check_in_distance_m", Type: Float, Min: 0, Max: 1e8, Access: ServerOwned},
		},
		Scope:   repScope,
		Prepare: prepareRepRecord,
		Validate: func(c *Context, old, r *Record) error {
			if err := checkAccountRef(c, old, r); err != nil {
				return err
			}
			if old == nil {
				r.Values["verification"] = models.CheckInUnverifiable // until verifyRep runs, before commit
			}
			for _, pair := range [][2]string{{"check_in_lat", "check_in_lng"}, {"check_out_lat", "check_out_lng"}} {
				if err := bothOrNeither(r, pair[0], pair[1]); err != nil {
					return err
				}
			}
			if s, e := r.TimeValue("started_at"), r.TimeValue("ended_at"); s != nil && e != nil && e.Before(*s) {
				return models.FieldInvalid("ended_at", "must not be before started_at")
			}
			if r.Values["order_value"] != nil && r.StringValue("outcome") != "order" {
				return models.FieldInvalid("order_value", "is only recorded for an outcome of order")
			}
			return nil
		},
	}
}

// Activities are the things a rep does besides visits that contests score:
// CRM updates, referrals, expense reports, networking.
func Activities() *Entity {
	return &Entity{
		Name: "activities",
		Fields: []Field{
			{Name: "type", Type: Enum, Enum: []string{"crm_update", "referral", "expense_report", "networking", "other"}, Required: true},
			{Name: "occurred_at", Type: Time, NotFuture: true, Required: true},
			{Name: "account_id", Type: UUID, Ref: "accounts"},
			{Name: "visit_id", Type: UUID, Ref: "visits"},
			{Name: "value", Type: Money, Max: 1e10},
			{Name: "cost", Type: Money, Max: 1e8},
			{Name: "notes", Type: Text},
			{Name: "rep_id", Type: UUID, Access: SelfOnly},
			{Name: "team_id", Type: UUID, Access: ServerOwned},
		},
		Scope:   repScope,
		Prepare: prepareRepRecord,
		Validate: func(c *Context, old, r *Record) error {
			if err := checkAccountRef(c, old, r); err != nil {
				return err
			}
			if v := r.UUIDValue("visit_id"); v != nil && (old == nil || !sameUUID(old.UUIDValue("visit_id"), v)) {
				visit, err := c.Lookup("visits", *v)
				if err != nil {
					return err
				}
				if visit == nil || !sameUUID(visit.UUIDValue("rep_id"), r.UUIDValue("rep_id")) {
					return models.FieldInvalid("visit_id", "must name a visit of the same rep")
				}
			}
			return nil
		},
	}
}

// repScope shares a rep's record with the rep, their manager and admins.
func repScope(r *Record) Scope {
	return Scope{TeamID: r.UUIDValue("team_id"), UserID: r.UUIDValue("rep_id"), Visibility: VisOwner}
}

// prepareRepRecord sets rep_id and team_id of a new rep-owned record: the
// rep is the caller unless a manager or admin named one of theirs (checked
// when the field was parsed). rep_id never changes afterwards.
func prepareRepRecord(c *Context, old, r *Record) error {
	if r == nil {
		return nil
	}
	sent, _ := c.Sent["rep_id"].(uuid.UUID)
	if old != nil {
		if cur := old.UUIDValue("rep_id"); sent != uuid.Nil && (cur == nil || *cur != sent) {
			return &models.Error{Code: CodeServerOwned, Message: "rep_id cannot change", Fields: []models.FieldError{{Field: "rep_id", Code: CodeServerOwned, Message: "cannot change"}}}
		}
		return nil
	}
	rep := c.P.UserID
	if sent != uuid.Nil {
		rep = sent
	}
	r.Values["rep_id"] = rep
	// The caller's team came with their session, read for this request.
	team := c.P.TeamID
	if rep != c.P.UserID || rep == uuid.Nil {
		u, err := c.User(rep)
		if err != nil {
			return err
		}
		team = u.TeamID
	}
	if team != nil {
		r.Values["team_id"] = *team
	}
	return nil
}

// checkAccountRef requires account_id, when set or changed, to name an
// account the caller can see; a hidden one is reported like a missing one.
// An update that leaves account_id alone is not checked: the account being
// deleted or leaving the caller's sight since must not make every later
// edit of the record a rejection.
func checkAccountRef(c *Context, old, r *Record) error {
	id := r.UUIDValue("account_id")
	if id == nil || (old != nil && sameUUID(old.UUIDValue("account_id"), id)) {
		return nil
	}
	a, err := c.Lookup("accounts", *id)
	if err != nil {
		return err
	}
	if a == nil {
		return models.FieldInvalid("account_id", "must name an account you can see (%s was not found)", id)
	}
	return nil
}

func bothOrNeither(r *Record, a, b string) error {
	if (r.Values[a] == nil) != (r.Values[b] == nil) {
		return models.FieldInvalid(b, "must be set together with %s", a)
	}
	return nil
}

func sameUUID(a, b *uuid.UUID) bool {
	return a != nil && b != nil && *a == *b
}
