package notifications

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Message is one push to one device.
type Message struct {
	NotificationID uuid.UUID
	UserID         uuid.UUID
	Token          string
	Platform       string
	Type           string
	Title          string
	Body           string
	// Data is the deep link; the sender adds "notification_id".
	Data map[string]string
	// CollapseKey replaces an older push with the same key on the device.
	CollapseKey string
	Urgent      bool
}

// Result is what became of one message. A failure is either TokenInvalid
// (the token is unregistered or not valid: delete it, do not retry),
// Retryable (429, 5xx, network: try again after backoff, at least
// RetryAfter), or neither (permanent: give up).
type Result struct {
	ID           string // the provider's message id, on success
	Err          error
	TokenInvalid bool
	Retryable    bool
	RetryAfter   time.Duration
}

// Sender delivers pushes.
type Sender interface {
	// Send sends each message and returns one result per message, in
	// order. It never fails as a whole: a failure that hits every message
	// is reported on each.
	Send(ctx context.Context, msgs []Message) []Result
}

// LogSender is the embedded default when no Firebase project is
// configured: it logs each push it would have sent and reports it sent.
// The inbox works as usual.
type LogSender struct {
	Log *slog.Logger
}

// Send logs msgs.
func (s LogSender) Send(ctx context.Context, msgs []Message) []Result {
	out := make([]Result, len(msgs))
	for i, m := range msgs {
		s.Log.InfoContext(ctx, "push (log sender; not sent)",
			"notification_id", m.NotificationID, "user_id", m.UserID, "platform", m.Platform,
			"token", redactToken(m.Token), "type", m.Type, "title", m.Title, "body", m.Body,
			"collapse_key", m.CollapseKey)
		out[i] = Result{ID: "log:" + strconv.Itoa(i)}
	}
	return out
}

// Hold is a push held back for later: quiet hours, a visit in progress.
type Hold struct {
	NotificationID, UserID uuid.UUID
	Type, Title            string
	Until                  time.Time // when it is due again
	Reason                 string    // "quiet_hours", "in_visit", …
}

// HoldReporter is a Sender that wants to hear of pushes held back, after
// the hold is recorded.
type HoldReporter interface {
	Held(ctx context.Context, holds []Hold)
}

// Held logs each held push and when it will go: with no real phone to
// watch, the log is where a demo user looks for a push that did not come.
func (s LogSender) Held(ctx context.Context, holds []Hold) {
	for _, h := range holds {
		s.Log.InfoContext(ctx, "push held (log sender)",
			"notification_id", h.NotificationID, "user_id", h.UserID, "type", h.Type, "title", h.Title,
			"until", h.Until.UTC().Format(time.RFC3339), "reason", h.Reason)
	}
}

// redactToken keeps a token's tail, enough to tell devices apart in logs.
func redactToken(t string) string {
	if len(t) <= 8 {
		return "…"
	}
	return "…" + t[len(t)-8:]
}
