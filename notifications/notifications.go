// Package notifications delivers the notifications that domain rules write
// (sales.Notify) to phones: a Dispatcher claims due rows of the outbox
// with leases, decides per user whether to push now, later or never
// (models.DecideDelivery: preferences, quiet hours, the daily cap, a visit
// in progress), sends through a Sender — Firebase Cloud Messaging, or a
// log when no Firebase project is configured — and records the outcome
// with retries, backoff and removal of dead tokens. It also runs the
// scheduled trigger jobs (follow-ups due).
//
// The package declares the Store it needs; package store implements it.
package notifications

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// Delivery statuses of an outbox row.
const (
	StatusPending   = "pending"    // due at its next attempt (new, or a retry)
	StatusDeferred  = "deferred"   // waiting for quiet hours or a visit to end
	StatusSending   = "sending"    // leased to a dispatcher until its lease ends
	StatusSent      = "sent"       // FCM accepted it for at least one device
	StatusInboxOnly = "inbox_only" // kept in the inbox, never pushed (Reason says why)
	StatusDead      = "dead"       // given up after MaxAttempts
)

// Backlog is the outbox's rows in one undelivered status (StatusPending,
// StatusDeferred, StatusSending) across organisations: how many, and when
// the oldest was written (zero when there are none).
type Backlog struct {
	Status string
	Count  int64
	Oldest time.Time
}

// Token is the push token of one device of a user.
type Token struct {
	OrgID    uuid.UUID
	UserID   uuid.UUID
	DeviceID uuid.UUID
	Token    string
	Platform string // android, ios or web
}

// Due is an outbox row a dispatcher claimed.
type Due struct {
	OrgID        uuid.UUID
	Notification models.Notification
	Attempts     int // sends tried before this claim
}

// UserKey names a user across organisations.
type UserKey struct{ OrgID, UserID uuid.UUID }

// Recipient is what delivery decisions need to know of a user, read in
// the claiming transaction.
type Recipient struct {
	Active   bool
	Location *time.Location
	Prefs    models.NotificationPreferences
	// SentToday counts pushes sent or being sent since the user's day
	// began (models.DayStart in Location).
	SentToday int
	// InVisit is true while the user has a visit in_progress that started
	// less than models.MaxVisitLength ago.
	InVisit bool
	Tokens  []Token
}

// Step is what a claim does with one due row.
type Step struct {
	Status string    // StatusSending, StatusDeferred, StatusInboxOnly or StatusDead
	At     time.Time // StatusDeferred: when it is due again
	Reason string    // why not sending, in a word
}

// Planner decides the Step of each due row, in order, given its
// recipients. It may update a Recipient (SentToday) as it goes.
type Planner func(due []Due, recipients map[UserKey]*Recipient) []Step

// Claim parameters.
type Claim struct {
	Now     time.Time
	Limit   int
	Lease   time.Duration // how long a claimed row is the claimer's alone
	LeaseID uuid.UUID     // the claimer's mark; outcomes must present it
}

// Claimed is a due row leased for sending, with its recipient's tokens.
type Claimed struct {
	Due
	Tokens []Token
}

// Outcome is the result of sending one claimed row.
type Outcome struct {
	OrgID   uuid.UUID
	ID      uuid.UUID
	LeaseID uuid.UUID
	Status  string    // StatusSent, StatusPending (retry), StatusInboxOnly or StatusDead
	Next    time.Time // StatusPending: the next attempt
	Error   string
}

// Store is the outbox storage a Dispatcher needs.
type Store interface {
	// ClaimNotifications, in one transaction, picks up to Limit rows due at
	// Now (pending, deferred, or sending with a lapsed lease) that no other
	// claimer holds — with FOR UPDATE SKIP LOCKED on PostgreSQL, so
	// dispatchers on several replicas never claim the same row — reads
	// their recipients, applies plan's steps, and returns the rows leased
	// for sending until Now+Lease. A row whose claimer dies is claimed
	// again once its lease lapses.
	ClaimNotifications(ctx context.Context, c Claim, plan Planner) ([]Claimed, error)
	// FinishNotifications records outcomes of rows still leased to their
	// LeaseID; an outcome whose lease was lost is ignored.
	FinishNotifications(ctx context.Context, outcomes []Outcome) error
	// DeletePushTokens removes tokens FCM reported dead, unless the device
	// registered another token meanwhile.
	DeletePushTokens(ctx context.Context, tokens []Token) error
}
