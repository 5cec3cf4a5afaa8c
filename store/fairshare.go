package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/semaphore"

	"github.com/fieldsync/fieldsync/models"
)

// DefaultPushesPerUser is how many pushes of one user may hold or queue
// for push slots at once, unless Options say otherwise.
const DefaultPushesPerUser = 2

// DefaultPushShareWait is how long a push beyond its user's share waits
// for one of the user's pushes to finish before it is refused.
const DefaultPushShareWait = 2 * time.Second

// PushRetryAfter is the Retry-After, in seconds, of a push refused for
// its user's share.
const PushRetryAfter = 1

// userShare gives each user a fair share of the push slots
// (handle.pushes): at most n of one user's pushes hold a slot or wait in
// the slots' queue at once. A push first takes one of its user's n
// places, waiting at most wait, and only then queues for a slot; so a
// device (or a few) pushing as fast as it can, or a push made slow by the
// rep's data, holds at most n slots, and the queue ahead of other users'
// pushes never holds more than n of one user's. A push that finds no
// place in time is refused rate_limited with Retry-After: the phone comes
// back after its own pushes finished, instead of starving its colleagues.
type userShare struct {
	n    int64
	wait time.Duration

	mu    sync.Mutex
	users map[uuid.UUID]*userPlaces
}

// userPlaces are one user's places; refs counts the pushes holding or
// waiting for one, so that an idle user's entry is dropped.
type userPlaces struct {
	sem  *semaphore.Weighted
	refs int
}

func newUserShare(n int, wait time.Duration) *userShare {
	if n <= 0 {
		n = DefaultPushesPerUser
	}
	if wait <= 0 {
		wait = DefaultPushShareWait
	}
	return &userShare{n: int64(n), wait: wait, users: map[uuid.UUID]*userPlaces{}}
}

// acquire takes one of user's places, waiting at most s.wait (and never
// past ctx). Errors: rate_limited (with RetryAfterSeconds) when the wait
// ran out, or ctx's error.
func (s *userShare) acquire(ctx context.Context, user uuid.UUID) (release func(), err error) {
	s.mu.Lock()
	u := s.users[user]
	if u == nil {
		u = &userPlaces{sem: semaphore.NewWeighted(s.n)}
		s.users[user] = u
	}
	u.refs++
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		if u.refs--; u.refs == 0 {
			delete(s.users, user)
		}
		s.mu.Unlock()
	}
	if !u.sem.TryAcquire(1) {
		wctx, cancel := context.WithTimeout(ctx, s.wait)
		err := u.sem.Acquire(wctx, 1)
		cancel()
		if err != nil {
			done()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("wait for a push slot: %w", ctx.Err())
			}
			e := models.Errorf(models.CodeRateLimited, "%d pushes of yours are already in progress; retry when they have finished", s.n)
			e.RetryAfterSeconds = PushRetryAfter
			return nil, e
		}
	}
	return func() { u.sem.Release(1); done() }, nil
}
