package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/sync/engine"
	"github.com/fieldsync/fieldsync/sync/watermelondb"
)

// The WatermelonDB endpoint's wire shapes, as WatermelonDB's synchronize()
// sees them.

type wmTable struct {
	Created []map[string]any `json:"created"`
	Updated []map[string]any `json:"updated"`
	Deleted []string         `json:"deleted"`
}

type wmPullResponse struct {
	Changes   map[string]wmTable `json:"changes"`
	Timestamp int64              `json:"timestamp"`
	Strategy  string             `json:"experimentalStrategy"`
}

// ids lists the ids of one list ("created", "updated" or "deleted") of a
// table, sorted.
func (r wmPullResponse) ids(table, list string) []string {
	t := r.Changes[table]
	var out []string
	switch list {
	case "created", "updated":
		rows := t.Created
		if list == "updated" {
			rows = t.Updated
		}
		for _, row := range rows {
			out = append(out, row["id"].(string))
		}
	case "deleted":
		out = append(out, t.Deleted...)
	}
	slices.Sort(out)
	return out
}

// row returns the record with id from the created or updated list.
func (r wmPullResponse) row(table, id string) (map[string]any, string) {
	for _, list := range []string{"created", "updated"} {
		rows := r.Changes[table].Created
		if list == "updated" {
			rows = r.Changes[table].Updated
		}
		for _, row := range rows {
			if row["id"] == id {
				return row, list
			}
		}
	}
	return nil, ""
}

// where says in which list of the pull a record is: "created", "updated",
// "deleted" or "" (absent).
func (r wmPullResponse) where(table string, id uuid.UUID) string {
	if _, list := r.row(table, id.String()); list != "" {
		return list
	}
	if slices.Contains(r.Changes[table].Deleted, id.String()) {
		return "deleted"
	}
	return ""
}

type wmProblem struct {
	wmProblemBase
	Conflicts []struct {
		Table string    `json:"table"`
		ID    uuid.UUID `json:"id"`
	} `json:"conflicts"`
	Rejected []struct {
		Table   string    `json:"table"`
		ID      uuid.UUID `json:"id"`
		Field   string    `json:"field"`
		Code    string    `json:"code"`
		Message string    `json:"message"`
	} `json:"rejected"`
}

// wmProblemBase is what the tests read of api.Problem.
type wmProblemBase struct {
	Code   string `json:"code"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field string `json:"field"`
		Code  string `json:"code"`
	} `json:"errors"`
}

// wmDevice is a phone running WatermelonDB: it keeps the last timestamp
// its pulls returned.
type wmDevice struct {
	env *apitest.Env
	apitest.Session
	last int64
}

func newWMDevice(env *apitest.Env, email string) *wmDevice {
	env.T.Helper()
	return &wmDevice{env: env, Session: env.Login(email)}
}

func wmPath(last int64, extra string) string {
	q := url.Values{"schema_version": {"1"}}
	if last > 0 {
		q.Set("last_pulled_at", fmt.Sprint(last))
	} else {
		q.Set("last_pulled_at", "null")
	}
	p := "/v1/sync/watermelondb?" + q.Encode()
	if extra != "" {
		p += "&" + extra
	}
	return p
}

// pull pulls since the device's last timestamp and keeps the new one.
func (d *wmDevice) pull(t *testing.T) wmPullResponse {
	t.Helper()
	r := d.pullFrom(t, d.last, "")
	d.last = r.Timestamp
	return r
}

// pullFrom pulls since a given timestamp without keeping the result.
func (d *wmDevice) pullFrom(t *testing.T, last int64, extra string) wmPullResponse {
	t.Helper()
	res := d.env.Do(apitest.Request{Method: http.MethodGet, Path: wmPath(last, extra), Token: d.Access})
	apitest.Expect(t, res, http.StatusOK)
	var r wmPullResponse
	res.JSON(t, &r)
	if r.Timestamp <= 0 || r.Timestamp > watermelondb.MaxTimestamp {
		t.Fatalf("timestamp %d is not a positive JS-safe integer", r.Timestamp)
	}
	for table, tc := range r.Changes {
		for _, rows := range [][]map[string]any{tc.Created, tc.Updated} {
			for _, row := range rows {
				if _, ok := row["_status"]; ok {
					t.Fatalf("%s %v carries _status", table, row["id"])
				}
				if _, ok := row["_changed"]; ok {
					t.Fatalf("%s %v carries _changed", table, row["id"])
				}
			}
		}
	}
	return r
}

// push pushes changes with the device's last timestamp.
func (d *wmDevice) push(t *testing.T, changes map[string]any) *apitest.Response {
	t.Helper()
	return d.pushAt(t, d.last, changes)
}

func (d *wmDevice) pushAt(t *testing.T, last int64, changes map[string]any) *apitest.Response {
	t.Helper()
	return d.env.Do(apitest.Request{Method: http.MethodPost, Path: wmPath(last, ""), Token: d.Access, Body: map[string]any{"changes": changes}})
}

type wmPushResponse struct {
	Written   int `json:"written"`
	Unchanged int `json:"unchanged"`
}

// pushOK pushes and requires a 200.
func (d *wmDevice) pushOK(t *testing.T, changes map[string]any) wmPushResponse {
	t.Helper()
	res := d.push(t, changes)
	apitest.Expect(t, res, http.StatusOK)
	var r wmPushResponse
	res.JSON(t, &r)
	return r
}

func wmProblemOf(t *testing.T, res *apitest.Response, status int, code string) wmProblem {
	t.Helper()
	expectProblem(t, res, status, code)
	var p wmProblem
	res.JSON(t, &p)
	return p
}

// wmRow is a pushed raw record: id, columns, and WatermelonDB's
// bookkeeping, which the server strips.
func wmRow(id uuid.UUID, status string, cols map[string]any, changed ...string) map[string]any {
	r := map[string]any{"id": id.String(), "_status": status, "_changed": strings.Join(changed, ",")}
	for k, v := range cols {
		r[k] = v
	}
	return r
}

// wmVisit is a WatermelonDB visit row as a phone would push it: every
// column of its schema, unset ones null.
func wmVisit(id, account uuid.UUID, ms int64, cols map[string]any) map[string]any {
	r := map[string]any{"account_id": account.String(), "kind": "unscheduled", "status": "completed", "outcome": "none",
		"started_at": ms, "ended_at": nil, "notes": nil, "order_value": nil, "referrals": 0, "rep_id": nil, "team_id": nil,
		"verification": nil, "created_at": ms, "updated_at": ms}
	for k, v := range cols {
		r[k] = v
	}
	return wmRow(id, "created", r)
}

func wmTables(kv ...any) map[string]any {
	out := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func wmCreated(rows ...map[string]any) map[string]any {
	return map[string]any{"created": rows, "updated": []any{}, "deleted": []any{}}
}

func wmUpdated(rows ...map[string]any) map[string]any {
	return map[string]any{"created": []any{}, "updated": rows, "deleted": []any{}}
}

func wmDeleted(ids ...uuid.UUID) map[string]any {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return map[string]any{"created": []any{}, "updated": []any{}, "deleted": s}
}

// TestWatermelonPullShape holds the pull's wire format: every table, raw
// records with native names and millisecond times, a first sync of
// created records, and a timestamp to resume from.
func TestWatermelonPullShape(t *testing.T) {
	d := newDemo(t)
	env := d.env
	rep := newWMDevice(env, "rep1@demo.test")

	first := rep.pull(t)
	if first.Strategy != "" {
		t.Errorf("first pull: experimentalStrategy %q, want none", first.Strategy)
	}
	for name := range engine.New(nil, sales.Entities(), nil, nil).Entities() {
		if _, ok := first.Changes[name]; !ok {
			t.Errorf("table %s missing from the pull", name)
		}
	}
	var north []string
	for _, a := range d.north {
		north = append(north, a.String())
	}
	slices.Sort(north)
	if got := first.ids("accounts", "created"); !slices.Equal(got, north) {
		t.Errorf("first pull: created accounts %v, want North's %v", got, north)
	}
	if got := first.ids("accounts", "updated"); len(got) != 0 {
		t.Errorf("first pull: updated accounts %v, want none", got)
	}
	acc, _ := first.row("accounts", d.north[0].String())
	for _, col := range []string{"version", "created_at", "updated_at"} {
		if _, ok := acc[col].(float64); !ok {
			t.Errorf("account %s = %#v, want a number", col, acc[col])
		}
	}
	if acc["name"] != d.names[d.north[0]] || acc["team_id"] != d.teams["North"].String() {
		t.Errorf("account %v: want native names and values", acc)
	}

	// A visit pushed natively arrives with times in milliseconds.
	native := newDevice(env, "rep2@demo.test")
	visit := uuid.New()
	started := d.now.Add(-time.Hour).Truncate(time.Millisecond)
	native.push(t, newVisit(visit, d.north[0], d.ms, map[string]any{"started_at": started.Format(time.RFC3339Nano), "order_value": 12.5, "outcome": "order"}))
	mgr := newWMDevice(env, "manager1@demo.test")
	all := mgr.pullFrom(t, 0, "")
	row, list := all.row("visits", visit.String())
	if list != "created" {
		t.Fatalf("manager's first pull: visit in %q, want created", list)
	}
	if row["started_at"] != float64(started.UnixMilli()) || row["order_value"] != 12.5 {
		t.Errorf("visit started_at %v order_value %v, want %d and 12.5", row["started_at"], row["order_value"], started.UnixMilli())
	}

	// Nothing new: empty lists, and the timestamp does not go back.
	again := rep.pull(t)
	for name, tc := range again.Changes {
		if len(tc.Created)+len(tc.Updated)+len(tc.Deleted) != 0 {
			t.Errorf("pull with nothing new: %s %+v", name, tc)
		}
	}
	if again.Timestamp < first.Timestamp {
		t.Errorf("timestamp went back: %d after %d", again.Timestamp, first.Timestamp)
	}
}

// TestWatermelonEcho holds that a device's own creates come back to it as
// updated, never created (WatermelonDB would re-create one it deleted
// meanwhile), while other devices get them as created.
func TestWatermelonEcho(t *testing.T) {
	d := newDemo(t)
	env := d.env
	phone := newWMDevice(env, "rep1@demo.test")
	tablet := newWMDevice(env, "rep1@demo.test") // the same rep on a second device
	mgr := newWMDevice(env, "manager1@demo.test")
	for _, dev := range []*wmDevice{phone, tablet, mgr} {
		dev.pull(t)
	}

	visit := uuid.New()
	if r := phone.pushOK(t, wmTables("visits", wmCreated(wmVisit(visit, d.north[0], d.ms, map[string]any{"notes": "walk-in"})))); r.Written != 1 {
		t.Fatalf("push: %+v, want one record written", r)
	}
	if got := phone.pull(t).where("visits", visit); got != "updated" {
		t.Errorf("creator's pull: visit in %q, want updated", got)
	}
	if got := phone.pullFrom(t, 0, "").where("visits", visit); got != "updated" {
		t.Errorf("creator's first sync: visit in %q, want updated", got)
	}
	if got := tablet.pull(t).where("visits", visit); got != "created" {
		t.Errorf("same rep, other device: visit in %q, want created", got)
	}
	if got := mgr.pull(t).where("visits", visit); got != "created" {
		t.Errorf("manager: visit in %q, want created", got)
	}

	// Edited afterwards: updated for everyone.
	phone.pushOK(t, wmTables("visits", wmUpdated(wmRow(visit, "updated", map[string]any{"notes": "walk-in, came back"}, "notes"))))
	for name, dev := range map[string]*wmDevice{"creator": phone, "tablet": tablet, "manager": mgr} {
		r := dev.pull(t)
		row, list := r.row("visits", visit.String())
		if list != "updated" || row["notes"] != "walk-in, came back" {
			t.Errorf("%s after the edit: %q %v, want updated with the new notes", name, list, row)
		}
	}
	// A record created and edited since the last pull, by someone else:
	// created (the client cannot hold it).
	other := uuid.New()
	tablet.pushOK(t, wmTables("visits", wmCreated(wmVisit(other, d.north[1], d.ms, nil))))
	tablet.pull(t)
	tablet.pushOK(t, wmTables("visits", wmUpdated(wmRow(other, "updated", map[string]any{"notes": "second thoughts"}, "notes"))))
	got := phone.pull(t).where("visits", other)
	want := "created"
	if env.DB.Dialect() == store.Postgres {
		// PostgreSQL versions do not follow commit order, so a record
		// written twice is sent as updated: WatermelonDB creates it.
		want = "updated"
	}
	if got != want {
		t.Errorf("creator's pull of a visit another device created and edited: %q, want %q", got, want)
	}
}

// TestWatermelonResurrection holds that a delete is never undone: not by
// a later pull of any device, nor by a stale or retried push.
func TestWatermelonResurrection(t *testing.T) {
	d := newDemo(t)
	env := d.env
	a := newWMDevice(env, "rep1@demo.test")
	b := newWMDevice(env, "rep1@demo.test")
	a.pull(t)
	b.pull(t)
	visit := uuid.New()
	row := wmVisit(visit, d.north[0], d.ms, map[string]any{"notes": "to be deleted"})
	a.pushOK(t, wmTables("visits", wmCreated(row)))
	if got := b.pull(t).where("visits", visit); got != "created" {
		t.Fatalf("b: visit in %q, want created", got)
	}
	staleB := b.last
	a.pull(t)
	a.pushOK(t, wmTables("visits", wmDeleted(visit)))

	// b edits the visit without having seen the delete: 409, nothing applied.
	res := b.pushAt(t, staleB, wmTables("visits", wmUpdated(wmRow(visit, "updated", map[string]any{"notes": "edited offline"}, "notes"))))
	p := wmProblemOf(t, res, http.StatusConflict, "conflict")
	if len(p.Conflicts) != 1 || p.Conflicts[0].Table != "visits" || p.Conflicts[0].ID != visit {
		t.Fatalf("conflicts %+v, want visits %s", p.Conflicts, visit)
	}
	// Its next pull says deleted, and so does everyone's.
	if got := b.pull(t).where("visits", visit); got != "deleted" {
		t.Errorf("b after the delete: %q, want deleted", got)
	}
	if got := a.pull(t).where("visits", visit); got != "deleted" {
		t.Errorf("a (the deleter) after the delete: %q, want deleted", got)
	}
	// Even pushed again as created, with an up-to-date timestamp (a phone
	// that lost the pull's delete), it stays deleted; and the pusher's
	// next pull repeats the delete so its copy goes too.
	b.pushOK(t, wmTables("visits", wmCreated(row)))
	if got := b.pull(t).where("visits", visit); got != "deleted" {
		t.Errorf("b after re-creating a deleted visit: %q, want deleted", got)
	}
	for _, who := range []string{"rep1@demo.test", "manager1@demo.test"} {
		dev := newWMDevice(env, who)
		if got := dev.pullFrom(t, 0, "").where("visits", visit); got != "" {
			t.Errorf("%s's first sync: the deleted visit is in %q", who, got)
		}
	}
	rep, _ := pullAll(t, env, newDevice(env, "admin@demo.test").Access)
	if c := rep[key("visits", visit)]; c.Op != "delete" {
		t.Errorf("native pull: %+v, want a tombstone", c)
	}
	// A retried delete, and a delete of a record that never existed: no-ops.
	if r := a.pushOK(t, wmTables("visits", wmDeleted(visit, uuid.New()))); r.Written != 0 || r.Unchanged != 2 {
		t.Errorf("retried delete: %+v, want 0 written, 2 unchanged", r)
	}
}

// TestWatermelonLostAck holds exactly-once without a seq: a push whose
// response was lost, sent again (before or after pulling), succeeds and
// changes nothing more.
func TestWatermelonLostAck(t *testing.T) {
	d := newDemo(t)
	env := d.env
	dev := newWMDevice(env, "rep1@demo.test")
	dev.pull(t)
	gone := uuid.New()
	dev.pushOK(t, wmTables("visits", wmCreated(wmVisit(gone, d.north[2], d.ms, nil))))
	dev.pull(t)

	visit, activity := uuid.New(), uuid.New()
	push := wmTables(
		"visits", map[string]any{
			"created": []any{wmVisit(visit, d.north[0], d.ms, map[string]any{"notes": "first call"})},
			"updated": []any{}, "deleted": []string{gone.String()},
		},
		"activities", wmCreated(wmRow(activity, "created", map[string]any{"type": "referral", "occurred_at": d.ms, "visit_id": visit.String(), "notes": nil})),
		"accounts", wmUpdated(wmRow(d.north[0], "updated", map[string]any{"name": d.names[d.north[0]], "notes": "likes mornings", "team_id": d.teams["North"].String()}, "notes")),
	)
	first := dev.pushOK(t, push)
	if first.Written != 4 {
		t.Fatalf("first push: %+v, want 4 written", first)
	}
	snapshot := func() replica {
		r, _ := pullAll(t, env, newDevice(env, "admin@demo.test").Access)
		return r
	}
	before := snapshot()

	// The response was lost: the same push, same last_pulled_at.
	if r := dev.pushOK(t, push); r.Written != 0 || r.Unchanged != 4 {
		t.Errorf("retried push: %+v, want 0 written, 4 unchanged", r)
	}
	// Or WatermelonDB's next synchronize(): pull (the records come back as
	// updated), then the same push with the new timestamp.
	r := dev.pull(t)
	for _, k := range []struct {
		table string
		id    uuid.UUID
		want  string
	}{{"visits", visit, "updated"}, {"activities", activity, "updated"}, {"accounts", d.north[0], "updated"}, {"visits", gone, "deleted"}} {
		if got := r.where(k.table, k.id); got != k.want {
			t.Errorf("pull after the lost response: %s %s in %q, want %q", k.table, k.id, got, k.want)
		}
	}
	if r := dev.pushOK(t, push); r.Written != 0 {
		t.Errorf("push after pulling: %+v, want nothing written", r)
	}
	after := snapshot()
	for k, c := range before {
		if a := after[k]; a.Version != c.Version || a.Op != c.Op {
			t.Errorf("%s: version %d %s after the retries, want %d %s", k, a.Version, a.Op, c.Version, c.Op)
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d records after the retries, want %d", len(after), len(before))
	}
	if c := after[key("accounts", d.north[0])]; c.str("notes") != "likes mornings" {
		t.Errorf("account notes %q", c.str("notes"))
	}

	// WatermelonDB stamps its own updated_at on local edits. When the echo
	// of a push whose response was lost arrives while the edit is still
	// pending, the phone keeps its updated_at; the repeated push changes
	// no value, yet the record is announced again so the phone's next
	// pull corrects it, once.
	edit := wmTables("accounts", wmUpdated(wmRow(d.north[1], "updated", map[string]any{"notes": "call after 4pm", "updated_at": d.ms - 5000}, "notes", "updated_at")))
	dev.pushOK(t, edit)
	dev.pull(t)
	if r := dev.pushOK(t, edit); r.Written != 0 {
		t.Errorf("repeated edit: %+v, want nothing written", r)
	}
	row, list := dev.pull(t).row("accounts", d.north[1].String())
	if list != "updated" || row["updated_at"] == float64(d.ms-5000) || row["notes"] != "call after 4pm" {
		t.Errorf("pull after the repeated edit: %q %v, want the record again with the server's updated_at", list, row)
	}
	if got := dev.pull(t).where("accounts", d.north[1]); got != "" {
		t.Errorf("the account is announced again and again (%q)", got)
	}
}

// TestWatermelonStalePush holds the documented conflict flow: a push of a
// record changed on the server since last_pulled_at by another device is
// refused whole with 409; after a pull it goes through, merged per field.
func TestWatermelonStalePush(t *testing.T) {
	d := newDemo(t)
	env := d.env
	a := newWMDevice(env, "rep1@demo.test")
	b := newWMDevice(env, "manager1@demo.test")
	a.pull(t)
	visit := uuid.New()
	a.pushOK(t, wmTables("visits", wmCreated(wmVisit(visit, d.north[0], d.ms, nil))))
	a.pull(t)
	b.pull(t)

	// The manager edits the notes; the rep, not having pulled, the outcome
	// and a new visit in the same push.
	b.pushOK(t, wmTables("visits", wmUpdated(wmRow(visit, "updated", map[string]any{"notes": "manager's note"}, "notes"))))
	fresh := uuid.New()
	stale := wmTables("visits", map[string]any{
		"created": []any{wmVisit(fresh, d.north[1], d.ms, nil)},
		"updated": []any{wmRow(visit, "updated", map[string]any{"outcome": "meeting", "notes": nil}, "outcome")},
		"deleted": []any{},
	})
	res := a.push(t, stale)
	p := wmProblemOf(t, res, http.StatusConflict, "conflict")
	if len(p.Conflicts) != 1 || p.Conflicts[0].ID != visit {
		t.Errorf("conflicts %+v, want only visit %s", p.Conflicts, visit)
	}
	mgr := newWMDevice(env, "manager1@demo.test")
	all := mgr.pullFrom(t, 0, "")
	if got := all.where("visits", fresh); got != "" {
		t.Errorf("the refused push's new visit is in %q: something was applied", got)
	}
	if row, _ := all.row("visits", visit.String()); row["outcome"] != "none" {
		t.Errorf("outcome %v after a refused push, want none", row["outcome"])
	}

	// A native device's edit conflicts the same way.
	native := newDevice(env, "rep1@demo.test")
	native.push(t, visitUpsert(visit, d.ms+1000, map[string]any{"referrals": 2}))
	res = a.pushAt(t, b.last, stale)
	wmProblemOf(t, res, http.StatusConflict, "conflict")

	// Pull, merge, push again: every field edit survives.
	r := a.pull(t)
	if row, list := r.row("visits", visit.String()); list != "updated" || row["notes"] != "manager's note" {
		t.Errorf("pull: %q %v", list, row)
	}
	a.pushOK(t, stale)
	row, _ := mgr.pullFrom(t, 0, "").row("visits", visit.String())
	if row["outcome"] != "meeting" || row["notes"] != "manager's note" || row["referrals"] != 2.0 {
		t.Errorf("merged visit %v, want outcome meeting, the manager's note, 2 referrals", row)
	}
}

// TestWatermelonScope holds that WatermelonDB devices see what native
// ones see, that a change of role or team resyncs in full (replacement,
// all as updated), and that pushes outside the scope are refused whole.
func TestWatermelonScope(t *testing.T) {
	d := newDemo(t)
	env := d.env
	rep := newWMDevice(env, "rep1@demo.test")
	first := rep.pull(t)
	if got := len(first.ids("accounts", "created")); got != 20 {
		t.Fatalf("rep1 sees %d accounts, want North's 20", got)
	}
	// rep4's visit (South) is not rep1's to see.
	south := newWMDevice(env, "rep4@demo.test")
	south.pull(t)
	southVisit := uuid.New()
	south.pushOK(t, wmTables("visits", wmCreated(wmVisit(southVisit, d.south[0], d.ms, nil))))
	south.pull(t)
	if got := rep.pull(t).where("visits", southVisit); got != "" {
		t.Errorf("rep1 pulled rep4's visit (%q)", got)
	}
	// Writing it, or South's account, is refused as not found; the rest of
	// the push is applied.
	mine := uuid.New()
	res := rep.push(t, wmTables(
		"visits", map[string]any{"created": []any{wmVisit(mine, d.north[0], d.ms, nil)},
			"updated": []any{wmRow(southVisit, "updated", map[string]any{"notes": "mine now"}, "notes")}, "deleted": []any{}},
		"accounts", wmUpdated(wmRow(d.south[1], "updated", map[string]any{"notes": "x"}, "notes")),
	))
	apitest.Expect(t, res, http.StatusOK)
	var p wmPushResult
	res.JSON(t, &p)
	if len(p.Rejected) != 2 {
		t.Errorf("rejected %+v, want the South visit and account", p.Rejected)
	}
	for _, r := range p.Rejected {
		if r.Code != "not_found" {
			t.Errorf("rejection %+v, want not_found", r)
		}
	}
	if got := newWMDevice(env, "admin@demo.test").pullFrom(t, 0, "").where("visits", mine); got == "" {
		t.Errorf("the push's own new visit was not applied")
	}
	// Deleting it is a no-op (missing, to rep1), not a leak.
	if r := rep.pushOK(t, wmTables("visits", wmDeleted(southVisit))); r.Written != 0 {
		t.Errorf("delete of an invisible visit: %+v", r)
	}
	if got := south.pull(t).where("visits", southVisit); got != "" {
		t.Errorf("rep4's visit after rep1's delete: %q, want untouched", got)
	}

	// rep1 moves to South: the next pull replaces everything.
	rep2 := newWMDevice(env, "rep2@demo.test")
	rep2.pull(t)
	admin := env.Login("admin@demo.test")
	res = env.Do(apitest.Request{Method: http.MethodPatch, Path: "/v1/users/" + d.users["rep1@demo.test"].String(), Token: admin.Access,
		Body: map[string]any{"team_id": d.teams["South"].String()}})
	apitest.Expect(t, res, http.StatusOK)
	moved := rep.pull(t)
	if moved.Strategy != "replacement" {
		t.Fatalf("after a team change: experimentalStrategy %q, want replacement", moved.Strategy)
	}
	if got := moved.ids("accounts", "created"); len(got) != 0 {
		t.Errorf("replacement sync sent created records %v; it must send updated only", got)
	}
	// South's accounts, and those rep1 still owns in North.
	var want []string
	for _, a := range d.south {
		want = append(want, a.String())
	}
	for _, a := range d.north {
		if d.owner[a] == d.users["rep1@demo.test"].String() {
			want = append(want, a.String())
		}
	}
	slices.Sort(want)
	if got := moved.ids("accounts", "updated"); !slices.Equal(got, want) {
		t.Errorf("replacement accounts %v, want %v", got, want)
	}
	for name := range engine.New(nil, sales.Entities(), nil, nil).Entities() {
		if _, ok := moved.Changes[name]; !ok {
			t.Errorf("replacement sync lacks table %s: WatermelonDB would keep its stale records", name)
		}
	}
	if again := rep.pull(t); again.Strategy != "" {
		t.Errorf("the pull after the replacement: strategy %q, want incremental", again.Strategy)
	}

	// A promotion changes the scope too: the new manager resyncs and now
	// gets the team's visits, as updated.
	rep3 := newWMDevice(env, "rep3@demo.test")
	rep3.pull(t)
	teamVisit := uuid.New()
	rep3.pushOK(t, wmTables("visits", wmCreated(wmVisit(teamVisit, d.north[3], d.ms, nil))))
	if got := rep2.pull(t).where("visits", teamVisit); got != "" {
		t.Fatalf("rep2 pulled rep3's visit (%q)", got)
	}
	res = env.Do(apitest.Request{Method: http.MethodPatch, Path: "/v1/users/" + d.users["rep2@demo.test"].String(), Token: admin.Access,
		Body: map[string]any{"role": "manager"}})
	apitest.Expect(t, res, http.StatusOK)
	promoted := rep2.pull(t)
	if promoted.Strategy != "replacement" || promoted.where("visits", teamVisit) != "updated" {
		t.Errorf("after a promotion: strategy %q, team visit in %q; want replacement, updated", promoted.Strategy, promoted.where("visits", teamVisit))
	}
}

// TestWatermelonIsolation holds that organisations never see or touch each
// other's records through the WatermelonDB endpoint, even by id.
func TestWatermelonIsolation(t *testing.T) {
	d := newDemo(t)
	env := d.env
	ctx := context.Background()
	hash, err := env.Passwords.Hash(demo.Password)
	if err != nil {
		t.Fatal(err)
	}
	now := env.Clock.Now()
	other := models.Org{ID: uuid.New(), Name: "Other Co", CreatedAt: now}
	if err := env.DB.People().CreateOrg(ctx, other, models.User{OrgID: other.ID, ID: uuid.New(), Email: "admin@other.test", Name: "Olive Other",
		Role: models.RoleAdmin, Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	demoAdmin := newWMDevice(env, "admin@demo.test")
	otherAdmin := newWMDevice(env, "admin@other.test")
	if r := otherAdmin.pull(t); len(r.ids("accounts", "created")) != 0 {
		t.Fatalf("another organisation pulled %d accounts", len(r.ids("accounts", "created")))
	}
	// Pushing to the demo organisation's account id makes the other
	// organisation a record of its own and leaves the demo's alone.
	target := d.north[0]
	otherAdmin.pushOK(t, wmTables("accounts", wmUpdated(wmRow(target, "updated", map[string]any{"name": "Hijacked", "status": "customer"}, "name"))))
	if row, list := otherAdmin.pull(t).row("accounts", target.String()); list != "updated" || row["name"] != "Hijacked" {
		t.Errorf("other organisation: its own record %q %v", list, row)
	}
	row, list := demoAdmin.pull(t).row("accounts", target.String())
	if list != "created" || row["name"] != d.names[target] {
		t.Errorf("demo account %q %v after another organisation's push, want the original", list, row)
	}
}

// TestWatermelonInterop holds that a native device and a WatermelonDB
// device of the same rep see each other's changes, merged per field.
func TestWatermelonInterop(t *testing.T) {
	d := newDemo(t)
	env := d.env
	native := newDevice(env, "rep1@demo.test")
	melon := newWMDevice(env, "rep1@demo.test")
	melon.pull(t)

	visit := uuid.New()
	native.push(t, newVisit(visit, d.north[0], d.ms, map[string]any{"notes": "from the native app"}))
	if got := melon.pull(t).where("visits", visit); got != "created" {
		t.Errorf("WatermelonDB device: native visit in %q, want created", got)
	}
	melonVisit := uuid.New()
	melon.pushOK(t, wmTables("visits",
		map[string]any{
			"created": []any{wmVisit(melonVisit, d.north[1], d.ms, map[string]any{"notes": "from WatermelonDB"})},
			"updated": []any{wmRow(visit, "updated", map[string]any{"outcome": "follow_up"}, "outcome")},
			"deleted": []any{},
		}))
	// The native device edits another field of the same visit, with a
	// clock slightly ahead of the server's.
	native.push(t, visitUpsert(visit, d.ms+60_000, map[string]any{"referrals": 3}))
	rep, _ := pullAll(t, env, native.Access)
	v := rep.live(t, "visits", visit)
	if v.str("outcome") != "follow_up" || v.str("notes") != "from the native app" || string(v.Data["referrals"]) != "3" {
		t.Errorf("native pull: %v", v.Data)
	}
	if c := rep.live(t, "visits", melonVisit); c.str("notes") != "from WatermelonDB" || c.str("rep_id") != d.users["rep1@demo.test"].String() {
		t.Errorf("native pull of the WatermelonDB visit: %v", c.Data)
	}
	// The WatermelonDB edit after seeing the native one wins its field,
	// even though the native clock ran ahead.
	melon.pull(t)
	melon.pushOK(t, wmTables("visits", wmUpdated(wmRow(visit, "updated", map[string]any{"referrals": 1}, "referrals"))))
	rep, _ = pullAll(t, env, native.Access)
	if v := rep.live(t, "visits", visit); string(v.Data["referrals"]) != "1" {
		t.Errorf("referrals %s after the WatermelonDB edit, want 1", v.Data["referrals"])
	}
}

// TestWatermelonMigration holds that a pull naming a migration gets every
// record in full, as updated, without replacing.
func TestWatermelonMigration(t *testing.T) {
	d := newDemo(t)
	rep := newWMDevice(d.env, "rep1@demo.test")
	rep.pull(t)
	r := rep.pullFrom(t, rep.last, "migration="+url.QueryEscape(`{"from":1,"tables":[],"columns":[{"table":"visits","columns":["notes"]}]}`))
	if r.Strategy != "" || len(r.ids("accounts", "updated")) != 20 || len(r.ids("accounts", "created")) != 0 {
		t.Errorf("migration pull: strategy %q, %d updated and %d created accounts; want none, 20, 0",
			r.Strategy, len(r.ids("accounts", "updated")), len(r.ids("accounts", "created")))
	}
}

// TestWatermelonBadInput holds that what the endpoint cannot take is
// answered 4xx naming the fault, and stores nothing.
func TestWatermelonBadInput(t *testing.T) {
	d := newDemo(t)
	env := d.env
	dev := newWMDevice(env, "rep1@demo.test")
	dev.pull(t)
	last := fmt.Sprint(dev.last)
	good := func() map[string]any {
		return wmVisit(uuid.New(), d.north[0], d.ms, map[string]any{"notes": "must not be stored"})
	}
	body := func(changes map[string]any) string {
		b, _ := json.Marshal(map[string]any{"changes": changes})
		return string(b)
	}
	contest := uuid.New()
	dup := good()
	tooMany := make([]any, watermelondb.MaxPush+1)
	for i := range tooMany {
		tooMany[i] = uuid.NewString()
	}
	tests := []struct {
		name       string
		method     string
		query      string
		body       string
		wantStatus int
		wantCode   string
		wantField  string // "" skips the check
	}{
		{name: "pull without schema_version", method: "GET", query: "last_pulled_at=null", wantStatus: 422, wantCode: "invalid", wantField: "schema_version"},
		{name: "pull schema_version 2", method: "GET", query: "last_pulled_at=null&schema_version=2", wantStatus: 400, wantCode: "unsupported_schema", wantField: "schema_version"},
		{name: "pull last_pulled_at not a number", method: "GET", query: "last_pulled_at=yesterday&schema_version=1", wantStatus: 422, wantCode: "invalid", wantField: "last_pulled_at"},
		{name: "pull last_pulled_at negative", method: "GET", query: "last_pulled_at=-5&schema_version=1", wantStatus: 422, wantCode: "invalid", wantField: "last_pulled_at"},
		{name: "pull last_pulled_at beyond 2^53", method: "GET", query: "last_pulled_at=9007199254740993&schema_version=1", wantStatus: 422, wantCode: "invalid", wantField: "last_pulled_at"},
		{name: "pull migration not JSON", method: "GET", query: "last_pulled_at=null&schema_version=1&migration=%7Bfrom", wantStatus: 422, wantCode: "invalid", wantField: "migration"},
		{name: "push without last_pulled_at", method: "POST", query: "schema_version=1", body: body(wmTables("visits", wmCreated(good()))), wantStatus: 422, wantCode: "invalid", wantField: "last_pulled_at"},
		{name: "push last_pulled_at null", method: "POST", query: "schema_version=1&last_pulled_at=null", body: body(wmTables("visits", wmCreated(good()))), wantStatus: 422, wantCode: "invalid", wantField: "last_pulled_at"},
		{name: "push schema_version 2", method: "POST", query: "schema_version=2&last_pulled_at=" + last, body: body(wmTables("visits", wmCreated(good()))), wantStatus: 400, wantCode: "unsupported_schema", wantField: "schema_version"},
		{name: "malformed JSON", method: "POST", body: `{"changes":{"visits":`, wantStatus: 400, wantCode: "malformed"},
		{name: "not an object", method: "POST", body: `[1]`, wantStatus: 400, wantCode: "malformed"},
		{name: "unknown top-level field", method: "POST", body: `{"changes":{},"lastPulledAt":1}`, wantStatus: 422, wantCode: "invalid", wantField: "lastPulledAt"},
		{name: "table not an object", method: "POST", body: `{"changes":{"visits":[]}}`, wantStatus: 422, wantCode: "invalid", wantField: "changes.visits"},
		{name: "unknown list", method: "POST", body: `{"changes":{"visits":{"created":[],"upserted":[]}}}`, wantStatus: 422, wantCode: "invalid", wantField: "changes.visits"},
		{name: "same record twice", method: "POST", body: body(wmTables("visits", map[string]any{"created": []any{dup}, "updated": []any{dup}, "deleted": []any{}})), wantStatus: 422, wantCode: "invalid", wantField: "changes.visits"},
		{name: "too many records", method: "POST", body: body(wmTables("visits", map[string]any{"created": []any{}, "updated": []any{}, "deleted": tooMany})), wantStatus: 413, wantCode: "too_large"},
	}
	admin := newWMDevice(env, "admin@demo.test")
	before := admin.pullFrom(t, 0, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			query := tt.query
			if query == "" {
				query = "schema_version=1&last_pulled_at=" + last
			}
			req := apitest.Request{Method: tt.method, Path: "/v1/sync/watermelondb?" + query, Token: dev.Access}
			if tt.method == "POST" {
				req.Body = tt.body
			}
			res := env.Do(req)
			p := wmProblemOf(t, res, tt.wantStatus, tt.wantCode)
			if tt.wantField != "" {
				found := false
				for _, e := range p.Errors {
					if e.Field == tt.wantField || (strings.HasPrefix(tt.wantField, ".") && strings.HasSuffix(e.Field, tt.wantField)) ||
						strings.HasPrefix(e.Field, tt.wantField) {
						found = true
					}
				}
				if !found {
					t.Errorf("problem %+v does not name %q", p.Errors, tt.wantField)
				}
			}
			if tt.wantCode == "invalid" && strings.HasPrefix(tt.wantField, ".") && len(p.Rejected) == 0 {
				t.Errorf("a rule violation without rejected records: %s", res.Body)
			}
			after := admin.pullFrom(t, 0, "")
			if got, want := len(after.ids("visits", "created"))+len(after.ids("visits", "updated")), len(before.ids("visits", "created"))+len(before.ids("visits", "updated")); got != want {
				t.Errorf("%d visits, want %d: something was stored", got, want)
			}
		})
	}
	// Rules: the record at fault is left out and named, the rest applied.
	rules := []struct {
		name      string
		table     string
		row       map[string]any
		wantCode  string
		wantField string
	}{
		{name: "server-owned column", row: map[string]any{"team_id": d.teams["South"].String()}, wantCode: "server_owned_field", wantField: "team_id"},
		{name: "unknown column", row: map[string]any{"mood": "great"}, wantCode: "unknown_field", wantField: "mood"},
		{name: "bad enum", row: map[string]any{"outcome": "sold"}, wantCode: "invalid_value", wantField: "outcome"},
		{name: "time not milliseconds", row: map[string]any{"started_at": 1.5}, wantCode: "invalid_value", wantField: "started_at"},
		{name: "time in the future", row: map[string]any{"started_at": d.ms + 3*24*3600*1000}, wantCode: "invalid_value", wantField: "started_at"},
		{name: "missing account", row: map[string]any{"account_id": nil}, wantCode: "missing_required_field", wantField: "account_id"},
		{name: "read-only table", table: "contests", row: wmRow(contest, "created", map[string]any{"name": "Mine"}), wantCode: "read_only_entity"},
		{name: "unknown table", table: "drafts", row: wmRow(uuid.New(), "created", map[string]any{"text": "local"}), wantCode: "unknown_entity"},
	}
	for _, tt := range rules {
		t.Run(tt.name, func(t *testing.T) {
			ok, bad := good(), tt.row
			changes := wmTables("visits", wmCreated(ok))
			if tt.table == "" {
				bad = good()
				for k, v := range tt.row {
					bad[k] = v
				}
				changes = wmTables("visits", wmCreated(ok, bad))
			} else {
				changes[tt.table] = wmCreated(bad)
			}
			res := dev.push(t, changes)
			apitest.Expect(t, res, http.StatusOK)
			var p wmPushResult
			res.JSON(t, &p)
			if len(p.Rejected) != 1 || p.Rejected[0].ID.String() != bad["id"] || p.Rejected[0].Code != tt.wantCode || p.Rejected[0].Field != tt.wantField {
				t.Errorf("rejected %+v, want %s %s on %s", p.Rejected, bad["id"], tt.wantCode, tt.wantField)
			}
			table := tt.table
			if table == "" {
				table = "visits"
			}
			if ids := p.RejectedIDs[table]; len(ids) != 1 || ids[0] != bad["id"] {
				t.Errorf("experimentalRejectedIds %v", p.RejectedIDs)
			}
			if p.Written != 1 {
				t.Errorf("written %d, want the good visit", p.Written)
			}
		})
	}
	// The bare changes object, as WatermelonDB's documentation posts it,
	// is taken too; local-only tables with no changes are ignored.
	res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/sync/watermelondb?schema_version=1&last_pulled_at=" + last, Token: dev.Access,
		Body: wmTables("visits", wmCreated(good()), "drafts", map[string]any{"created": []any{}, "updated": []any{}, "deleted": []any{}})})
	apitest.Expect(t, res, http.StatusOK)
}

// TestWatermelonPushAsFetchSendsIt: WatermelonDB's documented pushChanges
// posts JSON.stringify(changes) with fetch() and no headers, so the body
// arrives as text/plain. That push is taken; other media types are not.
func TestWatermelonPushAsFetchSendsIt(t *testing.T) {
	d := newDemo(t)
	phone := newWMDevice(d.env, "rep1@demo.test")
	phone.pull(t)
	visit := uuid.New()
	body := map[string]any{"changes": wmTables("visits", wmCreated(wmVisit(visit, d.north[0], d.ms, nil)))}
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	send := func(contentType string) *apitest.Response {
		return d.env.Do(apitest.Request{Method: http.MethodPost, Path: wmPath(phone.last, ""), Token: phone.Access, Body: raw,
			Header: http.Header{"Content-Type": {contentType}}})
	}
	expectProblem(t, send("application/x-www-form-urlencoded"), http.StatusUnsupportedMediaType, "unsupported_media")
	apitest.Expect(t, send("text/plain;charset=UTF-8"), http.StatusOK)
	if got := phone.pull(t).where("visits", visit); got != "updated" {
		t.Errorf("visit pushed as text/plain: in %q on the next pull, want updated", got)
	}
}
