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
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// The authorization matrix: every route of the real router and every
// synced entity's push and pull, called as each kind of caller, with the
// outcome each must get. The objects acted on belong to the North team:
// its rep2 (a rep who is none of the callers), its contest, its accounts.
//
// A route added to the router without rows here fails
// TestAuthzMatrixCoversEveryRoute; a synced entity without rows fails
// TestAuthzMatrixSync.

// caller is one kind of caller.
type caller string

const (
	asAdmin        caller = "admin"
	asManagerSame  caller = "manager of North"     // manager1
	asManagerOther caller = "manager of South"     // manager2
	asRepSame      caller = "rep of North"         // rep1, rep2's teammate
	asRepOther     caller = "rep of South"         // rep4
	asOtherOrg     caller = "admin of another org" // every power, wrong organisation
	asDeactivated  caller = "deactivated rep"      // rep3, logged in before
	asNoToken      caller = "no token"             // anonymous
	asNone         caller = ""                     // (unused)
)

var callers = []caller{asAdmin, asManagerSame, asManagerOther, asRepSame, asRepOther, asOtherOrg, asDeactivated, asNoToken}

// authzFixture is the organisation the matrix runs on.
type authzFixture struct {
	o   *fieldOrg
	env *apitest.Env
	// main is each caller's session; spare and rotate are two more, for
	// the calls that end one (logout) or rotate it (refresh).
	main, spare, rotate map[caller]apitest.Session
	email               map[caller]string
	seq                 map[caller]int64

	org, otherOrg                          uuid.UUID
	north, south                           uuid.UUID
	rep2                                   uuid.UUID
	contest                                uuid.UUID
	account                                uuid.UUID // a North account
	visit, activity, rideAlong, assessment uuid.UUID // rep2's
	recognition, notification              uuid.UUID // rep2's
	scoreEntry, standing                   uuid.UUID // rep2's in contest
	// hidden lists, by caller, ids that must appear in none of the
	// caller's successful answers.
	hidden map[caller][]uuid.UUID
}

func newAuthzFixture(t *testing.T) *authzFixture {
	t.Helper()
	o := newFieldOrg(t)
	env := o.env
	f := &authzFixture{o: o, env: env, main: map[caller]apitest.Session{}, spare: map[caller]apitest.Session{}, rotate: map[caller]apitest.Session{}, seq: map[caller]int64{},
		org: o.org, north: o.teams["North"], south: o.teams["South"], rep2: o.user("rep2"), account: o.north[0]}
	f.email = map[caller]string{
		asAdmin: "admin@demo.test", asManagerSame: "manager1@demo.test", asManagerOther: "manager2@demo.test",
		asRepSame: "rep1@demo.test", asRepOther: "rep4@demo.test", asOtherOrg: "admin@other.test", asDeactivated: "rep3@demo.test",
	}

	// The other organisation, made as the admin command makes one.
	ctx := context.Background()
	hash, err := env.Passwords.Hash(demo.Password)
	if err != nil {
		t.Fatal(err)
	}
	now := env.Clock.Now()
	other := models.Org{ID: uuid.New(), Name: "Other Field Co", CreatedAt: now}
	if err := env.DB.People().CreateOrg(ctx, other, models.User{OrgID: other.ID, ID: uuid.New(), Email: f.email[asOtherOrg], Name: "Other Admin",
		Role: models.RoleAdmin, Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	f.otherOrg = other.ID
	for _, c := range callers {
		if c == asNoToken {
			continue
		}
		f.main[c], f.spare[c], f.rotate[c] = env.Login(f.email[c]), env.Login(f.email[c]), env.Login(f.email[c])
	}

	// North's records: rep2's visit and activity, a ride-along manager1
	// flags on the visit, a running contest with rep2's standing and
	// points, manager1's shared assessment of rep2, rep2's kudos to rep1.
	f.contest = o.createContest(t, "admin", contestBody("North push", now.Add(-time.Hour), now.Add(7*24*time.Hour), &f.north)).ID
	f.visit, f.activity, f.rideAlong, f.recognition = uuid.New(), uuid.New(), uuid.New(), uuid.New()
	o.pushApplied(t, "rep2",
		o.up("visits", f.visit, o.call(f.account, now.Add(-30*time.Minute), 10, map[string]any{"notes": "rep2's call"})),
		o.up("activities", f.activity, map[string]any{"type": "crm_update", "occurred_at": now.Add(-20 * time.Minute).Format(time.RFC3339)}),
		o.up("recognitions", f.recognition, map[string]any{"to_user_id": o.user("rep1").String(), "message": "Thanks"}),
	)
	o.pushApplied(t, "m1", o.up("ride_alongs", f.rideAlong, map[string]any{"rep_id": f.rep2.String(), "visit_id": f.visit.String(), "mode": "visit"}))
	f.assessment = engine.NameID(o.org, fmt.Sprintf("assessment:%s:%s:%s", models.PhaseContestStart, f.contest, f.rep2))
	o.pushApplied(t, "m1", o.up("assessments", f.assessment, map[string]any{"status": "shared"}))

	all, _ := pullAll(t, env, f.main[asAdmin].Access)
	for _, c := range all {
		if c.str("rep_id") != f.rep2.String() || c.str("contest_id") != f.contest.String() {
			continue
		}
		switch c.Entity {
		case "score_entries":
			f.scoreEntry = c.ID
		case "standings":
			f.standing = c.ID
		}
	}
	theirs, _ := pullAll(t, env, o.dev["rep2"].Access)
	for _, c := range theirs {
		if c.Entity == sales.NotificationsEntity {
			f.notification = c.ID
		}
	}
	for name, id := range map[string]uuid.UUID{"score entry": f.scoreEntry, "standing": f.standing, "notification": f.notification} {
		if id == uuid.Nil {
			t.Fatalf("the fixture has no %s of rep2", name)
		}
	}

	// rep3 is deactivated after logging in.
	apitest.Expect(t, o.do("admin", http.MethodPatch, "/v1/users/"+o.users[f.email[asDeactivated]].String(), map[string]any{"active": false}), http.StatusOK)

	repsOwn := []uuid.UUID{f.visit, f.activity, f.rideAlong, f.assessment, f.scoreEntry, f.notification}
	north := []uuid.UUID{f.north, f.contest, f.account, f.standing}
	f.hidden = map[caller][]uuid.UUID{
		asRepSame:      slices.Clone(repsOwn),
		asManagerSame:  {f.notification},
		asAdmin:        {f.notification},
		asManagerOther: append(slices.Clone(repsOwn), north...),
		asRepOther:     append(slices.Clone(repsOwn), north...),
		asOtherOrg:     append(append(slices.Clone(repsOwn), north...), f.org, f.south, f.rep2, f.recognition, o.user("admin"), o.user("m1")),
	}
	return f
}

// do sends r as c (no token for asNoToken) and checks that a successful
// answer shows c nothing hidden from them.
func (f *authzFixture) do(t *testing.T, c caller, r apitest.Request) *apitest.Response {
	t.Helper()
	if r.Token == "" && c != asNoToken {
		r.Token = f.main[c].Access
	}
	res := f.env.Do(r)
	f.checkHidden(t, c, r.Method+" "+r.Path, string(res.Body), res.StatusCode)
	return res
}

func (f *authzFixture) checkHidden(t *testing.T, c caller, what, body string, status int) {
	t.Helper()
	if status >= 300 {
		return
	}
	for _, id := range f.hidden[c] {
		if strings.Contains(body, id.String()) {
			t.Errorf("%s as %s: the answer shows %s, which the caller may not see", what, c, id)
		}
	}
}

// outcomes is what each caller gets from one call.
type outcomes map[caller]int

// authed is the outcome of a route behind authentication: the given
// statuses for the callers with a live session, 401 for the others.
func authed(admin, mgrSame, mgrOther, repSame, repOther, otherOrg int) outcomes {
	return outcomes{asAdmin: admin, asManagerSame: mgrSame, asManagerOther: mgrOther, asRepSame: repSame, asRepOther: repOther,
		asOtherOrg: otherOrg, asDeactivated: http.StatusUnauthorized, asNoToken: http.StatusUnauthorized}
}

// everyone is the same status for every caller.
func everyone(status int) outcomes {
	out := outcomes{}
	for _, c := range callers {
		out[c] = status
	}
	return out
}

// routeRow is how to call a route as a caller, and what each gets.
type routeRow struct {
	call func(t *testing.T, f *authzFixture, c caller) *apitest.Response
	want outcomes
}

func get(path string) func(*testing.T, *authzFixture, caller) *apitest.Response {
	return func(t *testing.T, f *authzFixture, c caller) *apitest.Response {
		return f.do(t, c, apitest.Request{Method: http.MethodGet, Path: path})
	}
}

// on calls method on the path built for the fixture, with the body built
// for the caller (nil: none).
func on(method string, path func(f *authzFixture) string, body func(f *authzFixture, c caller) any) func(*testing.T, *authzFixture, caller) *apitest.Response {
	return func(t *testing.T, f *authzFixture, c caller) *apitest.Response {
		var b any
		if body != nil {
			b = body(f, c)
		}
		return f.do(t, c, apitest.Request{Method: method, Path: path(f), Body: b})
	}
}

func fixed(p string) func(*authzFixture) string { return func(*authzFixture) string { return p } }

// slug is a caller's name fit for an email or a team name.
func slug(c caller) string {
	return strings.NewReplacer(" ", "-").Replace(string(c))
}

const (
	ok        = http.StatusOK
	created   = http.StatusCreated
	noContent = http.StatusNoContent
	forbidden = http.StatusForbidden
	notFound  = http.StatusNotFound
	invalid   = http.StatusUnprocessableEntity
	unauth    = http.StatusUnauthorized
)

// authzRoutes is the matrix of routes, by "METHOD path" as Echo names
// them.
func authzRoutes() map[string]routeRow {
	userPath := func(f *authzFixture) string { return "/v1/users/" + f.rep2.String() }
	contestPath := func(suffix string) func(f *authzFixture) string {
		return func(f *authzFixture) string { return "/v1/contests/" + f.contest.String() + suffix }
	}
	return map[string]routeRow{
		"GET /healthz":      {get("/healthz"), everyone(ok)},
		"HEAD /healthz":     {on(http.MethodHead, fixed("/healthz"), nil), everyone(ok)},
		"GET /readyz":       {get("/readyz"), everyone(ok)},
		"HEAD /readyz":      {on(http.MethodHead, fixed("/readyz"), nil), everyone(ok)},
		"GET /openapi.yaml": {get("/openapi.yaml"), everyone(ok)},

		// Logging in as oneself; the deactivated cannot, nor can a wrong
		// password.
		"POST /v1/auth/login": {func(t *testing.T, f *authzFixture, c caller) *apitest.Response {
			email, password := f.email[c], demo.Password
			if c == asNoToken {
				email, password = "rep1@demo.test", "not the password"
			}
			return f.env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/login", Body: map[string]any{
				"email": email, "password": password, "device_id": uuid.NewString(),
			}})
		}, outcomes{asAdmin: ok, asManagerSame: ok, asManagerOther: ok, asRepSame: ok, asRepOther: ok, asOtherOrg: ok, asDeactivated: unauth, asNoToken: unauth}},
		// Refreshing one's own spare session; the deactivated user's was
		// revoked with the deactivation.
		"POST /v1/auth/refresh": {func(t *testing.T, f *authzFixture, c caller) *apitest.Response {
			token := "not-a-refresh-token"
			if c != asNoToken {
				token = f.rotate[c].Refresh
			}
			return f.env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/refresh", Body: map[string]any{"refresh_token": token}})
		}, outcomes{asAdmin: ok, asManagerSame: ok, asManagerOther: ok, asRepSame: ok, asRepOther: ok, asOtherOrg: ok, asDeactivated: unauth, asNoToken: unauth}},
		"POST /v1/auth/logout": {func(t *testing.T, f *authzFixture, c caller) *apitest.Response {
			return f.do(t, c, apitest.Request{Method: http.MethodPost, Path: "/v1/auth/logout", Token: f.spare[c].Access})
		}, authed(noContent, noContent, noContent, noContent, noContent, noContent)},

		"GET /v1/me":    {get("/v1/me"), authed(ok, ok, ok, ok, ok, ok)},
		"GET /v1/users": {get("/v1/users"), authed(ok, ok, ok, ok, ok, ok)},
		// A user of North's team: only an admin of this organisation
		// creates one.
		"POST /v1/users": {on(http.MethodPost, fixed("/v1/users"), func(f *authzFixture, c caller) any {
			return map[string]any{"email": slug(c) + "@new.test", "name": "New " + string(c), "role": "rep",
				"team_id": f.north.String(), "password": "a long passphrase 3"}
		}), authed(created, forbidden, forbidden, forbidden, forbidden, invalid)},
		"GET /v1/users/:id": {on(http.MethodGet, userPath, nil), authed(ok, ok, notFound, ok, notFound, notFound)},
		"PATCH /v1/users/:id": {on(http.MethodPatch, userPath, func(*authzFixture, caller) any {
			return map[string]any{"name": "Rep Two"}
		}), authed(ok, forbidden, notFound, forbidden, notFound, notFound)},
		// Personal data: an admin of the organisation only; a manager or
		// rep who can see the user is refused, others do not find them.
		"GET /v1/users/:id/export": {on(http.MethodGet, func(f *authzFixture) string { return userPath(f) + "/export" }, nil),
			authed(ok, forbidden, notFound, forbidden, notFound, notFound)},
		// Each caller erases a rep of North made for the call, so the
		// fixture's users stay as they are.
		"DELETE /v1/users/:id/personal-data": {func(t *testing.T, f *authzFixture, c caller) *apitest.Response {
			res := f.env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/users", Token: f.main[asAdmin].Access, Body: map[string]any{
				"email": "erase-" + uuid.NewString() + "@new.test", "name": "To Erase", "role": "rep",
				"team_id": f.north.String(), "password": "a long passphrase 3"}})
			apitest.Expect(t, res, http.StatusCreated)
			var u struct {
				ID uuid.UUID `json:"id"`
			}
			res.JSON(t, &u)
			return f.do(t, c, apitest.Request{Method: http.MethodDelete, Path: "/v1/users/" + u.ID.String() + "/personal-data"})
		}, authed(ok, forbidden, notFound, forbidden, notFound, notFound)},
		// Everyone reads their own organisation's settings; its admin
		// alone changes them (another organisation's admin changes theirs).
		"GET /v1/org": {get("/v1/org"), authed(ok, ok, ok, ok, ok, ok)},
		"PATCH /v1/org": {on(http.MethodPatch, fixed("/v1/org"), func(*authzFixture, caller) any {
			return map[string]any{"order_value_ceiling": 100_000_000}
		}), authed(ok, forbidden, forbidden, forbidden, forbidden, ok)},
		// rep2's visit awaits no review: whoever may review it hears 409,
		// whoever may not see it 404.
		"POST /v1/visits/:id/order-value/approve": {on(http.MethodPost, func(f *authzFixture) string {
			return "/v1/visits/" + f.visit.String() + "/order-value/approve"
		}, func(*authzFixture, caller) any { return map[string]any{"reason": "checked"} }),
			authed(http.StatusConflict, http.StatusConflict, notFound, notFound, notFound, notFound)},
		"POST /v1/visits/:id/order-value/reject": {on(http.MethodPost, func(f *authzFixture) string {
			return "/v1/visits/" + f.visit.String() + "/order-value/reject"
		}, func(*authzFixture, caller) any { return map[string]any{"reason": "checked"} }),
			authed(http.StatusConflict, http.StatusConflict, notFound, notFound, notFound, notFound)},
		"GET /v1/teams": {get("/v1/teams"), authed(ok, ok, ok, ok, ok, ok)},
		// Another organisation's admin creates teams in their own.
		"POST /v1/teams": {on(http.MethodPost, fixed("/v1/teams"), func(f *authzFixture, c caller) any {
			return map[string]any{"name": "Team of " + string(c)}
		}), authed(created, forbidden, forbidden, forbidden, forbidden, created)},

		// The sync routes answer 200 to anyone signed in; what each may
		// do and see is TestAuthzMatrixSync's.
		"POST /v1/sync/push": {on(http.MethodPost, fixed("/v1/sync/push"), func(*authzFixture, caller) any {
			return map[string]any{"schema_version": 1, "mutations": []any{}}
		}), authed(ok, ok, ok, ok, ok, ok)},
		"GET /v1/sync/pull":       {get("/v1/sync/pull?limit=1000"), authed(ok, ok, ok, ok, ok, ok)},
		"GET /v1/sync/conflicts":  {get("/v1/sync/conflicts"), authed(ok, ok, ok, ok, ok, ok)},
		"GET /v1/sync/rejections": {get("/v1/sync/rejections"), authed(ok, ok, ok, ok, ok, ok)},
		"GET /v1/sync/watermelondb": {get("/v1/sync/watermelondb?last_pulled_at=null&schema_version=1"),
			authed(ok, ok, ok, ok, ok, ok)},
		"POST /v1/sync/watermelondb": {on(http.MethodPost, fixed("/v1/sync/watermelondb?last_pulled_at=1"), func(*authzFixture, caller) any {
			return map[string]any{"changes": map[string]any{}}
		}), authed(ok, ok, ok, ok, ok, ok)},

		"GET /v1/contests": {get("/v1/contests"), authed(ok, ok, ok, ok, ok, ok)},
		// A contest for North: its manager or an admin of this
		// organisation.
		"POST /v1/contests": {on(http.MethodPost, fixed("/v1/contests"), func(f *authzFixture, c caller) any {
			now := f.env.Clock.Now()
			return contestBody("Contest of "+string(c), now.Add(24*time.Hour), now.Add(48*time.Hour), &f.north)
		}), authed(created, created, forbidden, forbidden, forbidden, invalid)},
		"GET /v1/contests/:id": {on(http.MethodGet, contestPath(""), nil), authed(ok, ok, notFound, ok, notFound, notFound)},
		"PATCH /v1/contests/:id": {on(http.MethodPatch, contestPath(""), func(_ *authzFixture, c caller) any {
			return map[string]any{"name": "North push " + string(c)}
		}), authed(ok, ok, notFound, forbidden, notFound, notFound)},
		"GET /v1/contests/:id/standings":     {on(http.MethodGet, contestPath("/standings"), nil), authed(ok, ok, notFound, ok, notFound, notFound)},
		"GET /v1/contests/:id/score-entries": {on(http.MethodGet, contestPath("/score-entries"), nil), authed(ok, ok, notFound, ok, notFound, notFound)},
		// North's report: a non-admin of another team is told it does not
		// exist; another organisation's admin gets an empty report.
		"GET /v1/reports/productivity": {func(t *testing.T, f *authzFixture, c caller) *apitest.Response {
			q := url.Values{"from": {"2020-01-01"}, "to": {"2020-12-31"}, "team_id": {f.north.String()}}
			return f.do(t, c, apitest.Request{Method: http.MethodGet, Path: "/v1/reports/productivity?" + q.Encode()})
		}, authed(ok, ok, notFound, ok, notFound, ok)},
		// Admins only; another organisation's admin reads their own log.
		"GET /v1/audit": {get("/v1/audit?limit=500"), authed(ok, forbidden, forbidden, forbidden, forbidden, ok)},

		"PUT /v1/devices/current/push-token": {on(http.MethodPut, fixed("/v1/devices/current/push-token"), func(_ *authzFixture, c caller) any {
			return map[string]any{"token": "fcm-" + slug(c), "platform": "android"}
		}), authed(noContent, noContent, noContent, noContent, noContent, noContent)},
		"DELETE /v1/devices/current/push-token": {on(http.MethodDelete, fixed("/v1/devices/current/push-token"), nil),
			authed(noContent, noContent, noContent, noContent, noContent, noContent)},
		"GET /v1/me/notification-preferences": {get("/v1/me/notification-preferences"), authed(ok, ok, ok, ok, ok, ok)},
		"PUT /v1/me/notification-preferences": {on(http.MethodPut, fixed("/v1/me/notification-preferences"), func(*authzFixture, caller) any {
			return map[string]any{"categories": map[string]bool{}}
		}), authed(ok, ok, ok, ok, ok, ok)},
		"GET /v1/notifications": {get("/v1/notifications"), authed(ok, ok, ok, ok, ok, ok)},
		// rep2's notification: nobody else's to read, admins included.
		"POST /v1/notifications/:id/read": {on(http.MethodPost, func(f *authzFixture) string {
			return "/v1/notifications/" + f.notification.String() + "/read"
		}, nil), authed(notFound, notFound, notFound, notFound, notFound, notFound)},
	}
}

// routeKeys lists the routes of the real router, as "METHOD path".
func routeKeys(e *echo.Echo) []string {
	var out []string
	for _, r := range e.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestAuthzMatrixCoversEveryRoute: the matrix has rows for exactly the
// routes of the real router — a new route without rows fails here, and so
// does a row for a route that is gone.
func TestAuthzMatrixCoversEveryRoute(t *testing.T) {
	env := apitest.New(t, apitest.Options{NoSeed: true})
	rows := authzRoutes()
	got := routeKeys(env.Server.Config.Handler.(*echo.Echo))
	for _, k := range got {
		if _, ok := rows[k]; !ok {
			t.Errorf("route %s has no rows in the authorization matrix (authzRoutes)", k)
		}
	}
	for k := range rows {
		if !slices.Contains(got, k) {
			t.Errorf("the authorization matrix has rows for %s, which the router does not serve", k)
		}
	}
	for k, r := range rows {
		for _, c := range callers {
			if _, ok := r.want[c]; !ok {
				t.Errorf("%s: no outcome for %s", k, c)
			}
		}
	}
}

// TestAuthzMatrixRoutes calls every route as every caller.
func TestAuthzMatrixRoutes(t *testing.T) {
	f := newAuthzFixture(t)
	rows := authzRoutes()
	keys := routeKeys(f.env.Server.Config.Handler.(*echo.Echo))
	for _, k := range keys {
		row, ok := rows[k]
		if !ok {
			t.Errorf("route %s has no rows (see TestAuthzMatrixCoversEveryRoute)", k)
			continue
		}
		t.Run(k, func(t *testing.T) {
			for _, c := range callers {
				res := row.call(t, f, c)
				if res.StatusCode != row.want[c] {
					t.Errorf("as %s: status %d, want %d; body %s", c, res.StatusCode, row.want[c], strings.TrimSpace(string(res.Body)))
				}
			}
		})
	}
}

// pushOutcome is a mutation's result as the matrix names it: "applied",
// "merged", "rejected:<code>", or the HTTP status of a push refused whole.
func (f *authzFixture) push(t *testing.T, c caller, m mutation) string {
	t.Helper()
	token := ""
	if c != asNoToken {
		token = f.main[c].Access
	}
	f.seq[c]++
	m.Seq = f.seq[c]
	res := pushRequest(f.env, token, pushBody{SchemaVersion: 1, Mutations: []mutation{m}})
	if res.StatusCode != http.StatusOK {
		return fmt.Sprint(res.StatusCode)
	}
	var pr pushResponse
	res.JSON(t, &pr)
	r := pr.Results[0]
	if r.Status == "rejected" {
		return "rejected:" + r.Error.Code
	}
	return r.Status
}

// syncRow is one synced entity's rows: the North record the callers push
// to and whether each sees it in pulls, and each caller's push outcome.
type syncRow struct {
	id     func(f *authzFixture) uuid.UUID
	fields func(c caller) map[string]any
	sees   []caller
	push   map[caller]string
}

const (
	applied      = "applied"
	notFoundRej  = "rejected:not_found"
	forbiddenRej = "rejected:forbidden"
	readOnlyRej  = "rejected:read_only_entity"
	lockedRej    = "rejected:locked"
	// elsewhere is another organisation's upsert of one of our ids: to
	// them it is a create, in their own organisation, which lacks the
	// fields a create needs. Ours is untouched (checked after the pushes).
	elsewhere  = "rejected:missing_required_field"
	refused401 = "401"
)

// pushes is the outcome of a push for callers with a live session, and
// 401 for the others.
func pushes(admin, mgrSame, mgrOther, repSame, repOther, otherOrg string) map[caller]string {
	return map[caller]string{asAdmin: admin, asManagerSame: mgrSame, asManagerOther: mgrOther, asRepSame: repSame, asRepOther: repOther,
		asOtherOrg: otherOrg, asDeactivated: refused401, asNoToken: refused401}
}

func syncRows() map[string]syncRow {
	note := func(field string) func(c caller) map[string]any {
		return func(c caller) map[string]any { return map[string]any{field: "edited by " + string(c)} }
	}
	// A read-only entity refuses every push before looking at the
	// record; the field pushed does not matter.
	readOnly := pushes(readOnlyRej, readOnlyRej, readOnlyRej, readOnlyRej, readOnlyRej, readOnlyRej)
	north := []caller{asAdmin, asManagerSame, asRepSame}
	rep2s := []caller{asAdmin, asManagerSame}
	return map[string]syncRow{
		"accounts": {func(f *authzFixture) uuid.UUID { return f.account }, note("notes"), north,
			pushes(applied, applied, notFoundRej, applied, notFoundRej, elsewhere)},
		"visits": {func(f *authzFixture) uuid.UUID { return f.visit }, note("notes"), rep2s,
			pushes(applied, applied, notFoundRej, notFoundRej, notFoundRej, elsewhere)},
		"activities": {func(f *authzFixture) uuid.UUID { return f.activity }, note("notes"), rep2s,
			pushes(applied, applied, notFoundRej, notFoundRej, notFoundRej, elsewhere)},
		"ride_alongs": {func(f *authzFixture) uuid.UUID { return f.rideAlong }, note("note"), rep2s,
			// Only a manager of the rep's team runs a ride-along.
			pushes(forbiddenRej, applied, notFoundRej, notFoundRej, notFoundRej, forbiddenRej)},
		"assessments": {func(f *authzFixture) uuid.UUID { return f.assessment }, func(c caller) map[string]any {
			return map[string]any{"behaviours": json.RawMessage(`[{"key":"plans_the_call","result":"done_right","note":"` + string(c) + `"}]`)}
			// Only the rep's manager assesses; another organisation's
			// admin would be creating an assessment of a rep they do not
			// have.
		}, rep2s, pushes(forbiddenRej, applied, notFoundRej, notFoundRej, notFoundRej, forbiddenRej)},
		"recognitions": {func(f *authzFixture) uuid.UUID { return f.recognition }, note("message"),
			// Recognitions are the organisation's to see and nobody's
			// to change once sent.
			[]caller{asAdmin, asManagerSame, asManagerOther, asRepSame, asRepOther}, pushes(lockedRej, lockedRej, lockedRej, lockedRej, lockedRej, elsewhere)},
		"contests":      {func(f *authzFixture) uuid.UUID { return f.contest }, note("name"), north, readOnly},
		"score_entries": {func(f *authzFixture) uuid.UUID { return f.scoreEntry }, note("reason"), rep2s, readOnly},
		"standings":     {func(f *authzFixture) uuid.UUID { return f.standing }, note("rank"), north, readOnly},
		"notifications": {func(f *authzFixture) uuid.UUID { return f.notification }, note("title"), nil, readOnly},
	}
}

// TestAuthzMatrixSync pushes to and pulls every synced entity as every
// caller: who may change North's records, and that pulls (native and
// WatermelonDB) return each caller what they may see and nothing of
// another team's or organisation's.
func TestAuthzMatrixSync(t *testing.T) {
	f := newAuthzFixture(t)
	rows := syncRows()
	for _, e := range sales.Entities() {
		if _, ok := rows[e.Name]; !ok {
			t.Errorf("synced entity %s has no rows in the authorization matrix (syncRows)", e.Name)
		}
	}

	t.Run("pull", func(t *testing.T) {
		for _, c := range callers {
			if c == asDeactivated || c == asNoToken {
				apitest.Expect(t, pullRequest(f.env, f.main[c].Access, ""), http.StatusUnauthorized)
				continue
			}
			got, _ := pullAll(t, f.env, f.main[c].Access)
			for k, ch := range got {
				b, _ := json.Marshal(ch)
				f.checkHidden(t, c, "pull "+k, string(b), http.StatusOK)
			}
			for name, row := range rows {
				id := row.id(f)
				_, seen := got[key(name, id)]
				if want := slices.Contains(row.sees, c); seen != want {
					t.Errorf("%s %s in the pull of %s: %v, want %v", name, id, c, seen, want)
				}
			}
			res := f.do(t, c, apitest.Request{Method: http.MethodGet, Path: "/v1/sync/watermelondb?last_pulled_at=null&schema_version=1"})
			apitest.Expect(t, res, http.StatusOK)
			for name, row := range rows {
				if want, seen := slices.Contains(row.sees, c), strings.Contains(string(res.Body), row.id(f).String()); seen != want {
					t.Errorf("%s %s in the WatermelonDB pull of %s: %v, want %v", name, row.id(f), c, seen, want)
				}
			}
		}
	})

	t.Run("push", func(t *testing.T) {
		for _, e := range sales.Entities() {
			row, ok := rows[e.Name]
			if !ok {
				continue
			}
			t.Run(e.Name, func(t *testing.T) {
				for _, c := range callers {
					m := f.o.up(e.Name, row.id(f), row.fields(c))
					if got := f.push(t, c, m); got != row.push[c] {
						t.Errorf("as %s: %s, want %s", c, got, row.push[c])
					}
				}
			})
		}
		// What a refused caller wrote is nowhere in the records as
		// stored.
		all, _ := pullAll(t, f.env, f.main[asAdmin].Access)
		for name, row := range rows {
			rec, ok := all[key(name, row.id(f))]
			if !ok {
				continue
			}
			b, _ := json.Marshal(rec.Data)
			for _, c := range callers {
				if o := row.push[c]; o == applied || o == "merged" {
					continue
				}
				for _, v := range row.fields(c) {
					if w, _ := json.Marshal(v); strings.Contains(string(b), strings.Trim(string(w), `"`)) {
						t.Errorf("%s %s holds %s, pushed by %s, who was refused: %s", name, row.id(f), w, c, b)
					}
				}
			}
		}
	})
}
