package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/fieldsync/fieldsync/models"
)

type orgRow struct {
	ID                uuid.UUID `gorm:"primaryKey"`
	Name              string
	CreatedAt         time.Time
	OrderValueCeiling int64 // cents
}

func (orgRow) TableName() string { return "orgs" }

func (r orgRow) model() models.Org {
	ceiling := r.OrderValueCeiling
	if ceiling <= 0 {
		ceiling = models.DefaultOrderValueCeilingCents
	}
	return models.Org{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt.UTC(), OrderValueCeilingCents: ceiling}
}

type loginRow struct {
	Email  string `gorm:"primaryKey"`
	OrgID  uuid.UUID
	UserID uuid.UUID
}

func (loginRow) TableName() string { return "logins" }

type teamRow struct {
	OrgID     uuid.UUID `gorm:"primaryKey"`
	ID        uuid.UUID `gorm:"primaryKey"`
	Name      string
	ManagerID *uuid.UUID
	CreatedAt time.Time
}

func (teamRow) TableName() string { return "teams" }

func (r teamRow) model() models.Team {
	return models.Team{OrgID: r.OrgID, ID: r.ID, Name: r.Name, ManagerID: r.ManagerID, CreatedAt: r.CreatedAt.UTC()}
}

type userRow struct {
	OrgID        uuid.UUID `gorm:"primaryKey"`
	ID           uuid.UUID `gorm:"primaryKey"`
	Email        string
	Name         string
	Role         string
	TeamID       *uuid.UUID
	Active       bool
	TimeZone     string
	PasswordHash string
	CreatedAt    time.Time `gorm:"autoCreateTime:false"`
	UpdatedAt    time.Time `gorm:"autoUpdateTime:false"`
}

func (userRow) TableName() string { return "users" }

func (r userRow) model() models.User {
	return models.User{
		OrgID: r.OrgID, ID: r.ID, Email: r.Email, Name: r.Name, Role: models.Role(r.Role),
		TeamID: r.TeamID, Active: r.Active, TimeZone: r.TimeZone, PasswordHash: r.PasswordHash,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

func newUserRow(u models.User) userRow {
	return userRow{
		OrgID: u.OrgID, ID: u.ID, Email: u.Email, Name: u.Name, Role: string(u.Role),
		TeamID: u.TeamID, Active: u.Active, TimeZone: u.TimeZone, PasswordHash: u.PasswordHash,
		CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(),
	}
}

// CreateOrg creates an organisation and its first admin in one transaction.
// Organisation names are unique ignoring case (see OrgsNamed), so that an
// admin command naming one finds the one meant. Errors: conflict (the name
// or the admin's email is taken).
func (db *People) CreateOrg(ctx context.Context, org models.Org, admin models.User) error {
	return db.transaction(ctx, func(tx *gorm.DB) error {
		// No index can hold the rule (databases from before it may break
		// it, and the dialects fold case differently), so creations are
		// serialised: on SQLite every writer is, on PostgreSQL this lock
		// conflicts with itself and with any other insert into orgs.
		if db.dialect.name() == Postgres {
			if err := tx.Exec("LOCK TABLE orgs IN SHARE ROW EXCLUSIVE MODE").Error; err != nil {
				return fmt.Errorf("lock orgs: %w", err)
			}
		}
		var rows []orgRow
		if err := tx.Order("created_at, id").Find(&rows).Error; err != nil {
			return fmt.Errorf("check org name: %w", err)
		}
		if taken := namedLike(rows, org.Name); len(taken) > 0 {
			return &models.Error{Code: models.CodeConflict,
				Message: fmt.Sprintf("an organisation named %q already exists (%s)", taken[0].Name, taken[0].ID),
				Fields:  []models.FieldError{{Field: "name", Code: models.CodeConflict, Message: "is already in use"}}}
		}
		ceiling := org.OrderValueCeilingCents
		if ceiling <= 0 {
			ceiling = models.DefaultOrderValueCeilingCents
		}
		if err := tx.Create(&orgRow{ID: org.ID, Name: org.Name, CreatedAt: org.CreatedAt.UTC(), OrderValueCeiling: ceiling}).Error; err != nil {
			return fmt.Errorf("insert org: %w", err)
		}
		if err := insertUser(tx, admin); err != nil {
			return err
		}
		return insertAudit(tx, userCreated(ctx, admin, db.now()))
	})
}

// Org returns one organisation. Errors: not_found.
func (db *People) Org(ctx context.Context, id uuid.UUID) (models.Org, error) {
	var r orgRow
	if err := db.read.WithContext(ctx).Take(&r, "id = ?", id).Error; err != nil {
		return models.Org{}, fmt.Errorf("get org: %w", translate(err))
	}
	return r.model(), nil
}

// UpdateOrgSettings changes an organisation's settings on behalf of actor
// (an admin: the caller checks) and returns the organisation as changed.
// Errors: not_found, invalid.
func (db *People) UpdateOrgSettings(ctx context.Context, orgID, actor uuid.UUID, s models.OrgSettings) (models.Org, error) {
	if err := s.Validate(); err != nil {
		return models.Org{}, err
	}
	var out models.Org
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		var r orgRow
		if err := tx.Take(&r, "id = ?", orgID).Error; err != nil {
			return fmt.Errorf("get org: %w", err)
		}
		before := r.model()
		if s.OrderValueCeilingCents != nil {
			if err := tx.Model(&orgRow{}).Where("id = ?", orgID).Update("order_value_ceiling", *s.OrderValueCeilingCents).Error; err != nil {
				return fmt.Errorf("update org: %w", err)
			}
			r.OrderValueCeiling = *s.OrderValueCeilingCents
		}
		out = r.model()
		return auditOrgSettingsChanged(tx, actor, before, out, db.now())
	})
	if err != nil {
		return models.Org{}, err
	}
	return out, nil
}

// auditOrgSettingsChanged records that actor changed the organisation's
// settings from before to after, in the same transaction; nothing when
// nothing changed.
func auditOrgSettingsChanged(tx *gorm.DB, actor uuid.UUID, before, after models.Org, at time.Time) error {
	if before.OrderValueCeilingCents == after.OrderValueCeilingCents {
		return nil
	}
	return insertAudit(tx, models.AuditEntry{OrgID: after.ID, ActorID: &actor, Action: models.ActionOrgSettings,
		ObjectType: models.AuditOrg, ObjectID: after.ID,
		// In money, as the API reads and sets it.
		Before: models.AuditJSON(map[string]any{"order_value_ceiling": float64(before.OrderValueCeilingCents) / 100}),
		After:  models.AuditJSON(map[string]any{"order_value_ceiling": float64(after.OrderValueCeilingCents) / 100}), At: at})
}

// OrgByName returns the organisation with that exact name. Errors: not_found.
func (db *People) OrgByName(ctx context.Context, name string) (models.Org, error) {
	var r orgRow
	if err := db.read.WithContext(ctx).Take(&r, "name = ?", name).Error; err != nil {
		return models.Org{}, fmt.Errorf("get org by name: %w", translate(err))
	}
	return r.model(), nil
}

// OrgsNamed returns the organisations whose name equals name ignoring
// case, oldest first. New names are unique ignoring case (CreateOrg), but a
// database from before that rule may hold several. Case is folded here, by
// Unicode rules, rather than by the database: SQLite's lower() folds ASCII
// only, and both dialects must agree.
func (db *People) OrgsNamed(ctx context.Context, name string) ([]models.Org, error) {
	var rows []orgRow
	if err := db.gorm.WithContext(ctx).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("find orgs by name: %w", translate(err))
	}
	return namedLike(rows, name), nil
}

// namedLike keeps the rows named name, ignoring case.
func namedLike(rows []orgRow, name string) []models.Org {
	var out []models.Org
	for _, r := range rows {
		if strings.EqualFold(r.Name, name) {
			out = append(out, r.model())
		}
	}
	return out
}

// OrgSummary is an organisation and how many users it has.
type OrgSummary struct {
	models.Org
	Users int64
}

// Orgs lists every organisation, oldest first, with its number of users
// (active or not).
func (db *People) Orgs(ctx context.Context) ([]OrgSummary, error) {
	var rows []struct {
		ID        uuid.UUID
		Name      string
		CreatedAt time.Time
		Users     int64
	}
	err := db.gorm.WithContext(ctx).Table("orgs o").
		Select("o.id, o.name, o.created_at, (SELECT count(*) FROM users u WHERE u.org_id = o.id) AS users").
		Order("o.created_at, o.id").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", translate(err))
	}
	out := make([]OrgSummary, len(rows))
	for i, r := range rows {
		out[i] = OrgSummary{Org: models.Org{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt.UTC()}, Users: r.Users}
	}
	return out, nil
}

// CountOrgs reports how many organisations exist; demo seeding runs on zero.
func (db *People) CountOrgs(ctx context.Context) (int64, error) {
	var n int64
	if err := db.read.WithContext(ctx).Model(&orgRow{}).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count orgs: %w", translate(err))
	}
	return n, nil
}

// OrgIDs lists every organisation, for the scheduler.
func (db *People) OrgIDs(ctx context.Context) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	if err := db.read.WithContext(ctx).Model(&orgRow{}).Order("id").Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("list orgs: %w", translate(err))
	}
	return ids, nil
}

func insertUser(tx *gorm.DB, u models.User) error {
	var n int64
	if err := tx.Model(&loginRow{}).Where("email = ?", u.Email).Count(&n).Error; err != nil {
		return fmt.Errorf("check email: %w", err)
	}
	if n > 0 {
		return &models.Error{Code: models.CodeConflict, Message: "a user with this email already exists",
			Fields: []models.FieldError{{Field: "email", Code: models.CodeConflict, Message: "is already in use"}}}
	}
	if err := tx.Create(&loginRow{Email: u.Email, OrgID: u.OrgID, UserID: u.ID}).Error; err != nil {
		return fmt.Errorf("insert login: %w", translate(err))
	}
	row := newUserRow(u)
	if err := tx.Create(&row).Error; err != nil {
		return fmt.Errorf("insert user: %w", translate(err))
	}
	return nil
}

// CreateTeam creates a team. When ManagerID is set, that user must be a
// manager of the same organisation, and becomes the team's member-manager.
// Errors: conflict (name taken), invalid (manager_id).
func (db *People) CreateTeam(ctx context.Context, t models.Team) error {
	return db.transaction(ctx, func(tx *gorm.DB) error {
		if t.ManagerID != nil {
			var m userRow
			err := tx.Take(&m, "org_id = ? AND id = ?", t.OrgID, *t.ManagerID).Error
			if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && m.Role != string(models.RoleManager)) {
				return models.FieldInvalid("manager_id", "must name a manager of this organisation")
			}
			if err != nil {
				return fmt.Errorf("get manager: %w", err)
			}
		}
		var n int64
		if err := tx.Model(&teamRow{}).Where("org_id = ? AND name = ?", t.OrgID, t.Name).Count(&n).Error; err != nil {
			return fmt.Errorf("check team name: %w", err)
		}
		if n > 0 {
			return &models.Error{Code: models.CodeConflict, Message: "a team with this name already exists",
				Fields: []models.FieldError{{Field: "name", Code: models.CodeConflict, Message: "is already in use"}}}
		}
		row := teamRow{OrgID: t.OrgID, ID: t.ID, Name: t.Name, ManagerID: t.ManagerID, CreatedAt: t.CreatedAt.UTC()}
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("insert team: %w", err)
		}
		now := db.now().UTC()
		err := insertAudit(tx, models.AuditEntry{OrgID: t.OrgID, ActorID: models.ActorFrom(ctx), Action: models.ActionTeamCreate,
			ObjectType: models.AuditTeam, ObjectID: t.ID, After: models.AuditJSON(map[string]any{"name": t.Name, "manager_id": t.ManagerID}), At: now})
		if err != nil {
			return err
		}
		if t.ManagerID != nil {
			// The manager's move to the new team is a team change of
			// theirs, audited as such.
			var m userRow
			if err := tx.Take(&m, "org_id = ? AND id = ?", t.OrgID, *t.ManagerID).Error; err != nil {
				return fmt.Errorf("get manager: %w", err)
			}
			if !sameTeam(m.TeamID, &t.ID) {
				err := insertAudit(tx, models.AuditEntry{OrgID: t.OrgID, ActorID: models.ActorFrom(ctx), Action: models.ActionUserUpdate,
					ObjectType: models.AuditUser, ObjectID: m.ID, Before: models.AuditJSON(map[string]any{"team_id": m.TeamID}),
					After: models.AuditJSON(map[string]any{"team_id": t.ID}), At: now})
				if err != nil {
					return err
				}
			}
			// The manager moves to the new team; their old team is left
			// without a manager rather than pointing at someone elsewhere.
			err := tx.Model(&teamRow{}).Where("org_id = ? AND manager_id = ? AND id <> ?", t.OrgID, *t.ManagerID, t.ID).
				Update("manager_id", nil).Error
			if err != nil {
				return fmt.Errorf("unassign old team: %w", err)
			}
			err = tx.Model(&userRow{}).Where("org_id = ? AND id = ?", t.OrgID, *t.ManagerID).
				Updates(map[string]any{"team_id": t.ID, "updated_at": t.CreatedAt.UTC()}).Error
			if err != nil {
				return fmt.Errorf("assign manager: %w", err)
			}
		}
		return nil
	})
}

// Team returns one team of an organisation. Errors: not_found.
func (db *People) Team(ctx context.Context, orgID, id uuid.UUID) (models.Team, error) {
	var r teamRow
	if err := db.read.WithContext(ctx).Take(&r, "org_id = ? AND id = ?", orgID, id).Error; err != nil {
		return models.Team{}, fmt.Errorf("get team: %w", translate(err))
	}
	return r.model(), nil
}

// TeamByName returns the team with that name. Errors: not_found.
func (db *People) TeamByName(ctx context.Context, orgID uuid.UUID, name string) (models.Team, error) {
	var r teamRow
	if err := db.read.WithContext(ctx).Take(&r, "org_id = ? AND name = ?", orgID, name).Error; err != nil {
		return models.Team{}, fmt.Errorf("get team by name: %w", translate(err))
	}
	return r.model(), nil
}

// Teams lists an organisation's teams by name.
func (db *People) Teams(ctx context.Context, orgID uuid.UUID) ([]models.Team, error) {
	var rows []teamRow
	if err := db.read.WithContext(ctx).Where("org_id = ?", orgID).Order("name").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list teams: %w", translate(err))
	}
	out := make([]models.Team, len(rows))
	for i, r := range rows {
		out[i] = r.model()
	}
	return out, nil
}

// CreateUser adds a user. Errors: conflict (email taken), invalid (team_id).
func (db *People) CreateUser(ctx context.Context, u models.User) error {
	return db.transaction(ctx, func(tx *gorm.DB) error {
		if err := checkTeam(tx, u.OrgID, u.TeamID); err != nil {
			return err
		}
		if err := insertUser(tx, u); err != nil {
			return err
		}
		return insertAudit(tx, userCreated(ctx, u, db.now()))
	})
}

func checkTeam(tx *gorm.DB, orgID uuid.UUID, teamID *uuid.UUID) error {
	if teamID == nil {
		return nil
	}
	var n int64
	if err := tx.Model(&teamRow{}).Where("org_id = ? AND id = ?", orgID, *teamID).Count(&n).Error; err != nil {
		return fmt.Errorf("check team: %w", err)
	}
	if n == 0 {
		return models.FieldInvalid("team_id", "must name a team of this organisation")
	}
	return nil
}

// ReplacePasswordHash stores next as a user's password hash if the stored
// one is still prev (a login upgrading an old hash must not undo a change
// made meanwhile); otherwise it does nothing. It leaves updated_at alone:
// the user's record, as clients see it, has not changed.
func (db *People) ReplacePasswordHash(ctx context.Context, orgID, id uuid.UUID, prev, next string) error {
	err := db.gorm.WithContext(ctx).Model(&userRow{}).Where("org_id = ? AND id = ? AND password_hash = ?", orgID, id, prev).
		UpdateColumn("password_hash", next).Error
	if err != nil {
		return fmt.Errorf("replace password hash: %w", translate(err))
	}
	return nil
}

// User returns one user of an organisation. Errors: not_found.
func (db *People) User(ctx context.Context, orgID, id uuid.UUID) (models.User, error) {
	var r userRow
	if err := db.read.WithContext(ctx).Take(&r, "org_id = ? AND id = ?", orgID, id).Error; err != nil {
		return models.User{}, fmt.Errorf("get user: %w", translate(err))
	}
	return r.model(), nil
}

// UserByEmail finds a user by normalised email across organisations.
// Errors: not_found.
func (db *People) UserByEmail(ctx context.Context, email string) (models.User, error) {
	var l loginRow
	if err := db.read.WithContext(ctx).Take(&l, "email = ?", email).Error; err != nil {
		return models.User{}, fmt.Errorf("find login: %w", translate(err))
	}
	return db.User(ctx, l.OrgID, l.UserID)
}

// Users lists an organisation's users by name, or one team's when teamID is
// set.
func (db *People) Users(ctx context.Context, orgID uuid.UUID, teamID *uuid.UUID) ([]models.User, error) {
	q := db.read.WithContext(ctx).Where("org_id = ?", orgID)
	if teamID != nil {
		q = q.Where("team_id = ?", *teamID)
	}
	var rows []userRow
	if err := q.Order("name, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list users: %w", translate(err))
	}
	out := make([]models.User, len(rows))
	for i, r := range rows {
		out[i] = r.model()
	}
	return out, nil
}

// UpdateUser applies a patch. Deactivating a user revokes all their sessions
// in the same transaction, so their tokens stop working at once.
// Errors: not_found, invalid (team_id).
func (db *People) UpdateUser(ctx context.Context, orgID, id uuid.UUID, p models.UserPatch) (models.User, error) {
	var out models.User
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		var r userRow
		if err := tx.Take(&r, "org_id = ? AND id = ?", orgID, id).Error; err != nil {
			return fmt.Errorf("get user: %w", err)
		}
		if p == (models.UserPatch{}) {
			out = r.model() // nothing to change: not even updated_at
			return nil
		}
		now := db.now().UTC()
		upd := map[string]any{"updated_at": now}
		if p.Role != nil {
			upd["role"] = string(*p.Role)
			if *p.Role != models.RoleManager {
				// A demoted manager manages no team any more.
				if err := tx.Model(&teamRow{}).Where("org_id = ? AND manager_id = ?", orgID, id).Update("manager_id", nil).Error; err != nil {
					return fmt.Errorf("unassign teams: %w", err)
				}
			}
		}
		if p.Name != nil {
			upd["name"] = *p.Name
		}
		switch {
		case p.ClearTeam:
			upd["team_id"] = nil
		case p.TeamID != nil:
			if err := checkTeam(tx, orgID, p.TeamID); err != nil {
				return err
			}
			upd["team_id"] = *p.TeamID
		}
		if p.Active != nil {
			upd["active"] = *p.Active
			if !*p.Active {
				if err := revokeUserSessions(tx, orgID, id, now); err != nil {
					return err
				}
			}
		}
		if err := tx.Model(&userRow{}).Where("org_id = ? AND id = ?", orgID, id).Updates(upd).Error; err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		// Reload into a fresh row: GORM leaves a pointer field as it was
		// when the column is NULL, so reusing r would report a cleared
		// team_id as still set.
		var fresh userRow
		if err := tx.Take(&fresh, "org_id = ? AND id = ?", orgID, id).Error; err != nil {
			return fmt.Errorf("reload user: %w", err)
		}
		out = fresh.model()
		if before, after := accessChanges(r, fresh); after != nil {
			err := insertAudit(tx, models.AuditEntry{OrgID: orgID, ActorID: models.ActorFrom(ctx), Action: models.ActionUserUpdate,
				ObjectType: models.AuditUser, ObjectID: id, Before: models.AuditJSON(before), After: models.AuditJSON(after), At: now})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// accessChanges returns the audited fields of a user — those that decide
// what they may do and see: role, team, active — that differ between a
// and b, as they were and as they are; nil, nil when none does.
func accessChanges(a, b userRow) (before, after map[string]any) {
	set := func(k string, x, y any) {
		if before == nil {
			before, after = map[string]any{}, map[string]any{}
		}
		before[k], after[k] = x, y
	}
	if a.Role != b.Role {
		set("role", a.Role, b.Role)
	}
	if !sameTeam(a.TeamID, b.TeamID) {
		set("team_id", a.TeamID, b.TeamID)
	}
	if a.Active != b.Active {
		set("active", a.Active, b.Active)
	}
	return before, after
}

func sameTeam(a, b *uuid.UUID) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// userCreated is the audit entry of a new user, made by ctx's actor.
func userCreated(ctx context.Context, u models.User, now time.Time) models.AuditEntry {
	return models.AuditEntry{OrgID: u.OrgID, ActorID: models.ActorFrom(ctx), Action: models.ActionUserCreate,
		ObjectType: models.AuditUser, ObjectID: u.ID, At: now.UTC(),
		After: models.AuditJSON(map[string]any{"email": u.Email, "role": string(u.Role), "team_id": u.TeamID, "active": u.Active})}
}

// SetPassword replaces a user's password hash and, in the same
// transaction, revokes all their sessions as deactivation does (see
// UpdateUser): whoever knew the old password is signed out at once.
// Errors: not_found.
func (db *People) SetPassword(ctx context.Context, orgID, id uuid.UUID, hash string) error {
	return db.transaction(ctx, func(tx *gorm.DB) error {
		now := db.now().UTC()
		res := tx.Model(&userRow{}).Where("org_id = ? AND id = ?", orgID, id).
			Updates(map[string]any{"password_hash": hash, "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("set password: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return models.ErrNotFound
		}
		return revokeUserSessions(tx, orgID, id, now)
	})
}

// SetTeamManager makes a manager the manager of a team.
// Errors: not_found, invalid (manager_id).
func (db *People) SetTeamManager(ctx context.Context, orgID, teamID, managerID uuid.UUID) error {
	return db.transaction(ctx, func(tx *gorm.DB) error {
		var m userRow
		if err := tx.Take(&m, "org_id = ? AND id = ?", orgID, managerID).Error; err != nil {
			return fmt.Errorf("get manager: %w", err)
		}
		if m.Role != string(models.RoleManager) {
			return models.FieldInvalid("manager_id", "must name a manager")
		}
		var team teamRow
		if err := tx.Take(&team, "org_id = ? AND id = ?", orgID, teamID).Error; err != nil {
			return fmt.Errorf("get team: %w", err)
		}
		if sameTeam(team.ManagerID, &managerID) {
			return nil
		}
		res := tx.Model(&teamRow{}).Where("org_id = ? AND id = ?", orgID, teamID).Update("manager_id", managerID)
		if res.Error != nil {
			return fmt.Errorf("set team manager: %w", res.Error)
		}
		return insertAudit(tx, models.AuditEntry{OrgID: orgID, ActorID: models.ActorFrom(ctx), Action: models.ActionTeamManager,
			ObjectType: models.AuditTeam, ObjectID: teamID, Before: models.AuditJSON(map[string]any{"manager_id": team.ManagerID}),
			After: models.AuditJSON(map[string]any{"manager_id": managerID}), At: db.now().UTC()})
	})
}
