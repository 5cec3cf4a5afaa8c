package sales

import (
	"math"
	"strings"
	"unicode"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

//go:generate go run ./internal/fieldgen/gen

// Entities returns the synced entities, freshly declared.
func Entities() []*engine.Entity {
	es := []*engine.Entity{Accounts(), Visits(), Activities(), RideAlongs(), Assessments(), Contests(), ScoreEntries(), Standings(), Recognitions(), Notifications()}
	for _, e := range es {
		// Rules read one rep's records back (a day's calls, a contest's
		// entries): the batch indexes its writes by rep for them.
		if e.Field(fRepID) != nil {
			e.Owner = fRepID
		}
	}
	registerDomainRules(es)
	registerDomainNotifications(es)
	registerNotifyTriggers(es)
	registerAudit(es) // last: see registerAudit
	return es
}

// registerDomainRules wires the rules that follow from a change into the
// entities it touches. Hooks run in the order added.
func registerDomainRules(es []*engine.Entity) {
	engine.OnWrite(es, entVisits, verifyHook)
	engine.OnWrite(es, entVisits, bindNextUnscheduled)
	engine.OnWrite(es, entVisits, scoreHook(fStartedAt))
	engine.OnWrite(es, entActivities, scoreHook(fOccurredAt))
	engine.OnWrite(es, entRideAlongs, rideAlongAfterWrite)
}

var (
	latField = func(name string) engine.Field { return engine.Field{Name: name, Type: engine.Float, Min: -90, Max: 90} }
	lngField = func(name string) engine.Field {
		return engine.Field{Name: name, Type: engine.Float, Min: -180, Max: 180}
	}
)

// DuplicateRadiusM is how close a new prospect must be to an existing
// account of the same normalised name to be flagged as its possible
// duplicate.
const DuplicateRadiusM = 150

// Accounts are customers and prospects, shared by a team.
func Accounts() *engine.Entity {
	return &engine.Entity{
		Name: "accounts",
		Fields: []engine.Field{
			{Name: "name", Type: engine.String, Required: true},
			{Name: "address", Type: engine.String, MaxLen: 300},
			{Name: "city", Type: engine.String, MaxLen: 100},
			latField("lat"),
			lngField("lng"),
			{Name: "status", Type: engine.Enum, Enum: []string{"prospect", "customer"}, Default: "prospect", Required: true},
			{Name: "phone", Type: engine.String, MaxLen: 50},
			{Name: "notes", Type: engine.Text},
			{Name: "owner_rep_id", Type: engine.UUID},
			{Name: "team_id", Type: engine.UUID, Access: engine.ServerOwned},
			{Name: "possible_duplicate_of", Type: engine.UUID, Access: engine.ServerOwned},
			{Name: "name_key", Type: engine.String, Hidden: true},
		},
		Scope: func(r *engine.Record) engine.Scope {
			if t := r.UUIDValue(fTeamID); t != nil {
				return engine.Scope{TeamID: t, UserID: r.UUIDValue(fOwnerRepID), Visibility: engine.VisTeam}
			}
			return engine.Scope{Visibility: engine.VisOrg}
		},
		Prepare: func(c *engine.Context, old, r *engine.Record) error {
			if err := authorizeAccount(c, old, r); err != nil {
				return err
			}
			if old == nil && r != nil {
				// A new account belongs to its creator's team; an admin's
				// (who has none) is shared with the organisation.
				if c.P.TeamID != nil {
					r.Values[fTeamID] = *c.P.TeamID
				}
			}
			return nil
		},
		Validate: validateAccount,
	}
}

// authorizeAccount: an account is deleted by its owner rep, a manager of
// the team it belongs to, or an admin; a rep never deletes another's
// account, nor one nobody owns, whoever created it. Ownership changes
// (owner_rep_id on an existing account) are for managers and admins, so a
// rep cannot take an account over to delete it. Writes outside the
// caller's scope are refused as not_found before this runs.
func authorizeAccount(c *engine.Context, old, r *engine.Record) error {
	if old == nil || c.P.Role == models.RoleAdmin {
		return nil
	}
	if r != nil {
		owner, sent := c.Sent[fOwnerRepID]
		if !sent || c.P.Role != models.RoleRep {
			return nil
		}
		next, _ := owner.(uuid.UUID)
		if cur := old.UUIDValue(fOwnerRepID); (cur == nil && owner == nil) || (cur != nil && *cur == next) {
			return nil // unchanged
		}
		return forbidden(fOwnerRepID, "only a manager or an admin may change an account's owner")
	}
	switch c.P.Role {
	case models.RoleRep:
		if sameUUID(old.UUIDValue(fOwnerRepID), &c.P.UserID) {
			return nil
		}
		return forbidden(fOwnerRepID, "a rep may delete only accounts they own")
	case models.RoleManager:
		if team := old.UUIDValue(fTeamID); team != nil && sameUUID(team, c.P.TeamID) {
			t, err := c.Team(*team)
			if err != nil {
				return err
			}
			if sameUUID(t.ManagerID, &c.P.UserID) {
				return nil
			}
		}
		return forbidden(fTeamID, "a manager may delete only accounts of the team they manage")
	}
	return forbidden(fOwnerRepID, "only the owner rep, their manager or an admin may delete an account")
}

func validateAccount(c *engine.Context, old, r *engine.Record) error {
	if err := checkPair(c, r, fLat, fLng); err != nil {
		return err
	}
	if owner := r.UUIDValue(fOwnerRepID); owner != nil && (old == nil || !sameUUID(old.UUIDValue(fOwnerRepID), owner)) {
		u, err := c.User(*owner)
		if err != nil && models.ErrorCode(err) != models.CodeNotFound {
			return err
		}
		team := r.UUIDValue(fTeamID)
		if err != nil || !u.Active || u.Role == models.RoleAdmin || (team != nil && !sameUUID(u.TeamID, team)) {
			return models.FieldInvalid(fOwnerRepID, "must be an active rep or manager of the account's team")
		}
	}
	key := NameKey(r.StringValue(fName))
	r.Values[fNameKey] = key
	if old == nil && r.StringValue(fStatus) == "prospect" {
		return flagDuplicate(c, r, key)
	}
	return nil
}

// flagDuplicate marks a prospect created offline that matches an existing
// account of its team by normalised name within DuplicateRadiusM. It flags
// rather than merges: the rep may really have found a second branch.
func flagDuplicate(c *engine.Context, r *engine.Record, key string) error {
	lat, lng := r.FloatValue(fLat), r.FloatValue(fLng)
	if key == "" || lat == nil || lng == nil {
		return nil
	}
	where := map[string]any{fNameKey: key, fTeamID: nil}
	if t := r.UUIDValue(fTeamID); t != nil {
		where[fTeamID] = *t
	}
	cands, err := c.Find(entAccounts, where)
	if err != nil {
		return err
	}
	for _, a := range cands {
		if a.ID == r.ID {
			continue
		}
		alat, alng := a.FloatValue(fLat), a.FloatValue(fLng)
		if alat != nil && alng != nil && DistanceM(*lat, *lng, *alat, *alng) <= DuplicateRadiusM {
			r.Values[fPossibleDuplicateOf] = a.ID
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
func Visits() *engine.Entity {
	return &engine.Entity{
		Name: "visits",
		Fields: []engine.Field{
			{Name: "account_id", Type: engine.UUID, Ref: "accounts", Required: true},
			{Name: "kind", Type: engine.Enum, Enum: []string{"scheduled", "unscheduled"}, Default: "unscheduled", Required: true},
			{Name: "status", Type: engine.Enum, Enum: []string{"planned", "in_progress", "completed", "cancelled"}, Default: "completed", Required: true},
			{Name: "planned_at", Type: engine.Time},
			{Name: "started_at", Type: engine.Time, NotFuture: true},
			{Name: "ended_at", Type: engine.Time, NotFuture: true},
			latField("check_in_lat"),
			lngField("check_in_lng"),
			{Name: "check_in_accuracy_m", Type: engine.Float, Min: 0, Max: 100000},
			latField("check_out_lat"),
			lngField("check_out_lng"),
			{Name: "outcome", Type: engine.Enum, Enum: []string{"none", "no_answer", "not_interested", "follow_up", "meeting", "demo", "order"}, Default: "none", Required: true},
			{Name: "order_value", Type: engine.Money, Max: 1e10},
			{Name: "referrals", Type: engine.Int, Min: 0, Max: 1000, Default: int64(0), Required: true},
			{Name: "follow_up_at", Type: engine.Time},
			{Name: "notes", Type: engine.Text},
			{Name: "rep_id", Type: engine.UUID, Access: engine.SelfOnly},
			{Name: "team_id", Type: engine.UUID, Access: engine.ServerOwned},
			{Name: "verification", Type: engine.Enum, Enum: []string{models.CheckInVerified, models.CheckInOutOfRange, models.CheckInUnverifiable, models.CheckInSuspicious}, Access: engine.ServerOwned},
			{Name: "check_in_distance_m", Type: engine.Float, Min: 0, Max: 1e8, Access: engine.ServerOwned},
			// location_redacted_at is when the location privacy job
			// coarsened the coordinates (privacy.go).
			{Name: "location_redacted_at", Type: engine.Time, Hidden: true},
			{Name: "suspicious_reason", Type: engine.Enum, Enum: []string{models.SuspiciousOrderValue}, Access: engine.ServerOwned},
			{Name: "order_value_review", Type: engine.Enum, Enum: []string{models.OrderValuePending, models.OrderValueApproved, models.OrderValueRejected}, Access: engine.ServerOwned},
		},
		Scope:   repScope,
		Prepare: prepareRepRecord,
		Validate: func(c *engine.Context, old, r *engine.Record) error {
			if err := checkAccountRef(c, old, r); err != nil {
				return err
			}
			if old == nil {
				r.Values[fVerification] = models.CheckInUnverifiable // until verifyRep runs, before commit
			}
			unmarkIfRelocated(c, old, r, fCheckInLat, fCheckInLng, fCheckOutLat, fCheckOutLng)
			// Cross-field rules, resolved under concurrent edits
			// (concurrent.go).
			for _, pair := range [][2]string{{fCheckInLat, fCheckInLng}, {fCheckOutLat, fCheckOutLng}} {
				if err := checkPair(c, r, pair[0], pair[1]); err != nil {
					return err
				}
			}
			if err := checkVisitTimes(c, r); err != nil {
				return err
			}
			if err := checkOrderValue(c, r); err != nil {
				return err
			}
			return flagOrderValue(c, old, r)
		},
	}
}

// Activities are the things a rep does besides visits that contests score:
// CRM updates, referrals, expense reports, networking.
func Activities() *engine.Entity {
	return &engine.Entity{
		Name: "activities",
		Fields: []engine.Field{
			{Name: "type", Type: engine.Enum, Enum: []string{"crm_update", "referral", "expense_report", "networking", "other"}, Required: true},
			{Name: "occurred_at", Type: engine.Time, NotFuture: true, Required: true},
			{Name: "account_id", Type: engine.UUID, Ref: "accounts"},
			{Name: "visit_id", Type: engine.UUID, Ref: "visits"},
			{Name: "value", Type: engine.Money, Max: 1e10},
			{Name: "cost", Type: engine.Money, Max: 1e8},
			{Name: "notes", Type: engine.Text},
			{Name: "rep_id", Type: engine.UUID, Access: engine.SelfOnly},
			{Name: "team_id", Type: engine.UUID, Access: engine.ServerOwned},
		},
		Scope:   repScope,
		Prepare: prepareRepRecord,
		Validate: func(c *engine.Context, old, r *engine.Record) error {
			if err := checkAccountRef(c, old, r); err != nil {
				return err
			}
			if v := r.UUIDValue(fVisitID); v != nil && (old == nil || !sameUUID(old.UUIDValue(fVisitID), v)) {
				visit, err := c.Lookup(entVisits, *v)
				if err != nil {
					return err
				}
				if visit == nil || !sameUUID(visit.UUIDValue(fRepID), r.UUIDValue(fRepID)) {
					return models.FieldInvalid(fVisitID, "must name a visit of the same rep")
				}
			}
			return nil
		},
	}
}

// repScope shares a rep's record with the rep, their manager and admins.
func repScope(r *engine.Record) engine.Scope {
	return engine.Scope{TeamID: r.UUIDValue(fTeamID), UserID: r.UUIDValue(fRepID), Visibility: engine.VisOwner}
}

// prepareRepRecord sets rep_id and team_id of a new rep-owned record: the
// rep is the caller unless a manager or admin named one of theirs (checked
// when the field was parsed). rep_id never changes afterwards.
func prepareRepRecord(c *engine.Context, old, r *engine.Record) error {
	if r == nil {
		return nil
	}
	sent, _ := c.Sent[fRepID].(uuid.UUID)
	if old != nil {
		if cur := old.UUIDValue(fRepID); sent != uuid.Nil && (cur == nil || *cur != sent) {
			return models.FieldErr(engine.CodeServerOwned, "rep_id cannot change", fRepID, "cannot change")
		}
		return nil
	}
	rep := c.P.UserID
	if sent != uuid.Nil {
		rep = sent
	}
	r.Values[fRepID] = rep
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
		r.Values[fTeamID] = *team
	}
	return nil
}

// checkAccountRef requires account_id, when set or changed, to name an
// account the caller can see; a hidden one is reported like a missing one.
// An update that leaves account_id alone is not checked: the account being
// deleted or leaving the caller's sight since must not make every later
// edit of the record a rejection.
func checkAccountRef(c *engine.Context, old, r *engine.Record) error {
	id := r.UUIDValue(fAccountID)
	if id == nil || (old != nil && sameUUID(old.UUIDValue(fAccountID), id)) {
		return nil
	}
	a, err := c.Lookup(entAccounts, *id)
	if err != nil {
		return err
	}
	if a == nil {
		return models.FieldInvalid(fAccountID, "must name an account you can see (%s was not found)", id)
	}
	return nil
}

func bothOrNeither(r *engine.Record, a, b string) error {
	if (r.Values[a] == nil) != (r.Values[b] == nil) {
		return models.FieldInvalid(b, "must be set together with %s", a)
	}
	return nil
}

func sameUUID(a, b *uuid.UUID) bool {
	return a != nil && b != nil && *a == *b
}
