package sales

import (
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// The domain's notification triggers: ride-alongs, assessments,
// recognition, contests and standings. Each runs in the transaction of the
// change behind it and writes through Notify, whose dedupe keys make a
// trigger fire once however often the change is replayed or recomputed.

func registerDomainNotifications(es []*engine.Entity) {
	engine.OnWrite(es, entRideAlongs, notifyRideAlong)
	engine.OnWrite(es, entAssessments, notifyAssessment)
	engine.OnWrite(es, entRecognitions, notifyRecognition)
}

// userName is a user's name, or "" when they are unknown.
func userName(c *engine.Context, id *uuid.UUID) string {
	if id == nil {
		return ""
	}
	u, err := c.User(*id)
	if err != nil {
		return ""
	}
	return u.Name
}

// inZone shows t in the user's time zone.
func inZone(c *engine.Context, user uuid.UUID, t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	if u, err := c.User(user); err == nil {
		if loc, err := time.LoadLocation(u.TimeZone); err == nil {
			return t.In(loc)
		}
	}
	return t.UTC()
}

func notifyRideAlong(c *engine.Context, old, r *engine.Record) error {
	if r.Deleted {
		return nil
	}
	rep, mgr := r.UUIDValue(fRepID), r.UUIDValue(fManagerID)
	if rep == nil || mgr == nil {
		return nil
	}
	requester, other := rep, mgr
	if r.StringValue(fRequestedBy) == "manager" {
		requester, other = mgr, rep
	}
	var account string
	if v := r.UUIDValue(fVisitID); v != nil {
		if visit, err := c.Get(entVisits, *v); err == nil && visit != nil {
			account, _ = accountName(c, visit.UUIDValue(fAccountID))
		}
	}
	status := r.StringValue(fStatus)
	if old == nil {
		when := inZone(c, *other, r.TimeValue(fScheduledFor))
		if r.StringValue(fRequestedBy) == "manager" {
			return Notify(c, models.RideAlongFlaggedNotification(r.ID, userName(c, mgr), account, when).To(*rep))
		}
		return Notify(c, models.RideAlongRequestedNotification(r.ID, userName(c, rep), account, when).To(*mgr))
	}
	if old.StringValue(fStatus) == status {
		return nil
	}
	actor := c.P.UserID
	var n models.Notification
	to := *requester
	switch status {
	case models.RideAccepted:
		n = models.RideAlongAcceptedNotification(r.ID, userName(c, other), account, inZone(c, *requester, r.TimeValue(fScheduledFor)))
	case models.RideDeclined:
		n = models.RideAlongDeclinedNotification(r.ID, userName(c, other), account)
	case models.RideCancelled:
		// Tell whichever party did not cancel.
		to = *rep
		if actor == *rep {
			to = *mgr
		}
		n = models.RideAlongCancelledNotification(r.ID, userName(c, &actor), account)
	case models.RideExpired:
		n = models.RideAlongExpiredNotification(r.ID, account)
	case models.RideCompleted:
		n = models.DebriefDueNotification(r.ID, userName(c, rep), account)
		to = *mgr
	default:
		return nil
	}
	return Notify(c, n.To(to))
}

func notifyAssessment(c *engine.Context, old, r *engine.Record) error {
	if r.Deleted || r.StringValue(fStatus) != models.AssessShared || (old != nil && old.StringValue(fStatus) == models.AssessShared) {
		return nil
	}
	rep := r.UUIDValue(fRepID)
	if rep == nil {
		return nil
	}
	bs, _ := models.ParseBehaviours(r.StringValue(fBehaviours), models.DefaultTemplate())
	right, wrong := models.Tally(bs)
	return Notify(c, models.AssessmentSharedNotification(r.ID, userName(c, r.UUIDValue(fAssessorID)), right, wrong).To(*rep))
}

func notifyRecognition(c *engine.Context, old, r *engine.Record) error {
	to := r.UUIDValue(fToUserID)
	if old != nil || r.Deleted || to == nil {
		return nil
	}
	from := "fieldsync"
	if name := userName(c, r.UUIDValue(fFromUserID)); name != "" {
		from = name
	}
	what := r.StringValue(fMessage)
	return Notify(c, models.RecognitionReceivedNotification(r.ID, from, what).To(*to))
}

// notifyParticipants sends one notification per rep in a contest, built
// for each from their standing (rank and field size).
func notifyParticipants(c *engine.Context, cv *contestView, build func(rank, of int) models.Notification) error {
	standings, err := c.Find(entStandings, map[string]any{fContestID: cv.id})
	if err != nil {
		return err
	}
	for _, s := range standings {
		rep := s.UUIDValue(fRepID)
		if rep == nil {
			continue
		}
		rank, _ := s.Values[fRank].(int64)
		if err := Notify(c, build(int(rank), len(standings)).To(*rep)); err != nil {
			return err
		}
	}
	return nil
}

// notifyContestStatus tells participants a contest started, ended or was
// finalized, and awards the top-3 badges when results are final.
func notifyContestStatus(c *engine.Context, cv *contestView, status string) error {
	name := cv.rec.StringValue(fName)
	switch status {
	case models.ContestStatusActive:
		return notifyParticipants(c, cv, func(int, int) models.Notification {
			return models.ContestStartedNotification(cv.id, name, cv.end.In(cv.loc))
		})
	case models.ContestStatusEnded:
		return notifyParticipants(c, cv, func(int, int) models.Notification { return models.ContestEndedNotification(cv.id, name) })
	case models.ContestStatusFinalized:
		if err := notifyParticipants(c, cv, func(rank, of int) models.Notification {
			return models.ContestFinalizedNotification(cv.id, name, rank, of)
		}); err != nil {
			return err
		}
		return awardTop3(c, cv)
	}
	return nil
}

// notifyEnding24h reminds participants a day before an active contest
// ends; Tick calls it and the dedupe key makes it once.
func notifyEnding24h(c *engine.Context, cv *contestView) error {
	if cv.status != models.ContestStatusActive || c.Now.Before(cv.end.Add(-24*time.Hour)) || !c.Now.Before(cv.end) {
		return nil
	}
	name := cv.rec.StringValue(fName)
	return notifyParticipants(c, cv, func(rank, of int) models.Notification {
		return models.ContestEnding24hNotification(cv.id, name, rank, of)
	})
}

// notifyRankMoves fires the standings milestones after a re-rank: entered
// the top 3, reached first place, and overtaken — only by the rival now
// directly above, who was below before, at most once an hour per contest.
// Nobody is told of ranks while nobody has scored.
func notifyRankMoves(c *engine.Context, cv *contestView, before map[uuid.UUID]int, after []models.Standing) error {
	name := cv.rec.StringValue(fName)
	byRank := make(map[int]models.Standing, len(after))
	for _, s := range after {
		byRank[s.Rank] = s
	}
	hour := c.Now.Truncate(time.Hour)
	for _, s := range after {
		prev, known := before[s.RepID]
		if s.Total() <= 0 || !known || prev == s.Rank {
			continue
		}
		if s.Rank == 1 && prev != 1 {
			if err := Notify(c, models.ReachedFirstNotification(cv.id, name).To(s.RepID)); err != nil {
				return err
			}
		} else if s.Rank <= 3 && (prev == 0 || prev > 3) {
			if err := Notify(c, models.EnteredTop3Notification(cv.id, name, s.Rank).To(s.RepID)); err != nil {
				return err
			}
		}
		if prev != 0 && s.Rank > prev {
			above, ok := byRank[s.Rank-1]
			if ok && before[above.RepID] > prev && above.Total() > 0 {
				n := models.OvertakenNotification(cv.id, name, userName(c, &above.RepID), s.Rank, hour)
				if err := Notify(c, n.To(s.RepID)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// notifyTargets fires 50 % and 100 % of a rep's own target, and awards the
// target badge.
func notifyTargets(c *engine.Context, cv *contestView, rep uuid.UUID, before, after models.Standing) error {
	if after.Target <= 0 {
		return nil
	}
	name := cv.rec.StringValue(fName)
	if before.Progress() < 0.5 && after.Progress() >= 0.5 && after.Progress() < 1 {
		if err := Notify(c, models.TargetHalfNotification(cv.id, name).To(rep)); err != nil {
			return err
		}
	}
	if before.Progress() < 1 && after.Progress() >= 1 {
		if err := Notify(c, models.TargetReachedNotification(cv.id, name).To(rep)); err != nil {
			return err
		}
		return awardBadge(c, rep, "target_reached", &cv.id, "Reached their target in "+name)
	}
	return nil
}

// notifyUnscored tells a rep why a visit earned no points in a contest,
// e.g. "check-in 1.2 km from Acme Hardware". Once per visit and contest.
func notifyUnscored(c *engine.Context, cv *contestView, rep uuid.UUID, unscored []models.Unscored) error {
	for _, u := range unscored {
		n := models.VisitDidNotScoreNotification(u.SourceID, cv.id, cv.rec.StringValue(fName), u.Reason)
		if err := Notify(c, n.To(rep)); err != nil {
			return err
		}
	}
	return nil
}

// awardBadge gives a server badge once: its id derives from the badge, the
// contest and the rep.
func awardBadge(c *engine.Context, rep uuid.UUID, badge string, contest *uuid.UUID, message string) error {
	key := "badge:" + badge + ":" + rep.String()
	values := map[string]any{fToUserID: rep, fMessage: message, fBadge: badge, fKind: "badge", fSentAt: c.Now}
	if contest != nil {
		key += ":" + contest.String()
		values[fContestID] = *contest
	}
	_, err := c.PutNew(entRecognitions, &engine.Record{ID: engine.NameID(c.P.OrgID, key), Values: values})
	return err
}

// awardTop3 gives the top-3 badge to the first three of a finalized
// contest who scored.
func awardTop3(c *engine.Context, cv *contestView) error {
	standings, err := c.Find(entStandings, map[string]any{fContestID: cv.id})
	if err != nil {
		return err
	}
	ss := make([]models.Standing, len(standings))
	for i, r := range standings {
		ss[i] = standingOf(r)
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].Rank < ss[j].Rank })
	for _, s := range ss {
		if s.Rank < 1 || s.Rank > 3 || s.Total() <= 0 {
			continue
		}
		if err := awardBadge(c, s.RepID, "top_3", &cv.id, "Finished in the top 3 of "+cv.rec.StringValue(fName)); err != nil {
			return err
		}
	}
	return nil
}
