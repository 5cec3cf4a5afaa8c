package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/apitest"
)

// TestEveryListPages: each list endpoint takes limit and cursor and
// answers with next_cursor, in one shape; paging through with a small
// limit yields every item once, in the same order as one big page.
func TestEveryListPages(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	for i := range 3 {
		o.createContest(t, "admin", contestBody("Paged "+string(rune('A'+i)), now.Add(time.Duration(i+1)*time.Hour), now.Add(72*time.Hour), nil))
	}
	contest := o.createContest(t, "admin", contestBody("Running", now.Add(-time.Hour), now.Add(72*time.Hour), nil))

	for _, tt := range []struct{ path, items string }{
		{"/v1/users", "users"},
		{"/v1/teams", "teams"},
		{"/v1/contests", "contests"},
		{"/v1/contests/" + contest.ID.String() + "/standings", "standings"},
	} {
		t.Run(tt.items, func(t *testing.T) {
			ids := func(limit int) []string {
				var out []string
				cursor := ""
				for range 100 {
					q := url.Values{"limit": {itoa(limit)}}
					if cursor != "" {
						q.Set("cursor", cursor)
					}
					res := o.do("admin", http.MethodGet, tt.path+"?"+q.Encode(), nil)
					apitest.Expect(t, res, http.StatusOK)
					var page map[string]json.RawMessage
					res.JSON(t, &page)
					var items []struct {
						ID    string `json:"id"`
						RepID string `json:"rep_id"`
					}
					if err := json.Unmarshal(page[tt.items], &items); err != nil {
						t.Fatalf("%s: %v", tt.items, err)
					}
					if len(items) > limit {
						t.Fatalf("limit %d answered %d items", limit, len(items))
					}
					for _, it := range items {
						out = append(out, it.ID+it.RepID)
					}
					if err := json.Unmarshal(page["next_cursor"], &cursor); err != nil {
						t.Fatalf("next_cursor: %v (%s)", err, res.Body)
					}
					if cursor == "" {
						return out
					}
				}
				t.Fatal("paging did not end")
				return nil
			}
			all := ids(500)
			if len(all) < 2 {
				t.Fatalf("%d %s; the test needs at least 2", len(all), tt.items)
			}
			paged := ids(1)
			if len(paged) != len(all) {
				t.Fatalf("paging by 1 gave %d items, one page %d", len(paged), len(all))
			}
			for i := range all {
				if paged[i] != all[i] {
					t.Fatalf("item %d differs paging by 1: %s, one page %s", i, paged[i], all[i])
				}
			}
		})
	}
	for _, q := range []string{"limit=0", "limit=501", "limit=x", "cursor=%21%21"} {
		p := expectProblem(t, o.do("admin", http.MethodGet, "/v1/users?"+q, nil), http.StatusUnprocessableEntity, "invalid")
		if len(p.Errors) == 0 {
			t.Errorf("%s: no field named", q)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
