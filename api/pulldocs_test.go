package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/store/storetest"
)

// rawPages pulls as token from the beginning, limit changes a page, and
// returns every change as sent and each page's cursor.
func rawPages(t *testing.T, env *apitest.Env, token string, limit int) (changes []string, cursors []string) {
	t.Helper()
	cursor := ""
	for range 1000 {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		res := pullRequest(env, token, q.Encode())
		apitest.Expect(t, res, 200)
		var page struct {
			Changes []json.RawMessage `json:"changes"`
			Cursor  string            `json:"cursor"`
			HasMore bool              `json:"has_more"`
			Reset   bool              `json:"reset"`
		}
		res.JSON(t, &page)
		if page.Reset {
			t.Fatalf("pull: unexpected reset")
		}
		for _, c := range page.Changes {
			changes = append(changes, string(c))
		}
		cursor = page.Cursor
		cursors = append(cursors, cursor)
		if !page.HasMore {
			return changes, cursors
		}
	}
	t.Fatal("pull: no end")
	return nil, nil
}

// TestPullDocsMatchRecords: a pulled change is the same bytes whether the
// page serves the encoding kept with the feed (sync_changes.doc) or, for a
// row written before there was one (doc NULL), loads the record and
// encodes it — on pages where the two mix, too. The records carry what
// a stored encoding could get wrong: times finer than the database keeps
// (PostgreSQL keeps microseconds), text that JSON escapes, money,
// floats, nulls and a tombstone.
func TestPullDocsMatchRecords(t *testing.T) {
	d := newDemo(t)
	env := d.env
	rep := newDevice(env, "rep1@demo.test")
	d.env.Clock.Advance(time.Second + 123456789*time.Nanosecond) // records stamped to the nanosecond
	started := d.now.Add(-time.Hour + 987654321*time.Nanosecond).Format(time.RFC3339Nano)
	var muts []mutation
	for i := range 12 {
		muts = append(muts, newVisit(uuid.New(), d.north[i%len(d.north)], d.ms+int64(i), map[string]any{
			"started_at": started, "notes": fmt.Sprintf(`<b>"Zoë" & Co</b> \ n°%d`+"\n\t\u2028", i),
			"outcome": "order", "order_value": json.Number("1250.05"), "check_in_lat": 48.8566 + float64(i)/7, "check_in_lng": 2.3522,
			"check_in_accuracy_m": 12.5,
		}))
	}
	gone := uuid.New()
	muts = append(muts, newVisit(gone, d.north[0], d.ms+20, nil))
	rep.push(t, muts...)
	rep.push(t, deleteOf("visits", gone, d.ms+21))

	admin := env.Login("admin@demo.test")
	docs, docCursors := rawPages(t, env, admin.Access, 7)
	if len(docs) < 50 {
		t.Fatalf("pulled %d changes; want the demo's and the pushed visits", len(docs))
	}
	var withDocs int64
	if err := env.DB.Gorm().Raw(`SELECT count(*) FROM sync_changes WHERE doc IS NOT NULL`).Row().Scan(&withDocs); err != nil {
		t.Fatal(err)
	}
	if withDocs < int64(len(docs)) {
		t.Fatalf("%d feed rows have a doc; want every one of the %d pulled", withDocs, len(docs))
	}
	for _, step := range []struct {
		name, set, where string
	}{
		// A damaged doc is served from its record: it must not stop
		// every puller at that row.
		{"a third damaged", "'{\"broken'", "version % 3 = 0"},
		{"half without docs", "NULL", "version % 2 = 0"},
		{"none with docs", "NULL", "true"},
	} {
		if err := env.DB.Gorm().Exec(`UPDATE sync_changes SET doc = ` + step.set + ` WHERE ` + step.where).Error; err != nil {
			t.Fatal(err)
		}
		got, cursors := rawPages(t, env, admin.Access, 7)
		if !slices.Equal(got, docs) {
			for i := range min(len(got), len(docs)) {
				if got[i] != docs[i] {
					t.Fatalf("%s: change %d is\n%s\nwith a doc it was\n%s", step.name, i, got[i], docs[i])
				}
			}
			t.Fatalf("%s: %d changes; with docs %d", step.name, len(got), len(docs))
		}
		if !slices.Equal(cursors, docCursors) {
			t.Errorf("%s: cursors %q; with docs %q", step.name, cursors, docCursors)
		}
	}

	// A row without a doc whose record moved on between the page and the
	// load (here: a feed row one version behind its record) is left out,
	// never sent at a version and scope the feed did not say.
	moved := muts[0].ID
	if err := env.DB.Gorm().Exec(`UPDATE sync_changes SET version = version - 1 WHERE record_id = ?`, moved).Error; err != nil {
		t.Fatal(err)
	}
	got, _ := rawPages(t, env, admin.Access, 7)
	var want []string
	for _, c := range docs {
		if !strings.Contains(c, `"id":"`+moved+`"`) {
			want = append(want, c)
		}
	}
	if len(want) != len(docs)-1 || !slices.Equal(got, want) {
		t.Errorf("with visit %s's feed row behind its record: %d changes, want the %d others unchanged", moved, len(got), len(want))
	}
}

// TestPullPageRoundTrips: on PostgreSQL a native pull page of 1,000 is
// the request's session check and two round trips: the feed horizon with
// the device's state and the purge watermark, then the page, sent with its
// statement_timeout (three statements). It used to be ten or more: the
// device's state, the watermark before and after, the horizon, a
// transaction and a load per entity.
func TestPullPageRoundTrips(t *testing.T) {
	if os.Getenv(storetest.EnvURL) == "" {
		t.Skip("PostgreSQL only: SQLite's statements cost no round trip")
	}
	wire := storetest.NewWire(t)
	d := newDemoWith(t, apitest.Options{DatabaseURL: wire.URL})
	rep := newDevice(d.env, "rep1@demo.test")
	var muts []mutation
	for i := range 300 {
		muts = append(muts, newVisit(uuid.New(), d.north[i%len(d.north)], d.ms+int64(i), nil))
	}
	rep.push(t, muts...)
	admin := d.env.Login("admin@demo.test")
	for range 3 { // every pooled connection has prepared the statements
		pullPage(t, d.env, admin.Access, "", 1000)
	}
	wire.Reset()
	page := pullPage(t, d.env, admin.Access, "", 1000)
	if len(page.Changes) < 340 {
		t.Fatalf("pulled %d changes, want the demo's and the 300 visits", len(page.Changes))
	}
	t.Logf("%d statements, %d round trips", wire.Statements.Load(), wire.RoundTrips.Load())
	// One of each is the session check (requireAuth).
	if got := wire.Statements.Load(); got > 4 {
		t.Errorf("a pull page ran %d statements, want at most 4", got)
	}
	if got := wire.RoundTrips.Load(); got > 3 {
		t.Errorf("a pull page took %d round trips, want at most 3", got)
	}
}
