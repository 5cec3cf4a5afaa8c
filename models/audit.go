package models

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// AuditEntry is one row of an organisation's audit log: who did what to
// which object, and the object's audited fields before and after. The log
// is append-only: a row is written in the same transaction as the change
// it records and is never updated or deleted.
type AuditEntry struct {
	OrgID uuid.UUID
	ID    uuid.UUID
	// ActorID is the user who made the change; nil for the server's own
	// work (scheduled jobs) and for admin commands run on the host.
	ActorID    *uuid.UUID
	Action     string
	ObjectType string
	ObjectID   uuid.UUID
	// Before and After hold the audited fields that changed, as JSON
	// objects; Before is nil for a creation.
	Before, After json.RawMessage
	At            time.Time
}

// Audited actions, as action names in the log. Object types are the
// Audit* constants below.
const (
	ActionUserCreate     = "user.create"
	ActionUserUpdate     = "user.update" // role, team or active changed
	ActionTeamCreate     = "team.create"
	ActionTeamManager    = "team.set_manager"
	ActionContestCreate  = "contest.create"
	ActionContestRules   = "contest.rules_update"     // rules or targets changed
	ActionAssessmentEdit = "assessment.update"        // a change after sharing
	ActionOrderValue     = "visit.order_value_review" // an order value above the ceiling approved or rejected
	ActionOrgSettings    = "org.settings_update"

	AuditUser       = "user"
	AuditTeam       = "team"
	AuditContest    = "contest"
	AuditAssessment = "assessment"
	AuditVisit      = "visit"
	AuditOrg        = "org"
)

// AuditFilter selects audit entries; zero fields select everything. From
// is inclusive, To exclusive.
type AuditFilter struct {
	ActorID    *uuid.UUID
	ObjectType string
	ObjectID   *uuid.UUID
	From, To   *time.Time
	// After is the position of the last entry of the previous page.
	After *AuditPos
}

// AuditPos is a place in the audit log, newest first: entries written in
// one transaction share a time, so the id breaks ties.
type AuditPos struct {
	At time.Time
	ID uuid.UUID
}

// AuditJSON encodes an audited state (a map of field values) for
// AuditEntry.Before or After; nil stays nil.
func AuditJSON(v map[string]any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Audited values are strings, numbers, booleans, UUIDs and
		// times: all encode. Keep the failure visible in the row.
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}

type actorKey struct{}

// WithActor returns ctx naming the user on whose behalf a store writes:
// the API sets it for every authenticated request, and the store stamps
// the audit rows it writes with it.
func WithActor(ctx context.Context, userID uuid.UUID) context.Context {
	return context.WithValue(ctx, actorKey{}, userID)
}

// ActorFrom returns the user WithActor named, or nil when none was (the
// server's own work, admin commands).
func ActorFrom(ctx context.Context) *uuid.UUID {
	if id, ok := ctx.Value(actorKey{}).(uuid.UUID); ok && id != uuid.Nil {
		return &id
	}
	return nil
}
