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

// openDB opens the configured database for an admin command.
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

func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	action := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	_, open := openDB(ctx, fs, getenv)
	if err := parseFlags(fs, args, stderr); err != nil {
		return ignoreHelp(err)
	}
	if action != "up" && action != "status" {
		return usageError{fmt.Sprintf("migrate: unknown action %q (want up or status)", action)}
	}
	db, err := open()
	if err != nil {
		return err
	}
	defer db.Close()
	if action == "up" {
		applied, err := db.Migrate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "applied %d migration(s)\n", len(applied))
	}
	st, err := db.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	state := "current"
	if st.Behind() {
		state = "behind"
	}
	fmt.Fprintf(stdout, "schema version %d of %d (%s)\n", st.Current, st.Latest, state)
	return nil
}

func ignoreHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// readPassword takes FIELDSYNC_ADMIN_PASSWORD or the first line of stdin.
func readPassword(getenv func(string) string, stdin io.Reader) (string, error) {
	if pw := getenv("FIELDSYNC_ADMIN_PASSWORD"); pw != "" {
		return pw, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usageError{"no password: set FIELDSYNC_ADMIN_PASSWORD or pipe it on stdin"}
	}
	return pw, nil
}

func orgCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return usageError{"org: want `org create --name N --admin-email E`"}
	}
	fs := flag.NewFlagSet("org create", flag.ContinueOnError)
	name := fs.String("name", "", "organisation name")
	email := fs.String("admin-email", "", "the first admin's email")
	adminName := fs.String("admin-name", "", "the first admin's name (default: the email)")
	_, open := openDB(ctx, fs, getenv)
	if err := parseFlags(fs, args[1:], stderr); err != nil {
		return ignoreHelp(err)
	}
	org := models.Org{ID: uuid.New(), Name: strings.TrimSpace(*name), CreatedAt: time.Now().UTC()}
	if err := models.ValidateName("--name", org.Name); err != nil {
		return usageError{err.Error()}
	}
	admin, err := newUser(org.ID, *email, *adminName, models.RoleAdmin, nil, getenv, stdin)
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

func userCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return usageError{"user: want `user create --org ORG --email E --role rep|manager|admin [--team T]`"}
	}
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	orgRef := fs.String("org", "", "organisation id or exact name")
	email := fs.String("email", "", "the user's email")
	name := fs.String("name", "", "the user's name (default: the email)")
	role := fs.String("role", "", "rep, manager or admin")
	teamRef := fs.String("team", "", "team id or name; a missing team named here is created")
	_, open := openDB(ctx, fs, getenv)
	if err := parseFlags(fs, args[1:], stderr); err != nil {
		return ignoreHelp(err)
	}
	if *orgRef == "" {
		return usageError{"--org is required"}
	}
	if !models.Role(*role).Valid() {
		return usageError{"--role must be rep, manager or admin"}
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
	u, err := newUser(org.ID, *email, *name, models.Role(*role), nil, getenv, stdin)
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

func newUser(orgID uuid.UUID, email, name string, role models.Role, team *uuid.UUID, getenv func(string) string, stdin io.Reader) (models.User, error) {
	email = models.NormalizeEmail(email)
	if err := models.ValidateEmail("--email", email); err != nil {
		return models.User{}, usageError{err.Error()}
	}
	if strings.TrimSpace(name) == "" {
		name = email
	}
	pw, err := readPassword(getenv, stdin)
	if err != nil {
		return models.User{}, err
	}
	if err := models.ValidatePassword("password", pw); err != nil {
		return models.User{}, usageError{err.Error()}
	}
	hash, err := auth.NewPasswords(auth.DefaultArgon2).Hash(pw)
	if err != nil {
		return models.User{}, err
	}
	now := time.Now().UTC()
	return models.User{
		OrgID: orgID, ID: uuid.New(), Email: email, Name: strings.TrimSpace(name), Role: role, TeamID: team,
		Active: true, TimeZone: "UTC", PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	}, nil
}

func findOrg(ctx context.Context, db *store.DB, ref string) (models.Org, error) {
	if id, err := uuid.Parse(ref); err == nil {
		return db.People().Org(ctx, id)
	}
	o, err := db.People().OrgByName(ctx, ref)
	if models.ErrorCode(err) == models.CodeNotFound {
		return o, fmt.Errorf("no organisation with id or name %q", ref)
	}
	return o, err
}

func findTeam(ctx context.Context, db *store.DB, orgID uuid.UUID, ref string) (models.Team, error) {
	if id, err := uuid.Parse(ref); err == nil {
		return db.People().Team(ctx, orgID, id)
	}
	return db.People().TeamByName(ctx, orgID, ref)
}
