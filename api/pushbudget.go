package api

import (
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/fieldsync/fieldsync/models"
)

// PushBudget bounds the work each user's pushes bring the server: a token
// bucket of mutations per user (all their devices, both protocols).
//
// Why a budget of mutations, not only the store's share of push slots: a
// single device pushing 500-visit batches back to back never has two
// pushes at once, so the share of slots never holds it back, yet it keeps
// one of two cores busy and the paced pushes of everyone else wait (the
// bench's hostile phase: their p99 went up 2.6×). Weighting slots by
// batch size or lowering a big pusher's priority only reorder the queue
// for the slots; the CPU that decoding, judging and writing 500 visits
// takes is spent all the same. A budget of mutations per second bounds
// that work itself, whatever the device's concurrency or batch size.
// The burst is the allowance of a phone back from weeks offline: 5,000
// pending mutations go through in five pushes at once, and only a user
// who keeps pushing past Burst is slowed to Rate.
type PushBudget struct {
	// Rate is the mutations per second a user's pushes may carry on
	// average; 0 means no budget at all.
	Rate float64
	// Burst is the mutations a user may push at once, on top of the
	// rate, when they have pushed nothing for a while. At least
	// engine.MaxBatch, so that any one push fits.
	Burst int
}

// DefaultPushBudget is `fieldsync serve`'s default budget: 100 mutations
// a second (a rep logs a few hundred a day) with a burst of 10,000 (two
// phones back from 60 days offline).
var DefaultPushBudget = PushBudget{Rate: 100, Burst: 10000}

// pushMinCost is what a push counts at least, in mutations, an empty one
// too: the fixed cost of a push (its request, its transaction, the
// device's sequence row) is about that of ten mutations, so a device
// sending one mutation at a time gets no more of the server than one
// sending batches.
const pushMinCost = 10

// budgetSweep is how often buckets that have filled up again are dropped.
const budgetSweep = time.Minute

// pushBudgets holds the token buckets (x/time/rate limiters) of the
// users who pushed lately. A bucket that has filled up is the same as
// none, so it is dropped: the map holds only the users who pushed within
// the last Burst/Rate seconds (100 s by default) and one sweep period.
type pushBudgets struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[budgetKey]*rate.Limiter
	lastSweep time.Time
}

// budgetKey names a user; user ids are UUIDs, unique across
// organisations, and the organisation is part of the key all the same.
type budgetKey struct{ org, user uuid.UUID }

// newPushBudgets returns nil, no budget, when b.Rate is 0 or less.
func newPushBudgets(b PushBudget, now func() time.Time) *pushBudgets {
	if b.Rate <= 0 {
		return nil
	}
	return &pushBudgets{rate: rate.Limit(b.Rate), burst: max(b.Burst, 1), now: now, buckets: map[budgetKey]*rate.Limiter{}}
}

// bucket returns k's bucket, creating a full one. The caller holds mu.
func (b *pushBudgets) bucket(k budgetKey, now time.Time) *rate.Limiter {
	if now.Sub(b.lastSweep) >= budgetSweep {
		for key, l := range b.buckets {
			if l.TokensAt(now) >= float64(b.burst) {
				delete(b.buckets, key)
			}
		}
		b.lastSweep = now
	}
	l := b.buckets[k]
	if l == nil {
		l = rate.NewLimiter(b.rate, b.burst)
		b.buckets[k] = l
	}
	return l
}

// admit lets a push of p's in unless p's budget is in debt: then it is
// refused rate_limited, with RetryAfterSeconds the whole seconds until the
// debt is paid. It runs before the push's body is parsed, so a client that
// ignores Retry-After costs the server little.
func (b *pushBudgets) admit(p models.Principal) error {
	if b == nil {
		return nil
	}
	now := b.now()
	b.mu.Lock()
	tokens := b.bucket(budgetKey{p.OrgID, p.UserID}, now).TokensAt(now)
	b.mu.Unlock()
	// Let in while not in debt, even by a hair: the push may then take
	// the budget below zero, and Retry-After is when it is back to zero.
	if tokens >= 0 {
		return nil
	}
	wait := max(1, int(math.Ceil(-tokens/float64(b.rate))))
	e := models.Errorf(models.CodeRateLimited, "your pushes have used up your budget of %s mutations a second; push again in %d s", formatRate(float64(b.rate)), wait)
	e.RetryAfterSeconds = wait
	return e
}

// admitPush is admit for a push handler: a refused push's body is read
// and thrown away unparsed before the answer, so that the client, still
// sending it, gets the 429 and its Retry-After rather than a connection
// the server closed under it (net/http closes it past 256 KB unread).
// Reading costs the server little next to parsing and applying.
func (s *Server) admitPush(c echo.Context, p models.Principal) error {
	err := s.budget.admit(p)
	if err != nil {
		_, _ = io.Copy(io.Discard, c.Request().Body)
	}
	return err
}

// spend counts a read push of n mutations (at least pushMinCost, at most
// Burst) against p's budget, whatever its answer: the server did the work
// of reading it. The budget may go into debt, which refuses p's next
// pushes until it is paid.
func (b *pushBudgets) spend(p models.Principal, n int) {
	if b == nil {
		return
	}
	now := b.now()
	b.mu.Lock()
	// A reservation of at most Burst always succeeds: it takes the tokens
	// now, into debt if need be, which is the debt admit refuses on. Its
	// delay is not waited for.
	b.bucket(budgetKey{p.OrgID, p.UserID}, now).ReserveN(now, min(max(n, pushMinCost), b.burst))
	b.mu.Unlock()
}

// users is how many buckets are held (tests).
func (b *pushBudgets) users() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.buckets)
}

func formatRate(r float64) string {
	if r == math.Trunc(r) {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%g", r)
}
