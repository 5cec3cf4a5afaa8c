package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/apitest"
)

// Tests of issue 11, "Sync that real apps live with": what a real app's
// schema and a real network do to a sync, on both protocols.

// TestWatermelonPushSchemaVersionOptional holds that a push without
// schema_version is taken (WatermelonDB's pushChanges has none to send),
// while one naming another version is still refused.
func TestWatermelonPushSchemaVersionOptional(t *testing.T) {
	d := newDemo(t)
	dev := newWMDevice(d.env, "rep1@demo.test")
	dev.pull(t)
	visit := uuid.New()
	body := map[string]any{"changes": wmTables("visits", wmCreated(wmVisit(visit, d.north[0], d.ms, nil)))}
	path := "/v1/sync/watermelondb?last_pulled_at=" + fmt.Sprint(dev.last)

	res := d.env.Do(apitest.Request{Method: http.MethodPost, Path: path, Token: dev.Access, Body: body})
	apitest.Expect(t, res, http.StatusOK)
	if got := dev.pull(t).where("visits", visit); got != "updated" {
		t.Errorf("visit pushed without schema_version: pulled as %q, want updated", got)
	}

	res = d.env.Do(apitest.Request{Method: http.MethodPost, Path: path + "&schema_version=2", Token: dev.Access, Body: body})
	expectProblem(t, res, http.StatusBadRequest, "unsupported_schema")
}

// TestServerOwnedFieldsTolerated holds that a server-owned field is
// ignored when it carries the value the server holds, the value it would
// set, or a client library's empty default, and rejected only when it
// tries to set another value: natively and through WatermelonDB.
func TestServerOwnedFieldsTolerated(t *testing.T) {
	d := newDemo(t)
	env := d.env
	rep := newDevice(env, "rep1@demo.test")
	m1, m2 := d.users["manager1@demo.test"].String(), d.users["manager2@demo.test"].String()
	north, south := d.teams["North"].String(), d.teams["South"].String()
	visit := uuid.New()

	tests := []struct {
		name     string
		m        mutation
		wantCode string // "" for applied
		wantFld  string
	}{
		{name: "ride-along request naming the rep's own manager", m: upsertOf("ride_alongs", uuid.New(), d.ms, map[string]any{
			"mode": "next_unscheduled", "manager_id": m1, "requested_by": "rep", "rep_id": d.users["rep1@demo.test"].String(),
			"joint_verified": false, "completed_at": nil, "team_id": north})},
		{name: "ride-along request with empty defaults", m: upsertOf("ride_alongs", uuid.New(), d.ms, map[string]any{
			"mode": "next_unscheduled", "manager_id": "", "requested_by": "", "rep_id": nil, "joint_verified": false, "completed_at": 0, "team_id": ""})},
		{name: "ride-along request naming another manager", m: upsertOf("ride_alongs", uuid.New(), d.ms, map[string]any{
			"mode": "next_unscheduled", "manager_id": m2}), wantCode: "server_owned_field", wantFld: "manager_id"},
		{name: "ride-along request claiming the manager asked", m: upsertOf("ride_alongs", uuid.New(), d.ms, map[string]any{
			"mode": "next_unscheduled", "requested_by": "manager"}), wantCode: "server_owned_field", wantFld: "requested_by"},
		{name: "visit with every server column at its empty default", m: newVisit(visit, d.north[0], d.ms, map[string]any{
			"team_id": "", "verification": "", "check_in_distance_m": 0, "rep_id": "", "version": 0, "created_at": nil, "updated_at": ""})},
		{name: "visit update echoing the held team", m: visitUpsert(visit, d.ms+1, map[string]any{"team_id": north, "notes": "echo"})},
		{name: "visit update moving it to another team", m: visitUpsert(visit, d.ms+2, map[string]any{"team_id": south}), wantCode: "server_owned_field", wantFld: "team_id"},
		{name: "visit update naming a verification", m: visitUpsert(visit, d.ms+3, map[string]any{"verification": "verified"}), wantCode: "server_owned_field", wantFld: "verification"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rep.pushOne(t, tt.m)
			if tt.wantCode == "" {
				if r.Status != "applied" {
					t.Fatalf("got %s %+v, want applied", r.Status, r.Error)
				}
				return
			}
			if r.Status != "rejected" || r.Error == nil || r.Error.Code != tt.wantCode || r.Error.Field != tt.wantFld {
				t.Fatalf("got %s %+v, want rejected %s on %s", r.Status, r.Error, tt.wantCode, tt.wantFld)
			}
		})
	}
	all, _ := pullAll(t, env, rep.Access)
	if v := all.live(t, "visits", visit); v.str("team_id") != north || v.str("notes") != "echo" {
		t.Errorf("visit team %q notes %q, want North and echo", v.str("team_id"), v.str("notes"))
	}

	// WatermelonDB: the app's schema has manager_id and requested_by as
	// ordinary string columns, sent as the rep's own manager and "rep", or
	// left at "".
	wm := newWMDevice(env, "rep2@demo.test")
	wm.pull(t)
	own, empty := uuid.New(), uuid.New()
	ride := func(id uuid.UUID, manager, by string) map[string]any {
		return wmRow(id, "created", map[string]any{"rep_id": "", "manager_id": manager, "visit_id": "", "mode": "next_unscheduled",
			"status": "requested", "requested_by": by, "scheduled_for": 0, "note": "walk-ins", "manager_check_in_lat": nil,
			"manager_check_in_lng": nil, "joint_verified": false, "completed_at": 0, "team_id": "", "created_at": d.ms, "updated_at": d.ms})
	}
	wm.pushOK(t, wmTables("ride_alongs", wmCreated(ride(own, m1, "rep"), ride(empty, "", ""))))
	got := wm.pull(t)
	for _, id := range []uuid.UUID{own, empty} {
		row, _ := got.row("ride_alongs", id.String())
		if row == nil || row["manager_id"] != m1 || row["requested_by"] != "rep" || row["status"] != "requested" {
			t.Errorf("ride-along %s pulled as %v, want requested by rep from manager1", id, row)
		}
	}
}

// TestSyncSeqReused holds that a mutation at or below the device's
// last_seq is a duplicate only when it is a true retry of one the server
// processed; a phone whose counter went back has its new records answered
// seq_reused with the server's last_seq, not silently dropped.
func TestSyncSeqReused(t *testing.T) {
	d := newDemo(t)
	dev := newDevice(d.env, "rep1@demo.test")
	first := []mutation{
		newVisit(uuid.New(), d.north[0], d.ms, map[string]any{"notes": "one"}),
		newVisit(uuid.New(), d.north[1], d.ms+1, map[string]any{"order_value": 5}), // rejected: no order
	}
	pr := dev.push(t, first...)
	if got := statuses(pr.Results); got[0] != "applied" || got[1] != "rejected" || pr.LastSeq != 2 {
		t.Fatalf("first push: %v last_seq %d", got, pr.LastSeq)
	}

	// The same batch again, as after a lost response: duplicates, the
	// rejected one too.
	pr = pushOK(t, d.env, dev.Access, first)
	if got := statuses(pr.Results); got[0] != "duplicate" || got[1] != "duplicate" {
		t.Errorf("retry: %v, want duplicates", got)
	}

	// The app lost its counter: new records numbered from 1 again.
	lost := newVisit(uuid.New(), d.north[2], d.ms+10, map[string]any{"notes": "new after reinstall"})
	lost.Seq = 1
	next := newVisit(uuid.New(), d.north[3], d.ms+11, map[string]any{"notes": "beyond last_seq"})
	next.Seq = 3
	pr = pushOK(t, d.env, dev.Access, []mutation{lost, next})
	r := pr.Results[0]
	if r.Status != "rejected" || r.Error == nil || r.Error.Code != "seq_reused" || !strings.Contains(r.Error.Message, "last_seq is 2") {
		t.Errorf("reused seq: got %s %+v, want rejected seq_reused naming last_seq 2", r.Status, r.Error)
	}
	if pr.Results[1].Status != "applied" || pr.LastSeq != 3 {
		t.Errorf("next: got %s, last_seq %d; want applied, 3", pr.Results[1].Status, pr.LastSeq)
	}
	// Renumbered past last_seq, it is applied.
	lost.Seq = 4
	if r := pushOK(t, d.env, dev.Access, []mutation{lost}).Results[0]; r.Status != "applied" {
		t.Errorf("renumbered: got %s %+v, want applied", r.Status, r.Error)
	}
}
