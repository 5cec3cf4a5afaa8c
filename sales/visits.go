package sales

import (
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// verifyHook queues a visit whose check-in, start or account changed for
// verification, once per rep per batch (see verifyRep), with the place it
// held before the change. A deleted visit is queued too: the verdicts of
// the rep's later visits may rest on it.
func verifyHook(c *engine.Context, old, v *engine.Record) error {
	rep := v.UUIDValue(fRepID)
	if rep == nil || (v.Deleted && (old == nil || old.Deleted)) {
		return nil
	}
	if old != nil && !v.Deleted && !changed(old, v, fCheckInLat, fCheckInLng, fCheckInAccuracyM, fStartedAt, fAccountID) {
		return nil
	}
	key := "verify:" + rep.String()
	pending, err := c.Cached(key, func() (any, error) { return &[]verifyItem{}, nil })
	if err != nil {
		return err
	}
	items := pending.(*[]verifyItem)
	item := verifyItem{id: v.ID}
	if old != nil && !old.Deleted && sameUUID(old.UUIDValue(fRepID), rep) {
		if m, ok := engine.MarkOf(old, fStartedAt); ok {
			item.was = &place{m, old.UUIDValue(fAccountID)}
		}
	}
	*items = append(*items, item)
	repID := *rep
	c.Defer(key, func(c *engine.Context) error {
		todo := *items
		*items = nil
		return verifyRep(c, repID, todo)
	})
	return nil
}

// verifyItem is a visit queued for verification, and where it was before
// the batch changed it.
type verifyItem struct {
	id  uuid.UUID
	was *place
}

// place is where a visit sits in its rep's day: its start (ties by id)
// and its account.
type place struct {
	at      engine.Mark
	account *uuid.UUID
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
// is suspicious.
//
// A verdict rests on two neighbours only, in the order of started_at with
// ties broken by id: the rep's previous check-in (the speed rule) and the
// rep's previous visit of the same account (the revisit rule), each if it
// lies within the cooldown. So a changed visit can change the verdicts of
// two visits at most for each place it held or holds: the rep's next
// check-in after it and the rep's next visit of its account, when within
// the cooldown; those are judged again, so that verdicts never depend on
// the order the phone synced in. Every neighbour is an indexed look-up
// (Context.NearestAll, a batch's all in one or two calls): a push costs
// O(its visits × log n), however many visits the rep has around them — a
// device stamping 500 calls with one minute, push after push, no longer
// makes each push read all the calls before it.
func verifyRep(c *engine.Context, rep uuid.UUID, items []verifyItem) error {
	var todo []*engine.Record
	queued := map[uuid.UUID]bool{}
	var places []place // where visits changed: their successors are judged again
	for _, it := range items {
		v, err := c.Get(entVisits, it.id)
		if err != nil {
			return err
		}
		if it.was != nil {
			places = append(places, *it.was)
		}
		if v == nil || !sameUUID(v.UUIDValue(fRepID), &rep) {
			continue
		}
		if m, ok := engine.MarkOf(v, fStartedAt); ok {
			places = append(places, place{m, v.UUIDValue(fAccountID)})
		}
		if !v.Deleted && !queued[v.ID] {
			queued[v.ID] = true
			todo = append(todo, v)
		}
	}
	cooldown := models.RevisitCooldownHours * time.Hour
	within := func(r *engine.Record, from engine.Mark) bool {
		t, ok := r.TimeAt(fStartedAt)
		return ok && !t.After(from.At.Add(cooldown))
	}
	// One round trip asks for the successors of every place and the
	// predecessors of the visits queued so far; a second, only when a
	// successor is to be judged again, for its predecessors.
	queuedFirst := len(todo)
	judged, at := judgedOf(todo, 0)
	afterLooks, readAfter := neighbourLooks(rep, places, engine.After)
	beforeLooks, readBefore := neighbourLooks(rep, judged, engine.Before)
	answers, err := c.NearestAll(append(afterLooks, beforeLooks...))
	if err != nil {
		return err
	}
	next, nextSame := readAfter(answers[:len(afterLooks)])
	for _, found := range [][]*engine.Record{next, nextSame} {
		for i, r := range found {
			if r != nil && !queued[r.ID] && within(r, places[i].at) {
				queued[r.ID] = true
				todo = append(todo, r)
			}
		}
	}
	prevCheckIn := make([]*engine.Record, len(todo))
	prevSame := make([]*engine.Record, len(todo))
	prev, same := readBefore(answers[len(afterLooks):])
	for j, i := range at {
		prevCheckIn[i], prevSame[i] = prev[j], same[j]
	}
	if judged, at := judgedOf(todo[queuedFirst:], queuedFirst); len(judged) > 0 {
		looks, read := neighbourLooks(rep, judged, engine.Before)
		answers, err := c.NearestAll(looks)
		if err != nil {
			return err
		}
		prev, same := read(answers)
		for j, i := range at {
			prevCheckIn[i], prevSame[i] = prev[j], same[j]
		}
	}
	for i, v := range todo {
		if redacted(v) {
			// Its check-in was coarsened (privacy.go): the verdict made
			// on the precise position stands.
			continue
		}
		verdict, dist, err := verifyVisit(c, v, prevCheckIn[i], prevSame[i])
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

// checkInsOf selects a rep's visits with a GPS fix.
func checkInsOf(rep uuid.UUID) map[string]any {
	return map[string]any{fRepID: rep, fCheckInLat: engine.NotNull{}, fCheckInLng: engine.NotNull{}}
}

// judgedOf returns the places of the visits that have a start, and where
// each visit is: judged[j] is visits[at[j]-offset].
func judgedOf(visits []*engine.Record, offset int) (judged []place, at []int) {
	for i, v := range visits {
		if m, ok := engine.MarkOf(v, fStartedAt); ok {
			judged = append(judged, place{m, v.UUIDValue(fAccountID)})
			at = append(at, offset+i)
		}
	}
	return judged, at
}

// neighbourLooks returns the look-ups of the rep's visits nearest to
// places on dir's side — one over the rep's check-ins, one per account
// over the rep's visits of it — for Context.NearestAll, and a reader of
// their answers: for each place, its nearest check-in and its nearest
// visit of the place's account (nil for a place without one).
func neighbourLooks(rep uuid.UUID, places []place, dir engine.Direction) ([]engine.Look, func([][][]*engine.Record) (checkIns, same []*engine.Record)) {
	if len(places) == 0 {
		return nil, func([][][]*engine.Record) ([]*engine.Record, []*engine.Record) { return nil, nil }
	}
	marks := make([]engine.Mark, len(places))
	byAccount := map[uuid.UUID][]int{}
	var accounts []uuid.UUID
	for i, p := range places {
		marks[i] = p.at
		if p.account == nil {
			continue
		}
		if byAccount[*p.account] == nil {
			accounts = append(accounts, *p.account)
		}
		byAccount[*p.account] = append(byAccount[*p.account], i)
	}
	looks := []engine.Look{{Entity: entVisits, Where: checkInsOf(rep), Field: fStartedAt, Dir: dir, Pivots: marks, Limit: 1}}
	for _, a := range accounts {
		idx := byAccount[a]
		pivots := make([]engine.Mark, len(idx))
		for j, i := range idx {
			pivots[j] = places[i].at
		}
		looks = append(looks, engine.Look{Entity: entVisits, Where: map[string]any{fRepID: rep, fAccountID: a}, Field: fStartedAt, Dir: dir, Pivots: pivots, Limit: 1})
	}
	return looks, func(answers [][][]*engine.Record) ([]*engine.Record, []*engine.Record) {
		same := make([]*engine.Record, len(places))
		for k, a := range accounts {
			for j, r := range engine.First(answers[1+k]) {
				same[byAccount[a][j]] = r
			}
		}
		return engine.First(answers[0]), same
	}
}

// verifyVisit judges one visit from its check-in, its account and its two
// neighbours: the rep's previous check-in and previous visit of the same
// account (nil when there is none).
func verifyVisit(c *engine.Context, v, prevCheckIn, prevSame *engine.Record) (string, any, error) {
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
		// Only neighbours within the cooldown matter: a revisit is one
		// within it, and no speed over longer gaps is implausible enough
		// to flag (four hours at 200 km/h is a flight).
		cooldown := start.Add(-models.RevisitCooldownHours * time.Hour)
		if p := prevSame; p != nil && p.ID != v.ID && !p.TimeValue(fStartedAt).Before(cooldown) &&
			sameUUID(p.UUIDValue(fAccountID), v.UUIDValue(fAccountID)) {
			revisit = true
		}
		if p := prevCheckIn; p != nil && p.ID != v.ID {
			pt, _ := p.TimeAt(fStartedAt)
			plat, plng := p.FloatValue(fCheckInLat), p.FloatValue(fCheckInLng)
			if !pt.Before(cooldown) && plat != nil && plng != nil {
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
