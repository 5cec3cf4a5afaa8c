package sales

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// The notification triggers on visits: a rep's streak of unscheduled calls
// without an order (to their manager) and follow-ups falling due (to the
// rep). Each writes its notification in the transaction of the change that
// caused it, with a dedupe key, through Notify.

const (
	// streakWindow is how far back a streak is looked for.
	streakWindow = 30 * 24 * time.Hour
	// streakLookback is how long before the batch's earliest call a streak
	// it completes may have begun.
	streakLookback = 7 * 24 * time.Hour
	// streakSlack is how many calls beyond the batch's own a streak check
	// reads after the last order: a streak is noticed when its fifth call
	// arrives, so the calls of a streak not written by the batch are
	// those before it, four in the usual case (more only when a batch
	// joins two runs by correcting an order). A longer streak is counted
	// as this many plus the batch's calls.
	streakSlack = 100
	// FollowUpLookback is how late a follow-up may still be reminded of:
	// one set in the past, or missed while the server was down, older than
	// this is left alone.
	FollowUpLookback = 24 * time.Hour
)

// registerNotifyTriggers adds the notification hooks to the entities.
func registerNotifyTriggers(es []*engine.Entity) {
	engine.OnWrite(es, entVisits, streakHook)
	engine.OnWrite(es, entVisits, followUpHook)
	engine.OnWrite(es, entVisits, orderValueReviewHook)
}

func notifyFieldsChanged(old, r *engine.Record, fields ...string) bool {
	if old == nil {
		return true
	}
	for _, f := range fields {
		if !engine.Equal(old.Values[f], r.Values[f]) {
			return true
		}
	}
	return false
}

// streakHook notes a completed unscheduled visit whose outcome or time
// changed, and evaluates the rep's streak once per batch (Defer): a push
// of 300 visits reads the rep's recent calls once.
func streakHook(c *engine.Context, old, v *engine.Record) error {
	rep := v.UUIDValue(fRepID)
	if v.Deleted || rep == nil || v.StringValue(fKind) != "unscheduled" || v.StringValue(fStatus) != "completed" {
		return nil
	}
	if !notifyFieldsChanged(old, v, fKind, fStatus, fOutcome, fStartedAt) {
		return nil
	}
	key := "notify:streak:" + rep.String()
	set, err := c.Cached(key, func() (any, error) { return map[uuid.UUID]bool{}, nil })
	if err != nil {
		return err
	}
	written := set.(map[uuid.UUID]bool)
	written[v.ID] = true
	repID := *rep
	c.Defer(key, func(c *engine.Context) error {
		err := checkStreak(c, repID, written)
		clear(written)
		return err
	})
	return nil
}

// checkStreak tells the rep's manager when the rep's unscheduled calls since
// their last order number models.StreakLength or more, and this batch
// wrote one of the first StreakLength of them: the batch is what made the
// streak. The dedupe key names the streak's first call, so the streak
// fires once; later calls that lengthen it, or the window sliding past an
// old order, do not fire it again. Visits without started_at are not
// placed in the sequence and do not count.
func checkStreak(c *engine.Context, rep uuid.UUID, written map[uuid.UUID]bool) error {
	// A streak the batch made starts at most streakLookback before the
	// batch's earliest call: reading the rep's whole month for every push
	// made streaks most of a push's cost.
	from := c.Now.Add(-streakWindow)
	var earliest time.Time
	withoutOrder := false
	for id := range written {
		if v, err := c.Get(entVisits, id); err == nil && v != nil {
			if t, ok := v.TimeAt(fStartedAt); ok && (earliest.IsZero() || t.Before(earliest)) {
				earliest = t
			}
			withoutOrder = withoutOrder || v.StringValue(fOutcome) != "order"
		}
	}
	// A streak is of calls without an order, so a batch whose calls all
	// took one cannot have made it.
	if !withoutOrder {
		return nil
	}
	if !earliest.IsZero() && earliest.Add(-streakLookback).After(from) {
		from = earliest.Add(-streakLookback)
	}
	// Only the calls since the last order matter: find that order, then
	// read the calls after it, in (started_at, id) order, from an index
	// (Context.Nearest). Reps take orders often, so both reads are short
	// where reading the window would be a month of calls; and the second
	// reads at most the batch's calls and streakSlack more, however many
	// calls the rep stamped with one time.
	where := map[string]any{fRepID: rep, fKind: "unscheduled", fStatus: "completed"}
	to := c.Now.Add(25 * time.Hour)
	last, err := c.Latest(entVisits, map[string]any{fRepID: rep, fKind: "unscheduled", fStatus: "completed", fOutcome: "order"},
		fStartedAt, from, to, 1)
	if err != nil {
		return err
	}
	pivot := engine.Mark{At: from} // every call from `from` on: uuid.Nil sorts first
	if len(last) > 0 {
		pivot, _ = engine.MarkOf(last[0], fStartedAt)
	}
	tail, err := c.Nearest(entVisits, where, fStartedAt, pivot, engine.After, len(written)+streakSlack)
	if err != nil {
		return err
	}
	for i, v := range tail {
		if !v.TimeValue(fStartedAt).Before(to) {
			tail = tail[:i]
			break
		}
	}
	if len(tail) < models.StreakLength {
		return nil
	}
	crossed := false
	for _, v := range tail[:models.StreakLength] {
		crossed = crossed || written[v.ID]
	}
	if !crossed {
		return nil
	}
	u, err := c.User(rep)
	if err != nil || u.TeamID == nil {
		return ignoreNotFound(err)
	}
	team, err := c.Team(*u.TeamID)
	if err != nil || team.ManagerID == nil || *team.ManagerID == rep {
		return ignoreNotFound(err)
	}
	n := models.UnscheduledStreakNotification(rep, u.Name, len(tail), tail[0].ID, tail[len(tail)-1].ID)
	return Notify(c, n.To(*team.ManagerID))
}

func ignoreNotFound(err error) error {
	if models.ErrorCode(err) == models.CodeNotFound {
		return nil
	}
	return err
}

// followUpHook reminds a rep at once of a follow-up that is already due
// when its visit is written: a visit synced late, or a follow-up set for
// an hour ago. Follow-ups in the future are left to the scheduled job
// (Engine.NotifyFollowUps).
func followUpHook(c *engine.Context, old, v *engine.Record) error {
	at := v.TimeValue(fFollowUpAt)
	if v.Deleted || at == nil || !notifyFieldsChanged(old, v, fFollowUpAt) {
		return nil
	}
	if at.After(c.Now) || c.Now.Sub(*at) > FollowUpLookback {
		return nil
	}
	_, err := notifyFollowUp(c, v)
	return err
}

// notifyFollowUp writes the follow-up reminder of visit v to its rep. Its
// dedupe key holds the visit and the follow-up time: the same follow-up
// reminds once, a moved one again.
func notifyFollowUp(c *engine.Context, v *engine.Record) (bool, error) {
	rep, at := v.UUIDValue(fRepID), v.TimeValue(fFollowUpAt)
	if rep == nil || at == nil || v.StringValue(fStatus) == "cancelled" {
		return false, nil
	}
	var account uuid.UUID
	name := ""
	if id := v.UUIDValue(fAccountID); id != nil {
		account = *id
		a, err := c.Get(entAccounts, *id)
		if err != nil {
			return false, err
		}
		if a != nil && !a.Deleted {
			name = a.StringValue(fName)
		}
	}
	n := models.FollowUpDueNotification(v.ID, account, name, *at)
	n.NotBefore = *at
	return notify(c, n.To(*rep))
}

// NotifyFollowUps is the scheduled job behind follow-up reminders: it
// writes the reminder of every visit of orgID whose follow_up_at lies in
// [from, to), once each (however often, or on however many replicas, the
// job covers the same window), and reports how many it wrote.
func NotifyFollowUps(ctx context.Context, en *engine.Engine, orgID uuid.UUID, from, to time.Time) (int, error) {
	if en.Entity(NotificationsEntity) == nil || en.Entity(entVisits) == nil {
		return 0, nil
	}
	wrote := 0
	err := en.Server(ctx, models.Principal{OrgID: orgID}, func(c *engine.Context) error {
		wrote = 0
		visits, err := c.Range(entVisits, nil, fFollowUpAt, from, to)
		if err != nil {
			return err
		}
		for _, v := range visits {
			ok, err := notifyFollowUp(c, v)
			if err != nil {
				return err
			}
			if ok {
				wrote++
			}
		}
		return nil
	})
	return wrote, err
}
