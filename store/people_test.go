package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
)

// TestCreateOrgRefusesATakenName: organisation names are unique ignoring
// case (Unicode case folding, the same on both dialects), so an admin
// naming one with --org gets the one they mean.
func TestCreateOrgRefusesATakenName(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	now := time.Now()
	create := func(name, email string) error {
		org := models.Org{ID: uuid.New(), Name: name, CreatedAt: now}
		return db.People().CreateOrg(ctx, org, newUser(org.ID, email, models.RoleAdmin, nil, now))
	}
	if err := create("Acme Field Sales", "a@acme.test"); err != nil {
		t.Fatal(err)
	}
	if err := create("Émile & Co", "a@emile.test"); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, taken string }{
		{"Acme Field Sales", "Acme Field Sales"},
		{"ACME field sales", "Acme Field Sales"},
		{"émile & co", "Émile & Co"}, // not ASCII: SQLite's lower() would miss it
	}
	for _, tt := range tests {
		err := create(tt.name, "other@"+uuid.NewString()[:8]+".test")
		wantCode(t, err, models.CodeConflict)
		if !strings.Contains(err.Error(), tt.taken) {
			t.Errorf("%q: %v, want the error to name %q", tt.name, err, tt.taken)
		}
	}
	if n, err := db.People().CountOrgs(ctx); err != nil || n != 2 {
		t.Errorf("orgs = %d (%v), want the 2 first ones only", n, err)
	}
	// A name that only contains another is free.
	if err := create("Acme Field Sales East", "a@east.test"); err != nil {
		t.Errorf("a different name: %v", err)
	}
}

// TestOrgsNamed finds organisations by name ignoring case, oldest first,
// including the duplicates a database from before the rule may hold.
func TestOrgsNamed(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	older := seed(t, db, "older.test", now.Add(-time.Hour)).org
	// A duplicate as an old database may hold: written past the rule.
	dup := models.Org{ID: uuid.New(), Name: strings.ToUpper(older.Name), CreatedAt: now}
	if err := db.Gorm().Exec("INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)", dup.ID, dup.Name, dup.CreatedAt).Error; err != nil {
		t.Fatal(err)
	}
	seed(t, db, "unrelated.test", now)

	got, err := db.People().OrgsNamed(ctx, strings.ToLower(older.Name))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != older.ID || got[1].ID != dup.ID {
		t.Errorf("OrgsNamed = %+v, want %s then %s", got, older.ID, dup.ID)
	}
	if got, err := db.People().OrgsNamed(ctx, "Nobody Inc"); err != nil || len(got) != 0 {
		t.Errorf("an unknown name: %+v (%v), want none", got, err)
	}
}

// TestOrgs lists every organisation, oldest first, with its user count.
func TestOrgs(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	b := seed(t, db, "b.test", now)
	a := seed(t, db, "a.test", now.Add(-time.Hour))
	empty := models.Org{ID: uuid.New(), Name: "Empty", CreatedAt: now.Add(time.Hour)}
	if err := db.Gorm().Exec("INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)", empty.ID, empty.Name, empty.CreatedAt).Error; err != nil {
		t.Fatal(err)
	}
	got, err := db.People().Orgs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.OrgSummary{{Org: a.org, Users: 3}, {Org: b.org, Users: 3}, {Org: empty, Users: 0}}
	if len(got) != len(want) {
		t.Fatalf("Orgs = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Name != want[i].Name || !got[i].CreatedAt.Equal(want[i].CreatedAt) || got[i].Users != want[i].Users {
			t.Errorf("Orgs[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestSetPasswordRevokesSessions: a reset password replaces the hash and
// ends every session of the user, as deactivation does, so whoever held
// the old password is signed out; other users keep theirs.
func TestSetPasswordRevokesSessions(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	now := time.Now()
	f := seed(t, db, "reset.test", now)
	phone, phoneRefresh := startSession(t, db, f.rep, now)
	other, _ := startSession(t, db, f.manager, now)

	if err := db.People().SetPassword(ctx, f.org.ID, f.rep.ID, "new-hash"); err != nil {
		t.Fatal(err)
	}
	u, err := db.People().User(ctx, f.org.ID, f.rep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u.PasswordHash != "new-hash" || !u.Active {
		t.Errorf("after the reset: hash %q, active %v; want the new hash, still active", u.PasswordHash, u.Active)
	}
	_, err = db.People().LivePrincipal(ctx, phone.OrgID, phone.ID, phone.UserID)
	wantCode(t, err, models.CodeUnauthorized)
	_, _, err = db.People().RotateRefresh(ctx, phoneRefresh, "after-reset", now.Add(auth.RefreshTTL))
	wantCode(t, err, models.CodeUnauthorized)
	if _, err := db.People().LivePrincipal(ctx, other.OrgID, other.ID, other.UserID); err != nil {
		t.Errorf("another user's session ended too: %v", err)
	}
	// The user is found in their organisation only.
	wantCode(t, db.People().SetPassword(ctx, uuid.New(), f.rep.ID, "x"), models.CodeNotFound)
}
