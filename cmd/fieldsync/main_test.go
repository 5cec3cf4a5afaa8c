package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
)

// syncBuffer is a bytes.Buffer safe to read while a server goroutine
// writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a fake environment.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// invocation is one run of the program.
type invocation struct {
	stdout, stderr string
	err            error
}

func invoke(t *testing.T, ctx context.Context, e env, stdin string, args ...string) invocation {
	t.Helper()
	var out, errOut syncBuffer
	err := run(ctx, args, e.get, strings.NewReader(stdin), &out, &errOut)
	return invocation{stdout: out.String(), stderr: errOut.String(), err: err}
}

func TestVersion(t *testing.T) {
	want := fmt.Sprintf(" schema %d\n", store.SchemaVersion())
	for _, arg := range []string{"version", "--version", "-v"} {
		t.Run(arg, func(t *testing.T) {
			got := invoke(t, context.Background(), env{}, "", arg)
			if got.err != nil {
				t.Fatal(got.err)
			}
			if got.stdout != versionLine()+"\n" || !strings.HasPrefix(got.stdout, "fieldsync ") || !strings.HasSuffix(got.stdout, want) {
				t.Errorf("stdout %q, want versionLine() %q, ending %q", got.stdout, versionLine(), want)
			}
		})
	}
}

// TestFormatVersion: the module version from the build info, else the
// version -ldflags set, else (devel); the VCS revision, time and state
// when the build recorded them; the schema version always.
func TestFormatVersion(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "-trimpath", Value: "true"},
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "abc1234def5678abc1234def5678abc1234def56"},
		{Key: "vcs.time", Value: "2026-12-05T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	clean := slices.Clone(vcs)
	clean[4].Value = "false"
	info := func(v string, settings []debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/fieldsync/fieldsync", Version: v}, Settings: settings}
	}
	tests := []struct {
		name    string
		info    *debug.BuildInfo
		ldflags string
		want    string
	}{
		{"a module version, modified", info("v1.2.3", vcs), "", "fieldsync v1.2.3 (rev abc1234def56, 2026-12-05T10:00:00Z, modified) schema 5"},
		{"a module version wins over -ldflags", info("v1.2.3", clean), "9.9.9", "fieldsync v1.2.3 (rev abc1234def56, 2026-12-05T10:00:00Z) schema 5"},
		{"a devel build falls back to -ldflags", info("(devel)", nil), "1.2.3", "fieldsync 1.2.3 schema 5"},
		{"a devel build without -ldflags", info("(devel)", clean), "", "fieldsync (devel) (rev abc1234def56, 2026-12-05T10:00:00Z) schema 5"},
		{"no module version at all", info("", nil), "", "fieldsync (devel) schema 5"},
		{"no build info", nil, "1.0.0", "fieldsync 1.0.0 schema 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatVersion(tt.info, tt.ldflags, 5); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestUsageErrors drives command-line mistakes through run and report, as
// the shell sees them: exit status 2, one line naming the command and the
// mistake, then that command's own usage; never the message twice, never
// the whole program's usage for a subcommand's mistake.
func TestUsageErrors(t *testing.T) {
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "x.db")
	e := env{"FIELDSYNC_DATABASE_URL": dbURL, "FIELDSYNC_ADMIN_PASSWORD": "long-enough-pw"}
	tests := []struct {
		name  string
		args  []string
		line  string // the first line of stderr starts with this
		usage string // the usage that follows it starts with this
	}{
		{"no command", nil, "fieldsync: no command given", "usage: fieldsync <command>"},
		{"unknown command", []string{"frobnicate"}, `fieldsync: unknown command "frobnicate"`, "usage: fieldsync <command>"},
		{"org without a subcommand", []string{"org"}, "fieldsync org: want a subcommand", "usage:\n  fieldsync org create"},
		{"org create without --name", []string{"org", "create", "--admin-email", "a@acme.test"},
			"fieldsync org create: --name is required", "usage: fieldsync org create --name N"},
		{"org create without --admin-email", []string{"org", "create", "--name", "Acme"},
			"fieldsync org create: --admin-email is required", "usage: fieldsync org create --name N"},
		{"org create with a bad email", []string{"org", "create", "--name", "Acme", "--admin-email", "acme"},
			"fieldsync org create: --admin-email is not an email address", "usage: fieldsync org create --name N"},
		{"org create with an unknown flag", []string{"org", "create", "--name", "Acme", "--colour", "red"},
			"fieldsync org create: flag provided but not defined: -colour", "usage: fieldsync org create --name N"},
		{"org create with a stray argument", []string{"org", "create", "--name", "Acme", "--admin-email", "a@acme.test", "extra"},
			`fieldsync org create: unexpected argument "extra"`, "usage: fieldsync org create --name N"},
		{"user with an unknown subcommand", []string{"user", "delete"}, `fieldsync user: unknown subcommand "delete"`, "usage:\n  fieldsync user create"},
		{"user create without --org", []string{"user", "create", "--email", "r@acme.test", "--role", "rep"},
			"fieldsync user create: --org is required", "usage: fieldsync user create --org ORG"},
		{"user create with a bad role", []string{"user", "create", "--org", "Acme", "--email", "r@acme.test", "--role", "boss"},
			"fieldsync user create: --role must be rep, manager or admin", "usage: fieldsync user create --org ORG"},
		{"migrate with an unknown action", []string{"migrate", "down"},
			`fieldsync migrate: unknown action "down" (want up or status)`, "usage: fieldsync migrate [up|status]"},
		{"serve with a bad log format", []string{"serve", "--demo", "--log-format", "xml"},
			`fieldsync serve: log-format: want json or text, got "xml"`, "usage: fieldsync serve [--demo] [flags]"},
		{"serve with an unknown flag", []string{"serve", "--colour", "red"},
			"fieldsync serve: flag provided but not defined: -colour", "usage: fieldsync serve [--demo] [flags]"},
		{"bench with a bad size", []string{"bench", "--batch-size", "0"},
			"fieldsync bench: sizes must be positive; --batch-size and --pull-limit at most 1000", "usage: fieldsync bench [flags]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := invoke(t, context.Background(), e, "", tt.args...)
			var ue usageError
			if !errors.As(got.err, &ue) {
				t.Fatalf("err = %v, want a usage error", got.err)
			}
			if got.stderr != "" {
				t.Errorf("run wrote to stderr itself: %q", got.stderr)
			}
			var out bytes.Buffer
			if code := report(got.err, &out); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			line, rest, _ := strings.Cut(out.String(), "\n")
			if !strings.HasPrefix(line, tt.line) {
				t.Errorf("first line %q, want it to start %q", line, tt.line)
			}
			if !strings.HasPrefix(rest, tt.usage) {
				t.Errorf("after the first line:\n%s\nwant the usage starting %q", rest, tt.usage)
			}
			msg := strings.TrimPrefix(tt.line, "fieldsync")
			if n := strings.Count(out.String(), msg[strings.Index(msg, ": ")+2:]); n != 1 {
				t.Errorf("the message appears %d times:\n%s", n, out.String())
			}
			if !strings.HasPrefix(tt.line, "fieldsync:") && strings.Contains(rest, "commands:") {
				t.Errorf("a subcommand's mistake printed the program's usage:\n%s", rest)
			}
		})
	}
	// None of those created anything.
	if _, err := os.Stat(strings.TrimPrefix(dbURL, "sqlite:")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused command created the database: %v", err)
	}
	var out bytes.Buffer
	if code := report(errors.New("database down"), &out); code != 1 || out.String() != "fieldsync: database down\n" {
		t.Errorf("a plain error: status %d, printed %q; want 1 and one line", code, out.String())
	}
	if code := report(nil, &out); code != 0 {
		t.Errorf("no error: status %d, want 0", code)
	}
}

// TestHelp: -h prints the command's usage on stdout and succeeds.
func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "usage: fieldsync <command>"},
		{[]string{"org", "create", "-h"}, "usage: fieldsync org create --name N"},
		{[]string{"user", "create", "--help"}, "usage: fieldsync user create --org ORG"},
		{[]string{"migrate", "status", "-h"}, "usage: fieldsync migrate [up|status]"},
		{[]string{"serve", "-h"}, "usage: fieldsync serve [--demo] [flags]"},
	}
	for _, tt := range tests {
		got := invoke(t, context.Background(), env{}, "", tt.args...)
		if got.err != nil {
			t.Errorf("%v: %v", tt.args, got.err)
		}
		if !strings.HasPrefix(got.stdout, tt.want) || got.stderr != "" {
			t.Errorf("%v: stdout %q, stderr %q; want the usage on stdout", tt.args, got.stdout, got.stderr)
		}
	}
}

func TestOrgAndUserCreate(t *testing.T) {
	ctx := context.Background()
	dbURL := storetest.URL(t)
	base := env{"FIELDSYNC_DATABASE_URL": dbURL}

	got := invoke(t, ctx, env{"FIELDSYNC_DATABASE_URL": dbURL, "FIELDSYNC_ADMIN_PASSWORD": "acme-admin-pw"}, "",
		"org", "create", "--name", "Acme", "--admin-email", "A@Acme.Test")
	if got.err != nil {
		t.Fatalf("org create: %v", got.err)
	}
	if !strings.Contains(got.stdout, `created organisation "Acme"`) || !strings.Contains(got.stdout, "a@acme.test") {
		t.Errorf("org create printed %q", got.stdout)
	}

	// The password comes from stdin when the environment has none.
	got = invoke(t, ctx, base, "rep-password-1\n", "user", "create", "--org", "Acme", "--email", "r@acme.test", "--role", "rep", "--team", "East")
	if got.err != nil {
		t.Fatalf("user create: %v", got.err)
	}
	for _, want := range []string{`created team "East"`, "created rep r@acme.test"} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("user create printed %q, want %q", got.stdout, want)
		}
	}
	// A manager named with the now existing team becomes its manager.
	got = invoke(t, ctx, base, "manager-password-1\r\n", "user", "create", "--org", "Acme", "--email", "m@acme.test", "--role", "manager", "--team", "East", "--name", "Mia Manager")
	if got.err != nil {
		t.Fatalf("user create manager: %v", got.err)
	}
	if strings.Contains(got.stdout, "created team") {
		t.Errorf("the second user create made the team again: %q", got.stdout)
	}

	// Each refusal below that gets as far as hashing costs a production
	// bcrypt hash (seconds under -race), so the list is kept short; the
	// store's tests cover the rules themselves.
	refusals := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"duplicate email", "another-password\n", []string{"user", "create", "--org", "Acme", "--email", "R@acme.test", "--role", "rep"}, "already exists"},
		{"unknown org", "another-password\n", []string{"user", "create", "--org", "Nope Inc", "--email", "x@acme.test", "--role", "rep"}, `"Nope Inc"`},
		{"no password", "", []string{"user", "create", "--org", "Acme", "--email", "x@acme.test", "--role", "rep"}, "FIELDSYNC_ADMIN_PASSWORD"},
		{"short password", "short\n", []string{"user", "create", "--org", "Acme", "--email", "x@acme.test", "--role", "rep"}, "at least 10"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			got := invoke(t, ctx, base, tt.stdin, tt.args...)
			if got.err == nil || !strings.Contains(got.err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %s", got.err, tt.want)
			}
		})
	}

	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	org, err := db.People().OrgByName(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	team, err := db.People().TeamByName(ctx, org.ID, "East")
	if err != nil {
		t.Fatal(err)
	}
	pw := auth.NewPasswords(auth.TestArgon2)
	users := []struct {
		email, password string
		role            models.Role
		team            bool
	}{
		{"a@acme.test", "acme-admin-pw", models.RoleAdmin, false},
		{"r@acme.test", "rep-password-1", models.RoleRep, true},
		{"m@acme.test", "manager-password-1", models.RoleManager, true},
	}
	for _, want := range users {
		u, err := db.People().UserByEmail(ctx, want.email)
		if err != nil {
			t.Errorf("%s: %v", want.email, err)
			continue
		}
		if u.OrgID != org.ID || u.Role != want.role || !u.Active {
			t.Errorf("%s: %+v", want.email, u)
		}
		if want.team != (u.TeamID != nil && *u.TeamID == team.ID) {
			t.Errorf("%s: team %v, want in East = %v", want.email, u.TeamID, want.team)
		}
		if ok, _ := pw.Check(u.PasswordHash, want.password); !ok {
			t.Errorf("%s: the stored hash does not match the password given", want.email)
		}
	}
	if m, _ := db.People().UserByEmail(ctx, "m@acme.test"); team.ManagerID == nil || *team.ManagerID != m.ID {
		t.Errorf("East's manager = %v, want m@acme.test %s", team.ManagerID, m.ID)
	}

	got = invoke(t, ctx, base, "", "migrate", "status")
	if got.err != nil {
		t.Fatal(got.err)
	}
	if !strings.Contains(got.stdout, "(current)") {
		t.Errorf("migrate status printed %q, want current", got.stdout)
	}
}

func TestMigrateCommand(t *testing.T) {
	ctx := context.Background()
	dbURL := storetest.URL(t)
	if d, path, _ := store.ParseURL(dbURL); d == store.SQLite {
		// migrate status opens no file that is not there (see
		// TestMigrateStatus); an empty file is an empty database.
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	latest := fmt.Sprint(store.SchemaVersion())
	// Migrations are numbered by branch and may leave gaps until every
	// branch is merged: a fresh database applies as many as there are.
	files, err := filepath.Glob("../../store/migrations/sqlite/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("list migrations: %v", err)
	}
	count := fmt.Sprint(len(files))
	steps := []struct {
		args   []string
		want   []string
		status int
	}{
		{[]string{"migrate", "status", "--database-url", dbURL}, []string{"schema version 0 of " + latest + " (behind)"}, 3},
		{[]string{"migrate", "--database-url", dbURL}, []string{"applied " + count + " migration(s)", "(current)"}, 0},
		{[]string{"migrate", "up", "--database-url", dbURL}, []string{"applied 0 migration(s)", "(current)"}, 0},
		{[]string{"migrate", "status", "--database-url", dbURL}, []string{"schema version " + latest + " of " + latest + " (current)"}, 0},
	}
	for _, s := range steps {
		got := invoke(t, ctx, env{}, "", s.args...)
		if code := report(got.err, io.Discard); code != s.status {
			t.Fatalf("%v: exit status %d (%v), want %d", s.args[:2], code, got.err, s.status)
		}
		for _, w := range s.want {
			if !strings.Contains(got.stdout, w) {
				t.Errorf("%v printed %q, want %q", s.args[:2], got.stdout, w)
			}
		}
	}
	got := invoke(t, ctx, env{}, "", "migrate", "status", "--database-url", "mysql://nope")
	if got.err == nil || report(got.err, io.Discard) != 1 {
		t.Errorf("a bad database url: err %v, want a runtime error", got.err)
	}
}

// TestMigrateStatus: status reads and never writes. A misspelt SQLite path
// is an error naming it, not a new database; a schema behind this build
// exits 3 and stays behind.
func TestMigrateStatus(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "fieldsync.bd")
	got := invoke(t, ctx, env{"FIELDSYNC_DATABASE_URL": "sqlite:" + missing}, "", "migrate", "status")
	if code := report(got.err, io.Discard); code != 1 || !strings.Contains(got.err.Error(), missing) {
		t.Errorf("a missing SQLite file: status %d, err %v; want 1 and an error naming %s", code, got.err, missing)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("migrate status created %s: %v", missing, err)
	}

	// A schema two migrations behind.
	dbURL := storetest.MigratedURL(t)
	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	latest := store.SchemaVersion()
	// Versions need not be consecutive: forget the two newest applied.
	var versions []int64
	if err := db.Gorm().Raw("SELECT DISTINCT version_id FROM goose_db_version WHERE version_id > 0 ORDER BY version_id DESC").Scan(&versions).Error; err != nil || len(versions) < 3 {
		t.Fatalf("applied versions %v (%v)", versions, err)
	}
	behind := versions[2]
	if err := db.Gorm().Exec("DELETE FROM goose_db_version WHERE version_id > ?", behind).Error; err != nil {
		t.Fatal(err)
	}
	for range 2 { // and the first status changed nothing
		got = invoke(t, ctx, env{"FIELDSYNC_DATABASE_URL": dbURL}, "", "migrate", "status")
		var out bytes.Buffer
		if code := report(got.err, &out); code != 3 {
			t.Errorf("behind: exit status %d (%v), want 3", code, got.err)
		}
		if want := fmt.Sprintf("schema version %d of %d (behind)\n", behind, latest); got.stdout != want {
			t.Errorf("behind: stdout %q, want %q", got.stdout, want)
		}
		if want := "fieldsync migrate status: the schema is behind this build; run `fieldsync migrate up`\n"; out.String() != want {
			t.Errorf("behind: stderr %q, want %q", out.String(), want)
		}
	}
}

const testSecret = "cmd-test-secret-cmd-test-secret-0123456"

func TestServeRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tests := []struct {
		name  string
		env   env
		args  []string
		want  string
		usage bool
	}{
		{"no-migrate on an empty database", env{"FIELDSYNC_JWT_SECRET": testSecret},
			[]string{"--no-migrate"}, "migrate", false},
		{"no jwt secret outside demo mode", env{}, nil, "FIELDSYNC_JWT_SECRET", true},
		{"a short jwt secret", env{"FIELDSYNC_JWT_SECRET": "short"}, nil, "at least 32 bytes", true},
		{"an unreadable secret file", env{"FIELDSYNC_JWT_SECRET_FILE": "/nonexistent/secret"}, nil, "FIELDSYNC_JWT_SECRET_FILE", true},
		{"a short previous secret", env{"FIELDSYNC_JWT_SECRET": testSecret, "FIELDSYNC_JWT_PREVIOUS_SECRETS": "old"}, nil, "previous jwt secret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dbURL := storetest.URL(t)
			// If the refusal broke, the server would start: the addr and
			// the context's deadline keep that from hanging the test.
			args := append([]string{"serve", "--database-url", dbURL, "--addr", "127.0.0.1:0"}, tt.args...)
			got := invoke(t, ctx, tt.env, "", args...)
			if got.err == nil {
				t.Fatalf("serve started; want it to refuse mentioning %s", tt.want)
			}
			if !strings.Contains(got.err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %s", got.err, tt.want)
			}
			var ue usageError
			if errors.As(got.err, &ue) != tt.usage {
				t.Errorf("usage error = %v, want %v", !tt.usage, tt.usage)
			}
		})
	}
}

// freeAddr finds a local port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// server is a `fieldsync serve` running in a goroutine.
type server struct {
	base           string
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan struct{} // closed when run returned, with err set
	err            error
}

func startServe(t *testing.T, e env, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := freeAddr(t)
	s := &server{base: "http://" + addr, stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		s.err = run(ctx, append([]string{"serve", "--addr", addr}, args...), e.get, strings.NewReader(""), s.stdout, s.stderr)
		close(s.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
		}
	})
	// Poll until it answers: seeding at production bcrypt cost takes a
	// moment. The deadline only bounds a broken server.
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.done:
			t.Fatalf("serve exited early: %v\nstderr: %s", s.err, s.stderr)
		default:
		}
		res, err := http.Get(s.base + "/readyz")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not become ready\nstderr: %s", s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop cancels the server's context and returns what run returned.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
		return s.err
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
		return nil
	}
}

func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(b, &out)
	return res.StatusCode, out
}

func TestServeDemo(t *testing.T) {
	// On PostgreSQL the demo secret lives in the working directory.
	t.Chdir(t.TempDir())
	dbURL := storetest.URL(t)
	secretPath := ".fieldsync-demo-secret"
	if d, dsn, _ := store.ParseURL(dbURL); d == store.SQLite {
		secretPath = dsn + ".jwt-secret"
	}
	e := env{"FIELDSYNC_DATABASE_URL": dbURL, "FIELDSYNC_LOG_FORMAT": "json"}

	first := startServe(t, e, "--demo")
	out := first.stdout.String()
	for _, want := range []string{"Seeded the demo organisation", demo.Password, "admin@demo.test", "manager1@demo.test", "rep6@demo.test"} {
		if !strings.Contains(out, want) {
			t.Errorf("first start printed %q, want %q", out, want)
		}
	}
	status, tok := call(t, http.MethodPost, first.base+"/v1/auth/login", "", map[string]any{
		"email": "rep1@demo.test", "password": demo.Password, "device_id": uuid.NewString()})
	if status != http.StatusOK {
		t.Fatalf("login: status %d: %v", status, tok)
	}
	access, _ := tok["access_token"].(string)
	if status, body := call(t, http.MethodGet, first.base+"/v1/me", access, nil); status != http.StatusOK || body["email"] != "rep1@demo.test" {
		t.Fatalf("/v1/me: %d %v", status, body)
	}
	if status, body := call(t, http.MethodGet, first.base+"/healthz", "", nil); status != http.StatusOK || body["version"] != moduleVersion() {
		t.Errorf("/healthz: %d %v", status, body)
	}
	secret1, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatalf("demo secret not kept: %v", err)
	}
	if fi, err := os.Stat(secretPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("demo secret file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if len(strings.TrimSpace(string(secret1))) < auth.MinSecretLen {
		t.Errorf("demo secret is %d bytes, want ≥ %d", len(strings.TrimSpace(string(secret1))), auth.MinSecretLen)
	}

	// Cancelling the context is a graceful stop.
	if err := first.stop(t); err != nil {
		t.Fatalf("first serve returned %v, want nil after a graceful stop", err)
	}
	if !strings.Contains(first.stderr.String(), `"msg":"stopped"`) {
		t.Errorf("the log does not record a clean stop:\n%s", first.stderr)
	}

	// A second start leaves the data alone and reuses the secret, so the
	// token from the first run still works.
	second := startServe(t, e, "--demo")
	if out := second.stdout.String(); !strings.Contains(out, "demo seeding skipped") || strings.Contains(out, "Seeded") {
		t.Errorf("second start printed %q, want seeding skipped", out)
	}
	if status, body := call(t, http.MethodGet, second.base+"/v1/me", access, nil); status != http.StatusOK || body["email"] != "rep1@demo.test" {
		t.Errorf("first run's token on the second run: %d %v", status, body)
	}
	secret2, err := os.ReadFile(secretPath)
	if err != nil || !bytes.Equal(secret1, secret2) {
		t.Errorf("the demo secret changed between runs")
	}
	db, err := store.Open(context.Background(), dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := db.People().CountOrgs(context.Background()); err != nil || n != 1 {
		t.Errorf("orgs after two demo starts = %d (%v), want 1", n, err)
	}
	if err := second.stop(t); err != nil {
		t.Errorf("second serve returned %v", err)
	}
}

// TestServeMetricsAddr: /metrics is not on the API port; with
// --metrics-addr it is served there, and only there.
func TestServeMetricsAddr(t *testing.T) {
	t.Chdir(t.TempDir())
	e := env{"FIELDSYNC_DATABASE_URL": storetest.URL(t), "FIELDSYNC_JWT_SECRET": strings.Repeat("s", 40)}
	metricsAddr := freeAddr(t)
	s := startServe(t, e, "--metrics-addr", metricsAddr)
	if status, _ := call(t, http.MethodGet, s.base+"/metrics", "", nil); status != http.StatusNotFound {
		t.Errorf("/metrics on the API port: status %d, want 404", status)
	}
	res, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), `fieldsync_http_requests_total{method="GET",route="/readyz",status="200"}`) {
		t.Errorf("/metrics on --metrics-addr: status %d, body lacks the API's request counts:\n%.500s", res.StatusCode, b)
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if _, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
		t.Errorf("the metrics listener still answers after serve returned")
	}
}

// TestServeFilePermissions: a new SQLite database is created 0600 before
// anything is written to it; an existing database or secret file that
// others may read is named in a warning.
func TestServeFilePermissions(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	secret := filepath.Join(dir, "jwt-secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "new.db")
	e := env{"FIELDSYNC_DATABASE_URL": "sqlite:" + dbPath, "FIELDSYNC_JWT_SECRET_FILE": secret}
	s := startServe(t, e)
	if err := s.stop(t); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	for _, p := range []string{dbPath, dbPath + "-wal", dbPath + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
	if strings.Contains(s.stderr.String(), "readable by others") {
		t.Errorf("warned about private files:\n%s", s.stderr)
	}

	// The same files, opened up to everyone: two warnings name them.
	for _, p := range []string{dbPath, secret} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = startServe(t, e)
	if err := s.stop(t); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	for _, p := range []string{dbPath, secret} {
		if !strings.Contains(s.stderr.String(), "readable by others") || !strings.Contains(s.stderr.String(), p) {
			t.Errorf("no warning names %s as readable by others:\n%s", p, s.stderr)
		}
	}
}

// TestOrgNames: org create refuses a name taken ignoring case, and --org
// refuses a name several organisations share (a database from before the
// rule may hold such), listing their ids, which it accepts instead.
func TestOrgNames(t *testing.T) {
	ctx := context.Background()
	dbURL := storetest.URL(t)
	e := env{"FIELDSYNC_DATABASE_URL": dbURL, "FIELDSYNC_ADMIN_PASSWORD": "acme-admin-pw"}
	if got := invoke(t, ctx, e, "", "org", "create", "--name", "Acme", "--admin-email", "a@acme.test"); got.err != nil {
		t.Fatal(got.err)
	}
	got := invoke(t, ctx, e, "", "org", "create", "--name", "ACME", "--admin-email", "a@acme2.test")
	if got.err == nil || !strings.Contains(got.err.Error(), `an organisation named "Acme" already exists`) {
		t.Errorf("a name taken ignoring case: %v, want a refusal naming Acme", got.err)
	}

	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	first, err := db.People().OrgByName(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	dup := uuid.New()
	if err := db.Gorm().Exec("INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)", dup, "acme", time.Now().UTC()).Error; err != nil {
		t.Fatal(err)
	}
	got = invoke(t, ctx, e, "", "user", "create", "--org", "Acme", "--email", "r@acme.test", "--role", "rep")
	if got.err == nil {
		t.Fatal("an ambiguous --org picked one")
	}
	for _, want := range []string{`--org "Acme" names 2 organisations`, first.ID.String(), dup.String()} {
		if !strings.Contains(got.err.Error(), want) {
			t.Errorf("ambiguous --org: %v, want it to mention %s", got.err, want)
		}
	}
	got = invoke(t, ctx, e, "", "user", "create", "--org", dup.String(), "--email", "r@acme.test", "--role", "rep")
	if got.err != nil {
		t.Fatalf("--org by id: %v", got.err)
	}
	if u, err := db.People().UserByEmail(ctx, "r@acme.test"); err != nil || u.OrgID != dup {
		t.Errorf("the user went to %v (%v), want %s", u.OrgID, err, dup)
	}
	// A name matches ignoring case when it is unambiguous.
	got = invoke(t, ctx, e, "", "user", "create", "--org", "nope inc", "--email", "x@acme.test", "--role", "rep")
	if got.err == nil || !strings.Contains(got.err.Error(), `no organisation with id or name "nope inc"`) {
		t.Errorf("an unknown org: %v", got.err)
	}
}
