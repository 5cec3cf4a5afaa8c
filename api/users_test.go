package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/telemetry"
)

// wireUser is a user as the API shows it; pointer fields tell omitted from
// empty.
type wireUser struct {
	ID        uuid.UUID  `json:"id"`
	OrgID     *uuid.UUID `json:"org_id"`
	Email     string     `json:"email"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	TeamID    *uuid.UUID `json:"team_id"`
	Active    *bool      `json:"active"`
	TimeZone  string     `json:"time_zone"`
	CreatedAt *time.Time `json:"created_at"`
}

type wireTeam struct {
	ID        uuid.UUID  `json:"id"`
	Name      string     `json:"name"`
	ManagerID *uuid.UUID `json:"manager_id"`
}

// peopleOrg is the seeded organisation as the admin sees it.
type peopleOrg struct {
	users map[string]wireUser // by email
	teams map[string]uuid.UUID
}

func (o peopleOrg) id(email string) uuid.UUID { return o.users[email].ID }

func loadPeople(t *testing.T, env *apitest.Env, adminToken string) peopleOrg {
	t.Helper()
	o := peopleOrg{users: map[string]wireUser{}, teams: map[string]uuid.UUID{}}
	for _, u := range listUsersAs(t, env, adminToken) {
		o.users[u.Email] = u
	}
	res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/teams", Token: adminToken})
	apitest.Expect(t, res, http.StatusOK)
	var tr struct{ Teams []wireTeam }
	res.JSON(t, &tr)
	for _, tm := range tr.Teams {
		o.teams[tm.Name] = tm.ID
	}
	return o
}

func listUsersAs(t *testing.T, env *apitest.Env, token string) []wireUser {
	t.Helper()
	res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/users", Token: token})
	apitest.Expect(t, res, http.StatusOK)
	var out struct{ Users []wireUser }
	res.JSON(t, &out)
	return out.Users
}

func userIDsOf(users []wireUser) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(users))
	for _, u := range users {
		out = append(out, u.ID)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func TestListUsersByRole(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	admin := env.Login("admin@demo.test")
	org := loadPeople(t, env, admin.Access)
	if len(org.users) != 9 {
		t.Fatalf("admin sees %d users, want the 9 demo users", len(org.users))
	}
	emails := func(es ...string) []uuid.UUID {
		var out []wireUser
		for _, e := range es {
			out = append(out, wireUser{ID: org.id(e)})
		}
		return userIDsOf(out)
	}
	north := []string{"manager1@demo.test", "rep1@demo.test", "rep2@demo.test", "rep3@demo.test"}
	south := []string{"manager2@demo.test", "rep4@demo.test", "rep5@demo.test", "rep6@demo.test"}

	tests := []struct {
		name   string
		caller string
		want   []uuid.UUID
		// limited says teammates other than the caller are shown with
		// id, name, role and team_id only.
		limited bool
	}{
		{"admin sees the org", "admin@demo.test", emails(append(append([]string{"admin@demo.test"}, north...), south...)...), false},
		{"manager sees their team", "manager1@demo.test", emails(north...), false},
		{"other manager sees theirs", "manager2@demo.test", emails(south...), false},
		{"rep sees teammates", "rep1@demo.test", emails(north...), true},
		{"rep in the other team", "rep5@demo.test", emails(south...), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := env.Login(tt.caller)
			res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/users", Token: s.Access})
			apitest.Expect(t, res, http.StatusOK)
			var raw struct{ Users []map[string]any }
			res.JSON(t, &raw)
			var users struct{ Users []wireUser }
			res.JSON(t, &users)
			if got := userIDsOf(users.Users); !slices.Equal(got, tt.want) {
				t.Fatalf("got users %v, want %v", got, tt.want)
			}
			for i, u := range users.Users {
				keys := make([]string, 0, len(raw.Users[i]))
				for k := range raw.Users[i] {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				if tt.limited && u.ID != s.UserID {
					if want := []string{"id", "name", "role", "team_id"}; !slices.Equal(keys, want) {
						t.Errorf("teammate %s shown with %v, want only %v", u.Name, keys, want)
					}
					continue
				}
				if u.Email == "" || u.OrgID == nil || u.Active == nil || u.CreatedAt == nil {
					t.Errorf("user %s shown with %v, want the full record", u.Name, keys)
				}
			}
		})
	}

	t.Run("admin filters by team", func(t *testing.T) {
		res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/users?team_id=" + org.teams["South"].String(), Token: admin.Access})
		apitest.Expect(t, res, http.StatusOK)
		var users struct{ Users []wireUser }
		res.JSON(t, &users)
		if got, want := userIDsOf(users.Users), emails(south...); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("admin filter must be a UUID", func(t *testing.T) {
		res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/users?team_id=South", Token: admin.Access})
		expectFields(t, expectProblem(t, res, http.StatusUnprocessableEntity, "invalid"), "team_id")
	})
	t.Run("a manager cannot widen their scope with a filter", func(t *testing.T) {
		s := env.Login("manager1@demo.test")
		res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/users?team_id=" + org.teams["South"].String(), Token: s.Access})
		apitest.Expect(t, res, http.StatusOK)
		var users struct{ Users []wireUser }
		res.JSON(t, &users)
		if got, want := userIDsOf(users.Users), emails(north...); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

func TestGetUser(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	admin := env.Login("admin@demo.test")
	org := loadPeople(t, env, admin.Access)
	sessions := map[string]string{"admin@demo.test": admin.Access}
	for _, e := range []string{"manager1@demo.test", "rep1@demo.test"} {
		sessions[e] = env.Login(e).Access
	}
	tests := []struct {
		name           string
		caller, target string
		path           string // overrides the target's path when set
		status         int
		full           bool
	}{
		{"rep sees themselves in full", "rep1@demo.test", "rep1@demo.test", "", http.StatusOK, true},
		{"rep sees a teammate's name only", "rep1@demo.test", "rep2@demo.test", "", http.StatusOK, false},
		{"rep sees their manager's name only", "rep1@demo.test", "manager1@demo.test", "", http.StatusOK, false},
		{"rep cannot see another team", "rep1@demo.test", "rep4@demo.test", "", http.StatusNotFound, false},
		{"rep cannot see the admin", "rep1@demo.test", "admin@demo.test", "", http.StatusNotFound, false},
		{"manager sees their rep", "manager1@demo.test", "rep1@demo.test", "", http.StatusOK, true},
		{"manager cannot see another team's rep", "manager1@demo.test", "rep4@demo.test", "", http.StatusNotFound, false},
		{"manager cannot see another manager", "manager1@demo.test", "manager2@demo.test", "", http.StatusNotFound, false},
		{"admin sees anyone", "admin@demo.test", "rep4@demo.test", "", http.StatusOK, true},
		{"admin sees a manager", "admin@demo.test", "manager2@demo.test", "", http.StatusOK, true},
		{"unknown id", "admin@demo.test", "", "/v1/users/" + uuid.NewString(), http.StatusNotFound, false},
		{"invalid UUID", "admin@demo.test", "", "/v1/users/rep1", http.StatusUnprocessableEntity, false},
		{"UUID without dashes", "admin@demo.test", "", "/v1/users/" + strings.ReplaceAll(uuid.NewString(), "-", ""), http.StatusUnprocessableEntity, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/v1/users/" + org.id(tt.target).String()
			}
			res := env.Do(apitest.Request{Method: http.MethodGet, Path: path, Token: sessions[tt.caller]})
			switch tt.status {
			case http.StatusNotFound:
				expectProblem(t, res, tt.status, "not_found")
				return
			case http.StatusUnprocessableEntity:
				expectFields(t, expectProblem(t, res, tt.status, "invalid"), "id")
				return
			}
			apitest.Expect(t, res, tt.status)
			var u wireUser
			res.JSON(t, &u)
			if u.ID != org.id(tt.target) || u.Name != org.users[tt.target].Name {
				t.Errorf("got %s %q, want %s", u.ID, u.Name, tt.target)
			}
			if full := u.Email != ""; full != tt.full {
				t.Errorf("full record shown = %v, want %v: %s", full, tt.full, res.Body)
			}
		})
	}
}

// countUsersAs is the number of users the admin sees.
func countUsersAs(t *testing.T, env *apitest.Env, adminToken string) int {
	t.Helper()
	return len(listUsersAs(t, env, adminToken))
}

func TestCreateUser(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	admin := env.Login("admin@demo.test")
	org := loadPeople(t, env, admin.Access)
	manager := env.Login("manager1@demo.test")
	rep := env.Login("rep1@demo.test")
	north := org.teams["North"].String()
	valid := func(email string) map[string]any {
		return map[string]any{"email": email, "name": "New Rep", "role": "rep", "team_id": north, "password": "long-enough-pw", "time_zone": "Europe/Berlin"}
	}
	edit := func(m map[string]any, k string, v any) map[string]any {
		m[k] = v
		return m
	}
	tests := []struct {
		name   string
		token  string
		body   any
		status int
		code   string
		fields []string
	}{
		{"manager may not", manager.Access, valid("m@demo.test"), http.StatusForbidden, "forbidden", nil},
		{"rep may not", rep.Access, valid("r@demo.test"), http.StatusForbidden, "forbidden", nil},
		{"duplicate email", admin.Access, valid("rep1@demo.test"), http.StatusConflict, "conflict", nil},
		{"duplicate email, other case", admin.Access, valid(" REP1@Demo.Test"), http.StatusConflict, "conflict", nil},
		{"bad email, role and password at once", admin.Access,
			map[string]any{"email": "not-an-email", "name": "X", "role": "boss", "password": "short"},
			http.StatusUnprocessableEntity, "invalid", []string{"email", "role", "password"}},
		{"email without a dot in the domain", admin.Access, valid("x@localhost"), http.StatusUnprocessableEntity, "invalid", []string{"email"}},
		{"name missing", admin.Access, edit(valid("n@demo.test"), "name", "  "), http.StatusUnprocessableEntity, "invalid", []string{"name"}},
		{"name too long", admin.Access, edit(valid("n@demo.test"), "name", strings.Repeat("x", 201)), http.StatusUnprocessableEntity, "invalid", []string{"name"}},
		{"password too long", admin.Access, edit(valid("n@demo.test"), "password", strings.Repeat("x", 129)), http.StatusUnprocessableEntity, "invalid", []string{"password"}},
		{"unknown time zone", admin.Access, edit(valid("n@demo.test"), "time_zone", "Mars/Olympus"), http.StatusUnprocessableEntity, "invalid", []string{"time_zone"}},
		{"team_id not a UUID", admin.Access, edit(valid("n@demo.test"), "team_id", "North"), http.StatusUnprocessableEntity, "invalid", []string{"team_id"}},
		{"team_id of no team", admin.Access, edit(valid("n@demo.test"), "team_id", uuid.NewString()), http.StatusUnprocessableEntity, "invalid", []string{"team_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := countUsersAs(t, env, admin.Access)
			res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/users", Token: tt.token, Body: tt.body})
			p := expectProblem(t, res, tt.status, tt.code)
			expectFields(t, p, tt.fields...)
			if got := countUsersAs(t, env, admin.Access); got != before {
				t.Errorf("users: %d after a refused create, want %d", got, before)
			}
		})
	}

	t.Run("admin creates", func(t *testing.T) {
		res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/users", Token: admin.Access, Body: valid(" New.Rep@Demo.Test ")})
		apitest.Expect(t, res, http.StatusCreated)
		var u wireUser
		res.JSON(t, &u)
		if u.Email != "new.rep@demo.test" || u.Role != "rep" || u.TeamID == nil || *u.TeamID != org.teams["North"] ||
			u.Active == nil || !*u.Active || u.TimeZone != "Europe/Berlin" || u.ID == uuid.Nil {
			t.Errorf("created %s", res.Body)
		}
		if strings.Contains(string(res.Body), "password") {
			t.Errorf("response mentions the password: %s", res.Body)
		}
		if got := countUsersAs(t, env, admin.Access); got != 10 {
			t.Errorf("users = %d, want 10", got)
		}
		// The new user can log in, and their manager sees them.
		res = env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/login", Body: map[string]any{
			"email": "new.rep@demo.test", "password": "long-enough-pw", "device_id": uuid.NewString()}})
		apitest.Expect(t, res, http.StatusOK)
		if !slices.Contains(userIDsOf(listUsersAs(t, env, manager.Access)), u.ID) {
			t.Errorf("manager1 does not see the new North rep")
		}
		// A second create with the same email conflicts.
		res = env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/users", Token: admin.Access, Body: valid("new.rep@demo.test")})
		expectProblem(t, res, http.StatusConflict, "conflict")
	})
	t.Run("time zone defaults to UTC, team optional", func(t *testing.T) {
		res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/users", Token: admin.Access, Body: map[string]any{
			"email": "solo@demo.test", "name": "Solo", "role": "manager", "password": "long-enough-pw"}})
		apitest.Expect(t, res, http.StatusCreated)
		var u wireUser
		res.JSON(t, &u)
		if u.TimeZone != "UTC" || u.TeamID != nil {
			t.Errorf("created %s, want time_zone UTC and no team", res.Body)
		}
	})
}

func listTeamsAs(t *testing.T, env *apitest.Env, token string) []wireTeam {
	t.Helper()
	res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/teams", Token: token})
	apitest.Expect(t, res, http.StatusOK)
	var tr struct{ Teams []wireTeam }
	res.JSON(t, &tr)
	return tr.Teams
}

func TestTeams(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	admin := env.Login("admin@demo.test")
	org := loadPeople(t, env, admin.Access)
	manager := env.Login("manager1@demo.test")
	rep := env.Login("rep4@demo.test")

	t.Run("list by role", func(t *testing.T) {
		for _, c := range []struct {
			name, token string
			want        []string
		}{
			{"admin", admin.Access, []string{"North", "South"}},
			{"manager1", manager.Access, []string{"North"}},
			{"rep4", rep.Access, []string{"South"}},
		} {
			var got []string
			for _, tm := range listTeamsAs(t, env, c.token) {
				got = append(got, tm.Name)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%s sees teams %v, want %v", c.name, got, c.want)
			}
		}
	})

	// A spare manager with no team, to lead a new one.
	res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/users", Token: admin.Access, Body: map[string]any{
		"email": "manager3@demo.test", "name": "Wes West", "role": "manager", "password": demo.Password}})
	apitest.Expect(t, res, http.StatusCreated)
	var m3 wireUser
	res.JSON(t, &m3)

	tests := []struct {
		name   string
		token  string
		body   any
		status int
		code   string
		field  string
	}{
		{"manager may not", manager.Access, map[string]any{"name": "East"}, http.StatusForbidden, "forbidden", ""},
		{"rep may not", rep.Access, map[string]any{"name": "East"}, http.StatusForbidden, "forbidden", ""},
		{"duplicate name", admin.Access, map[string]any{"name": "North"}, http.StatusConflict, "conflict", ""},
		{"name missing", admin.Access, map[string]any{"name": " "}, http.StatusUnprocessableEntity, "invalid", "name"},
		{"manager_id names a rep", admin.Access, map[string]any{"name": "East", "manager_id": org.id("rep1@demo.test").String()}, http.StatusUnprocessableEntity, "invalid", "manager_id"},
		{"manager_id names the admin", admin.Access, map[string]any{"name": "East", "manager_id": org.id("admin@demo.test").String()}, http.StatusUnprocessableEntity, "invalid", "manager_id"},
		{"manager_id names nobody", admin.Access, map[string]any{"name": "East", "manager_id": uuid.NewString()}, http.StatusUnprocessableEntity, "invalid", "manager_id"},
		{"manager_id not a UUID", admin.Access, map[string]any{"name": "East", "manager_id": "wes"}, http.StatusUnprocessableEntity, "invalid", "manager_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(listTeamsAs(t, env, admin.Access))
			res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/teams", Token: tt.token, Body: tt.body})
			p := expectProblem(t, res, tt.status, tt.code)
			if tt.field != "" {
				expectFields(t, p, tt.field)
			}
			if got := len(listTeamsAs(t, env, admin.Access)); got != before {
				t.Errorf("teams: %d after a refused create, want %d", got, before)
			}
		})
	}

	t.Run("admin creates", func(t *testing.T) {
		res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/teams", Token: admin.Access,
			Body: map[string]any{"name": " West ", "manager_id": m3.ID.String()}})
		apitest.Expect(t, res, http.StatusCreated)
		var tm wireTeam
		res.JSON(t, &tm)
		if tm.Name != "West" || tm.ManagerID == nil || *tm.ManagerID != m3.ID {
			t.Errorf("created %s", res.Body)
		}
		// The manager now leads the team.
		s := env.Login("manager3@demo.test")
		teams := listTeamsAs(t, env, s.Access)
		if len(teams) != 1 || teams[0].ID != tm.ID {
			t.Errorf("manager3 sees teams %+v, want West", teams)
		}
		if got := len(listTeamsAs(t, env, admin.Access)); got != 3 {
			t.Errorf("teams = %d, want 3", got)
		}
	})
}

func TestPatchUser(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	admin := env.Login("admin@demo.test")
	org := loadPeople(t, env, admin.Access)
	manager := env.Login("manager1@demo.test")
	rep := env.Login("rep2@demo.test")
	path := func(email string) string { return "/v1/users/" + org.id(email).String() }

	tests := []struct {
		name   string
		token  string
		path   string
		body   string
		status int
		code   string
		field  string
		check  func(t *testing.T, u wireUser)
	}{
		{"manager may not, in scope", manager.Access, path("rep1@demo.test"), `{"role":"manager"}`, http.StatusForbidden, "forbidden", "", nil},
		{"manager learns nothing out of scope", manager.Access, path("rep4@demo.test"), `{"role":"manager"}`, http.StatusNotFound, "not_found", "", nil},
		{"rep may not, in scope", rep.Access, path("rep1@demo.test"), `{"active":false}`, http.StatusForbidden, "forbidden", "", nil},
		{"rep may not promote themselves", rep.Access, path("rep2@demo.test"), `{"role":"admin"}`, http.StatusForbidden, "forbidden", "", nil},
		{"rep learns nothing out of scope", rep.Access, path("rep5@demo.test"), `{"active":false}`, http.StatusNotFound, "not_found", "", nil},
		{"admin cannot deactivate themselves", admin.Access, path("admin@demo.test"), `{"active":false}`, http.StatusUnprocessableEntity, "invalid", "active", nil},
		{"admin cannot demote themselves", admin.Access, path("admin@demo.test"), `{"role":"rep"}`, http.StatusUnprocessableEntity, "invalid", "role", nil},
		{"unknown role", admin.Access, path("rep1@demo.test"), `{"role":"boss"}`, http.StatusUnprocessableEntity, "invalid", "role", nil},
		{"team_id not a UUID", admin.Access, path("rep1@demo.test"), `{"team_id":"South"}`, http.StatusUnprocessableEntity, "invalid", "team_id", nil},
		{"team_id a number", admin.Access, path("rep1@demo.test"), `{"team_id":7}`, http.StatusUnprocessableEntity, "invalid", "team_id", nil},
		{"team_id of no team", admin.Access, path("rep1@demo.test"), `{"team_id":"` + uuid.NewString() + `"}`, http.StatusUnprocessableEntity, "invalid", "team_id", nil},
		{"empty name", admin.Access, path("rep1@demo.test"), `{"name":""}`, http.StatusUnprocessableEntity, "invalid", "name", nil},
		{"active a string", admin.Access, path("rep1@demo.test"), `{"active":"no"}`, http.StatusUnprocessableEntity, "invalid", "active", nil},
		{"unknown user", admin.Access, "/v1/users/" + uuid.NewString(), `{"name":"Ghost"}`, http.StatusNotFound, "not_found", "", nil},
		{"id not a UUID", admin.Access, "/v1/users/rep1", `{"name":"Ghost"}`, http.StatusUnprocessableEntity, "invalid", "id", nil},

		{"rename", admin.Access, path("rep1@demo.test"), `{"name":"  Riley P. Park "}`, http.StatusOK, "", "", func(t *testing.T, u wireUser) {
			if u.Name != "Riley P. Park" {
				t.Errorf("name = %q", u.Name)
			}
		}},
		{"promote", admin.Access, path("rep2@demo.test"), `{"role":"manager"}`, http.StatusOK, "", "", func(t *testing.T, u wireUser) {
			if u.Role != "manager" {
				t.Errorf("role = %q, want manager", u.Role)
			}
		}},
		{"move team", admin.Access, path("rep1@demo.test"), `{"team_id":"` + org.teams["South"].String() + `"}`, http.StatusOK, "", "", func(t *testing.T, u wireUser) {
			if u.TeamID == nil || *u.TeamID != org.teams["South"] {
				t.Errorf("team_id = %v, want South", u.TeamID)
			}
		}},
		{"team_id null clears", admin.Access, path("rep3@demo.test"), `{"team_id":null}`, http.StatusOK, "", "", func(t *testing.T, u wireUser) {
			if u.TeamID != nil {
				t.Errorf("team_id = %v, want null", u.TeamID)
			}
		}},
		{"absent team_id leaves it", admin.Access, path("rep4@demo.test"), `{"name":"Sam Ortiz"}`, http.StatusOK, "", "", func(t *testing.T, u wireUser) {
			if u.TeamID == nil || *u.TeamID != org.teams["South"] {
				t.Errorf("team_id = %v, want South still", u.TeamID)
			}
		}},
		{"deactivate", admin.Access, path("rep6@demo.test"), `{"active":false}`, http.StatusOK, "", "", func(t *testing.T, u wireUser) {
			if u.Active == nil || *u.Active {
				t.Errorf("active = %v, want false", u.Active)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := listUsersAs(t, env, admin.Access)
			res := env.Do(apitest.Request{Method: http.MethodPatch, Path: tt.path, Token: tt.token, Body: tt.body})
			if tt.status != http.StatusOK {
				p := expectProblem(t, res, tt.status, tt.code)
				if tt.field != "" {
					expectFields(t, p, tt.field)
				}
				if after := listUsersAs(t, env, admin.Access); !slices.EqualFunc(before, after, sameWireUser) {
					t.Errorf("a refused patch changed users:\n before %+v\n after  %+v", before, after)
				}
				return
			}
			apitest.Expect(t, res, http.StatusOK)
			var u wireUser
			res.JSON(t, &u)
			tt.check(t, u)
			// The change is stored, not only echoed.
			got := env.Do(apitest.Request{Method: http.MethodGet, Path: tt.path, Token: admin.Access})
			apitest.Expect(t, got, http.StatusOK)
			var stored wireUser
			got.JSON(t, &stored)
			tt.check(t, stored)
		})
	}

	t.Run("scope follows the patch at once", func(t *testing.T) {
		// rep1 was moved to South above: their own token now lists South.
		r1 := env.Login("rep1@demo.test")
		var names []string
		for _, u := range listUsersAs(t, env, r1.Access) {
			names = append(names, u.Name)
		}
		for _, want := range []string{"Chris South", "Sam Ortiz"} {
			if !slices.Contains(names, want) {
				t.Errorf("rep1 now sees %v, want it to include %s", names, want)
			}
		}
		m1 := listUsersAs(t, env, manager.Access)
		if slices.Contains(userIDsOf(m1), org.id("rep1@demo.test")) {
			t.Errorf("manager1 still sees rep1 after the move")
		}
	})
}

func sameWireUser(a, b wireUser) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Role == b.Role && a.Email == b.Email &&
		(a.TeamID == nil) == (b.TeamID == nil) && (a.TeamID == nil || *a.TeamID == *b.TeamID) &&
		(a.Active == nil) == (b.Active == nil) && (a.Active == nil || *a.Active == *b.Active)
}

func TestOrgIsolation(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	ctx := context.Background()
	hash, err := env.Passwords.Hash(demo.Password)
	if err != nil {
		t.Fatal(err)
	}
	now := env.Clock.Now()
	other := models.Org{ID: uuid.New(), Name: "Other Co", CreatedAt: now}
	otherAdmin := models.User{OrgID: other.ID, ID: uuid.New(), Email: "admin@other.test", Name: "Olive Other",
		Role: models.RoleAdmin, Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := env.DB.People().CreateOrg(ctx, other, otherAdmin); err != nil {
		t.Fatal(err)
	}
	admin := env.Login("admin@demo.test")
	org := loadPeople(t, env, admin.Access)
	them := env.Login("admin@other.test")
	rep1 := org.id("rep1@demo.test")

	t.Run("the other admin lists only their org", func(t *testing.T) {
		users := listUsersAs(t, env, them.Access)
		if len(users) != 1 || users[0].ID != otherAdmin.ID {
			t.Errorf("got %+v, want only %s", users, otherAdmin.ID)
		}
		if teams := listTeamsAs(t, env, them.Access); len(teams) != 0 {
			t.Errorf("got teams %+v, want none", teams)
		}
	})
	tests := []struct {
		name   string
		token  string
		method string
		path   string
		body   any
	}{
		{"read a user of the demo org", them.Access, http.MethodGet, "/v1/users/" + rep1.String(), nil},
		{"patch a user of the demo org", them.Access, http.MethodPatch, "/v1/users/" + rep1.String(), map[string]any{"active": false}},
		{"demo admin reads the other admin", admin.Access, http.MethodGet, "/v1/users/" + otherAdmin.ID.String(), nil},
		{"demo admin patches the other admin", admin.Access, http.MethodPatch, "/v1/users/" + otherAdmin.ID.String(), map[string]any{"role": "rep"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := env.Do(apitest.Request{Method: tt.method, Path: tt.path, Token: tt.token, Body: tt.body})
			expectProblem(t, res, http.StatusNotFound, "not_found")
		})
	}
	t.Run("nothing crossed over", func(t *testing.T) {
		if slices.Contains(userIDsOf(listUsersAs(t, env, admin.Access)), otherAdmin.ID) {
			t.Errorf("the demo admin lists the other org's admin")
		}
		apitest.Expect(t, getMe(env, env.Login("rep1@demo.test").Access), http.StatusOK) // rep1 still active
		res := getMe(env, them.Access)
		apitest.Expect(t, res, http.StatusOK)
		var u wireUser
		res.JSON(t, &u)
		if u.Role != "admin" {
			t.Errorf("other admin's role = %q, want admin still", u.Role)
		}
	})
	t.Run("team ids do not cross either", func(t *testing.T) {
		res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/users", Token: them.Access, Body: map[string]any{
			"email": "spy@other.test", "name": "Spy", "role": "rep", "password": "long-enough-pw", "team_id": org.teams["North"].String()}})
		expectFields(t, expectProblem(t, res, http.StatusUnprocessableEntity, "invalid"), "team_id")
		res = env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/teams", Token: them.Access, Body: map[string]any{
			"name": "Stolen", "manager_id": org.id("manager1@demo.test").String()}})
		expectFields(t, expectProblem(t, res, http.StatusUnprocessableEntity, "invalid"), "manager_id")
	})
}

// chunkedBody hides its length, so the client sends it chunked.
type chunkedBody struct{ r io.Reader }

func (c chunkedBody) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestBadBodies(t *testing.T) {
	const limit = 2048
	env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) { d.BodyLimit = limit }})
	admin := env.Login("admin@demo.test")
	// big is a valid request that creates a user, padded past the limit.
	big := strings.Repeat(" ", limit) + `{"email":"big@demo.test","name":"Big","role":"rep","password":"long-enough-pw"}`
	valid := `{"email":"new@demo.test","name":"New","role":"rep","password":"long-enough-pw"}`

	tests := []struct {
		name        string
		body        string
		contentType string
		chunked     bool
		status      int
		code        string
		field       string
	}{
		{"malformed JSON", `{"email":"new@demo.test",`, "application/json", false, http.StatusBadRequest, "malformed", ""},
		{"not JSON at all", `email=new@demo.test`, "application/json", false, http.StatusBadRequest, "malformed", ""},
		{"empty body", ``, "application/json", false, http.StatusBadRequest, "malformed", ""},
		{"an array", `[` + valid + `]`, "application/json", false, http.StatusBadRequest, "malformed", ""},
		{"two values", valid + valid, "application/json", false, http.StatusBadRequest, "malformed", ""},
		{"wrong type", `{"email":5,"name":"New","role":"rep","password":"long-enough-pw"}`, "application/json", false, http.StatusUnprocessableEntity, "invalid", "email"},
		{"wrong type, nested value", `{"email":"new@demo.test","name":{"first":"New"},"role":"rep","password":"long-enough-pw"}`, "application/json", false, http.StatusUnprocessableEntity, "invalid", "name"},
		{"unknown field", `{"email":"new@demo.test","name":"New","role":"rep","password":"long-enough-pw","is_admin":true}`, "application/json", false, http.StatusUnprocessableEntity, "invalid", "is_admin"},
		{"too large, with Content-Length", big, "application/json", false, http.StatusRequestEntityTooLarge, "too_large", ""},
		{"too large, chunked", big, "application/json", true, http.StatusRequestEntityTooLarge, "too_large", ""},
		{"XML content type", valid, "text/xml", false, http.StatusUnsupportedMediaType, "unsupported_media", ""},
		{"text/plain", valid, "text/plain", false, http.StatusUnsupportedMediaType, "unsupported_media", ""},
		{"a form", valid, "application/x-www-form-urlencoded", false, http.StatusUnsupportedMediaType, "unsupported_media", ""},
		{"bad content type", valid, "application/json; charset", false, http.StatusUnsupportedMediaType, "unsupported_media", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := listUsersAs(t, env, admin.Access)
			var res *apitest.Response
			if tt.chunked {
				res = doChunked(t, env, http.MethodPost, "/v1/users", admin.Access, tt.contentType, tt.body)
			} else {
				res = env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/users", Token: admin.Access, Body: []byte(tt.body),
					Header: http.Header{"Content-Type": {tt.contentType}}})
			}
			p := expectProblem(t, res, tt.status, tt.code)
			if tt.field != "" {
				expectFields(t, p, tt.field)
			}
			if after := listUsersAs(t, env, admin.Access); !slices.EqualFunc(before, after, sameWireUser) {
				t.Errorf("users changed after a refused request: %d before, %d after", len(before), len(after))
			}
		})
	}

	// Control: the unpadded body is a valid request, so the refusals above
	// were about the body, not its content.
	t.Run("control: the valid body is accepted", func(t *testing.T) {
		res := doChunked(t, env, http.MethodPost, "/v1/users", admin.Access, "application/json", strings.TrimSpace(big))
		apitest.Expect(t, res, http.StatusCreated)
	})
	t.Run("bodies at the limit on other routes", func(t *testing.T) {
		res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/login", Body: []byte(big)})
		expectProblem(t, res, http.StatusRequestEntityTooLarge, "too_large")
		res = doChunked(t, env, http.MethodPatch, "/v1/users/"+admin.UserID.String(), admin.Access, "application/json",
			strings.Repeat(" ", limit)+`{"name":"Renamed"}`)
		expectProblem(t, res, http.StatusRequestEntityTooLarge, "too_large")
		res = getMe(env, admin.Access)
		var u wireUser
		res.JSON(t, &u)
		if u.Name != "Avery Admin" {
			t.Errorf("admin renamed to %q by a refused request", u.Name)
		}
	})
}

// doChunked sends body with no Content-Length (Transfer-Encoding: chunked).
func doChunked(t *testing.T, env *apitest.Env, method, path, token, contentType, body string) *apitest.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, env.Server.URL+path, chunkedBody{strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := env.Server.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	res.Request = req
	out := &apitest.Response{Response: res, Body: b}
	apitest.CheckSpec(t, req, []byte(body), out)
	return out
}

func TestRequestID(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	tests := []struct {
		name string
		path string
		sent string
		echo bool // the sent id comes back; otherwise a fresh UUID does
	}{
		{"none sent", "/healthz", "", false},
		{"sane id echoed", "/healthz", "phone-7f3a.42_retry:1", true},
		{"echoed on errors too", "/v1/me", "req-401", true},
		{"echoed on unknown routes", "/nope", "req-404", true},
		{"64 characters is fine", "/healthz", strings.Repeat("a", 64), true},
		{"too long replaced", "/healthz", strings.Repeat("a", 65), false},
		{"spaces replaced", "/healthz", "a b", false},
		{"non-ASCII replaced", "/healthz", "café", false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.sent != "" {
				h.Set("X-Request-ID", tt.sent)
			}
			res := env.Do(apitest.Request{Method: http.MethodGet, Path: tt.path, Header: h})
			got := res.Header.Get("X-Request-ID")
			switch {
			case tt.echo && got != tt.sent:
				t.Errorf("X-Request-ID = %q, want %q echoed", got, tt.sent)
			case !tt.echo && !uuidRE.MatchString(got):
				t.Errorf("X-Request-ID = %q, want a fresh UUID", got)
			case !tt.echo && seen[got]:
				t.Errorf("X-Request-ID %q was issued twice", got)
			}
			seen[got] = true
		})
	}
}

func TestHealthAndReadiness(t *testing.T) {
	tests := []struct {
		name   string
		ready  func(context.Context) error
		status int
	}{
		{"ready by default", nil, http.StatusOK},
		{"ready", func(context.Context) error { return nil }, http.StatusOK},
		{"database unavailable", func(context.Context) error { return models.ErrUnavailable }, http.StatusServiceUnavailable},
		{"schema behind", func(context.Context) error {
			return &models.Error{Code: models.CodeUnavailable, Message: "schema at version 1, want 2"}
		}, http.StatusServiceUnavailable},
		// Any error means not ready: a probe must see 503, not a 500
		// logged as a bug.
		{"plain error", func(context.Context) error { return errors.New("dial tcp: connection refused") }, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := apitest.New(t, apitest.Options{NoSeed: true, Deps: func(d *api.Deps) {
				d.Ready = tt.ready
				d.Version = "v1.2.3-test"
			}})
			res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/healthz"})
			apitest.Expect(t, res, http.StatusOK)
			var h map[string]string
			res.JSON(t, &h)
			if h["status"] != "ok" || h["version"] != "v1.2.3-test" {
				t.Errorf("/healthz = %v", h)
			}

			res = env.Do(apitest.Request{Method: http.MethodGet, Path: "/readyz"})
			if tt.status == http.StatusOK {
				apitest.Expect(t, res, http.StatusOK)
				return
			}
			expectProblem(t, res, tt.status, "unavailable")
		})
	}
}

// TestMetrics: the API port does not serve /metrics; the metrics handler
// (served on --metrics-addr) counts the API's requests by route.
func TestMetrics(t *testing.T) {
	m := telemetry.New(telemetry.Options{NoRuntime: true})
	env := apitest.New(t, apitest.Options{Deps: func(d *api.Deps) { d.Metrics = m }})
	expectProblem(t, env.Do(apitest.Request{Method: http.MethodGet, Path: "/metrics"}), http.StatusNotFound, "not_found")
	admin := env.Login("admin@demo.test")
	org := loadPeople(t, env, admin.Access)
	rep4 := org.id("rep4@demo.test").String()
	apitest.Expect(t, env.Do(apitest.Request{Method: http.MethodGet, Path: "/healthz"}), http.StatusOK)
	apitest.Expect(t, env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/users/" + rep4, Token: admin.Access}), http.StatusOK)
	apitest.Expect(t, env.Do(apitest.Request{Method: http.MethodGet, Path: "/nope/" + uuid.NewString()}), http.StatusNotFound)
	expectProblem(t, getMe(env, "forged"), http.StatusUnauthorized, "unauthorized")

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics handler: status %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`fieldsync_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`fieldsync_http_requests_total{method="GET",route="/v1/users/:id",status="200"} 1`,
		`fieldsync_http_requests_total{method="GET",route="/v1/me",status="401"} 1`,
		`fieldsync_http_requests_total{method="POST",route="/v1/auth/login",status="200"} 1`,
		`fieldsync_http_request_duration_seconds_count{method="GET",route="/healthz"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Raw paths never become labels: ids would explode the series count.
	for _, bad := range []string{rep4, "/nope/"} {
		if strings.Contains(body, bad) {
			t.Errorf("/metrics has a series naming %q", bad)
		}
	}
	if !strings.Contains(body, "# TYPE fieldsync_http_requests_total counter") {
		t.Errorf("/metrics lacks the counter's TYPE line")
	}
}
