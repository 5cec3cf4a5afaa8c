package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
)

// TestAuditLogIsAppendOnly: the database itself refuses to change or
// remove an audit entry, whoever asks (the store has no such path; this
// holds against hand-written SQL too), and the entry stays as written.
func TestAuditLogIsAppendOnly(t *testing.T) {
	db := storetest.MustOpenDB(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	org := models.Org{ID: uuid.New(), Name: "Append Only Co", CreatedAt: now}
	admin := newUser(org.ID, "a@append.test", models.RoleAdmin, nil, now)
	if err := db.People().CreateOrg(ctx, org, admin); err != nil {
		t.Fatal(err)
	}
	read := func() []models.AuditEntry {
		t.Helper()
		es, err := db.AuditLog().Entries(ctx, org.ID, models.AuditFilter{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	before := read()
	if len(before) != 1 || before[0].Action != models.ActionUserCreate || before[0].ObjectID != admin.ID || before[0].ActorID != nil {
		t.Fatalf("entries %+v, want the admin's user.create without an actor", before)
	}
	stmts := []string{
		`UPDATE audit_log SET action = 'nothing'`,
		`UPDATE audit_log SET actor_id = NULL, after_state = '{}'`,
		`DELETE FROM audit_log`,
		`DELETE FROM audit_log WHERE org_id = '` + org.ID.String() + `'`,
	}
	if db.Dialect() == store.Postgres {
		stmts = append(stmts, `TRUNCATE audit_log`) // SQLite has no TRUNCATE
	}
	for _, stmt := range stmts {
		if err := db.Gorm().WithContext(ctx).Exec(stmt).Error; err == nil {
			t.Errorf("%s: no error, want the append-only refusal", stmt)
		}
	}
	after := read()
	if len(after) != 1 || after[0].Action != before[0].Action || string(after[0].After) != string(before[0].After) {
		t.Errorf("after the attempts: %+v, want %+v", after, before)
	}
}
