package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/internal/apitest"
)

// TestRepCannotForgeJointVerification: the manager's check-in is the
// manager's to send, on create as on update. A rep who sends it with their
// own coordinates is refused, through either protocol, and no ride-along
// is stored.
func TestRepCannotForgeJointVerification(t *testing.T) {
	o := newFieldOrg(t)
	now := o.env.Clock.Now()
	visit := uuid.New()
	call := o.call(o.north[0], now.Add(-time.Hour), 0, nil)
	o.pushApplied(t, "rep1", o.up("visits", visit, call))
	forged := map[string]any{"mode": "visit", "visit_id": visit.String(),
		"manager_check_in_lat": call["check_in_lat"], "manager_check_in_lng": call["check_in_lng"]}

	t.Run("native push", func(t *testing.T) {
		ra := uuid.New()
		r := o.dev["rep1"].pushOne(t, o.up("ride_alongs", ra, forged))
		if r.Status != "rejected" || r.Error == nil || r.Error.Code != "forbidden" {
			t.Fatalf("a rep creating a ride-along with the manager's check-in: %s %+v, want rejected forbidden", r.Status, r.Error)
		}
		all, _ := pullAll(t, o.env, o.dev["m1"].Access)
		if c, ok := all[key("ride_alongs", ra)]; ok {
			t.Fatalf("the refused ride-along was stored: %+v", c)
		}
	})
	t.Run("WatermelonDB", func(t *testing.T) {
		rep := newWMDevice(o.env, "rep1@demo.test")
		rep.pull(t)
		ra := uuid.New()
		row := map[string]any{"rep_id": nil, "status": "requested", "scheduled_for": nil, "note": nil}
		for k, v := range forged {
			row[k] = v
		}
		res := rep.push(t, wmTables("ride_alongs", wmCreated(wmRow(ra, "created", row))))
		apitest.Expect(t, res, http.StatusOK)
		var p wmPushResult
		res.JSON(t, &p)
		if len(p.Rejected) != 1 || p.Rejected[0].Code != "forbidden" || len(p.RejectedIDs["ride_alongs"]) != 1 || p.Written != 0 {
			t.Fatalf("push %+v, want the ride-along refused (forbidden, in experimentalRejectedIds) and nothing written", p)
		}
	})
	// Control: the rep's request without the manager's fields is applied.
	o.pushApplied(t, "rep1", o.up("ride_alongs", uuid.New(), map[string]any{"mode": "visit", "visit_id": visit.String()}))
}

// createUser has the admin create a North rep with a password.
func createUser(t *testing.T, env *apitest.Env, admin, email, password string) *apitest.Response {
	t.Helper()
	org := loadPeople(t, env, admin)
	return env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/users", Token: admin, Body: map[string]any{
		"email": email, "name": "New Rep", "role": "rep", "team_id": org.teams["North"].String(), "password": password,
	}})
}

// TestLongPasswords: bcrypt refuses passwords over 72 bytes; every
// password the length rule accepts (up to 128 characters) must be stored
// and must log in.
func TestLongPasswords(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	admin := env.Login("admin@demo.test")
	for _, n := range []int{72, 73, 100, 128} {
		pw := strings.Repeat("k", n-10) + "0123456789"
		email := fmt.Sprintf("long%d@demo.test", n)
		apitest.Expect(t, createUser(t, env, admin.Access, email, pw), http.StatusCreated)
		apitest.Expect(t, tryLogin(env, email, pw, nil), http.StatusOK)
		// A password that differs only after byte 72 is a different password.
		expectProblem(t, tryLogin(env, email, pw[:n-1]+"x", nil), http.StatusUnauthorized, "unauthorized")
	}
	// 128 characters of 4 bytes each: 512 bytes.
	pw := strings.Repeat("🔑", 128)
	apitest.Expect(t, createUser(t, env, admin.Access, "emoji@demo.test", pw), http.StatusCreated)
	apitest.Expect(t, tryLogin(env, "emoji@demo.test", pw, nil), http.StatusOK)
}

// TestBcryptHashesUpgradeOnLogin: a user whose password was stored by
// an earlier build (bcrypt) still logs in, and the login stores an
// argon2id hash in its place.
func TestBcryptHashesUpgradeOnLogin(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	ctx := context.Background()
	rep, err := env.DB.People().UserByEmail(ctx, "rep2@demo.test")
	if err != nil {
		t.Fatal(err)
	}
	old, err := bcrypt.GenerateFromPassword([]byte("an-old-bcrypt-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	u := rep
	u.ID, u.Email, u.PasswordHash = uuid.New(), "legacy@demo.test", string(old)
	if err := env.DB.People().CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	expectProblem(t, tryLogin(env, "legacy@demo.test", "not-the-old-pw", nil), http.StatusUnauthorized, "unauthorized")
	if got, _ := env.DB.People().UserByEmail(ctx, "legacy@demo.test"); got.PasswordHash != string(old) {
		t.Fatalf("a failed login changed the hash to %q", got.PasswordHash)
	}
	apitest.Expect(t, tryLogin(env, "legacy@demo.test", "an-old-bcrypt-pw", nil), http.StatusOK)
	got, err := env.DB.People().UserByEmail(ctx, "legacy@demo.test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.PasswordHash, "$argon2id$") {
		t.Fatalf("after login the hash is %q, want an argon2id hash", got.PasswordHash)
	}
	apitest.Expect(t, tryLogin(env, "legacy@demo.test", "an-old-bcrypt-pw", nil), http.StatusOK)
	expectProblem(t, tryLogin(env, "legacy@demo.test", "not-the-old-pw", nil), http.StatusUnauthorized, "unauthorized")
}

// TestCommonPasswordsRefused: a password from the shipped list of the
// most common ones is refused, whatever its case.
func TestCommonPasswordsRefused(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	admin := env.Login("admin@demo.test")
	for _, pw := range []string{"password123", "Password123", "qwertyuiop", "1234567890", "iloveyou123"} {
		p := expectProblem(t, createUser(t, env, admin.Access, "common@demo.test", pw), http.StatusUnprocessableEntity, "invalid")
		expectFields(t, p, "password")
		if !strings.Contains(p.Detail, "common") {
			t.Errorf("%q: detail %q, want it to say the password is too common", pw, p.Detail)
		}
	}
	apitest.Expect(t, createUser(t, env, admin.Access, "uncommon@demo.test", "plum-ferry-lantern-42"), http.StatusCreated)
}

// TestNULRefused: PostgreSQL cannot store NUL in text, and a NUL that
// reached it answered 500. Every text field of a JSON body is refused
// with 422 naming it, on both databases, before anything is stored.
func TestNULRefused(t *testing.T) {
	d := newDemo(t)
	env := d.env
	admin := env.Login("admin@demo.test")
	rep1 := d.users["rep1@demo.test"].String()
	login := func(email, name string) map[string]any {
		return map[string]any{"email": email, "password": demo.Password, "device_id": uuid.NewString(), "device_name": name}
	}
	tests := []struct {
		name, method, path, token string
		body                      any
		field                     string
	}{
		{"login email", http.MethodPost, "/v1/auth/login", "", login("rep1@demo.test\x00", "Pixel"), "email"},
		{"login device name", http.MethodPost, "/v1/auth/login", "", login("rep1@demo.test", "Pix\x00el"), "device_name"},
		{"new user's name", http.MethodPost, "/v1/users", admin.Access, map[string]any{
			"email": "nul@demo.test", "name": "Nu\x00l", "role": "rep", "password": "plum-ferry-lantern-42"}, "name"},
		{"new user's email", http.MethodPost, "/v1/users", admin.Access, map[string]any{
			"email": "nul\x00@demo.test", "name": "Nul", "role": "rep", "password": "plum-ferry-lantern-42"}, "email"},
		{"renamed user", http.MethodPatch, "/v1/users/" + rep1, admin.Access, map[string]any{"name": "Rep\x00 One"}, "name"},
		{"new team", http.MethodPost, "/v1/teams", admin.Access, map[string]any{"name": "East\x00"}, "name"},
		{"new contest", http.MethodPost, "/v1/contests", admin.Access, map[string]any{"name": "Q\x004 push",
			"starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-02-01T00:00:00Z", "time_zone": "UTC"}, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := env.Do(apitest.Request{Method: tt.method, Path: tt.path, Token: tt.token, Body: tt.body})
			p := expectProblem(t, res, http.StatusUnprocessableEntity, "invalid")
			expectFields(t, p, tt.field)
			if !strings.Contains(p.Detail, "must not contain NUL") {
				t.Errorf("detail %q, want it to say the field must not contain NUL", p.Detail)
			}
		})
	}
	// Synced text: the engine refuses the one mutation, not the batch.
	t.Run("synced visit notes", func(t *testing.T) {
		r := newDevice(env, "rep1@demo.test").pushOne(t, newVisit(uuid.New(), d.north[0], d.ms, map[string]any{"notes": "a\x00b"}))
		if r.Status != "rejected" || r.Error == nil || r.Error.Code != "invalid_value" {
			t.Fatalf("a visit with NUL in its notes: %s %+v, want rejected invalid_value", r.Status, r.Error)
		}
	})
}

// TestContestTargetsOnlyForTheContestsTeam: a manager may set targets only
// for reps of the contest's team. Another team's rep is refused exactly
// like an id that names nobody, so the answer reveals nothing.
func TestContestTargetsOnlyForTheContestsTeam(t *testing.T) {
	d := newDemo(t)
	env := d.env
	m1 := env.Login("manager1@demo.test")
	rep1, rep4 := d.users["rep1@demo.test"].String(), d.users["rep4@demo.test"].String()
	contest := func(targets map[string]any) map[string]any {
		return map[string]any{"name": "North push", "team_id": d.teams["North"].String(),
			"starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-02-01T00:00:00Z", "targets": targets}
	}
	details := map[string]string{}
	for name, id := range map[string]string{"another team's rep": rep4, "nobody": uuid.NewString()} {
		res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/contests", Token: m1.Access, Body: contest(map[string]any{rep1: 100, id: 50})})
		p := expectProblem(t, res, http.StatusUnprocessableEntity, "invalid")
		expectFields(t, p, "targets")
		details[name] = strings.ReplaceAll(p.Detail, id, "<id>")
	}
	if details["another team's rep"] != details["nobody"] {
		t.Errorf("another team's rep: %q; an unknown id: %q; want the same answer", details["another team's rep"], details["nobody"])
	}
	res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/contests", Token: m1.Access, Body: contest(map[string]any{rep1: 100})})
	apitest.Expect(t, res, http.StatusCreated)
	var c struct {
		ID uuid.UUID `json:"id"`
	}
	res.JSON(t, &c)
	res = env.Do(apitest.Request{Method: http.MethodPatch, Path: "/v1/contests/" + c.ID.String(), Token: m1.Access,
		Body: map[string]any{"targets": map[string]any{rep4: 10}}})
	expectFields(t, expectProblem(t, res, http.StatusUnprocessableEntity, "invalid"), "targets")
}

// TestAccountDeletion: an account is deleted by its owner rep, a manager
// of its team, or an admin; never by another rep, whoever created it. A
// rep cannot take ownership to get round it. Both protocols.
func TestAccountDeletion(t *testing.T) {
	o := newFieldOrg(t)
	rep1, rep2 := o.user("rep1"), o.user("rep2")
	owned := map[string]uuid.UUID{}
	for _, a := range o.north {
		switch o.owner[a] {
		case rep1.String():
			owned["rep1"] = a
		case rep2.String():
			owned["rep2"] = a
		}
	}
	if owned["rep1"] == uuid.Nil || owned["rep2"] == uuid.Nil {
		t.Fatalf("demo: need North accounts owned by rep1 and rep2, have %v", owned)
	}
	// An account the admin shares with the organisation, one a teammate
	// creates for rep2, and one rep1 creates for themselves.
	shared, teammates, mine := uuid.New(), uuid.New(), uuid.New()
	o.pushApplied(t, "admin", o.up("accounts", shared, map[string]any{"name": "Shared Co"}))
	o.pushApplied(t, "rep2", o.up("accounts", teammates, map[string]any{"name": "Teammate Co", "owner_rep_id": rep2.String()}))
	o.pushApplied(t, "rep1", o.up("accounts", mine, map[string]any{"name": "Mine Co", "owner_rep_id": rep1.String()}))

	refused := func(t *testing.T, who string, m mutation, code string) {
		t.Helper()
		r := o.dev[who].pushOne(t, m)
		if r.Status != "rejected" || r.Error == nil || r.Error.Code != code {
			t.Fatalf("%s %s %s: %s %+v, want rejected %s", who, m.Op, m.ID, r.Status, r.Error, code)
		}
	}
	t.Run("rep deletes another's", func(t *testing.T) {
		refused(t, "rep1", o.del("accounts", shared), "forbidden")
		refused(t, "rep1", o.del("accounts", teammates), "forbidden")
		refused(t, "rep1", o.del("accounts", owned["rep2"]), "forbidden")
	})
	t.Run("rep takes ownership", func(t *testing.T) {
		refused(t, "rep1", o.up("accounts", owned["rep2"], map[string]any{"owner_rep_id": rep1.String()}), "forbidden")
	})
	t.Run("WatermelonDB", func(t *testing.T) {
		wm := newWMDevice(o.env, "rep1@demo.test")
		wm.pull(t)
		res := wm.push(t, wmTables("accounts", wmDeleted(teammates)))
		apitest.Expect(t, res, http.StatusOK)
		var p wmPushResult
		res.JSON(t, &p)
		if len(p.Rejected) != 1 || p.Rejected[0].Code != "forbidden" || len(p.RejectedIDs["accounts"]) != 1 {
			t.Fatalf("push %+v, want the delete refused (forbidden, in experimentalRejectedIds)", p)
		}
	})
	all, _ := pullAll(t, o.env, o.dev["admin"].Access)
	for _, id := range []uuid.UUID{shared, teammates, owned["rep2"]} {
		all.live(t, "accounts", id)
	}
	t.Run("allowed", func(t *testing.T) {
		o.pushApplied(t, "rep1", o.del("accounts", mine))
		o.pushApplied(t, "rep1", o.del("accounts", owned["rep1"]))
		o.pushApplied(t, "m1", o.del("accounts", teammates))
		refused(t, "m1", o.del("accounts", shared), "forbidden")
		o.pushApplied(t, "admin", o.del("accounts", shared))
	})
}

// TestSecurityHeaders: every answer forbids MIME sniffing and referrers;
// answers on authenticated routes are never cached; HSTS only when set.
func TestSecurityHeaders(t *testing.T) {
	for _, hsts := range []time.Duration{0, 365 * 24 * time.Hour} {
		t.Run(fmt.Sprint("hsts ", hsts), func(t *testing.T) {
			env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) { d.HSTSMaxAge = hsts }})
			rep := env.Login("rep1@demo.test")
			for _, res := range []*apitest.Response{
				env.Do(apitest.Request{Method: http.MethodGet, Path: "/healthz"}),
				env.Do(apitest.Request{Method: http.MethodGet, Path: "/nope"}),
				getMe(env, rep.Access),
				getMe(env, "forged"),
			} {
				at := res.Request.URL.Path
				for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
					if got := res.Header.Get(h); got != want {
						t.Errorf("%s: %s = %q, want %q", at, h, got, want)
					}
				}
				wantHSTS := ""
				if hsts > 0 {
					wantHSTS = "max-age=31536000"
				}
				if got := res.Header.Get("Strict-Transport-Security"); got != wantHSTS {
					t.Errorf("%s: Strict-Transport-Security = %q, want %q", at, got, wantHSTS)
				}
				if strings.HasPrefix(at, "/v1/") {
					if got := res.Header.Get("Cache-Control"); got != "no-store" {
						t.Errorf("%s (%d): Cache-Control = %q, want no-store", at, res.StatusCode, got)
					}
				}
			}
		})
	}
}

// TestCORS: browsers get CORS answers only from the listed origins; with
// none listed (the default), none at all.
func TestCORS(t *testing.T) {
	preflight := func(env *apitest.Env, origin string) *apitest.Response {
		return env.Do(apitest.Request{Method: http.MethodOptions, Path: "/v1/sync/push", Header: http.Header{
			"Origin": {origin}, "Access-Control-Request-Method": {"POST"},
			"Access-Control-Request-Headers": {"authorization,content-type"},
		}})
	}
	t.Run("off by default", func(t *testing.T) {
		env := apitest.New(t, apitest.Options{})
		res := preflight(env, "https://app.example")
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight: Access-Control-Allow-Origin = %q, want none", got)
		}
		res = env.Do(apitest.Request{Method: http.MethodGet, Path: "/healthz", Header: http.Header{"Origin": {"https://app.example"}}})
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("GET: Access-Control-Allow-Origin = %q, want none", got)
		}
	})
	t.Run("listed origins", func(t *testing.T) {
		env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) { d.CORSOrigins = []string{"https://app.example"} }})
		res := preflight(env, "https://app.example")
		apitest.Expect(t, res, http.StatusNoContent)
		for h, want := range map[string]string{
			"Access-Control-Allow-Origin": "https://app.example", "Vary": "Origin",
		} {
			if got := res.Header.Get(h); got != want {
				t.Errorf("preflight: %s = %q, want %q", h, got, want)
			}
		}
		if got := res.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") {
			t.Errorf("preflight: Access-Control-Allow-Methods = %q, want POST among them", got)
		}
		if got := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "authorization") || !strings.Contains(got, "content-type") {
			t.Errorf("preflight: Access-Control-Allow-Headers = %q, want authorization and content-type", got)
		}
		if got := preflight(env, "https://evil.example").Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight from an unlisted origin: Access-Control-Allow-Origin = %q, want none", got)
		}
		rep := env.Login("rep1@demo.test")
		res = env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/me", Token: rep.Access, Header: http.Header{"Origin": {"https://app.example"}}})
		apitest.Expect(t, res, http.StatusOK)
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
			t.Errorf("GET from a listed origin: Access-Control-Allow-Origin = %q", got)
		}
		if got := res.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("Access-Control-Allow-Credentials = %q: bearer tokens need no credentials mode", got)
		}
	})
}
