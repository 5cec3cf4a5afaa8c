package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
)

// clock is a settable clock for the store's now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := models.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

// fixture is one organisation with an admin, a manager leading a team and a
// rep in it.
type fixture struct {
	org                 models.Org
	admin, manager, rep models.User
	team                models.Team
}

func newUser(org uuid.UUID, email string, role models.Role, team *uuid.UUID, now time.Time) models.User {
	return models.User{
		OrgID: org, ID: uuid.New(), Email: email, Name: email, Role: role, TeamID: team,
		Active: true, TimeZone: "UTC", PasswordHash: "$2a$04$not-a-real-hash", CreatedAt: now, UpdatedAt: now,
	}
}

func seed(t *testing.T, db *store.DB, domain string, now time.Time) fixture {
	t.Helper()
	ctx := context.Background()
	f := fixture{org: models.Org{ID: uuid.New(), Name: "Org " + domain, CreatedAt: now}}
	f.admin = newUser(f.org.ID, "admin@"+domain, models.RoleAdmin, nil, now)
	if err := db.People().CreateOrg(ctx, f.org, f.admin); err != nil {
		t.Fatalf("create org: %v", err)
	}
	f.manager = newUser(f.org.ID, "manager@"+domain, models.RoleManager, nil, now)
	if err := db.People().CreateUser(ctx, f.manager); err != nil {
		t.Fatalf("create manager: %v", err)
	}
	f.team = models.Team{OrgID: f.org.ID, ID: uuid.New(), Name: "North", ManagerID: &f.manager.ID, CreatedAt: now}
	if err := db.People().CreateTeam(ctx, f.team); err != nil {
		t.Fatalf("create team: %v", err)
	}
	f.manager.TeamID = &f.team.ID
	f.rep = newUser(f.org.ID, "rep@"+domain, models.RoleRep, &f.team.ID, now)
	if err := db.People().CreateUser(ctx, f.rep); err != nil {
		t.Fatalf("create rep: %v", err)
	}
	return f
}

// startSession logs u in on a new device and returns the session and its
// refresh token's hash.
func startSession(t *testing.T, db *store.DB, u models.User, now time.Time) (models.Session, string) {
	t.Helper()
	s := models.Session{OrgID: u.OrgID, ID: uuid.New(), UserID: u.ID, DeviceID: uuid.New(), CreatedAt: now, ExpiresAt: now.Add(auth.RefreshTTL)}
	_, hash := auth.NewRefreshToken()
	if err := db.People().CreateSession(context.Background(), s, hash); err != nil {
		t.Fatalf("create session: %v", err)
	}
	return s, hash
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.URL(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	st, err := db.MigrationStatus(ctx)
	if err != nil {
		t.Fatalf("status of an empty database: %v", err)
	}
	if st.Current != 0 || st.Latest < 1 || !st.Behind() {
		t.Fatalf("empty database: status %+v, want current 0, latest ≥ 1, behind", st)
	}
	latest := st.Latest

	applied, err := db.Migrate(ctx)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if len(applied) == 0 || applied[len(applied)-1] != latest || !slices.IsSorted(applied) {
		t.Errorf("applied %v, want ascending versions ending at %d", applied, latest)
	}
	st, err = db.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != st.Latest || st.Latest != latest || st.Behind() {
		t.Errorf("after migrate: status %+v, want current = latest = %d", st, latest)
	}

	again, err := db.Migrate(ctx)
	if err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if len(again) != 0 {
		t.Errorf("migrating twice applied %v, want nothing", again)
	}
	if st2, err := db.MigrationStatus(ctx); err != nil || st2 != st {
		t.Errorf("status after a second migrate = %+v (%v), want %+v", st2, err, st)
	}
	// The schema works: a migrated database takes an organisation.
	seed(t, db, "migrated.test", time.Now())
}

func TestPeopleRoundTrip(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	// A local time with microseconds: it must come back as the same
	// instant, in UTC, on both databases.
	local := time.Date(2025, 3, 30, 2, 30, 15, 123456000, time.FixedZone("UTC+5", 5*3600))
	f := seed(t, db, "round.test", local)

	t.Run("org", func(t *testing.T) {
		got, err := db.People().Org(ctx, f.org.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != f.org.ID || got.Name != f.org.Name || !got.CreatedAt.Equal(local) || got.CreatedAt.Location() != time.UTC {
			t.Errorf("got %+v, want %+v in UTC", got, f.org)
		}
		byName, err := db.People().OrgByName(ctx, f.org.Name)
		if err != nil || byName.ID != f.org.ID {
			t.Errorf("OrgByName = %+v, %v", byName, err)
		}
	})

	tests := []struct {
		name  string
		email string
		want  models.User
	}{
		{"admin", "admin@round.test", f.admin},
		{"manager, with the team CreateTeam gave them", "manager@round.test", f.manager},
		{"rep", "rep@round.test", f.rep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.People().UserByEmail(ctx, tt.email)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if got.OrgID != want.OrgID || got.ID != want.ID || got.Email != want.Email || got.Name != want.Name ||
				got.Role != want.Role || got.Active != want.Active || got.TimeZone != want.TimeZone || got.PasswordHash != want.PasswordHash {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
			if (got.TeamID == nil) != (want.TeamID == nil) || (got.TeamID != nil && *got.TeamID != *want.TeamID) {
				t.Errorf("team %v, want %v", got.TeamID, want.TeamID)
			}
			for _, tm := range []struct {
				name string
				v    time.Time
			}{{"created_at", got.CreatedAt}, {"updated_at", got.UpdatedAt}} {
				if !tm.v.Equal(local) || tm.v.Location() != time.UTC {
					t.Errorf("%s = %v, want %v in UTC", tm.name, tm.v, local.UTC())
				}
			}
			byID, err := db.People().User(ctx, want.OrgID, want.ID)
			if err != nil || byID.Email != want.Email {
				t.Errorf("User(%s) = %+v, %v", want.ID, byID, err)
			}
		})
	}

	t.Run("team", func(t *testing.T) {
		got, err := db.People().Team(ctx, f.org.ID, f.team.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "North" || got.ManagerID == nil || *got.ManagerID != f.manager.ID || !got.CreatedAt.Equal(local) || got.CreatedAt.Location() != time.UTC {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("not found", func(t *testing.T) {
		_, err := db.People().UserByEmail(ctx, "nobody@round.test")
		wantCode(t, err, models.CodeNotFound)
		_, err = db.People().User(ctx, uuid.New(), f.rep.ID) // right id, wrong org
		wantCode(t, err, models.CodeNotFound)
		_, err = db.People().Team(ctx, uuid.New(), f.team.ID)
		wantCode(t, err, models.CodeNotFound)
	})
}

func TestEmailsAreUniqueAcrossOrgs(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	now := time.Now()
	a := seed(t, db, "a.test", now)
	b := seed(t, db, "b.test", now)

	tests := []struct {
		name string
		user models.User
	}{
		{"same org", newUser(a.org.ID, "rep@a.test", models.RoleRep, nil, now)},
		{"another org", newUser(b.org.ID, "rep@a.test", models.RoleRep, nil, now)},
		{"another org's admin", newUser(b.org.ID, "admin@a.test", models.RoleManager, nil, now)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.People().CreateUser(ctx, tt.user)
			wantCode(t, err, models.CodeConflict)
			if _, err := db.People().User(ctx, tt.user.OrgID, tt.user.ID); models.ErrorCode(err) != models.CodeNotFound {
				t.Errorf("the refused user was stored: %v", err)
			}
		})
	}
	t.Run("a new org whose admin's email is taken is not created", func(t *testing.T) {
		org := models.Org{ID: uuid.New(), Name: "Copycat", CreatedAt: now}
		err := db.People().CreateOrg(ctx, org, newUser(org.ID, "manager@b.test", models.RoleAdmin, nil, now))
		wantCode(t, err, models.CodeConflict)
		if _, err := db.People().Org(ctx, org.ID); models.ErrorCode(err) != models.CodeNotFound {
			t.Errorf("the org was stored despite the conflict: %v", err)
		}
	})
	t.Run("the existing login still resolves to its user", func(t *testing.T) {
		u, err := db.People().UserByEmail(ctx, "rep@a.test")
		if err != nil || u.ID != a.rep.ID {
			t.Errorf("UserByEmail = %v, %v; want %s", u.ID, err, a.rep.ID)
		}
	})
}

func TestCreateTeam(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	now := time.Now()
	f := seed(t, db, "teams.test", now)
	other := seed(t, db, "other.test", now)
	spare := newUser(f.org.ID, "spare@teams.test", models.RoleManager, nil, now)
	if err := db.People().CreateUser(ctx, spare); err != nil {
		t.Fatal(err)
	}
	ptr := func(id uuid.UUID) *uuid.UUID { return &id }

	tests := []struct {
		name    string
		team    string
		manager *uuid.UUID
		code    string // empty: created
		field   string
	}{
		{"rep as manager", "East", ptr(f.rep.ID), models.CodeInvalid, "manager_id"},
		{"admin as manager", "East", ptr(f.admin.ID), models.CodeInvalid, "manager_id"},
		{"nobody as manager", "East", ptr(uuid.New()), models.CodeInvalid, "manager_id"},
		{"another org's manager", "East", ptr(other.manager.ID), models.CodeInvalid, "manager_id"},
		{"name taken", "North", nil, models.CodeConflict, "name"},
		{"no manager", "South", nil, "", ""},
		{"a manager", "East", ptr(spare.ID), "", ""},
		{"same name in another org", "East", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org := f.org.ID
			if tt.name == "same name in another org" {
				org = other.org.ID
			}
			team := models.Team{OrgID: org, ID: uuid.New(), Name: tt.team, ManagerID: tt.manager, CreatedAt: now}
			err := db.People().CreateTeam(ctx, team)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				if _, err := db.People().Team(ctx, org, team.ID); err != nil {
					t.Errorf("created team not found: %v", err)
				}
				return
			}
			wantCode(t, err, tt.code)
			var me *models.Error
			if !errors.As(err, &me) || len(me.Fields) == 0 || me.Fields[0].Field != tt.field {
				t.Errorf("error %v, want it to name %s", err, tt.field)
			}
			if _, err := db.People().Team(ctx, org, team.ID); models.ErrorCode(err) != models.CodeNotFound {
				t.Errorf("refused team was stored: %v", err)
			}
		})
	}
	t.Run("the manager joins their team", func(t *testing.T) {
		got, err := db.People().User(ctx, f.org.ID, spare.ID)
		if err != nil {
			t.Fatal(err)
		}
		east, err := db.People().TeamByName(ctx, f.org.ID, "East")
		if err != nil {
			t.Fatal(err)
		}
		if got.TeamID == nil || *got.TeamID != east.ID {
			t.Errorf("spare manager's team = %v, want East %s", got.TeamID, east.ID)
		}
	})
}

func TestUpdateUser(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	now := time.Now()
	f := seed(t, db, "update.test", now)
	south := models.Team{OrgID: f.org.ID, ID: uuid.New(), Name: "South", CreatedAt: now}
	if err := db.People().CreateTeam(ctx, south); err != nil {
		t.Fatal(err)
	}
	manager := models.RoleManager
	name := "Renamed"

	tests := []struct {
		name  string
		id    uuid.UUID
		patch models.UserPatch
		code  string
		check func(t *testing.T, u models.User)
	}{
		{"rename", f.rep.ID, models.UserPatch{Name: &name}, "", func(t *testing.T, u models.User) {
			if u.Name != name {
				t.Errorf("name %q", u.Name)
			}
		}},
		{"promote", f.rep.ID, models.UserPatch{Role: &manager}, "", func(t *testing.T, u models.User) {
			if u.Role != models.RoleManager {
				t.Errorf("role %q", u.Role)
			}
		}},
		{"move team", f.rep.ID, models.UserPatch{TeamID: &south.ID}, "", func(t *testing.T, u models.User) {
			if u.TeamID == nil || *u.TeamID != south.ID {
				t.Errorf("team %v, want South", u.TeamID)
			}
		}},
		{"clear team", f.rep.ID, models.UserPatch{ClearTeam: true}, "", func(t *testing.T, u models.User) {
			if u.TeamID != nil {
				t.Errorf("team %v, want none", u.TeamID)
			}
		}},
		{"team of no team", f.rep.ID, models.UserPatch{TeamID: ptrUUID(uuid.New())}, models.CodeInvalid, nil},
		{"unknown user", uuid.New(), models.UserPatch{Name: &name}, models.CodeNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := db.People().User(ctx, f.org.ID, tt.id)
			got, err := db.People().UpdateUser(ctx, f.org.ID, tt.id, tt.patch)
			if tt.code != "" {
				wantCode(t, err, tt.code)
				after, _ := db.People().User(ctx, f.org.ID, tt.id)
				if (before.TeamID == nil) != (after.TeamID == nil) || before.Name != after.Name || before.Role != after.Role {
					t.Errorf("refused patch changed the user: %+v → %+v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Both the returned and the stored user show the change.
			tt.check(t, got)
			stored, err := db.People().User(ctx, f.org.ID, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, stored)
		})
	}
}

func ptrUUID(id uuid.UUID) *uuid.UUID { return &id }

func TestDeactivationRevokesSessions(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	now := time.Now()
	f := seed(t, db, "deact.test", now)
	phone, phoneRefresh := startSession(t, db, f.rep, now)
	tablet, _ := startSession(t, db, f.rep, now)
	adminSess, _ := startSession(t, db, f.admin, now)

	for _, s := range []models.Session{phone, tablet, adminSess} {
		p, err := db.People().LivePrincipal(ctx, s.OrgID, s.ID, s.UserID)
		if err != nil {
			t.Fatalf("before: LivePrincipal: %v", err)
		}
		if p.UserID != s.UserID || p.SessionID != s.ID || p.DeviceID != s.DeviceID {
			t.Errorf("before: principal %+v for session %+v", p, s)
		}
	}

	off, on := false, true
	u, err := db.People().UpdateUser(ctx, f.org.ID, f.rep.ID, models.UserPatch{Active: &off})
	if err != nil {
		t.Fatal(err)
	}
	if u.Active {
		t.Errorf("UpdateUser returned active = true")
	}
	for _, s := range []models.Session{phone, tablet} {
		_, err := db.People().LivePrincipal(ctx, s.OrgID, s.ID, s.UserID)
		wantCode(t, err, models.CodeUnauthorized)
	}
	_, _, err = db.People().RotateRefresh(ctx, phoneRefresh, "new-hash-after-deactivation", now.Add(auth.RefreshTTL))
	wantCode(t, err, models.CodeUnauthorized)
	if _, err := db.People().LivePrincipal(ctx, adminSess.OrgID, adminSess.ID, adminSess.UserID); err != nil {
		t.Errorf("the admin's session ended too: %v", err)
	}

	// Reactivating does not bring the ended sessions back.
	if _, err := db.People().UpdateUser(ctx, f.org.ID, f.rep.ID, models.UserPatch{Active: &on}); err != nil {
		t.Fatal(err)
	}
	_, err = db.People().LivePrincipal(ctx, phone.OrgID, phone.ID, phone.UserID)
	wantCode(t, err, models.CodeUnauthorized)
	fresh, _ := startSession(t, db, f.rep, now)
	if _, err := db.People().LivePrincipal(ctx, fresh.OrgID, fresh.ID, fresh.UserID); err != nil {
		t.Errorf("a new session after reactivation: %v", err)
	}
}

func TestLivePrincipalFollowsTheUser(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	now := time.Now()
	f := seed(t, db, "live.test", now)
	s, _ := startSession(t, db, f.rep, now)
	other := seed(t, db, "elsewhere.test", now)

	tests := []struct {
		name               string
		org, session, user uuid.UUID
		wantErr            bool
	}{
		{"the session", f.org.ID, s.ID, f.rep.ID, false},
		{"another user's id", f.org.ID, s.ID, f.manager.ID, true},
		{"another org's id", other.org.ID, s.ID, f.rep.ID, true},
		{"no such session", f.org.ID, uuid.New(), f.rep.ID, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := db.People().LivePrincipal(ctx, tt.org, tt.session, tt.user)
			if tt.wantErr {
				wantCode(t, err, models.CodeUnauthorized)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Role != models.RoleRep || p.TeamID == nil || *p.TeamID != f.team.ID {
				t.Errorf("principal %+v", p)
			}
		})
	}
	t.Run("a role change shows at once", func(t *testing.T) {
		mgr := models.RoleManager
		if _, err := db.People().UpdateUser(ctx, f.org.ID, f.rep.ID, models.UserPatch{Role: &mgr, ClearTeam: true}); err != nil {
			t.Fatal(err)
		}
		p, err := db.People().LivePrincipal(ctx, f.org.ID, s.ID, f.rep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.Role != models.RoleManager || p.TeamID != nil {
			t.Errorf("principal %+v, want a manager with no team", p)
		}
	})
}

func TestRotateRefresh(t *testing.T) {
	c := &clock{now: time.Now().UTC().Truncate(time.Second)}
	db := storetest.MustOpenDBWith(t, storetest.Options{Now: c.Now})
	ctx := context.Background()
	f := seed(t, db, "rotate.test", c.Now())

	t.Run("rotation, then reuse revokes the session", func(t *testing.T) {
		s, h1 := startSession(t, db, f.rep, c.Now())
		_, h2 := auth.NewRefreshToken()
		sess, u, err := db.People().RotateRefresh(ctx, h1, h2, c.Now().Add(auth.RefreshTTL))
		if err != nil {
			t.Fatal(err)
		}
		if sess.ID != s.ID || u.ID != f.rep.ID || u.Email != f.rep.Email {
			t.Errorf("rotate returned session %s user %s, want %s %s", sess.ID, u.ID, s.ID, f.rep.ID)
		}
		_, h3 := auth.NewRefreshToken()
		_, _, err = db.People().RotateRefresh(ctx, h1, h3, c.Now().Add(auth.RefreshTTL))
		if !errors.Is(err, store.ErrRefreshReused) {
			t.Fatalf("reuse: %v, want ErrRefreshReused", err)
		}
		// The reuse ended the session: the current token and the live
		// check both fail.
		_, _, err = db.People().RotateRefresh(ctx, h2, h3, c.Now().Add(auth.RefreshTTL))
		wantCode(t, err, models.CodeUnauthorized)
		_, err = db.People().LivePrincipal(ctx, s.OrgID, s.ID, s.UserID)
		wantCode(t, err, models.CodeUnauthorized)
	})
	t.Run("unknown token", func(t *testing.T) {
		_, _, err := db.People().RotateRefresh(ctx, "no-such-hash", "whatever", c.Now().Add(auth.RefreshTTL))
		wantCode(t, err, models.CodeUnauthorized)
	})
	t.Run("expired token", func(t *testing.T) {
		_, h1 := startSession(t, db, f.manager, c.Now())
		c.Advance(auth.RefreshTTL + time.Second)
		_, h2 := auth.NewRefreshToken()
		_, _, err := db.People().RotateRefresh(ctx, h1, h2, c.Now().Add(auth.RefreshTTL))
		wantCode(t, err, models.CodeUnauthorized)
		if errors.Is(err, store.ErrRefreshReused) {
			t.Errorf("an expired token reported as reused")
		}
		// The failed attempt stored nothing: the new hash does not work.
		_, _, err = db.People().RotateRefresh(ctx, h2, "next", c.Now().Add(auth.RefreshTTL))
		wantCode(t, err, models.CodeUnauthorized)
	})
}

// TestRotateRefreshConcurrently races one refresh token from several
// goroutines (run it with -race): exactly one exchange may win, and the rest
// are reuse, which ends the session.
func TestRotateRefreshConcurrently(t *testing.T) {
	const n = 8
	db := storetest.MustOpenDBWith(t, storetest.Options{MaxOpenConns: n})
	ctx := context.Background()
	now := time.Now()
	f := seed(t, db, "race.test", now)
	s, old := startSession(t, db, f.rep, now)

	type result struct {
		hash string
		err  error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		_, next := auth.NewRefreshToken()
		results[i].hash = next
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _, results[i].err = db.People().RotateRefresh(ctx, old, next, now.Add(auth.RefreshTTL))
		}()
	}
	close(start)
	wg.Wait()

	var won []string
	for _, r := range results {
		switch {
		case r.err == nil:
			won = append(won, r.hash)
		case errors.Is(r.err, store.ErrRefreshReused):
		default:
			t.Errorf("a losing exchange failed with %v, want ErrRefreshReused", r.err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d exchanges succeeded, want exactly 1", len(won))
	}
	_, err := db.People().LivePrincipal(ctx, s.OrgID, s.ID, s.UserID)
	wantCode(t, err, models.CodeUnauthorized)
	_, _, err = db.People().RotateRefresh(ctx, won[0], "after-the-race", now.Add(auth.RefreshTTL))
	wantCode(t, err, models.CodeUnauthorized)
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw     string
		dialect store.Dialect
		dsn     string
		wantErr bool
	}{
		{"", store.SQLite, "fieldsync.db", false},
		{"sqlite:fieldsync.db", store.SQLite, "fieldsync.db", false},
		{"sqlite:/var/lib/fieldsync/data.db", store.SQLite, "/var/lib/fieldsync/data.db", false},
		{"sqlite:///var/lib/fieldsync/data.db", store.SQLite, "/var/lib/fieldsync/data.db", false},
		{"sqlite://relative.db", store.SQLite, "relative.db", false},
		{"postgres://u:p@db:5432/fieldsync?sslmode=disable", store.Postgres, "postgres://u:p@db:5432/fieldsync?sslmode=disable", false},
		{"postgresql://db/fieldsync", store.Postgres, "postgresql://db/fieldsync", false},
		{"mysql://u:p@db/fieldsync", "", "", true},
		{"fieldsync.db", "", "", true},
		{"http://example.com", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			d, dsn, err := store.ParseURL(tt.raw)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseURL(%q) = %q, %q; want an error", tt.raw, d, dsn)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.raw, err)
			}
			if d != tt.dialect || dsn != tt.dsn {
				t.Errorf("ParseURL(%q) = %q, %q; want %q, %q", tt.raw, d, dsn, tt.dialect, tt.dsn)
			}
		})
	}
	t.Run("passwords are redacted from errors", func(t *testing.T) {
		_, _, err := store.ParseURL("mysql://user:hunter2@db/fieldsync")
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error %v, want one without the password", err)
		}
	})
}

// TestPoolStats: every pool is reported by name, as the metrics read
// them: the pool that writes and the readiness probe, and SQLite's pool
// of reads.
func TestPoolStats(t *testing.T) {
	db := storetest.MustOpenDB(t)
	got := db.PoolStats()
	want := []string{store.PoolMain, store.PoolProbe}
	if db.Dialect() == store.SQLite {
		want = append(want, store.PoolRead)
	}
	if len(got) != len(want) {
		t.Errorf("got pools %v, want %v", got, want)
	}
	for _, name := range want {
		if st, ok := got[name]; !ok || st.MaxOpenConnections < 1 {
			t.Errorf("pool %q: got %+v (present %v), want a pool of at least one connection", name, st, ok)
		}
	}
}
