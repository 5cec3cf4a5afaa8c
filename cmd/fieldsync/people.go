package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/store"
)

// openCurrent opens the database of a command that works on people who
// exist already: it creates no SQLite file, migrates nothing, and refuses a
// schema behind this build rather than fail halfway.
func openCurrent(ctx context.Context, dbURL string) (*store.DB, error) {
	st, err := store.ReadMigrationStatus(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	if st.Behind() {
		return nil, fmt.Errorf("the schema is at version %d of %d; run `fieldsync migrate up` first", st.Current, st.Latest)
	}
	return store.Open(ctx, dbURL, store.Options{})
}

// findUser finds the user of org with that email (normalised as at
// sign-in). Users of other organisations are not found.
func findUser(ctx context.Context, db *store.DB, org models.Org, email string) (models.User, error) {
	email = models.NormalizeEmail(email)
	u, err := db.People().UserByEmail(ctx, email)
	if models.ErrorCode(err) == models.CodeNotFound || (err == nil && u.OrgID != org.ID) {
		return models.User{}, fmt.Errorf("no user %s in %s", email, org.Name)
	}
	return u, err
}

func orgListCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	c := orgList.command()
	dbURL, _ := openDB(ctx, c.fs, getenv)
	if err := c.parse(args, stdout); err != nil {
		return ignoreHelp(err)
	}
	db, err := openCurrent(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	orgs, err := db.People().Orgs(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED\tUSERS")
	for _, o := range orgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", o.ID, o.Name, o.CreatedAt.UTC().Format(time.RFC3339), o.Users)
	}
	return tw.Flush()
}

func userListCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	c := userList.command()
	orgRef := c.fs.String("org", "", "organisation id or name")
	teamRef := c.fs.String("team", "", "only this team's members (team id or name)")
	role := c.fs.String("role", "", "only users of this role: rep, manager or admin")
	dbURL, _ := openDB(ctx, c.fs, getenv)
	if err := c.parse(args, stdout); err != nil {
		return ignoreHelp(err)
	}
	if *orgRef == "" {
		return c.usageErr("--org is required")
	}
	if *role != "" && !models.Role(*role).Valid() {
		return c.usageErr("--role must be rep, manager or admin")
	}
	db, err := openCurrent(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	org, err := findOrg(ctx, db, *orgRef)
	if err != nil {
		return err
	}
	teams, err := db.People().Teams(ctx, org.ID)
	if err != nil {
		return err
	}
	var teamID *uuid.UUID
	if *teamRef != "" {
		t, err := findTeam(ctx, db, org.ID, *teamRef)
		if models.ErrorCode(err) == models.CodeNotFound {
			return fmt.Errorf("no team %q in %s", *teamRef, org.Name)
		} else if err != nil {
			return err
		}
		teamID = &t.ID
	}
	users, err := db.People().Users(ctx, org.ID, teamID)
	if err != nil {
		return err
	}
	// By email, which is unique: the same order on both dialects, whose
	// collations differ.
	slices.SortFunc(users, func(a, b models.User) int { return cmp.Compare(a.Email, b.Email) })
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tNAME\tROLE\tTEAM\tACTIVE\tID")
	for _, u := range users {
		if *role != "" && u.Role != models.Role(*role) {
			continue
		}
		team := "-"
		if u.TeamID != nil {
			team = u.TeamID.String()
			for _, t := range teams {
				if t.ID == *u.TeamID {
					team = t.Name
				}
			}
		}
		active := "yes"
		if !u.Active {
			active = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Email, u.Name, u.Role, team, active, u.ID)
	}
	return tw.Flush()
}

func userDeactivateCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	c := userDeactivate.command()
	orgRef := c.fs.String("org", "", "organisation id or name")
	email := c.fs.String("email", "", "the user's email")
	dbURL, _ := openDB(ctx, c.fs, getenv)
	if err := c.parse(args, stdout); err != nil {
		return ignoreHelp(err)
	}
	if *orgRef == "" || *email == "" {
		return c.usageErr("--org and --email are required")
	}
	db, err := openCurrent(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	org, err := findOrg(ctx, db, *orgRef)
	if err != nil {
		return err
	}
	u, err := findUser(ctx, db, org, *email)
	if err != nil {
		return err
	}
	// The API's PATCH /v1/users/{id} {"active": false}: UpdateUser ends
	// the user's sessions in the same transaction.
	off := false
	if _, err := db.People().UpdateUser(ctx, org.ID, u.ID, models.UserPatch{Active: &off}); err != nil {
		return fmt.Errorf("deactivate user: %w", err)
	}
	fmt.Fprintf(stdout, "deactivated %s %s (%s); their sessions are ended\n", u.Role, u.Email, u.ID)
	return nil
}

func userResetPasswordCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	c := userResetPw.command()
	orgRef := c.fs.String("org", "", "organisation id or name")
	email := c.fs.String("email", "", "the user's email")
	dbURL, _ := openDB(ctx, c.fs, getenv)
	if err := c.parse(args, stdout); err != nil {
		return ignoreHelp(err)
	}
	if *orgRef == "" || *email == "" {
		return c.usageErr("--org and --email are required")
	}
	db, err := openCurrent(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	org, err := findOrg(ctx, db, *orgRef)
	if err != nil {
		return err
	}
	u, err := findUser(ctx, db, org, *email)
	if err != nil {
		return err
	}
	hash, err := newPasswordHash(c, getenv, stdin)
	if err != nil {
		return err
	}
	if err := db.People().SetPassword(ctx, org.ID, u.ID, hash); err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	fmt.Fprintf(stdout, "reset the password of %s %s (%s); their sessions are ended\n", u.Role, u.Email, u.ID)
	return nil
}
