package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
)

// Productivity aggregates visits and activities per rep over [from, to):
// outcome value (order value of completed visits), activity counts and
// cost, and verified unscheduled calls. teamID limits it to one team. It
// reads the tables directly with one grouped query each, never a row per
// rep.
func (db *Reports) Productivity(ctx context.Context, orgID uuid.UUID, teamID *uuid.UUID, from, to time.Time) ([]models.ProductivityRow, error) {
	g := db.read.WithContext(ctx)
	teamCond, args := "", []any{orgID.String(), from.UTC(), to.UTC()}
	if teamID != nil {
		teamCond = " AND team_id = ?"
		args = append(args, teamID.String())
	}
	byRep := map[uuid.UUID]*models.ProductivityRow{}
	row := func(rep uuid.UUID, team *uuid.UUID) *models.ProductivityRow {
		r := byRep[rep]
		if r == nil {
			r = &models.ProductivityRow{RepID: rep, TeamID: team, ActivityCounts: map[string]int64{}}
			byRep[rep] = r
		}
		return r
	}
	rows, err := g.Raw(`SELECT rep_id, team_id, COUNT(*),
			SUM(CASE WHEN kind = 'unscheduled' AND status = 'completed' THEN 1 ELSE 0 END),
			SUM(CASE WHEN kind = 'unscheduled' AND status = 'completed' AND verification = 'verified' THEN 1 ELSE 0 END),
			SUM(CASE WHEN status = 'completed' AND outcome = 'order' THEN 1 ELSE 0 END),
			COALESCE(SUM(CASE WHEN status = 'completed' THEN order_value ELSE 0 END), 0)
		FROM visits WHERE org_id = ? AND deleted = false AND started_at >= ? AND started_at < ?`+teamCond+`
		GROUP BY rep_id, team_id`, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("productivity visits: %w", translate(err))
	}
	for rows.Next() {
		var rep uuid.UUID
		var team nullUUIDScan
		var visits, calls, verified, orders, value int64
		if err := rows.Scan(&rep, &team, &visits, &calls, &verified, &orders, &value); err != nil {
			rows.Close()
			return nil, fmt.Errorf("productivity visits: %w", err)
		}
		r := row(rep, team.ptr())
		// A rep who changed teams in the period has a group per team.
		r.Visits += visits
		r.UnscheduledCalls += calls
		r.VerifiedCalls += verified
		r.Orders += orders
		r.OutcomeValueCents += value
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("productivity visits: %w", err)
	}
	rows, err = g.Raw(`SELECT rep_id, team_id, type, COUNT(*), COALESCE(SUM(cost), 0)
		FROM activities WHERE org_id = ? AND deleted = false AND occurred_at >= ? AND occurred_at < ?`+teamCond+`
		GROUP BY rep_id, team_id, type`, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("productivity activities: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var rep uuid.UUID
		var team nullUUIDScan
		var typ string
		var n, cost int64
		if err := rows.Scan(&rep, &team, &typ, &n, &cost); err != nil {
			return nil, fmt.Errorf("productivity activities: %w", err)
		}
		r := row(rep, team.ptr())
		r.ActivityCounts[typ] += n
		r.ActivityCostCents += cost
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("productivity activities: %w", err)
	}
	out := make([]models.ProductivityRow, 0, len(byRep))
	for _, r := range byRep {
		out = append(out, *r)
	}
	return out, nil
}

type nullUUIDScan struct {
	id    uuid.UUID
	valid bool
}

func (n *nullUUIDScan) Scan(src any) error {
	if src == nil {
		n.valid = false
		return nil
	}
	n.valid = true
	return n.id.Scan(src)
}

func (n nullUUIDScan) ptr() *uuid.UUID {
	if !n.valid {
		return nil
	}
	return &n.id
}
