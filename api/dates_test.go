package api_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/apitest"
)

// TestBareDates: one rule wherever a time is taken — RFC 3339 for an
// instant, YYYY-MM-DD for a day, read in the time zone of what it is about
// (a contest's own zone; the report's time_zone), a day given as an end
// counting whole.
func TestBareDates(t *testing.T) {
	o := newFieldOrg(t)
	year := o.env.Clock.Now().Year() + 1
	day := func(m time.Month, d int) string {
		return time.Date(year, m, d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	}
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}

	res := o.do("admin", http.MethodPost, "/v1/contests", map[string]any{
		"name": "December push", "starts_at": day(12, 20), "ends_at": day(12, 31), "time_zone": "America/Chicago",
	})
	apitest.Expect(t, res, http.StatusCreated)
	var c struct {
		ID       string    `json:"id"`
		StartsAt time.Time `json:"starts_at"`
		EndsAt   time.Time `json:"ends_at"`
	}
	res.JSON(t, &c)
	if want := time.Date(year, 12, 20, 0, 0, 0, 0, chicago); !c.StartsAt.Equal(want) {
		t.Errorf("starts_at %s, want midnight in Chicago %s", c.StartsAt, want.UTC())
	}
	if want := time.Date(year+1, 1, 1, 0, 0, 0, 0, chicago); !c.EndsAt.Equal(want) {
		t.Errorf("ends_at %s, want the end of 31 December in Chicago %s", c.EndsAt, want.UTC())
	}

	// A PATCH without time_zone reads its dates in the contest's zone.
	res = o.do("admin", http.MethodPatch, "/v1/contests/"+c.ID, map[string]any{"starts_at": day(12, 21)})
	apitest.Expect(t, res, http.StatusOK)
	res.JSON(t, &c)
	if want := time.Date(year, 12, 21, 0, 0, 0, 0, chicago); !c.StartsAt.Equal(want) {
		t.Errorf("patched starts_at %s, want %s", c.StartsAt, want.UTC())
	}

	for _, bad := range []string{"20/12/2026", "2026-12-32", "2026-12-20 09:00", "tomorrow"} {
		p := expectProblem(t, o.do("admin", http.MethodPost, "/v1/contests", map[string]any{
			"name": "Bad", "starts_at": bad, "ends_at": day(12, 31),
		}), http.StatusUnprocessableEntity, "invalid")
		expectFields(t, p, "starts_at")
	}

	// The report: the same rule, in the zone it is asked for.
	q := url.Values{"from": {day(11, 1)}, "to": {day(11, 30)}, "time_zone": {"America/Chicago"}}
	res = o.do("admin", http.MethodGet, "/v1/reports/productivity?"+q.Encode(), nil)
	apitest.Expect(t, res, http.StatusOK)
	var r struct {
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
	}
	res.JSON(t, &r)
	if want := time.Date(year, 11, 1, 0, 0, 0, 0, chicago); !r.From.Equal(want) {
		t.Errorf("report from %s, want %s", r.From, want.UTC())
	}
	if want := time.Date(year, 12, 1, 0, 0, 0, 0, chicago); !r.To.Equal(want) {
		t.Errorf("report to %s, want the end of 30 November in Chicago %s", r.To, want.UTC())
	}
	q.Set("time_zone", "Mars/Olympus")
	p := expectProblem(t, o.do("admin", http.MethodGet, "/v1/reports/productivity?"+q.Encode(), nil), http.StatusUnprocessableEntity, "invalid")
	expectFields(t, p, "time_zone")
}
