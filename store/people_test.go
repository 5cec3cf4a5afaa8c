package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
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
