package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/store"
)

// openDB adds --database-url to fs and returns an opener of that database
// for an admin command.
func openDB(ctx context.Context, fs *flag.FlagSet, getenv func(string) string) (*string, func() (*store.DB, error)) {
	def := getenv("FIELDSYNC_DATABASE_URL")
	if def == "" {
		def = store.DefaultURL
	}
	u := fs.String("database-url", def, "database URL (FIELDSYNC_DATABASE_URL)")
	return u, func() (*store.DB, error) {
		return store.Open(ctx, *u, store.Options{})
	}
}

var migrateSub = sub{"migrate", "[up|status] [--database-url URL]"}

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	c := migrateSub.command()
	action := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	dbURL, open := openDB(ctx, c.fs, getenv)
	if err := c.parse(args, stdout); err != nil {
		return ignoreHelp(err)
	}
	if action != "up" && action != "status" {
		return c.usageErr("unknown action %q (want up or status)", action)
	}
	if action == "status" {
		return migrateStatus(ctx, *dbURL, stdout)
	}
	db, err := open()
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %d migration(s)\n", len(applied))
	st, err := db.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	printStatus(stdout, st)
	return nil
}

// migrateStatus reads the schema's version without changing the database
// (store.ReadMigrationStatus): a misspelt SQLite path is an error, not a
// new file. A schema behind this build is errBehind, exit status 3.
func migrateStatus(ctx context.Context, dbURL string, stdout io.Writer) error {
	st, err := store.ReadMigrationStatus(ctx, dbURL)
	if err != nil {
		return err
	}
	printStatus(stdout, st)
	if st.Behind() {
		return errBehind
	}
	return nil
}

func printStatus(w io.Writer, st store.MigrationStatus) {
	state := "current"
	switch {
	case st.Behind():
		state = "behind"
	case st.Current > st.Latest:
		state = "ahead of this build"
	}
	fmt.Fprintf(w, "schema version %d of %d (%s)\n", st.Current, st.Latest, state)
}

func ignoreHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// readPassword takes FIELDSYNC_ADMIN_PASSWORD or the first line of stdin.
func readPassword(c *command, getenv func(string) string, stdin io.Reader) (string, error) {
	if pw := getenv("FIELDSYNC_ADMIN_PASSWORD"); pw != "" {
		return pw, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", c.usageErr("no password: set FIELDSYNC_ADMIN_PASSWORD or pipe it on stdin")
	}
	return pw, nil
}

var (
	orgCreate = sub{"org create", "--name N --admin-email E [--admin-name NAME]"}
	orgList   = sub{"org list", ""}
	orgGroup  = group{name: "org", subs: []sub{orgCreate, orgList}}

	userCreate     = sub{"user create", "--org ORG --email E --role rep|manager|admin [--team T] [--name NAME]"}
	userList       = sub{"user list", "--org ORG [--team T] [--role rep|manager|admin]"}
	userDeactivate = sub{"user deactivate", "--org ORG --email E"}
	userResetPw    = sub{"user reset-password", "--org ORG --email E"}
	userGroup      = group{name: "user", subs: []sub{userCreate, userList, userDeactivate, userResetPw}}
)

func orgCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	name, err := orgGroup.pick(args, stdout)
	if err != nil {
		return ignoreHelp(err)
	}
	if name == "list" {
		return orgListCmd(ctx, args[1:], getenv, stdout)
	}
	return orgCreateCmd(ctx, args[1:], getenv, stdin, stdout)
}

func userCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	name, err := userGroup.pick(args, stdout)
	if err != nil {
		return ignoreHelp(err)
	}
	switch name {
	case "list":
		return userListCmd(ctx, args[1:], getenv, stdout)
	case "deactivate":
		return userDeactivateCmd(ctx, args[1:], getenv, stdout)
	case "reset-password":
		return userResetPasswordCmd(ctx, args[1:], getenv, stdin, stdout)
	}
	return userCreateCmd(ctx, args[1:], getenv, stdin, stdout)
}

func orgCreateCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	c := orgCreate.command()
	name := c.fs.String("name", "", "organisation name")
	email := c.fs.String("admin-email", "", "the first admin's email")
	adminName := c.fs.String("admin-name", "", "the first admin's name (default: the email)")
	_, open := openDB(ctx, c.fs, getenv)
	if err := c.parse(args, stdout); err != nil {
		return ignoreHelp(err)
	}
	org := models.Org{ID: uuid.New(), Name: strings.TrimSpace(*name), CreatedAt: time.Now().UTC()}
	if err := models.ValidateName("--name", org.Name); err != nil {
		return c.invalid(err)
	}
	admin, err := newUser(c, "--admin-email", org.ID, *email, *adminName, models.RoleAdmin, getenv, stdin)
	if err != nil {
		return err
	}
	db, err := open()
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	if err := db.People().CreateOrg(ctx, org, admin); err != nil {
		return fmt.Errorf("create org: %w", err)
	}
	fmt.Fprintf(stdout, "created organisation %q (%s) with admin %s (%s)\n", org.Name, org.ID, admin.Email, admin.ID)
	return nil
}

func userCreateCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	c := userCreate.command()
	orgRef := c.fs.String("org", "", "organisation id or name")
	email := c.fs.String("email", "", "the user's email")
	name := c.fs.String("name", "", "the user's name (default: the email)")
	role := c.fs.String("role", "", "rep, manager or admin")
	teamRef := c.fs.String("team", "", "team id or name; a missing team named here is created")
	_, open := openDB(ctx, c.fs, getenv)
	if err := c.parse(args, stdout); err != nil {
		return ignoreHelp(err)
	}
	if *orgRef == "" {
		return c.usageErr("--org is required")
	}
	if !models.Role(*role).Valid() {
		return c.usageErr("--role must be rep, manager or admin")
	}
	db, err := open()
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	org, err := findOrg(ctx, db, *orgRef)
	if err != nil {
		return err
	}
	u, err := newUser(c, "--email", org.ID, *email, *name, models.Role(*role), getenv, stdin)
	if err != nil {
		return err
	}
	var team *models.Team
	if *teamRef != "" {
		t, err := findTeam(ctx, db, org.ID, *teamRef)
		if models.ErrorCode(err) == models.CodeNotFound {
			t = models.Team{OrgID: org.ID, ID: uuid.New(), Name: *teamRef, CreatedAt: time.Now().UTC()}
			if err := db.People().CreateTeam(ctx, t); err != nil {
				return fmt.Errorf("create team: %w", err)
			}
			fmt.Fprintf(stdout, "created team %q (%s)\n", t.Name, t.ID)
		} else if err != nil {
			return err
		}
		team = &t
		u.TeamID = &t.ID
	}
	if err := db.People().CreateUser(ctx, u); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	// A manager named with a team that has none becomes its manager.
	if team != nil && u.Role == models.RoleManager && team.ManagerID == nil {
		if err := db.People().SetTeamManager(ctx, org.ID, team.ID, u.ID); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "created %s %s (%s)\n", u.Role, u.Email, u.ID)
	return nil
}

// newUser validates a new user of c (emailFlag names the email's flag),
// reads their password and hashes it.
func newUser(c *command, emailFlag string, orgID uuid.UUID, email, name string, role models.Role, getenv func(string) string, stdin io.Reader) (models.User, error) {
	email = models.NormalizeEmail(email)
	if err := models.ValidateEmail(emailFlag, email); err != nil {
		return models.User{}, c.invalid(err)
	}
	if strings.TrimSpace(name) == "" {
		name = email
	}
	hash, err := newPasswordHash(c, getenv, stdin)
	if err != nil {
		return models.User{}, err
	}
	now := time.Now().UTC()
	return models.User{
		OrgID: orgID, ID: uuid.New(), Email: email, Name: strings.TrimSpace(name), Role: role,
		Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	}, nil
}

// newPasswordHash reads a new password (readPassword), checks it as the
// API checks one, and hashes it.
func newPasswordHash(c *command, getenv func(string) string, stdin io.Reader) (string, error) {
	pw, err := readPassword(c, getenv, stdin)
	if err != nil {
		return "", err
	}
	if err := models.ValidatePassword("password", pw); err != nil {
		return "", c.invalid(err)
	}
	return auth.NewPasswords(auth.DefaultArgon2).Hash(pw)
}

// findOrg finds the organisation ref names: its id, or its name ignoring
// case. A name several organisations share (a database from before names
// were unique) is refused with their ids, which are always unambiguous.
func findOrg(ctx context.Context, db *store.DB, ref string) (models.Org, error) {
	if id, err := uuid.Parse(ref); err == nil {
		o, err := db.People().Org(ctx, id)
		if models.ErrorCode(err) == models.CodeNotFound {
			return o, fmt.Errorf("no organisation with id %s", id)
		}
		return o, err
	}
	orgs, err := db.People().OrgsNamed(ctx, ref)
	if err != nil {
		return models.Org{}, err
	}
	switch len(orgs) {
	case 0:
		return models.Org{}, fmt.Errorf("no organisation with id or name %q", ref)
	case 1:
		return orgs[0], nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "--org %q names %d organisations; name one by id:", ref, len(orgs))
	for _, o := range orgs {
		fmt.Fprintf(&b, "\n  %s  %q, created %s", o.ID, o.Name, o.CreatedAt.Format(time.RFC3339))
	}
	return models.Org{}, errors.New(b.String())
}

func findTeam(ctx context.Context, db *store.DB, orgID uuid.UUID, ref string) (models.Team, error) {
	if id, err := uuid.Parse(ref); err == nil {
		return db.People().Team(ctx, orgID, id)
	}
	return db.People().TeamByName(ctx, orgID, ref)
}
