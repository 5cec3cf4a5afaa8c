package sales

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Order values above the organisation's ceiling.
//
// One visit with an order value of 10,000,000,000 used to score
// 100,000,000 points. An order value above the organisation's ceiling
// (models.Org.OrderValueCeilingCents, 1,000,000 by default, set by an admin
// with PATCH /v1/org) is therefore flagged when a visit is written, by
// either sync protocol: suspicious_reason "order_value", order_value_review
// "pending". Scoring (models.ScoreDay) holds the whole visit back while its
// review is pending or rejected. A manager of the rep's team or an admin
// approves or rejects it (ReviewOrderValue); the decision and its reason go
// into the points ledger of every contest scoring the visit, and the
// visit's rep-day is recomputed, so standings move in the same
// transaction. A rep who changes the order value gets it judged afresh:
// back to pending when still above the ceiling, unflagged when not.
//
// The flag is judged when the order value is written: a later change of
// the ceiling leaves visits already written as they are.

// MaxReviewReasonLen bounds the reason of an order value review, in
// characters.
const MaxReviewReasonLen = 500

// flagOrderValue flags a visit whose order value, new or changed, is above
// the organisation's ceiling, and unflags one whose new order value is not.
// An unchanged order value keeps its review.
func flagOrderValue(c *engine.Context, old, r *engine.Record) error {
	cents, _ := r.Values[fOrderValue].(int64)
	if old != nil {
		prev, _ := old.Values[fOrderValue].(int64)
		if prev == cents {
			return nil
		}
	}
	if cents > 0 { // most visits carry none: no need to read the ceiling
		org, err := c.Org()
		if err != nil {
			return err
		}
		if cents > org.OrderValueCeilingCents {
			r.Values[fSuspiciousReason] = models.SuspiciousOrderValue
			r.Values[fOrderValueReview] = models.OrderValuePending
			return nil
		}
	}
	for _, f := range []string{fSuspiciousReason, fOrderValueReview} {
		if r.Values[f] != nil {
			r.Values[f] = nil
		}
	}
	return nil
}

// ReviewOrderValue approves or rejects (decision models.OrderValueApproved
// or models.OrderValueRejected) the flagged order value of a visit, with a
// reason. An approved visit scores in full; a rejected one scores nothing.
// The decision may be changed later by another review.
//
// Errors: not_found (no such visit, or the caller may not see it: another
// team's manager, another rep), forbidden (a rep, or a manager who does
// not manage the rep's team), invalid (reason), conflict (the order value
// awaits no review, or already has this decision).
func ReviewOrderValue(c *engine.Context, visitID uuid.UUID, decision, reason string) (*engine.Record, error) {
	if decision != models.OrderValueApproved && decision != models.OrderValueRejected {
		return nil, fmt.Errorf("review order value: unknown decision %q", decision)
	}
	// The review writes the visit back: lock it first, so that a push of
	// the same visit committing meanwhile is not overwritten.
	if err := c.Lock(entVisits, visitID); err != nil {
		return nil, err
	}
	v, err := c.Lookup(entVisits, visitID)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, models.ErrNotFound
	}
	if err := canReviewOrderValue(c, v); err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, models.FieldInvalid(fReason, "is required")
	}
	if n := utf8.RuneCountInString(reason); n > MaxReviewReasonLen {
		return nil, models.FieldInvalid(fReason, "must be at most %d characters (got %d)", MaxReviewReasonLen, n)
	}
	switch v.StringValue(fOrderValueReview) {
	case "":
		return nil, models.Errorf(models.CodeConflict, "the visit's order value is not above the ceiling: it awaits no review")
	case decision:
		return nil, models.Errorf(models.CodeConflict, "the visit's order value is already %s", decision)
	}
	next := v.Clone()
	next.Values[fOrderValueReview] = decision
	// The visit's AfterWrite hooks recompute the rep-day it falls in, in
	// every contest scoring it: approval adds its points, rejection
	// reverses any.
	if err := c.Put(entVisits, next); err != nil {
		return nil, err
	}
	if err := ledgerOrderValueReview(c, next, decision, reason); err != nil {
		return nil, err
	}
	auditOrderValueReview(c, next, decision, reason)
	return next, nil
}

// auditOrderValueReview records an order value review (who, when, which
// visit, the decision and its reason) in the review's transaction.
func auditOrderValueReview(c *engine.Context, visit *engine.Record, decision, reason string) {
	Audit(c, models.AuditEntry{Action: models.ActionOrderValue, ObjectType: models.AuditVisit, ObjectID: visit.ID,
		After: models.AuditJSON(map[string]any{fOrderValueReview: decision, fReason: reason})})
}

// canReviewOrderValue: admins review any visit, managers those of the team
// they manage. The visit is one the caller can see.
func canReviewOrderValue(c *engine.Context, v *engine.Record) error {
	switch c.P.Role {
	case models.RoleAdmin:
		return nil
	case models.RoleManager:
		if team := v.UUIDValue(fTeamID); team != nil && sameUUID(team, c.P.TeamID) {
			t, err := c.Team(*team)
			if err != nil {
				return err
			}
			if sameUUID(t.ManagerID, &c.P.UserID) {
				return nil
			}
		}
		return models.Errorf(models.CodeForbidden, "a manager may review order values only of the team they manage")
	}
	return models.Errorf(models.CodeForbidden, "only a manager of the rep's team or an admin reviews order values")
}

// ledgerOrderValueReview writes the decision into the points ledger of
// every contest scoring the visit: a zero-point entry of rule
// models.RuleOrderValueReview whose reason says who decided what and why.
// Scoring leaves such entries alone (they carry no points).
func ledgerOrderValueReview(c *engine.Context, v *engine.Record, decision, reason string) error {
	rep, at := v.UUIDValue(fRepID), v.TimeValue(fStartedAt)
	if rep == nil || at == nil {
		return nil
	}
	contests, err := scoringContests(c, v.UUIDValue(fTeamID))
	if err != nil || len(contests) == 0 {
		return err
	}
	where, err := accountName(c, v.UUIDValue(fAccountID))
	if err != nil {
		return err
	}
	if where != "" {
		where = " at " + where
	}
	by := c.P.UserID.String()
	if u, err := c.User(c.P.UserID); err == nil && u.Name != "" {
		by = u.Name
	}
	cents, _ := v.Values[fOrderValue].(int64)
	text := fmt.Sprintf("Order value %.2f%s %s by %s: %s", float64(cents)/100, where, decision, by, reason)
	team := teamOf(c, *rep)
	for _, cv := range contests {
		if !cv.includes(v.UUIDValue(fTeamID)) {
			continue
		}
		if _, _, ok := cv.day(*at); !ok {
			continue
		}
		rec := &engine.Record{ID: uuid.New(), Values: map[string]any{
			fContestID: cv.id, fRepID: *rep, fTeamID: valueOr(team), fSourceEntity: entVisits,
			fSourceID: v.ID, fRule: models.RuleOrderValueReview, fKind: models.KindOutcome, fPoints: 0.0,
			fReason: text, fOccurredAt: *at, fRulesVersion: cv.rulesVersion,
		}}
		if err := c.Put(entScoreEntries, rec); err != nil {
			return err
		}
	}
	return nil
}

// orderValueReviewHook tells the manager of the rep's team when a visit's
// order value awaits their review: when it is flagged, and again when the
// rep changes it to another value above the ceiling.
func orderValueReviewHook(c *engine.Context, old, v *engine.Record) error {
	if v.Deleted || v.StringValue(fOrderValueReview) != models.OrderValuePending {
		return nil
	}
	if old != nil && old.StringValue(fOrderValueReview) == models.OrderValuePending && engine.Equal(old.Values[fOrderValue], v.Values[fOrderValue]) {
		return nil
	}
	rep := v.UUIDValue(fRepID)
	if rep == nil {
		return nil
	}
	u, err := c.User(*rep)
	if err != nil || u.TeamID == nil {
		return ignoreNotFound(err)
	}
	team, err := c.Team(*u.TeamID)
	if err != nil || team.ManagerID == nil || *team.ManagerID == *rep {
		return ignoreNotFound(err)
	}
	account, err := accountName(c, v.UUIDValue(fAccountID))
	if err != nil {
		return err
	}
	cents, _ := v.Values[fOrderValue].(int64)
	return Notify(c, models.OrderValueReviewNotification(v.ID, *rep, u.Name, account, cents).To(*team.ManagerID))
}
