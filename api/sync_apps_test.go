package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
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

// TestSyncNoPoisonPill holds that every problem with one mutation of a
// native push — an entity this server does not know (a newer app), a bad
// id, op, clock or field, a rule, a missing dependency — is that mutation's
// rejection, recorded for the device's pulls, while the batch's other
// mutations apply.
func TestSyncNoPoisonPill(t *testing.T) {
	d := newDemo(t)
	dev := newDevice(d.env, "rep1@demo.test")
	good1, good2 := uuid.New(), uuid.New()
	badID := newVisit(uuid.New(), d.north[0], d.ms, nil)
	badID.ID = "visit-1"
	noFields := newVisit(uuid.New(), d.north[0], d.ms, nil)
	noFields.Fields = nil
	zeroHLC := newVisit(uuid.New(), d.north[0], d.ms, nil)
	zeroHLC.HLC.MS = 0
	badOp := newVisit(uuid.New(), d.north[0], d.ms, nil)
	badOp.Op = "merge"
	muts := []mutation{
		newVisit(good1, d.north[0], d.ms, map[string]any{"notes": "first"}),
		upsertOf("drafts", uuid.New(), d.ms, map[string]any{"text": "from a newer app"}),
		badID, noFields, zeroHLC, badOp,
		newVisit(uuid.New(), d.north[0], d.ms, map[string]any{"mood": "great"}),
		newVisit(uuid.New(), d.north[0], d.ms, map[string]any{"outcome": "sold"}),
		newVisit(uuid.New(), uuid.New(), d.ms, nil), // an account nobody has
		newVisit(good2, d.north[1], d.ms, map[string]any{"notes": "last"}),
	}
	wantCodes := []string{"", "unknown_entity", "invalid_value", "missing_required_field", "invalid_value", "invalid_value", "unknown_field", "invalid_value", "invalid_value", ""}
	wantFields := []string{"", "entity", "id", "fields", "hlc", "op", "mood", "outcome", "account_id", ""}
	body := `{"schema_version":1,"mutations":[`
	for i := range muts {
		muts[i].Seq = int64(i + 1)
		b, _ := json.Marshal(muts[i])
		if i > 0 {
			body += ","
		}
		s := string(b)
		if i == 3 { // fields absent altogether
			s = strings.Replace(s, `"fields":null,`, "", 1)
		}
		body += s
	}
	body += `]}`
	// A mutation without hlc at all, too.
	noHLC := newVisit(uuid.New(), d.north[0], d.ms, nil)
	noHLC.Seq = int64(len(muts) + 1)
	b, _ := json.Marshal(noHLC)
	body = strings.TrimSuffix(body, `]}`) + "," + strings.Replace(string(b), fmt.Sprintf(`"hlc":{"ms":%d,"counter":0}`, d.ms), `"hlc":null`, 1) + `]}`
	wantCodes, wantFields = append(wantCodes, "invalid_value"), append(wantFields, "hlc")
	// A mutation whose members have the wrong JSON types, or one it
	// should not have: still that mutation's rejection alone.
	body = strings.TrimSuffix(body, `]}`) + fmt.Sprintf(`,{"seq":%d,"entity":"visits","id":"%s","op":"upsert","fields":[],"hlc":"now"}`, len(muts)+2, uuid.New()) +
		fmt.Sprintf(`,{"seq":%d,"entity":"visits","id":"%s","op":"upsert","fields":{"notes":"x"},"hlc":{"ms":%d},"priority":"high"}`, len(muts)+3, uuid.New(), d.ms) + `]}`
	wantCodes, wantFields = append(wantCodes, "invalid_value", "unknown_field"), append(wantFields, "fields", "priority")

	res := pushRequest(d.env, dev.Access, body)
	apitest.Expect(t, res, http.StatusOK)
	var pr pushResponse
	res.JSON(t, &pr)
	if len(pr.Results) != len(wantCodes) || pr.LastSeq != int64(len(wantCodes)) {
		t.Fatalf("%d results, last_seq %d; want %d of each: %s", len(pr.Results), pr.LastSeq, len(wantCodes), res.Body)
	}
	for i, r := range pr.Results {
		switch {
		case wantCodes[i] == "" && r.Status != "applied":
			t.Errorf("seq %d: %s %+v, want applied", r.Seq, r.Status, r.Error)
		case wantCodes[i] != "" && (r.Status != "rejected" || r.Error == nil || r.Error.Code != wantCodes[i] || r.Error.Field != wantFields[i]):
			t.Errorf("seq %d: %s %+v, want rejected %s on %s", r.Seq, r.Status, r.Error, wantCodes[i], wantFields[i])
		}
	}
	all, last := pullAll(t, d.env, dev.Access)
	all.live(t, "visits", good1)
	all.live(t, "visits", good2)
	if len(last.Rejections) != len(wantCodes)-2 {
		t.Errorf("pull lists %d rejections, want %d", len(last.Rejections), len(wantCodes)-2)
	}
	// The same batch again is all duplicates.
	res = pushRequest(d.env, dev.Access, body)
	apitest.Expect(t, res, http.StatusOK)
	res.JSON(t, &pr)
	for _, r := range pr.Results {
		if r.Status != "duplicate" {
			t.Errorf("retry: seq %d %s, want duplicate", r.Seq, r.Status)
		}
	}
}

type wmPushResult struct {
	Written     int                 `json:"written"`
	Unchanged   int                 `json:"unchanged"`
	RejectedIDs map[string][]string `json:"experimentalRejectedIds"`
	Rejected    []struct {
		Table string    `json:"table"`
		ID    uuid.UUID `json:"id"`
		Field string    `json:"field"`
		Code  string    `json:"code"`
	} `json:"rejected"`
}

// TestWatermelonPartialApply holds that a WatermelonDB push applies the
// records the rules accept and returns the refused ones in
// experimentalRejectedIds (WatermelonDB keeps them dirty): a record
// refused by a rule, one referring to a refused record of the same push,
// and one of a table this server does not know. Every refusal is recorded
// for the device. A stale record still refuses the whole push (409).
func TestWatermelonPartialApply(t *testing.T) {
	d := newDemo(t)
	dev := newWMDevice(d.env, "rep1@demo.test")
	dev.pull(t)
	good, bad, dependent, draft, account := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	changes := wmTables(
		"visits", wmCreated(
			wmVisit(good, d.north[0], d.ms, map[string]any{"notes": "kept"}),
			wmVisit(bad, d.north[1], d.ms, map[string]any{"order_value": 10}), // no order
		),
		"activities", wmCreated(wmRow(dependent, "created", map[string]any{"type": "crm_update", "occurred_at": d.ms, "visit_id": bad.String(),
			"account_id": "", "value": nil, "cost": nil, "notes": "", "rep_id": "", "team_id": ""})),
		"accounts", wmCreated(wmRow(account, "created", map[string]any{"name": "Partial Apply Hardware", "status": "prospect"})),
		"drafts", wmCreated(wmRow(draft, "created", map[string]any{"text": "a table of a newer app"})),
	)
	res := dev.push(t, changes)
	apitest.Expect(t, res, http.StatusOK)
	var pr wmPushResult
	res.JSON(t, &pr)
	want := map[string][]string{"visits": {bad.String()}, "activities": {dependent.String()}, "drafts": {draft.String()}}
	if fmt.Sprint(pr.RejectedIDs) != fmt.Sprint(want) {
		t.Errorf("experimentalRejectedIds %v, want %v", pr.RejectedIDs, want)
	}
	codes := map[uuid.UUID]string{}
	for _, r := range pr.Rejected {
		codes[r.ID] = r.Code + " " + r.Field
	}
	if codes[bad] != "invalid_value order_value" || codes[dependent] != "dependency_rejected visit_id" || codes[draft] != "unknown_entity " {
		t.Errorf("rejected %v", codes)
	}
	if pr.Written != 2 {
		t.Errorf("written %d, want 2", pr.Written)
	}
	got := dev.pull(t)
	if got.where("visits", good) == "" || got.where("accounts", account) == "" {
		t.Errorf("the accepted records were not applied")
	}
	if got.where("visits", bad) != "" || got.where("activities", dependent) != "" {
		t.Errorf("a refused record was applied")
	}

	// The refusals are recorded and readable by the device.
	res = d.env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/sync/rejections", Token: dev.Access})
	apitest.Expect(t, res, http.StatusOK)
	var list struct {
		Rejections []struct {
			Entity string    `json:"entity"`
			ID     uuid.UUID `json:"id"`
			Field  string    `json:"field"`
			Code   string    `json:"code"`
		} `json:"rejections"`
	}
	res.JSON(t, &list)
	if len(list.Rejections) != 3 {
		t.Errorf("GET /v1/sync/rejections: %+v, want the 3 refusals", list.Rejections)
	}

	// WatermelonDB pushes the refused records again next time (they stay
	// dirty): refused again, nothing else happens.
	res = dev.push(t, wmTables("visits", wmCreated(wmVisit(bad, d.north[1], d.ms, map[string]any{"order_value": 10}))))
	apitest.Expect(t, res, http.StatusOK)
	res.JSON(t, &pr)
	if len(pr.RejectedIDs["visits"]) != 1 || pr.Written != 0 {
		t.Errorf("second push: %+v", pr)
	}

	// A stale record is still all or nothing.
	other := newDevice(d.env, "rep1@demo.test")
	other.push(t, visitUpsert(good, d.ms+1000, map[string]any{"notes": "changed elsewhere"}))
	fresh := uuid.New()
	res = dev.push(t, wmTables("visits", map[string]any{"created": []any{wmVisit(fresh, d.north[2], d.ms, nil)},
		"updated": []any{wmRow(good, "updated", map[string]any{"notes": "stale"}, "notes")}, "deleted": []any{}}))
	wmProblemOf(t, res, http.StatusConflict, "conflict")
	if dev.pullFrom(t, 0, "").where("visits", fresh) != "" {
		t.Errorf("a 409 push applied a record")
	}
}

// TestSyncRejectionsList holds GET /v1/sync/rejections: the calling
// device's refusals, newest first, paged by an opaque cursor.
func TestSyncRejectionsList(t *testing.T) {
	d := newDemo(t)
	dev := newDevice(d.env, "rep1@demo.test")
	var muts []mutation
	for i := 0; i < 5; i++ {
		muts = append(muts, newVisit(uuid.New(), d.north[0], d.ms, map[string]any{"outcome": fmt.Sprint("bad-", i)}))
	}
	dev.push(t, muts...)
	newDevice(d.env, "rep1@demo.test").push(t, newVisit(uuid.New(), d.north[0], d.ms, map[string]any{"mood": "another device's"}))

	type page struct {
		Rejections []syncRejection `json:"rejections"`
		NextCursor string          `json:"next_cursor"`
	}
	var seqs []int64
	cursor := ""
	for i := 0; i < 5; i++ {
		path := "/v1/sync/rejections?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		res := d.env.Do(apitest.Request{Method: http.MethodGet, Path: path, Token: dev.Access})
		apitest.Expect(t, res, http.StatusOK)
		var p page
		res.JSON(t, &p)
		for _, r := range p.Rejections {
			if r.Code != "invalid_value" || r.Field != "outcome" || r.Entity != "visits" {
				t.Errorf("rejection %+v", r)
			}
			seqs = append(seqs, r.Seq)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if fmt.Sprint(seqs) != "[5 4 3 2 1]" {
		t.Errorf("seqs %v, want [5 4 3 2 1]: this device's, newest first, each once", seqs)
	}
	res := d.env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/sync/rejections?cursor=nonsense", Token: dev.Access})
	expectProblem(t, res, http.StatusUnprocessableEntity, "invalid")
}

// TestExtremeValuesNeverBreakPull holds that nothing stored can break a
// pull: inputs that would make a value JSON cannot carry (NaN, ±Inf) are
// refused at their source with a 4xx, and extreme values pushed through
// every numeric field of every writable entity, scored by a contest with
// extreme rules, still pull as JSON on both protocols.
func TestExtremeValuesNeverBreakPull(t *testing.T) {
	d := newDemo(t)
	env := d.env
	mgr := env.Login("manager1@demo.test")
	rep1 := d.users["rep1@demo.test"].String()
	north := d.teams["North"].String()
	contest := func(rules map[string]any, target float64) *apitest.Response {
		body := map[string]any{"name": "Extreme", "team_id": north, "starts_at": d.now.Add(-24 * time.Hour).Format(time.RFC3339),
			"ends_at": d.now.Add(7 * 24 * time.Hour).Format(time.RFC3339), "targets": map[string]any{rep1: target}}
		if rules != nil {
			body["rules"] = rules
		}
		return env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/contests", Token: mgr.Access, Body: body})
	}
	// Refused at the source.
	for _, tt := range []struct {
		name   string
		rules  map[string]any
		target float64
	}{
		{"the smallest positive target", nil, 5e-324},
		{"a target below a point", nil, 0.001},
		{"the smallest order value unit", map[string]any{"per_order_value_unit": 1, "order_value_unit": 5e-324}, 10},
		{"an order value unit below a cent", map[string]any{"per_order_value_unit": 1, "order_value_unit": 0.001}, 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			expectProblem(t, contest(tt.rules, tt.target), http.StatusUnprocessableEntity, "invalid")
		})
	}
	// The most extreme contest that is accepted.
	res := contest(map[string]any{"per_verified_unscheduled_call": 1e6, "per_outcome": map[string]any{"order": 1e6}, "per_activity": map[string]any{"referral": 1e6},
		"per_order_value_unit": 1e6, "order_value_unit": 0.01, "min_visit_minutes": 0}, 1)
	apitest.Expect(t, res, http.StatusCreated)

	// Every numeric field of every writable entity, at its extremes.
	extremes := []any{5e-324, -5e-324, 1e-300, 1e308, -1e308, 0, 1, -1, 90, -180, 1e10, 9999999999.99, 1e15}
	dev := newDevice(env, "rep1@demo.test")
	visit := uuid.New()
	dev.push(t, newVisit(visit, d.north[0], d.ms, map[string]any{"outcome": "order", "order_value": 9999999999.99, "started_at": d.now.Add(-time.Hour).Format(time.RFC3339),
		"ended_at": d.now.Format(time.RFC3339), "check_in_lat": 45, "check_in_lng": -93, "check_in_accuracy_m": 5}))
	bases := map[string]func() (uuid.UUID, map[string]any){
		"visits": func() (uuid.UUID, map[string]any) {
			return uuid.New(), map[string]any{"account_id": d.north[1].String(), "outcome": "order", "started_at": d.now.Add(-2 * time.Hour).Format(time.RFC3339)}
		},
		"activities": func() (uuid.UUID, map[string]any) {
			return uuid.New(), map[string]any{"type": "referral", "occurred_at": d.now.Add(-time.Hour).Format(time.RFC3339)}
		},
		"accounts": func() (uuid.UUID, map[string]any) {
			return uuid.New(), map[string]any{"name": "Extreme " + uuid.NewString()}
		},
		"ride_alongs": func() (uuid.UUID, map[string]any) {
			return uuid.New(), map[string]any{"mode": "visit", "visit_id": visit.String()}
		},
	}
	es := engine.New(nil, sales.Entities(), nil, nil).Entities()
	var muts []mutation
	for _, name := range []string{"visits", "activities", "accounts", "ride_alongs"} {
		for _, f := range es[name].Fields {
			if f.Hidden || f.Access != engine.ClientWritable || (f.Type != engine.Float && f.Type != engine.Int && f.Type != engine.Money) {
				continue
			}
			for _, v := range extremes {
				id, fields := bases[name]()
				fields[f.Name] = v
				for _, pair := range [][2]string{{"lat", "lng"}, {"check_in_lat", "check_in_lng"}, {"check_out_lat", "check_out_lng"}, {"manager_check_in_lat", "manager_check_in_lng"}} {
					if f.Name == pair[0] {
						fields[pair[1]] = v
					} else if f.Name == pair[1] {
						fields[pair[0]] = v
					}
				}
				muts = append(muts, upsertOf(name, id, d.ms, fields))
			}
		}
	}
	if len(muts) < 10*len(extremes) {
		t.Fatalf("only %d mutations: the numeric fields were not found", len(muts))
	}
	pr := dev.push(t, muts...)
	applied := 0
	for _, r := range pr.Results {
		if r.Status == "applied" || r.Status == "merged" {
			applied++
		}
	}
	if applied == 0 {
		t.Errorf("no extreme value was applied: %+v", pr.Results[0])
	}
	// The same through WatermelonDB: one push, the records it refuses left
	// out.
	wm := newWMDevice(env, "rep2@demo.test")
	wm.pull(t)
	tables := map[string][]map[string]any{}
	for _, m := range muts {
		if m.Entity == "ride_alongs" {
			continue // bound to rep1's visit
		}
		row := map[string]any{}
		for k, v := range m.Fields {
			if s, ok := v.(string); ok {
				if ts, err := time.Parse(time.RFC3339, s); err == nil {
					v = ts.UnixMilli()
				}
			}
			row[k] = v
		}
		if m.Entity == "visits" {
			row["account_id"] = d.north[4].String()
		}
		tables[m.Entity] = append(tables[m.Entity], wmRow(uuid.New(), "created", row))
	}
	changes := map[string]any{}
	for name, rows := range tables {
		changes[name] = wmCreated(rows...)
	}
	if r := wm.pushOK(t, changes); r.Written == 0 {
		t.Errorf("WatermelonDB push of extreme values wrote nothing")
	}

	// Every pull parses (pullAll decodes JSON), natively and through
	// WatermelonDB, for the reps, the manager and the admin.
	for _, who := range []string{"rep1@demo.test", "rep2@demo.test", "manager1@demo.test", "admin@demo.test"} {
		s := env.Login(who)
		pullAll(t, env, s.Access)
		newWMDevice(env, who).pull(t)
	}
	res = env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/contests", Token: mgr.Access})
	apitest.Expect(t, res, http.StatusOK)
}

// conflictsOf lists the conflicts token may see on one record, by field.
func conflictsOf(t *testing.T, d *demoOrg, token string, record uuid.UUID) map[string]conflictEntry {
	t.Helper()
	res := d.env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/sync/conflicts", Token: token})
	apitest.Expect(t, res, http.StatusOK)
	var list struct {
		Conflicts []conflictEntry `json:"conflicts"`
	}
	res.JSON(t, &list)
	out := map[string]conflictEntry{}
	for _, c := range list.Conflicts {
		if c.RecordID == record {
			out[c.Field] = c
		}
	}
	return out
}

// TestConcurrentOutcomeResolves holds the visit rule "an order value
// belongs to an order outcome" under concurrent edits: phone A records an
// order, phone B, offline, sets a later follow_up and types notes. The
// later outcome wins, the order value leaves the record but is kept in the
// conflict log (for the rep and the manager), and B's notes are applied:
// in either arrival order, natively, and through WatermelonDB's pull,
// per-column merge and push.
func TestConcurrentOutcomeResolves(t *testing.T) {
	d := newDemo(t)
	env := d.env
	mgr := env.Login("manager1@demo.test")
	check := func(t *testing.T, visit uuid.UUID, token string) {
		t.Helper()
		all, _ := pullAll(t, env, token)
		v := all.live(t, "visits", visit)
		if v.str("outcome") != "follow_up" || string(v.Data["order_value"]) != "null" || v.str("notes") != "call back Tuesday" {
			t.Errorf("visit outcome %q order_value %s notes %q; want follow_up, null, B's notes", v.str("outcome"), v.Data["order_value"], v.str("notes"))
		}
		for _, who := range []string{token, mgr.Access} {
			cs := conflictsOf(t, d, who, visit)
			if c, ok := cs["order_value"]; !ok || (string(c.ServerValue) != "1250.5" && string(c.ClientValue) != "1250.5") {
				t.Errorf("conflicts %v: want the order value 1250.5 kept in the log", cs)
			}
		}
	}
	for _, order := range []string{"A first", "B first"} {
		t.Run("native, "+order, func(t *testing.T) {
			a, b := newDevice(env, "rep1@demo.test"), newDevice(env, "rep1@demo.test")
			visit := uuid.New()
			r := a.pushOne(t, newVisit(visit, d.north[0], d.ms, map[string]any{"outcome": "none"}))
			base := r.Version
			orderA := visitUpsert(visit, d.ms+1000, map[string]any{"outcome": "order", "order_value": 1250.5})
			followB := visitUpsert(visit, d.ms+2000, map[string]any{"outcome": "follow_up", "notes": "call back Tuesday"})
			followB.BaseVersion = &base
			if order == "A first" {
				if r := a.pushOne(t, orderA); r.Status != "applied" {
					t.Fatalf("A: %s %+v", r.Status, r.Error)
				}
				if r := b.pushOne(t, followB); r.Status != "merged" {
					t.Fatalf("B: %s %+v, want merged", r.Status, r.Error)
				}
			} else {
				if r := b.pushOne(t, followB); r.Status != "applied" {
					t.Fatalf("B: %s %+v", r.Status, r.Error)
				}
				if r := a.pushOne(t, orderA); r.Status != "merged" {
					t.Fatalf("A: %s %+v, want merged", r.Status, r.Error)
				}
			}
			check(t, visit, a.Access)
		})
	}
	t.Run("one device's own contradiction is still rejected", func(t *testing.T) {
		a := newDevice(env, "rep1@demo.test")
		visit := uuid.New()
		a.pushOne(t, newVisit(visit, d.north[0], d.ms, map[string]any{"outcome": "order", "order_value": 10}))
		if r := a.pushOne(t, visitUpsert(visit, d.ms+1, map[string]any{"outcome": "meeting"})); r.Status != "rejected" || r.Error.Field != "order_value" {
			t.Errorf("got %s %+v, want rejected on order_value", r.Status, r.Error)
		}
	})
	t.Run("WatermelonDB", func(t *testing.T) {
		a := newDevice(env, "rep2@demo.test")
		b := newWMDevice(env, "rep2@demo.test")
		visit := uuid.New()
		b.pull(t)
		b.pushOK(t, wmTables("visits", wmCreated(wmVisit(visit, d.north[0], d.ms, nil))))
		b.pull(t)
		a.pushOne(t, visitUpsert(visit, d.ms+1000, map[string]any{"outcome": "order", "order_value": 1250.5}))
		// B edited offline; synchronize() pulls A's order, keeps B's
		// changed columns over it, and pushes them.
		got := b.pull(t)
		row, _ := got.row("visits", visit.String())
		row["outcome"], row["notes"] = "follow_up", "call back Tuesday"
		res := b.push(t, wmTables("visits", wmUpdated(wmRow(visit, "updated", row, "outcome", "notes"))))
		apitest.Expect(t, res, http.StatusOK)
		var pr wmPushResult
		res.JSON(t, &pr)
		if len(pr.Rejected) != 0 || pr.Written != 1 {
			t.Fatalf("push %+v, want B's edit written", pr)
		}
		check(t, visit, b.Access)
	})
}

// TestConcurrentCrossFieldRulesConverge holds the resolutions of the
// visit's other cross-field rules: whichever of two concurrent edits
// arrives first, the record ends the same, nothing is rejected, and the
// dropped value is in the conflict log.
func TestConcurrentCrossFieldRulesConverge(t *testing.T) {
	d := newDemo(t)
	env := d.env
	at := func(h int) string { return d.now.Add(time.Duration(h) * time.Hour).Format(time.RFC3339) }
	tests := []struct {
		name    string
		a, b    map[string]any // A's edit (earlier clock), B's (later)
		want    map[string]string
		dropped string
	}{
		{name: "A moves the start after B's new end", a: map[string]any{"started_at": at(-2)}, b: map[string]any{"ended_at": at(-3)},
			want: map[string]string{"started_at": "null", "ended_at": `"` + at(-3) + `"`}, dropped: "started_at"},
		{name: "A clears the check-in, B moves its longitude", a: map[string]any{"check_in_lat": nil, "check_in_lng": nil}, b: map[string]any{"check_in_lng": -93.5},
			want: map[string]string{"check_in_lat": "null", "check_in_lng": "null"}, dropped: "check_in_lng"},
	}
	for _, tt := range tests {
		for _, order := range []string{"A first", "B first"} {
			t.Run(tt.name+", "+order, func(t *testing.T) {
				a, b := newDevice(env, "rep3@demo.test"), newDevice(env, "rep3@demo.test")
				visit := uuid.New()
				r := a.pushOne(t, newVisit(visit, d.north[0], d.ms, map[string]any{"started_at": at(-4), "ended_at": at(-1), "check_in_lat": 45, "check_in_lng": -93}))
				base := r.Version
				ma, mb := visitUpsert(visit, d.ms+1000, tt.a), visitUpsert(visit, d.ms+2000, tt.b)
				ma.BaseVersion, mb.BaseVersion = &base, &base
				first, second, fm, sm := a, b, ma, mb
				if order == "B first" {
					first, second, fm, sm = b, a, mb, ma
				}
				if r := first.pushOne(t, fm); r.Status != "applied" {
					t.Fatalf("first: %s %+v", r.Status, r.Error)
				}
				if r := second.pushOne(t, sm); r.Status != "merged" {
					t.Fatalf("second: %s %+v, want merged", r.Status, r.Error)
				}
				all, _ := pullAll(t, env, a.Access)
				v := all.live(t, "visits", visit)
				for f, want := range tt.want {
					if got := string(v.Data[f]); got != want {
						t.Errorf("%s = %s, want %s (the same in either order)", f, got, want)
					}
				}
				if _, ok := conflictsOf(t, d, a.Access, visit)[tt.dropped]; !ok {
					t.Errorf("no conflict logged on %s", tt.dropped)
				}
			})
		}
	}
}

// TestWatermelonIDNotUUID holds that a record whose id is not a UUID (one
// made before the app installed a UUID generator) is refused alone, by
// the id the phone knows it by, and a delete of one is a no-op: neither
// blocks the push's other records.
func TestWatermelonIDNotUUID(t *testing.T) {
	d := newDemo(t)
	dev := newWMDevice(d.env, "rep1@demo.test")
	dev.pull(t)
	good := uuid.New()
	bad := wmVisit(uuid.New(), d.north[0], d.ms, nil)
	bad["id"] = "k3x9w2mq8vz1abcd" // WatermelonDB's own id format
	res := dev.push(t, wmTables("visits", map[string]any{"created": []any{wmVisit(good, d.north[0], d.ms, nil), bad}, "updated": []any{}, "deleted": []any{"x"}}))
	apitest.Expect(t, res, http.StatusOK)
	var body struct {
		RejectedIDs map[string][]string `json:"experimentalRejectedIds"`
		Written     int                 `json:"written"`
	}
	res.JSON(t, &body)
	if fmt.Sprint(body.RejectedIDs) != "map[visits:[k3x9w2mq8vz1abcd]]" || body.Written != 1 {
		t.Errorf("experimentalRejectedIds %v written %d; want the bad id alone refused, the good visit written", body.RejectedIDs, body.Written)
	}
	if dev.pull(t).where("visits", good) == "" {
		t.Errorf("the good visit was not applied")
	}
}
