package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// HistoryDays is how far back the demo's visit history reaches.
const HistoryDays = 21

// SeedHistory gives the demo organisation a life: three weeks of visits
// and activities per rep, pushed through the sync engine as the reps'
// phones would push them (so check-ins are verified and scored by the real
// rules), a running contest, a finished one, and ride-alongs in each state.
// HTTP tests seed without it, to keep their fixtures small.
func SeedHistory(ctx context.Context, db *store.DB, eng *engine.Engine, now time.Time) error {
	org, err := db.People().OrgByName(ctx, OrgName)
	if err != nil {
		return fmt.Errorf("demo history: %w", err)
	}
	rng := rand.New(rand.NewPCG(20261127, 1))
	loc, _ := time.LoadLocation("America/Chicago")
	if loc == nil {
		loc = time.UTC
	}
	accounts, err := eng.Find(ctx, models.Principal{OrgID: org.ID, Role: models.RoleAdmin}, "accounts", nil)
	if err != nil {
		return err
	}
	byTeam := map[uuid.UUID][]*engine.Record{}
	for _, a := range accounts {
		if t := a.UUIDValue("team_id"); t != nil {
			byTeam[*t] = append(byTeam[*t], a)
		}
	}
	for _, as := range byTeam {
		sort.Slice(as, func(i, j int) bool { return as[i].StringValue("name") < as[j].StringValue("name") })
	}
	phones := map[uuid.UUID]*phone{}
	for _, tp := range teams {
		for _, email := range append([]string{tp.manager}, tp.reps...) {
			u, err := db.People().UserByEmail(ctx, email)
			if err != nil {
				return err
			}
			phones[u.ID] = &phone{p: models.Principal{OrgID: org.ID, UserID: u.ID, Role: u.Role, TeamID: u.TeamID,
				DeviceID: engine.NameID(org.ID, "demo-phone:"+email)}, user: u}
		}
	}
	ids := make([]uuid.UUID, 0, len(phones))
	for id := range phones {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return phones[ids[i]].user.Email < phones[ids[j]].user.Email })

	lastVisit := map[uuid.UUID]*engine.Record{}
	for _, id := range ids {
		ph := phones[id]
		if ph.user.Role != models.RoleRep {
			continue
		}
		visit := ph.history(rng, byTeam[*ph.user.TeamID], now, loc)
		if err := ph.push(ctx, eng, now); err != nil {
			return fmt.Errorf("demo history of %s: %w", ph.user.Email, err)
		}
		lastVisit[id] = visit
	}

	admin := models.Principal{OrgID: org.ID, Role: models.RoleAdmin}
	if u, err := db.People().UserByEmail(ctx, "admin@demo.test"); err == nil {
		admin.UserID = u.ID
	}
	contests := []sales.ContestInput{
		contestInput("October Sprint", now.AddDate(0, 0, -HistoryDays), now.AddDate(0, 0, -11)),
		contestInput("Q4 Unscheduled Calls Challenge", now.AddDate(0, 0, -10), now.AddDate(0, 0, 20)),
	}
	for _, in := range contests {
		err := eng.Server(ctx, admin, func(c *engine.Context) error {
			_, err := sales.CreateContest(c, in)
			return err
		})
		if err != nil {
			return fmt.Errorf("demo contest: %w", err)
		}
	}
	return rideAlongs(ctx, eng, phones, ids, lastVisit, now)
}

func contestInput(name string, from, to time.Time) sales.ContestInput {
	tz := "America/Chicago"
	rules := models.DefaultScoringRules()
	return sales.ContestInput{Name: &name, StartsAt: &models.TimeOrDate{At: from}, EndsAt: &models.TimeOrDate{At: to}, TimeZone: &tz, Rules: &rules}
}

// phone is a demo user's device with its outbox.
type phone struct {
	p    models.Principal
	user models.User
	seq  int64
	out  []engine.Mutation
}

func (ph *phone) add(entity string, id uuid.UUID, op string, fields map[string]any, now time.Time) {
	raw := map[string]json.RawMessage{}
	for k, v := range fields {
		b, _ := json.Marshal(v)
		raw[k] = b
	}
	ph.seq++
	ph.out = append(ph.out, engine.Mutation{Seq: ph.seq, Entity: entity, ID: id, Op: op, Fields: raw,
		HLC: engine.HLC{MS: now.UnixMilli(), Counter: ph.seq}})
}

func (ph *phone) push(ctx context.Context, eng *engine.Engine, now time.Time) error {
	for len(ph.out) > 0 {
		n := min(len(ph.out), engine.MaxBatch)
		res, err := eng.Push(ctx, ph.p, ph.out[:n])
		if err != nil {
			return err
		}
		for _, r := range res.Results {
			if r.Status == engine.StatusRejected {
				return fmt.Errorf("seq %d rejected: %s", r.Seq, r.Error.Message)
			}
		}
		ph.out = ph.out[n:]
	}
	return nil
}

// history queues three weeks of a rep's working days: three to five visits
// a day at distinct accounts, mostly unscheduled, mostly with a good GPS
// fix at the door, some far off or without a fix; CRM updates most days,
// a weekly expense report, some networking and referrals. It returns the
// rep's last completed visit.
func (ph *phone) history(rng *rand.Rand, accounts []*engine.Record, now time.Time, loc *time.Location) *engine.Record {
	outcomes := []string{"order", "order", "meeting", "follow_up", "demo", "no_answer", "not_interested", "none"}
	var last *engine.Record
	for d := HistoryDays; d >= 1; d-- {
		day := now.AddDate(0, 0, -d).In(loc)
		if day.Weekday() == time.Saturday || day.Weekday() == time.Sunday {
			continue
		}
		start := time.Date(day.Year(), day.Month(), day.Day(), 9, 0, 0, 0, loc)
		for i, k := range rng.Perm(len(accounts))[:3+rng.IntN(3)] {
			a := accounts[k]
			at := start.Add(time.Duration(i*100+rng.IntN(40)) * time.Minute)
			id := uuid.New()
			f := map[string]any{
				"account_id": a.ID, "kind": "unscheduled", "status": "completed",
				"started_at": at.UTC(), "ended_at": at.Add(time.Duration(15+rng.IntN(40)) * time.Minute).UTC(),
				"outcome": outcomes[rng.IntN(len(outcomes))],
			}
			if rng.IntN(10) < 3 {
				f["kind"] = "scheduled"
			}
			lat, lng := *a.FloatValue("lat"), *a.FloatValue("lng")
			switch r := rng.IntN(20); {
			case r < 16: // at the door
				f["check_in_lat"], f["check_in_lng"] = coord(lat+(rng.Float64()-0.5)*0.001), coord(lng+(rng.Float64()-0.5)*0.001)
				f["check_in_accuracy_m"] = float64(5 + rng.IntN(30))
			case r < 18: // checked in from the car park down the road
				f["check_in_lat"], f["check_in_lng"] = coord(lat+0.011), lng
				f["check_in_accuracy_m"] = 20.0
			}
			if f["outcome"] == "order" {
				f["order_value"] = math.Round((200+rng.Float64()*4800)*100) / 100
			}
			if f["outcome"] == "follow_up" {
				f["follow_up_at"] = at.AddDate(0, 0, 7).UTC()
			}
			if rng.IntN(6) == 0 {
				f["referrals"] = 1 + rng.IntN(2)
			}
			ph.add("visits", id, engine.OpUpsert, f, now)
			last = &engine.Record{ID: id, Values: map[string]any{"account_id": a.ID}}
		}
		evening := time.Date(day.Year(), day.Month(), day.Day(), 17, 30, 0, 0, loc).UTC()
		if rng.IntN(4) > 0 {
			ph.add("activities", uuid.New(), engine.OpUpsert, map[string]any{"type": "crm_update", "occurred_at": evening, "cost": 5}, now)
		}
		if day.Weekday() == time.Friday {
			ph.add("activities", uuid.New(), engine.OpUpsert, map[string]any{"type": "expense_report", "occurred_at": evening, "cost": 10}, now)
		}
		if rng.IntN(5) == 0 {
			ph.add("activities", uuid.New(), engine.OpUpsert, map[string]any{"type": "networking", "occurred_at": evening.Add(time.Hour), "cost": 40}, now)
		}
		if rng.IntN(6) == 0 {
			ph.add("activities", uuid.New(), engine.OpUpsert, map[string]any{"type": "referral", "occurred_at": evening, "notes": "Introduced by a customer"}, now)
		}
	}
	return last
}

// rideAlongs gives each team a ride-along in a different state: one flag
// on the rep's next unscheduled call, one accepted, one completed with a
// debrief due.
func rideAlongs(ctx context.Context, eng *engine.Engine, phones map[uuid.UUID]*phone, ids []uuid.UUID, last map[uuid.UUID]*engine.Record, now time.Time) error {
	for _, mid := range ids {
		mgr := phones[mid]
		if mgr.user.Role != models.RoleManager {
			continue
		}
		var reps []*phone
		for _, id := range ids {
			if ph := phones[id]; ph.user.Role == models.RoleRep && ph.user.TeamID != nil && *ph.user.TeamID == *mgr.user.TeamID {
				reps = append(reps, ph)
			}
		}
		if len(reps) < 3 {
			continue
		}
		flag := uuid.New()
		mgr.add("ride_alongs", flag, engine.OpUpsert, map[string]any{"rep_id": reps[0].user.ID, "mode": "next_unscheduled",
			"note": "I'd like to see your cold-call opener"}, now)
		accepted, done := uuid.New(), uuid.New()
		mgr.add("ride_alongs", accepted, engine.OpUpsert, map[string]any{"rep_id": reps[1].user.ID, "mode": "visit",
			"visit_id": last[reps[1].user.ID].ID, "note": "Let's debrief the order"}, now)
		mgr.add("ride_alongs", done, engine.OpUpsert, map[string]any{"rep_id": reps[2].user.ID, "mode": "visit",
			"visit_id": last[reps[2].user.ID].ID}, now)
		if err := mgr.push(ctx, eng, now); err != nil {
			return err
		}
		for i, id := range []uuid.UUID{accepted, done} {
			rep := reps[i+1]
			rep.add("ride_alongs", id, engine.OpUpsert, map[string]any{"status": models.RideAccepted}, now)
			if err := rep.push(ctx, eng, now); err != nil {
				return err
			}
		}
		mgr.add("ride_alongs", done, engine.OpUpsert, map[string]any{"status": models.RideCompleted}, now)
		if err := mgr.push(ctx, eng, now); err != nil {
			return err
		}
	}
	return nil
}
