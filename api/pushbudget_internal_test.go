package api

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// TestPushBudgets covers the bucket's rules one by one; TestPushBudget
// covers them through the router.
func TestPushBudgets(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b := newPushBudgets(PushBudget{Rate: 100, Burst: 1000}, func() time.Time { return now })
	org := uuid.New()
	rep := models.Principal{OrgID: org, UserID: uuid.New()}
	colleague := models.Principal{OrgID: org, UserID: uuid.New()}
	retryAfter := func(p models.Principal) int {
		t.Helper()
		err := b.admit(p)
		if err == nil {
			return 0
		}
		var me *models.Error
		if !errors.As(err, &me) || me.Code != models.CodeRateLimited {
			t.Fatalf("admit: %v, want rate_limited", err)
		}
		return me.RetryAfterSeconds
	}

	// A full budget lets pushes in down to zero and one more, whose
	// mutations put it in debt; an empty push counts pushMinCost.
	for _, n := range []int{600, 390, 0} {
		if got := retryAfter(rep); got != 0 {
			t.Fatalf("push of %d: refused, Retry-After %d", n, got)
		}
		b.spend(rep, n)
	}
	if got := retryAfter(rep); got != 0 {
		t.Fatalf("at zero: refused, Retry-After %d; want let in", got)
	}
	b.spend(rep, 250)
	// 250 in debt at 100 a second: 2.5 s, rounded up.
	if got := retryAfter(rep); got != 3 {
		t.Errorf("250 in debt: Retry-After %d, want 3", got)
	}
	// Another user's budget is untouched.
	if got := retryAfter(colleague); got != 0 {
		t.Errorf("colleague refused, Retry-After %d", got)
	}
	now = now.Add(2500 * time.Millisecond)
	if got := retryAfter(rep); got != 0 {
		t.Errorf("debt paid: refused, Retry-After %d", got)
	}
	// No push counts more than the whole burst: one over it still goes
	// through a full budget.
	now = now.Add(time.Hour)
	b.spend(rep, 5000)
	if got := retryAfter(rep); got != 0 {
		t.Errorf("a push of the whole burst: refused, Retry-After %d", got)
	}
	b.spend(rep, 1)
	if got := retryAfter(rep); got != 1 {
		t.Errorf("10 in debt: Retry-After %d, want 1", got)
	}

	// Buckets that have filled up again are dropped at the next sweep
	// (the colleague's was, an hour after it was made): a thousand users
	// who pushed once are held until their budgets are full again.
	for range 1000 {
		p := models.Principal{OrgID: org, UserID: uuid.New()}
		b.spend(p, 10)
	}
	if got := b.users(); got != 1001 {
		t.Fatalf("%d buckets, want 1001 (the rep's and a thousand)", got)
	}
	now = now.Add(budgetSweep)
	b.spend(colleague, 10)
	if got := b.users(); got != 1 {
		t.Errorf("after a sweep: %d buckets, want 1 (the colleague's, just spent)", got)
	}

	// No budget: nothing refused, nothing held.
	none := newPushBudgets(PushBudget{}, time.Now)
	none.spend(rep, 1000)
	if err := none.admit(rep); err != nil || none != nil {
		t.Errorf("no budget: %v", err)
	}
}
