package main

import (
	"context"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
)

// people is an organisation staged straight in the store, with cheap
// password hashes: only the commands under test hash at production cost.
type people struct {
	db         *store.DB
	url        string
	acme       models.Org
	east, west models.Team
	users      map[string]models.User // by email
}

func stagePeople(t *testing.T) *people {
	t.Helper()
	ctx := context.Background()
	p := &people{url: storetest.MigratedURL(t), users: map[string]models.User{}}
	db, err := store.Open(ctx, p.url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	p.db = db
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	hash, err := auth.NewPasswords(auth.TestArgon2).Hash("old-password")
	if err != nil {
		t.Fatal(err)
	}
	user := func(org models.Org, email, name string, role models.Role, team *models.Team) models.User {
		u := models.User{OrgID: org.ID, ID: uuid.New(), Email: email, Name: name, Role: role, Active: true,
			TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
		if team != nil {
			u.TeamID = &team.ID
		}
		p.users[email] = u
		return u
	}
	p.acme = models.Org{ID: uuid.New(), Name: "Acme", CreatedAt: now}
	other := models.Org{ID: uuid.New(), Name: "Other", CreatedAt: now.Add(time.Hour)}
	if err := db.People().CreateOrg(ctx, p.acme, user(p.acme, "a@acme.test", "Ada Admin", models.RoleAdmin, nil)); err != nil {
		t.Fatal(err)
	}
	if err := db.People().CreateOrg(ctx, other, user(other, "o@other.test", "Olive Other", models.RoleAdmin, nil)); err != nil {
		t.Fatal(err)
	}
	p.east = models.Team{OrgID: p.acme.ID, ID: uuid.New(), Name: "East", CreatedAt: now}
	p.west = models.Team{OrgID: p.acme.ID, ID: uuid.New(), Name: "West", CreatedAt: now}
	for _, tm := range []models.Team{p.east, p.west} {
		if err := db.People().CreateTeam(ctx, tm); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []models.User{
		user(p.acme, "r2@acme.test", "Rob Rep", models.RoleRep, &p.west),
		user(p.acme, "r1@acme.test", "Rita Rep", models.RoleRep, &p.east),
		user(p.acme, "m@acme.test", "Mia Manager", models.RoleManager, &p.east),
	} {
		if err := db.People().CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// session signs the user in on a new device.
func (p *people) session(t *testing.T, email string) models.Session {
	t.Helper()
	u := p.users[email]
	now := time.Now()
	s := models.Session{OrgID: u.OrgID, ID: uuid.New(), UserID: u.ID, DeviceID: uuid.New(), CreatedAt: now, ExpiresAt: now.Add(auth.RefreshTTL)}
	_, hash := auth.NewRefreshToken()
	if err := p.db.People().CreateSession(context.Background(), s, hash); err != nil {
		t.Fatal(err)
	}
	return s
}

func (p *people) live(s models.Session) bool {
	_, err := p.db.People().LivePrincipal(context.Background(), s.OrgID, s.ID, s.UserID)
	return err == nil
}

// table splits a printed table into rows of cells (columns are separated
// by two spaces or more), header first.
func table(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		rows = append(rows, regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1))
	}
	return rows
}

func TestOrgList(t *testing.T) {
	p := stagePeople(t)
	got := invoke(t, context.Background(), env{"FIELDSYNC_DATABASE_URL": p.url}, "", "org", "list")
	if got.err != nil {
		t.Fatal(got.err)
	}
	want := [][]string{
		{"ID", "NAME", "CREATED", "USERS"},
		{p.acme.ID.String(), "Acme", "2026-03-01T09:00:00Z", "4"},
		{p.users["o@other.test"].OrgID.String(), "Other", "2026-03-01T10:00:00Z", "1"},
	}
	if rows := table(got.stdout); !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("org list printed\n%s\nwant rows %q", got.stdout, want)
	}
}

func TestUserList(t *testing.T) {
	p := stagePeople(t)
	e := env{"FIELDSYNC_DATABASE_URL": p.url}
	row := func(email string) []string {
		u := p.users[email]
		team := "-"
		switch {
		case u.TeamID == nil:
		case *u.TeamID == p.east.ID:
			team = "East"
		case *u.TeamID == p.west.ID:
			team = "West"
		}
		return []string{u.Email, u.Name, string(u.Role), team, "yes", u.ID.String()}
	}
	header := []string{"EMAIL", "NAME", "ROLE", "TEAM", "ACTIVE", "ID"}
	tests := []struct {
		name string
		args []string
		want []string // emails, in order
	}{
		{"the whole organisation, by email", []string{"--org", "acme"}, []string{"a@acme.test", "m@acme.test", "r1@acme.test", "r2@acme.test"}},
		{"one team by name", []string{"--org", "Acme", "--team", "East"}, []string{"m@acme.test", "r1@acme.test"}},
		{"one team by id", []string{"--org", p.acme.ID.String(), "--team", p.west.ID.String()}, []string{"r2@acme.test"}},
		{"one role", []string{"--org", "Acme", "--role", "rep"}, []string{"r1@acme.test", "r2@acme.test"}},
		{"a team and a role", []string{"--org", "Acme", "--team", "East", "--role", "manager"}, []string{"m@acme.test"}},
		{"nobody", []string{"--org", "Acme", "--team", "West", "--role", "admin"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := invoke(t, context.Background(), e, "", append([]string{"user", "list"}, tt.args...)...)
			if got.err != nil {
				t.Fatal(got.err)
			}
			want := [][]string{header}
			for _, email := range tt.want {
				want = append(want, row(email))
			}
			if rows := table(got.stdout); !slices.EqualFunc(rows, want, slices.Equal) {
				t.Errorf("printed\n%s\nwant rows %q", got.stdout, want)
			}
		})
	}
	refusals := []struct {
		name   string
		args   []string
		want   string
		status int
	}{
		{"no --org", nil, "--org is required", 2},
		{"a bad role", []string{"--org", "Acme", "--role", "boss"}, "--role must be rep, manager or admin", 2},
		{"an unknown team", []string{"--org", "Acme", "--team", "North"}, `no team "North" in Acme`, 1},
		{"an unknown org", []string{"--org", "Nope"}, `no organisation with id or name "Nope"`, 1},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			got := invoke(t, context.Background(), e, "", append([]string{"user", "list"}, tt.args...)...)
			if code := report(got.err, io.Discard); code != tt.status || !strings.Contains(got.err.Error(), tt.want) {
				t.Errorf("status %d, err %v; want %d and %q", code, got.err, tt.status, tt.want)
			}
		})
	}
}

// TestUserDeactivate goes the API's way (PATCH active:false, that is
// People.UpdateUser): the user's sessions end with it.
func TestUserDeactivate(t *testing.T) {
	ctx := context.Background()
	p := stagePeople(t)
	e := env{"FIELDSYNC_DATABASE_URL": p.url}
	rita, mia := p.session(t, "r1@acme.test"), p.session(t, "m@acme.test")

	got := invoke(t, ctx, e, "", "user", "deactivate", "--org", "Acme", "--email", "R1@Acme.test")
	if got.err != nil {
		t.Fatal(got.err)
	}
	if want := "deactivated rep r1@acme.test (" + p.users["r1@acme.test"].ID.String() + "); their sessions are ended\n"; got.stdout != want {
		t.Errorf("stdout %q, want %q", got.stdout, want)
	}
	if u, err := p.db.People().UserByEmail(ctx, "r1@acme.test"); err != nil || u.Active {
		t.Errorf("after deactivate: %+v (%v), want inactive", u, err)
	}
	if p.live(rita) {
		t.Error("the deactivated user's session still works")
	}
	if !p.live(mia) {
		t.Error("another user's session ended")
	}
	list := invoke(t, ctx, e, "", "user", "list", "--org", "Acme", "--team", "East", "--role", "rep")
	if rows := table(list.stdout); len(rows) != 2 || rows[1][4] != "no" {
		t.Errorf("user list after deactivate:\n%s\nwant r1 with active no", list.stdout)
	}

	refusals := []struct {
		name string
		args []string
		want string
	}{
		{"a user of another organisation", []string{"--org", "Acme", "--email", "o@other.test"}, "no user o@other.test in Acme"},
		{"an unknown email", []string{"--org", "Acme", "--email", "nobody@acme.test"}, "no user nobody@acme.test in Acme"},
	}
	for _, tt := range refusals {
		got := invoke(t, ctx, e, "", append([]string{"user", "deactivate"}, tt.args...)...)
		if code := report(got.err, io.Discard); code != 1 || !strings.Contains(got.err.Error(), tt.want) {
			t.Errorf("%s: status %d, err %v; want 1 and %q", tt.name, code, got.err, tt.want)
		}
	}
	if u, _ := p.db.People().UserByEmail(ctx, "o@other.test"); !u.Active {
		t.Error("the other organisation's admin was deactivated")
	}
	if got := invoke(t, ctx, e, "", "user", "deactivate", "--org", "Acme"); report(got.err, io.Discard) != 2 {
		t.Errorf("no --email: %v, want a usage error", got.err)
	}
}

// TestUserResetPassword reads the password as user create does, checks it
// as the API does, and ends the user's sessions.
func TestUserResetPassword(t *testing.T) {
	ctx := context.Background()
	p := stagePeople(t)
	e := env{"FIELDSYNC_DATABASE_URL": p.url}
	rob, mia := p.session(t, "r2@acme.test"), p.session(t, "m@acme.test")

	// Refusals first: each is cheaper than a hash.
	short := invoke(t, ctx, e, "short\n", "user", "reset-password", "--org", "Acme", "--email", "r2@acme.test")
	if report(short.err, io.Discard) != 2 || !strings.Contains(short.err.Error(), "password must be at least 10 characters") {
		t.Errorf("a short password: %v, want a usage error", short.err)
	}
	none := invoke(t, ctx, e, "", "user", "reset-password", "--org", "Acme", "--email", "r2@acme.test")
	if report(none.err, io.Discard) != 2 || !strings.Contains(none.err.Error(), "FIELDSYNC_ADMIN_PASSWORD") {
		t.Errorf("no password: %v, want a usage error", none.err)
	}
	other := invoke(t, ctx, e, "another-password\n", "user", "reset-password", "--org", "Acme", "--email", "o@other.test")
	if other.err == nil || !strings.Contains(other.err.Error(), "no user o@other.test in Acme") {
		t.Errorf("a user of another organisation: %v", other.err)
	}
	if !p.live(rob) {
		t.Fatal("a refused reset ended the session")
	}

	got := invoke(t, ctx, e, "rob-new-password\n", "user", "reset-password", "--org", "Acme", "--email", "r2@acme.test")
	if got.err != nil {
		t.Fatal(got.err)
	}
	if want := "reset the password of rep r2@acme.test (" + p.users["r2@acme.test"].ID.String() + "); their sessions are ended\n"; got.stdout != want {
		t.Errorf("stdout %q, want %q", got.stdout, want)
	}
	u, err := p.db.People().UserByEmail(ctx, "r2@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	pw := auth.NewPasswords(auth.TestArgon2)
	newOK, _ := pw.Check(u.PasswordHash, "rob-new-password")
	oldOK, _ := pw.Check(u.PasswordHash, "old-password")
	if !newOK || oldOK || !u.Active {
		t.Errorf("after the reset the new password does not check, the old one does, or the user is inactive: %+v", u)
	}
	if p.live(rob) {
		t.Error("a session from before the reset still works")
	}
	if !p.live(mia) {
		t.Error("another user's session ended")
	}
}
