package notifications

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// Dispatcher pushes due notifications. Any number of dispatchers, in one
// process or on many replicas, may run over the same database: each row
// is claimed by one of them at a time (Store.ClaimNotifications).
type Dispatcher struct {
	store  Store
	sender Sender
	log    *slog.Logger
	now    func() time.Time
	rand   func() float64
	report func(Stats)

	// Batch is the most rows claimed at once (default 100).
	Batch int
	// Lease is how long a claimed row stays the claimer's (default 2
	// minutes); it is never shorter than SendTimeout plus 30 s, so a row
	// whose send is under way is not reclaimed and sent again.
	Lease time.Duration
	// SendTimeout bounds one batch's sends (default 30 s).
	SendTimeout time.Duration
	// MaxAttempts is how many failed sends make a row dead (default 8).
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the retry delay: BaseBackoff ×
	// 2^(attempt-1), capped, with jitter (defaults 30 s and 1 h).
	BaseBackoff, MaxBackoff time.Duration
	// Interval is how often Run looks for due rows (default 2 s).
	Interval time.Duration
}

// Options tune NewDispatcher.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Rand returns a number in [0, 1) for jitter; nil uses math/rand.
	Rand func() float64
	// Report, if set, is told what each RunOnce did once its outcomes
	// are recorded (metrics); it must not block.
	Report func(Stats)
}

// NewDispatcher returns a dispatcher over store that sends with sender.
func NewDispatcher(store Store, sender Sender, opt Options) *Dispatcher {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Rand == nil {
		opt.Rand = rand.Float64
	}
	if opt.Report == nil {
		opt.Report = func(Stats) {}
	}
	return &Dispatcher{
		store: store, sender: sender, log: opt.Logger, now: opt.Now, rand: opt.Rand, report: opt.Report,
		Batch: 100, Lease: 2 * time.Minute, SendTimeout: 30 * time.Second, MaxAttempts: 8,
		BaseBackoff: 30 * time.Second, MaxBackoff: time.Hour, Interval: 2 * time.Second,
	}
}

// leaseMargin is how much longer than the send timeout a lease lasts: time
// to record the outcomes after the sends.
const leaseMargin = 30 * time.Second

// Stats count what one RunOnce did.
type Stats struct {
	Claimed       int // rows claimed (any step)
	Sent          int
	Deferred      int
	InboxOnly     int
	Retried       int
	Dead          int
	TokensRemoved int
}

func (s Stats) attrs() []any {
	return []any{"claimed", s.Claimed, "sent", s.Sent, "deferred", s.Deferred, "inbox_only", s.InboxOnly,
		"retried", s.Retried, "dead", s.Dead, "tokens_removed", s.TokensRemoved}
}

// Run dispatches until ctx ends: every Interval it drains the due rows,
// batch after batch. A batch under way when ctx ends is finished (within
// SendTimeout), so a shutdown does not strand leased rows.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(d.Interval)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			st, err := d.RunOnce(context.WithoutCancel(ctx))
			if err != nil {
				d.log.Warn("notification dispatch failed; retrying", "err", err)
				break
			}
			if st.Claimed > 0 {
				d.log.Debug("notifications dispatched", st.attrs()...)
			}
			if st.Claimed < d.Batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce claims one batch of due rows, sends those that are to be pushed
// now, and records the outcomes.
func (d *Dispatcher) RunOnce(ctx context.Context) (Stats, error) {
	st, err := d.runOnce(ctx)
	if err == nil {
		d.report(st)
	}
	return st, err
}

func (d *Dispatcher) runOnce(ctx context.Context) (Stats, error) {
	var st Stats
	now := d.now().UTC()
	lease := uuid.New()
	var held []Hold
	// The lease outlasts the send with a margin, or another dispatcher
	// would reclaim and resend rows whose send is still under way.
	leaseFor := max(d.Lease, d.SendTimeout+leaseMargin)
	claimed, err := d.store.ClaimNotifications(ctx, Claim{Now: now, Limit: d.Batch, Lease: leaseFor, LeaseID: lease},
		func(due []Due, rs map[UserKey]*Recipient) []Step {
			steps := d.plan(now, due, rs)
			st = Stats{Claimed: len(due)} // the store may run this again on a retry
			held = held[:0]
			for i, s := range steps {
				switch s.Status {
				case StatusDeferred:
					st.Deferred++
					n := due[i].Notification
					held = append(held, Hold{NotificationID: n.ID, UserID: n.UserID, Type: n.Type, Title: n.Title, Until: s.At, Reason: s.Reason})
				case StatusInboxOnly:
					st.InboxOnly++
				}
			}
			return steps
		})
	if err != nil {
		return st, err
	}
	if h, ok := d.sender.(HoldReporter); ok && len(held) > 0 {
		h.Held(ctx, held)
	}
	if len(claimed) == 0 {
		return st, nil
	}

	var msgs []Message
	var owner []int    // msgs[i] belongs to claimed[owner[i]]
	var tokens []Token // msgs[i] goes to tokens[i]
	for i, c := range claimed {
		n := c.Notification
		for _, tok := range c.Tokens {
			msgs = append(msgs, Message{
				NotificationID: n.ID, UserID: n.UserID, Token: tok.Token, Platform: tok.Platform, Type: n.Type,
				Title: n.Title, Body: n.Body, Data: n.Data, CollapseKey: n.CollapseKey, Urgent: n.Urgent,
			})
			owner = append(owner, i)
			tokens = append(tokens, tok)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, d.SendTimeout)
	results := d.sender.Send(sctx, msgs)
	cancel()
	// Backoff counts from the failure: from before the send, a retry due
	// in 15 s would already be due after a send that hung for 30 s.
	failedAt := d.now().UTC()
	if len(results) != len(msgs) { // a broken sender: try again later
		results = make([]Result, len(msgs))
		for i := range results {
			results[i] = Result{Err: errors.New("sender returned the wrong number of results"), Retryable: true}
		}
	}

	type tally struct {
		sent, retry  bool
		retryAfter   time.Duration
		lastErr      error
		deadTokens   int
		permanentErr bool
	}
	tallies := make([]tally, len(claimed))
	var dead []Token
	for i, r := range results {
		ci := owner[i]
		tl := &tallies[ci]
		switch {
		case r.Err == nil:
			tl.sent = true
		case r.TokenInvalid:
			tl.deadTokens++
			tl.lastErr = r.Err
			dead = append(dead, tokens[i])
		case r.Retryable:
			tl.retry, tl.lastErr = true, r.Err
			tl.retryAfter = max(tl.retryAfter, r.RetryAfter)
		default:
			tl.permanentErr, tl.lastErr = true, r.Err
		}
	}
	if len(dead) > 0 {
		if err := d.store.DeletePushTokens(ctx, dead); err != nil {
			d.log.Warn("remove dead push tokens", "err", err)
		} else {
			st.TokensRemoved = len(dead)
			d.log.Info("removed push tokens FCM reported unregistered or invalid", "count", len(dead))
		}
	}

	outcomes := make([]Outcome, len(claimed))
	for i, c := range claimed {
		tl := tallies[i]
		o := Outcome{OrgID: c.OrgID, ID: c.Notification.ID, LeaseID: lease}
		attempt := c.Attempts + 1
		switch {
		case tl.sent:
			o.Status = StatusSent
			st.Sent++
		case tl.retry && attempt >= d.MaxAttempts:
			o.Status, o.Error = StatusDead, "gave up after "+strconv.Itoa(attempt)+" attempts: "+errText(tl.lastErr)
			st.Dead++
		case tl.retry:
			o.Status, o.Next, o.Error = StatusPending, failedAt.Add(d.backoff(attempt, tl.retryAfter)), errText(tl.lastErr)
			st.Retried++
		case tl.permanentErr:
			o.Status, o.Error = StatusDead, errText(tl.lastErr)
			st.Dead++
		default: // every token was dead
			o.Status, o.Error = StatusInboxOnly, "no_device: "+errText(tl.lastErr)
			st.InboxOnly++
		}
		outcomes[i] = o
	}
	if err := d.store.FinishNotifications(ctx, outcomes); err != nil {
		return st, err
	}
	if st.Retried > 0 || st.Dead > 0 {
		d.log.Warn("some pushes failed", st.attrs()...)
	}
	return st, nil
}

// plan decides each due row's step with models.DecideDelivery, counting
// the pushes it plans against each recipient's daily cap as it goes.
func (d *Dispatcher) plan(now time.Time, due []Due, rs map[UserKey]*Recipient) []Step {
	steps := make([]Step, len(due))
	for i, row := range due {
		r := rs[UserKey{row.OrgID, row.Notification.UserID}]
		if r == nil || !r.Active {
			steps[i] = Step{Status: StatusInboxOnly, Reason: "inactive"}
			continue
		}
		dec := models.DecideDelivery(row.Notification, r.Prefs, r.Location, now, r.SentToday, r.InVisit)
		switch dec.Action {
		case models.DeliverNow:
			if len(r.Tokens) == 0 {
				steps[i] = Step{Status: StatusInboxOnly, Reason: "no_device"}
				continue
			}
			r.SentToday++
			steps[i] = Step{Status: StatusSending}
		case models.DeliverLater:
			steps[i] = Step{Status: StatusDeferred, At: dec.At, Reason: dec.Reason}
		default:
			steps[i] = Step{Status: StatusInboxOnly, Reason: dec.Reason}
		}
	}
	return steps
}

// backoff is the delay before retry number attempt: exponential from
// BaseBackoff, capped at MaxBackoff, with equal jitter (half fixed, half
// random) so replicas that failed together do not retry together; never
// shorter than the provider's Retry-After (capped at a day).
func (d *Dispatcher) backoff(attempt int, retryAfter time.Duration) time.Duration {
	exp := float64(d.BaseBackoff) * math.Pow(2, float64(attempt-1))
	exp = math.Min(exp, float64(d.MaxBackoff))
	wait := time.Duration(exp/2 + d.rand()*exp/2)
	if retryAfter > wait {
		wait = min(retryAfter, 24*time.Hour)
	}
	return wait
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return models.Clip(err.Error(), 500)
}
