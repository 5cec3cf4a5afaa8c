package sales

import (
	"math"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// verifyHook queues a visit whose check-in, start or account changed for
// verification, once per rep per batch (see verifyRep). A deleted visit is
// queued too: the verdicts of the rep's later visits may rest on it.
func verifyHook(c *engine.Context, old, v *engine.Record) error {
	rep := v.UUIDValue(fRepID)
	if rep == nil || (v.Deleted && (old == nil || old.Deleted)) {
		return nil
	}
	if old != nil && !v.Deleted && !changed(old, v, fCheckInLat, fCheckInLng, fCheckInAccuracyM, fStartedAt, fAccountID) {
		return nil
	}
	key := "verify:" + rep.String()
	pending, err := c.Cached(key, func() (any, error) { return &[]uuid.UUID{}, nil })
	if err != nil {
		return err
	}
	ids := pending.(*[]uuid.UUID)
	*ids = append(*ids, v.ID)
	repID := *rep
	c.Defer(key, func(c *engine.Context) error {
		todo := *ids
		*ids = nil
		return verifyRep(c, repID, todo)
	})
	return nil
}

func changed(a, b *engine.Record, fields ...string) bool {
	for _, f := range fields {
		if !engine.Equal(a.Values[f], b.Values[f]) {
			return true
		}
	}
	return false
}

// verifyRep classifies the check-ins of a rep's visits: within 250 m of the
// account with accuracy ≤ 100 m is verified; an implausible speed from the
// rep's previous check-in, or the same account again within the cooldown,
// is suspicious. One query reads the rep's visits around the batch's.
//
// A verdict rests on the visits before it, so the rep's visits up to a
// cooldown after the batch's (or after a deleted one) are judged again:
// the verdicts must not depend on the order the phone synced in.
func verifyRep(c *engine.Context, rep uuid.UUID, ids []uuid.UUID) error {
	var todo []*engine.Record
	var lo, hi time.Time
	queued := map[uuid.UUID]bool{}
	for _, id := range ids {
		v, err := c.Get(entVisits, id)
		if err != nil {
			return err
		}
		if v == nil {
			continue
		}
		if !v.Deleted && !queued[id] {
			queued[id] = true
			todo = append(todo, v)
		}
		if t := v.TimeValue(fStartedAt); t != nil {
			if lo.IsZero() || t.Before(lo) {
				lo = *t
			}
			if t.After(hi) {
				hi = *t
			}
		}
	}
	// Only check-ins within the cooldown before a visit matter: a revisit
	// is one within it, and no speed over longer gaps is implausible
	// enough to flag (four hours at 200 km/h is a flight).
	var around []timedVisit
	if !lo.IsZero() {
		cooldown := models.RevisitCooldownHours * time.Hour
		recs, err := c.Range(entVisits, map[string]any{fRepID: rep}, fStartedAt, lo.Add(-cooldown), hi.Add(cooldown+time.Second))
		if err != nil {
			return err
		}
		around = make([]timedVisit, 0, len(recs))
		for _, r := range recs {
			t, _ := r.TimeAt(fStartedAt)
			around = append(around, timedVisit{t, r})
			if t.After(lo) && !queued[r.ID] {
				queued[r.ID] = true
				todo = append(todo, r)
			}
		}
		sort.Slice(around, func(i, j int) bool { return around[i].at.Before(around[j].at) })
	}
	for _, v := range todo {
		if redacted(v) {
			// Its check-in was coarsened (privacy.go): the verdict made
			// on the precise position stands.
			continue
		}
		verdict, dist, err := verifyVisit(c, v, around)
		if err != nil {
			return err
		}
		if verdict == models.CheckInVerified && v.StringValue(fKind) == "unscheduled" {
			if rep := v.UUIDValue(fRepID); rep != nil {
				if err := awardBadge(c, *rep, "first_verified_call", nil, "First verified unscheduled call"); err != nil {
					return err
				}
			}
		}
		if v.StringValue(fVerification) == verdict && engine.Equal(v.Values[fCheckInDistanceM], dist) {
			continue
		}
		next := v.Clone()
		next.Values[fVerification] = verdict
		next.Values[fCheckInDistanceM] = dist
		if err := c.Put(entVisits, next); err != nil {
			return err
		}
	}
	return nil
}

type timedVisit struct {
	at time.Time
	r  *engine.Record
}

func verifyVisit(c *engine.Context, v *engine.Record, around []timedVisit) (string, any, error) {
	ci := models.CheckIn{Lat: v.FloatValue(fCheckInLat), Lng: v.FloatValue(fCheckInLng), AccuracyM: v.FloatValue(fCheckInAccuracyM)}
	var dist *float64
	var distVal any
	if id := v.UUIDValue(fAccountID); id != nil && ci.Lat != nil && ci.Lng != nil {
		a, err := c.Get(entAccounts, *id)
		if err != nil {
			return "", nil, err
		}
		if a != nil && a.FloatValue(fLat) != nil && a.FloatValue(fLng) != nil {
			d := math.Round(DistanceM(*ci.Lat, *ci.Lng, *a.FloatValue(fLat), *a.FloatValue(fLng)))
			dist, distVal = &d, d
		}
	}
	start, hasStart := v.TimeAt(fStartedAt)
	var speed *float64
	revisit := false
	if hasStart && ci.Lat != nil && ci.Lng != nil {
		cooldown := start.Add(-models.RevisitCooldownHours * time.Hour)
		first := sort.Search(len(around), func(i int) bool { return !around[i].at.Before(start) })
		for i := first - 1; i >= 0 && !around[i].at.Before(cooldown); i-- {
			p, pt := around[i].r, around[i].at
			if p.ID == v.ID {
				continue
			}
			if sameUUID(p.UUIDValue(fAccountID), v.UUIDValue(fAccountID)) {
				revisit = true
			}
			plat, plng := p.FloatValue(fCheckInLat), p.FloatValue(fCheckInLng)
			if speed == nil && plat != nil && plng != nil {
				km := DistanceM(*plat, *plng, *ci.Lat, *ci.Lng) / 1000
				h := start.Sub(pt).Hours()
				s := math.Inf(1)
				if h > 0 {
					s = km / h
				}
				if km < 1 { // a walk next door is never implausible
					s = 0
				}
				speed = &s
			}
		}
	}
	return models.VerifyCheckIn(ci, dist, speed, revisit), distVal, nil
}

// Recognitions are kudos from anyone to anyone in the organisation, and
// badges the server awards on milestones.
func Recognitions() *engine.Entity {
	return &engine.Entity{
		Name: "recognitions",
		Fields: []engine.Field{
			{Name: "from_user_id", Type: engine.UUID, Access: engine.SelfOnly},
			{Name: "to_user_id", Type: engine.UUID, Required: true},
			{Name: "message", Type: engine.Text, MaxLen: 500, Required: true},
			{Name: "badge", Type: engine.Enum, Enum: Badges},
			{Name: "kind", Type: engine.Enum, Enum: []string{"kudos", "badge"}, Access: engine.ServerOwned},
			{Name: "contest_id", Type: engine.UUID, Access: engine.ServerOwned},
			{Name: "sent_at", Type: engine.Time, Access: engine.ServerOwned},
		},
		Scope: func(*engine.Record) engine.Scope { return engine.Scope{Visibility: engine.VisOrg} },
		Prepare: func(c *engine.Context, old, r *engine.Record) error {
			if old != nil {
				if r == nil && sameUUID(old.UUIDValue(fFromUserID), &c.P.UserID) {
					return nil // a giver may withdraw their kudos
				}
				return models.Errorf(CodeLocked, "recognition cannot be changed once given")
			}
			if from, ok := c.Sent[fFromUserID]; ok && from != any(c.P.UserID) {
				return models.FieldErr(engine.CodeServerOwned, "kudos are given in your own name", fFromUserID, "must be your own id")
			}
			r.Values[fFromUserID] = c.P.UserID
			r.Values[fKind] = "kudos"
			r.Values[fSentAt] = c.Now
			c.Sent[fFromUserID] = c.P.UserID
			return nil
		},
		Validate: validateKudos,
	}
}

// Badges a person may give or the server awards.
var Badges = []string{"first_verified_call", "top_3", "target_reached", "team_player", "closer", "hustle", "coach"}

// MonthlyKudosCap is how many kudos one person may give per calendar month.
const MonthlyKudosCap = 20

func validateKudos(c *engine.Context, old, r *engine.Record) error {
	if old != nil {
		return nil
	}
	to := r.UUIDValue(fToUserID)
	if sameUUID(to, &c.P.UserID) {
		return models.FieldInvalid(fToUserID, "kudos go to someone else")
	}
	u, err := c.User(*to)
	if err != nil && models.ErrorCode(err) != models.CodeNotFound {
		return err
	}
	if err != nil || !u.Active {
		return models.FieldInvalid(fToUserID, "must name an active person in your organisation")
	}
	switch r.StringValue(fBadge) {
	case "first_verified_call", "top_3", "target_reached":
		return models.FieldInvalid(fBadge, "%s is awarded by the server", r.StringValue(fBadge))
	}
	month := time.Date(c.Now.Year(), c.Now.Month(), 1, 0, 0, 0, 0, time.UTC)
	given, err := c.Range(entRecognitions, map[string]any{fFromUserID: c.P.UserID}, fSentAt, month, month.AddDate(0, 1, 0))
	if err != nil {
		return err
	}
	if len(given) >= MonthlyKudosCap { // the new one is not yet among them: Validate runs before it is written
		return models.Errorf(CodeLimitReached, "you have given the most kudos allowed this month")
	}
	return nil
}
