package notifications

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
)

// Every runs job now and then every interval until ctx ends, logging its
// failures; the next run retries.
func Every(ctx context.Context, interval time.Duration, log *slog.Logger, name string, job func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := job(ctx); err != nil && ctx.Err() == nil {
			log.Warn("scheduled job failed", "job", name, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// FollowUps is the scheduled job that reminds reps of follow-ups falling
// due. Each run covers the window since the previous run (with an overlap,
// so a visit committed just late is not missed) in every organisation;
// the first covers the last sales.FollowUpLookback. Reminders are
// deduplicated where they are written, so overlapping windows, restarts
// and several replicas running the job remind once.
type FollowUps struct {
	// Orgs lists the organisations.
	Orgs func(ctx context.Context) ([]uuid.UUID, error)
	// Notify writes the reminders of one organisation's follow-ups in
	// [from, to) and reports how many it wrote (Engine.NotifyFollowUps).
	Notify func(ctx context.Context, orgID uuid.UUID, from, to time.Time) (int, error)
	Now    func() time.Time
	Log    *slog.Logger
	// Lookback is how far back the first run looks.
	Lookback time.Duration

	last time.Time
}

// followUpOverlap is how far each run reaches back into the previous
// run's window.
const followUpOverlap = 5 * time.Minute

// Run covers the window since the previous run.
func (j *FollowUps) Run(ctx context.Context) error {
	now := j.Now().UTC()
	from := j.last.Add(-followUpOverlap)
	if j.last.IsZero() {
		from = now.Add(-j.Lookback)
	}
	orgs, err := j.Orgs(ctx)
	if err != nil {
		return err
	}
	total := 0
	for _, org := range orgs {
		n, err := j.Notify(ctx, org, from, now)
		if err != nil {
			return err
		}
		total += n
	}
	if total > 0 {
		j.Log.Info("follow-up reminders written", "count", total)
	}
	j.last = now
	return nil
}
