package sales

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Contests are synced read-only to their participants; admins and managers
// edit them over HTTP (the server writes them with Engine.Server).
func Contests() *engine.Entity {
	return &engine.Entity{
		Name:     "contests",
		ReadOnly: true,
		Fields: []engine.Field{
			{Name: "name", Type: engine.String, Required: true},
			{Name: "starts_at", Type: engine.Time, Required: true},
			{Name: "ends_at", Type: engine.Time, Required: true},
			{Name: "time_zone", Type: engine.String, MaxLen: 64, Required: true},
			{Name: "team_id", Type: engine.UUID},
			{Name: "rules", Type: engine.JSON},
			{Name: "targets", Type: engine.JSON},
			{Name: "grace_hours", Type: engine.Int, Min: 0, Max: 24 * 30},
			{Name: "status", Type: engine.Enum, Enum: []string{models.ContestStatusDraft, models.ContestStatusActive, models.ContestStatusEnded, models.ContestStatusFinalized}},
			{Name: "rules_version", Type: engine.Int, Min: 1, Max: 1 << 30},
			{Name: "owner_id", Type: engine.UUID},
		},
		Scope: teamOrOrgScope,
	}
}

func teamOrOrgScope(r *engine.Record) engine.Scope {
	if t := r.UUIDValue(fTeamID); t != nil {
		return engine.Scope{TeamID: t, Visibility: engine.VisTeam}
	}
	return engine.Scope{Visibility: engine.VisOrg}
}

// ScoreEntries are the append-only points ledger: every point a rep has,
// with its source record, rule and a reason they can read. A changed or
// deleted source gets a reversing entry, never an edit.
func ScoreEntries() *engine.Entity {
	return &engine.Entity{
		Name:     "score_entries",
		ReadOnly: true,
		Fields: []engine.Field{
			{Name: "contest_id", Type: engine.UUID},
			{Name: "rep_id", Type: engine.UUID},
			{Name: "team_id", Type: engine.UUID},
			{Name: "source_entity", Type: engine.String},
			{Name: "source_id", Type: engine.UUID},
			{Name: "rule", Type: engine.String},
			{Name: "kind", Type: engine.Enum, Enum: []string{models.KindOutcome, models.KindActivity}},
			{Name: "points", Type: engine.Float, Min: -1e12, Max: 1e12},
			{Name: "value", Type: engine.Money, Max: 1e12},
			{Name: "cost", Type: engine.Money, Max: 1e12},
			{Name: "reason", Type: engine.Text},
			{Name: "occurred_at", Type: engine.Time},
			{Name: "reverses", Type: engine.UUID},
			{Name: "rules_version", Type: engine.Int, Min: 0, Max: 1 << 30},
		},
		Scope: repScope,
	}
}

// Standings are computed by the server and synced read-only: one per rep
// and contest, with outcome and activity points apart.
func Standings() *engine.Entity {
	return &engine.Entity{
		Name:     "standings",
		ReadOnly: true,
		Fields: []engine.Field{
			{Name: "contest_id", Type: engine.UUID},
			{Name: "rep_id", Type: engine.UUID},
			{Name: "team_id", Type: engine.UUID},
			{Name: "rank", Type: engine.Int, Min: 0, Max: 1 << 30},
			{Name: "previous_rank", Type: engine.Int, Min: 0, Max: 1 << 30},
			{Name: "outcome_points", Type: engine.Float, Min: -1e12, Max: 1e12},
			{Name: "activity_points", Type: engine.Float, Min: -1e12, Max: 1e12},
			{Name: "total_points", Type: engine.Float, Min: -1e12, Max: 1e12},
			{Name: "outcome_value", Type: engine.Money, Max: 1e12},
			{Name: "activity_cost", Type: engine.Money, Max: 1e12},
			{Name: "productivity", Type: engine.Float, Min: 0, Max: 1e12},
			{Name: "target", Type: engine.Float, Min: 0, Max: 1e12},
			{Name: "progress", Type: engine.Float, Min: 0, Max: 1e12},
			{Name: "as_of", Type: engine.Time},
			{Name: "contest_scope_team", Type: engine.UUID, Hidden: true},
		},
		Scope: func(r *engine.Record) engine.Scope {
			// Everyone in a contest sees its standings.
			if t := r.UUIDValue(fContestScopeTeam); t != nil {
				return engine.Scope{TeamID: t, UserID: r.UUIDValue(fRepID), Visibility: engine.VisTeam}
			}
			return engine.Scope{Visibility: engine.VisOrg}
		},
	}
}

// contestView is a contest as scoring reads it.
type contestView struct {
	rec          *engine.Record
	id           uuid.UUID
	team         *uuid.UUID
	start, end   time.Time
	loc          *time.Location
	grace        time.Duration
	status       string
	rules        models.ScoringRules
	rulesVersion int64
	targets      models.ContestTargets
}

func viewContest(r *engine.Record) (*contestView, error) {
	v := &contestView{rec: r, id: r.ID, team: r.UUIDValue(fTeamID), status: r.StringValue(fStatus), rules: models.DefaultScoringRules()}
	if s := r.TimeValue(fStartsAt); s != nil {
		v.start = *s
	}
	if e := r.TimeValue(fEndsAt); e != nil {
		v.end = *e
	}
	loc, err := time.LoadLocation(r.StringValue(fTimeZone))
	if err != nil {
		loc = time.UTC
	}
	v.loc = loc
	g, ok := r.Values[fGraceHours].(int64)
	if !ok {
		g = models.DefaultGraceHours
	}
	v.grace = time.Duration(g) * time.Hour
	if raw := r.StringValue(fRules); raw != "" && raw != "null" {
		if err := json.Unmarshal([]byte(raw), &v.rules); err != nil {
			return nil, fmt.Errorf("contest %s rules: %w", r.ID, err)
		}
	}
	v.rulesVersion, _ = r.Values[fRulesVersion].(int64)
	if v.targets, err = models.ParseTargets(r.StringValue(fTargets)); err != nil {
		return nil, fmt.Errorf("contest %s targets: %w", r.ID, err)
	}
	return v, nil
}

// scoring reports whether the contest still takes changes at now: started,
// not finalized, and within its grace period.
func (v *contestView) scoring(now time.Time) bool {
	return (v.status == models.ContestStatusActive || v.status == models.ContestStatusEnded) && now.Before(v.end.Add(v.grace))
}

func (v *contestView) includes(team *uuid.UUID) bool {
	return v.team == nil || sameUUID(v.team, team)
}

// day returns the contest-local day containing t, clipped to the window.
func (v *contestView) day(t time.Time) (from, to time.Time, ok bool) {
	if t.Before(v.start) || !t.Before(v.end) {
		return time.Time{}, time.Time{}, false
	}
	lt := t.In(v.loc)
	from = time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, v.loc).UTC()
	to = time.Date(lt.Year(), lt.Month(), lt.Day()+1, 0, 0, 0, 0, v.loc).UTC()
	if from.Before(v.start) {
		from = v.start
	}
	if to.After(v.end) {
		to = v.end
	}
	return from, to, true
}

// scoringContests returns the contests that take changes now and score
// records of team (nil: records of no team): the organisation-wide ones
// and the team's own. Only those are read and decoded — not every team's
// contest on every push. They are cached per team for the batch, under
// one key that contest changes forget.
func scoringContests(c *engine.Context, team *uuid.UUID) ([]*contestView, error) {
	v, err := c.Cached("scoring-contests", func() (any, error) { return map[uuid.UUID][]*contestView{}, nil })
	if err != nil {
		return nil, err
	}
	byTeam := v.(map[uuid.UUID][]*contestView)
	key := uuid.Nil
	if team != nil {
		key = *team
	}
	if out, ok := byTeam[key]; ok {
		return out, nil
	}
	// One read for both: a check-in's push makes a dozen statements, and
	// each keeps its transaction open a round trip longer.
	teams := engine.AnyOf{nil}
	if team != nil {
		teams = append(teams, *team)
	}
	recs, err := c.Find(entContests, map[string]any{fStatus: engine.AnyOf{models.ContestStatusActive, models.ContestStatusEnded}, fTeamID: teams})
	if err != nil {
		return nil, err
	}
	out := []*contestView{}
	for _, r := range recs {
		cv, err := viewContest(r)
		if err != nil {
			return nil, err
		}
		if cv.scoring(c.Now) && cv.includes(team) {
			out = append(out, cv)
		}
	}
	byTeam[key] = out
	return out, nil
}

// scoreHook schedules the recomputation of the score buckets — one rep's
// day in one contest — that a change of a visit or an activity touches.
// It runs once per bucket per batch, so a push of ten visits recomputes a
// few rep-days, never the contest.
func scoreHook(timeField string) engine.Hook {
	return func(c *engine.Context, old, r *engine.Record) error {
		for _, rec := range []*engine.Record{old, r} {
			if rec == nil {
				continue
			}
			rep, at := rec.UUIDValue(fRepID), rec.TimeValue(timeField)
			if rep == nil || at == nil {
				continue
			}
			contests, err := scoringContests(c, rec.UUIDValue(fTeamID))
			if err != nil {
				return err
			}
			for _, cv := range contests {
				from, to, ok := cv.day(*at)
				if !ok {
					continue
				}
				cv, rep := cv, *rep
				c.Defer(fmt.Sprintf("score:%s:%s:%d", cv.id, rep, from.Unix()), func(c *engine.Context) error {
					return recomputeDay(c, cv, rep, from, to)
				})
			}
		}
		return nil
	}
}

type entryKey struct {
	source uuid.UUID
	rule   string
}

type netEntry struct {
	points      float64
	value, cost int64
	last        *engine.Record
}

// recomputeDay brings one rep's score entries for one contest day in line
// with the sources as they now stand, writing only differences: a reversal
// of what no longer holds and a new entry for what now does. Running it
// twice writes nothing the second time.
func recomputeDay(c *engine.Context, cv *contestView, rep uuid.UUID, from, to time.Time) error {
	visits, err := c.Range(entVisits, map[string]any{fRepID: rep}, fStartedAt, from, to)
	if err != nil {
		return err
	}
	acts, err := c.Range(entActivities, map[string]any{fRepID: rep}, fOccurredAt, from, to)
	if err != nil {
		return err
	}
	sources := make([]models.ScoreSource, 0, len(visits)+len(acts))
	for _, v := range visits {
		s := models.ScoreSource{Entity: entVisits, ID: v.ID, At: *v.TimeValue(fStartedAt), Kind: v.StringValue(fKind),
			Status: v.StringValue(fStatus), Outcome: v.StringValue(fOutcome), Verification: v.StringValue(fVerification), Minutes: -1}
		s.OrderCents, _ = v.Values[fOrderValue].(int64)
		s.OrderReview = v.StringValue(fOrderValueReview)
		if d := v.FloatValue(fCheckInDistanceM); d != nil {
			s.DistanceM = *d
		}
		if e := v.TimeValue(fEndedAt); e != nil {
			s.Minutes = e.Sub(s.At).Minutes()
		}
		if s.AccountName, err = accountName(c, v.UUIDValue(fAccountID)); err != nil {
			return err
		}
		sources = append(sources, s)
	}
	for _, a := range acts {
		s := models.ScoreSource{Entity: entActivities, ID: a.ID, At: *a.TimeValue(fOccurredAt), Kind: a.StringValue(fType)}
		s.CostCents, _ = a.Values[fCost].(int64)
		if s.AccountName, err = accountName(c, a.UUIDValue(fAccountID)); err != nil {
			return err
		}
		sources = append(sources, s)
	}
	desired, unscored := models.ScoreDay(cv.rules, sources)
	if err := notifyUnscored(c, cv, rep, unscored); err != nil {
		return err
	}

	existing, err := c.Range(entScoreEntries, map[string]any{fContestID: cv.id, fRepID: rep}, fOccurredAt, from, to)
	if err != nil {
		return err
	}
	net := map[entryKey]*netEntry{}
	for _, e := range existing {
		k := entryKey{*e.UUIDValue(fSourceID), e.StringValue(fRule)}
		n := net[k]
		if n == nil {
			n = &netEntry{}
			net[k] = n
		}
		p, _ := e.Values[fPoints].(float64)
		val, _ := e.Values[fValue].(int64)
		cost, _ := e.Values[fCost].(int64)
		n.points += p
		n.value += val
		n.cost += cost
		// A reversal names, and quotes, the entry now standing: the
		// newest one that is not itself a reversal.
		if rev, lastRev := e.Values[fReverses] != nil, n.last != nil && n.last.Values[fReverses] != nil; n.last == nil ||
			(lastRev && !rev) || (lastRev == rev && entryAfter(e, n.last)) {
			n.last = e
		}
	}
	want := map[entryKey]models.Entry{}
	for _, e := range desired {
		want[entryKey{e.SourceID, e.Rule}] = e
	}
	var delta models.Standing
	team := teamOf(c, rep)
	write := func(e models.Entry, reverses *uuid.UUID) error {
		rec := &engine.Record{ID: uuid.New(), Values: map[string]any{
			fContestID: cv.id, fRepID: rep, fTeamID: valueOr(team), fSourceEntity: e.SourceEntity,
			fSourceID: e.SourceID, fRule: e.Rule, fKind: e.Kind, fPoints: e.Points, fReason: e.Reason,
			fOccurredAt: e.At, fRulesVersion: cv.rulesVersion,
		}}
		if e.ValueCents != 0 {
			rec.Values[fValue] = e.ValueCents
		}
		if e.CostCents != 0 {
			rec.Values[fCost] = e.CostCents
		}
		if reverses != nil {
			rec.Values[fReverses] = *reverses
		}
		if e.Kind == models.KindOutcome {
			delta.OutcomePoints += e.Points
		} else {
			delta.ActivityPoints += e.Points
		}
		delta.ValueCents += e.ValueCents
		delta.CostCents += e.CostCents
		return c.Put(entScoreEntries, rec)
	}
	keys := make([]entryKey, 0, len(net)+len(want))
	for k := range net {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := net[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].source != keys[j].source {
			return keys[i].source.String() < keys[j].source.String()
		}
		return keys[i].rule < keys[j].rule
	})
	for _, k := range keys {
		have, w := net[k], want[k]
		_, wanted := want[k]
		if have != nil && wanted && math.Abs(have.points-w.Points) < 0.005 && have.value == w.ValueCents && have.cost == w.CostCents {
			continue
		}
		if have != nil && (math.Abs(have.points) >= 0.005 || have.value != 0 || have.cost != 0) {
			last := have.last
			rev := models.Entry{SourceEntity: last.StringValue(fSourceEntity), SourceID: k.source, Rule: k.rule,
				Kind: last.StringValue(fKind), Points: -have.points, ValueCents: -have.value, CostCents: -have.cost,
				Reason: "Reversed: " + last.StringValue(fReason), At: *last.TimeValue(fOccurredAt)}
			if err := write(rev, &last.ID); err != nil {
				return err
			}
		}
		if wanted {
			if err := write(w, nil); err != nil {
				return err
			}
		}
	}
	if delta == (models.Standing{}) {
		return nil
	}
	return addToStanding(c, cv, rep, team, delta)
}

// entryAfter reports whether score entry a was written after b: by time,
// then version (0 until its batch commits, so the newest), then id.
func entryAfter(a, b *engine.Record) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	av, bv := uint64(a.Version-1), uint64(b.Version-1) // 0 wraps to the largest
	if av != bv {
		return av > bv
	}
	return a.ID.String() > b.ID.String()
}

// teamOf is the rep's team, for the scope of entries and standings.
func teamOf(c *engine.Context, rep uuid.UUID) *uuid.UUID {
	u, err := c.User(rep)
	if err != nil {
		return nil
	}
	return u.TeamID
}

func accountName(c *engine.Context, id *uuid.UUID) (string, error) {
	if id == nil {
		return "", nil
	}
	a, err := c.Get(entAccounts, *id)
	if err != nil || a == nil {
		return "", err
	}
	return a.StringValue(fName), nil
}

// StandingID is the id of a rep's standing in a contest.
func StandingID(org, contest, rep uuid.UUID) uuid.UUID {
	return engine.NameID(org, "standing:"+contest.String()+":"+rep.String())
}

func standingRecord(c *engine.Context, cv *contestView, rep uuid.UUID, team *uuid.UUID) (*engine.Record, error) {
	id := StandingID(c.P.OrgID, cv.id, rep)
	cur, err := c.Get(entStandings, id)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		return cur.Clone(), nil
	}
	return &engine.Record{ID: id, Values: map[string]any{
		fContestID: cv.id, fRepID: rep, fTeamID: valueOr(team), fContestScopeTeam: valueOr(cv.team),
		fRank: int64(0), fPreviousRank: int64(0), fOutcomePoints: 0.0, fActivityPoints: 0.0, fTotalPoints: 0.0,
		fOutcomeValue: int64(0), fActivityCost: int64(0), fProductivity: 0.0, fTarget: cv.targets[rep], fProgress: 0.0,
	}}, nil
}

func standingOf(r *engine.Record) models.Standing {
	s := models.Standing{RepID: *r.UUIDValue(fRepID)}
	s.OutcomePoints, _ = r.Values[fOutcomePoints].(float64)
	s.ActivityPoints, _ = r.Values[fActivityPoints].(float64)
	s.ValueCents, _ = r.Values[fOutcomeValue].(int64)
	s.CostCents, _ = r.Values[fActivityCost].(int64)
	s.Target, _ = r.Values[fTarget].(float64)
	rank, _ := r.Values[fRank].(int64)
	s.Rank = int(rank)
	prev, _ := r.Values[fPreviousRank].(int64)
	s.Previous = int(prev)
	return s
}

func setStanding(r *engine.Record, s models.Standing, now time.Time) {
	r.Values[fOutcomePoints] = math.Round(s.OutcomePoints*100) / 100
	r.Values[fActivityPoints] = math.Round(s.ActivityPoints*100) / 100
	r.Values[fTotalPoints] = s.Total()
	r.Values[fOutcomeValue] = s.ValueCents
	r.Values[fActivityCost] = s.CostCents
	r.Values[fProductivity] = s.Productivity()
	r.Values[fTarget] = s.Target
	r.Values[fProgress] = s.Progress()
	r.Values[fAsOf] = now
}

// addToStanding adds a delta to a rep's standing and schedules the
// contest's re-ranking: ranks move among the contest's standings only,
// without reading a single visit.
func addToStanding(c *engine.Context, cv *contestView, rep uuid.UUID, team *uuid.UUID, d models.Standing) error {
	r, err := standingRecord(c, cv, rep, team)
	if err != nil {
		return err
	}
	s := standingOf(r)
	before := s
	before.Target = cv.targets[rep]
	s.OutcomePoints += d.OutcomePoints
	s.ActivityPoints += d.ActivityPoints
	s.ValueCents += d.ValueCents
	s.CostCents += d.CostCents
	s.Target = cv.targets[rep]
	setStanding(r, s, c.Now)
	if err := c.Put(entStandings, r); err != nil {
		return err
	}
	if err := notifyTargets(c, cv, rep, before, s); err != nil {
		return err
	}
	c.Defer("rank:"+cv.id.String(), func(c *engine.Context) error { return Rerank(c, cv.rec) })
	return nil
}

// Rerank orders a contest's standings and writes those whose rank moved,
// remembering the rank they left.
func Rerank(c *engine.Context, contest *engine.Record) error {
	cv, err := viewContest(contest)
	if err != nil {
		return err
	}
	recs, err := c.Find(entStandings, map[string]any{fContestID: cv.id})
	if err != nil {
		return err
	}
	ss := make([]models.Standing, len(recs))
	byRep := make(map[uuid.UUID]*engine.Record, len(recs))
	for i, r := range recs {
		ss[i] = standingOf(r)
		byRep[ss[i].RepID] = r
	}
	before := make(map[uuid.UUID]int, len(ss))
	for _, s := range ss {
		before[s.RepID] = s.Rank
	}
	models.Rank(ss, len(cv.targets) > 0)
	if err := notifyRankMoves(c, cv, before, ss); err != nil {
		return err
	}
	for _, s := range ss {
		r := byRep[s.RepID]
		old, _ := r.Values[fRank].(int64)
		if int(old) == s.Rank {
			continue
		}
		next := r.Clone()
		next.Values[fPreviousRank] = old
		next.Values[fRank] = int64(s.Rank)
		next.Values[fAsOf] = c.Now
		if err := c.Put(entStandings, next); err != nil {
			return err
		}
	}
	return nil
}

// EnsureStandings gives every participant of a contest a standing, so a
// contest's board lists everyone from its first minute.
func EnsureStandings(c *engine.Context, contest *engine.Record) error {
	cv, err := viewContest(contest)
	if err != nil {
		return err
	}
	users, err := c.Users(cv.team)
	if err != nil {
		return err
	}
	for _, u := range users {
		if u.Role != models.RoleRep {
			continue
		}
		r, err := standingRecord(c, cv, u.ID, u.TeamID)
		if err != nil {
			return err
		}
		s := standingOf(r)
		retarget := s.Target != cv.targets[u.ID] // targets changed: progress moves
		s.Target = cv.targets[u.ID]
		setStanding(r, s, c.Now)
		if retarget {
			if err := c.Put(entStandings, r); err != nil {
				return err
			}
			continue
		}
		if _, err := c.PutNew(entStandings, r); err != nil {
			return err
		}
	}
	return Rerank(c, contest)
}

// RecomputeContest rebuilds every score bucket of a contest: after its
// rules change (a new rules version) or when it starts. It reads every
// source in the window, so it is for those rare events only.
func RecomputeContest(c *engine.Context, contest *engine.Record) error {
	cv, err := viewContest(contest)
	if err != nil {
		return err
	}
	if err := EnsureStandings(c, contest); err != nil {
		return err
	}
	users, err := c.Users(cv.team)
	if err != nil {
		return err
	}
	for _, u := range users {
		if u.Role != models.RoleRep {
			continue
		}
		for day := cv.start; day.Before(cv.end); {
			from, to, ok := cv.day(day)
			if !ok {
				break
			}
			if err := recomputeDay(c, cv, u.ID, from, to); err != nil {
				return err
			}
			day = to
		}
	}
	return nil
}
