package sales

import (
	"encoding/json"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Audit appends e to the organisation's audit log in c's transaction: the
// row commits with the change it records, or not at all. The caller sets
// Action, ObjectType, ObjectID and Before/After (models.AuditJSON); Audit
// fills in the organisation (always c's: a rule cannot write another
// organisation's log), the actor (c.P.UserID, none for the server's own
// scheduled work) when ActorID is nil, the time (c.Now) and the id. The log
// is append-only: there is no way to change or remove an entry.
func Audit(c *engine.Context, e models.AuditEntry) {
	e.OrgID = c.P.OrgID
	if e.ActorID == nil && c.P.UserID != uuid.Nil {
		actor := c.P.UserID
		e.ActorID = &actor
	}
	if e.ID == uuid.Nil {
		e.ID = uuid.New()
	}
	e.At = c.Now
	c.Journal(e)
}

// registerAudit adds the audit hooks. They run after every other hook of
// their entity, so that nothing after them can refuse the write they
// record.
func registerAudit(es []*engine.Entity) {
	engine.OnWrite(es, entAssessments, auditAssessment)
}

// auditAssessment records every change to an assessment once it has been
// shared with the rep (the rep's acknowledgement and comment included): a
// draft is the manager's working copy, a shared assessment is part of the
// rep's record.
func auditAssessment(c *engine.Context, old, r *engine.Record) error {
	if old == nil || old.Deleted || old.StringValue(fStatus) == models.AssessDraft {
		return nil
	}
	before, after := recordChanges(c.Entity, old, r)
	if after == nil {
		return nil
	}
	Audit(c, models.AuditEntry{Action: models.ActionAssessmentEdit, ObjectType: models.AuditAssessment, ObjectID: r.ID,
		Before: models.AuditJSON(before), After: models.AuditJSON(after)})
	return nil
}

// recordChanges returns the wire fields of e that differ between old and
// r, as they were and as they are (JSON fields as JSON); nil, nil when none
// does. A delete shows as "deleted".
func recordChanges(e *engine.Entity, old, r *engine.Record) (before, after map[string]any) {
	set := func(k string, x, y any) {
		if before == nil {
			before, after = map[string]any{}, map[string]any{}
		}
		before[k], after[k] = x, y
	}
	if old.Deleted != r.Deleted {
		set("deleted", old.Deleted, r.Deleted)
	}
	for _, f := range e.Fields {
		if f.Hidden || engine.Equal(old.Values[f.Name], r.Values[f.Name]) {
			continue
		}
		x, y := old.Values[f.Name], r.Values[f.Name]
		if f.Type == engine.JSON {
			x, y = rawJSON(x), rawJSON(y)
		}
		set(f.Name, x, y)
	}
	return before, after
}

// rawJSON embeds a JSON field's stored text as JSON rather than as a
// string; nil and "" stay null.
func rawJSON(v any) any {
	s, _ := v.(string)
	if s == "" || !json.Valid([]byte(s)) {
		if s == "" {
			return nil
		}
		return s
	}
	return json.RawMessage(s)
}

// contestAudit is the audited part of a contest: its rules and targets
// (and the rules version a change after the start makes).
func contestAudit(r *engine.Record) map[string]any {
	return map[string]any{
		fRules: rawJSON(r.Values[fRules]), fTargets: rawJSON(r.Values[fTargets]), fRulesVersion: r.Values[fRulesVersion],
	}
}
