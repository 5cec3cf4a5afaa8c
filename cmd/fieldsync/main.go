// Command fieldsync is the fieldsync server and its admin tool.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // users' time zones resolve on machines without zoneinfo
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(report(err, os.Stderr))
}

const usage = `usage: fieldsync <command> [flags]

commands:
  serve [--demo] [flags]        run the HTTP server
  migrate [up|status]           apply migrations, or show the schema version
                                (status changes nothing; exit status 3 if behind)
  org create --name N --admin-email E [--admin-name NAME]
                                create an organisation and its admin
                                (password from stdin or FIELDSYNC_ADMIN_PASSWORD)
  org list                      list organisations with their user counts
  user create --org ORG --email E --role rep|manager|admin [--team T] [--name NAME]
                                create a user (password as for org create)
  user list --org ORG [--team T] [--role R]
                                list an organisation's users
  user deactivate --org ORG --email E
                                deactivate a user and end their sessions
  user reset-password --org ORG --email E
                                set a new password (as for org create) and end
                                the user's sessions
  bench [flags]                 measure push/pull throughput against the raw
                                database ceiling
  version                       print the version, the build's VCS revision
                                and the schema version (also --version, -v)

ORG is an organisation's id or its name (ignoring case). Every command takes
--database-url (default: FIELDSYNC_DATABASE_URL); fieldsync COMMAND -h lists
a command's flags.
`

// usageError is a mistake in the command line: exit status 2. It is
// reported as one line naming the command and the mistake, followed by the
// usage of that command alone.
type usageError struct {
	cmd   string          // "org create"; empty for the program itself
	msg   string          // the mistake
	usage func(io.Writer) // prints the command's usage
}

func (e usageError) Error() string {
	if e.cmd == "" {
		return e.msg
	}
	return e.cmd + ": " + e.msg
}

// statusError is a failure with an exit status of its own, reported as
// one line naming the command.
type statusError struct {
	cmd, msg string
	status   int
}

func (e statusError) Error() string { return e.cmd + ": " + e.msg }

// errBehind is migrate status finding migrations to apply.
var errBehind = statusError{cmd: "migrate status", msg: "the schema is behind this build; run `fieldsync migrate up`", status: 3}

// report prints err as the shell's user sees it and returns the exit
// status: 0 without an error, 2 for a usage error, a statusError's own
// (3: migrate status found the schema behind), 1 for any other.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		if ue.cmd == "" {
			fmt.Fprintf(stderr, "fieldsync: %s\n", ue.msg)
		} else {
			fmt.Fprintf(stderr, "fieldsync %s: %s\n", ue.cmd, ue.msg)
		}
		if ue.usage != nil {
			ue.usage(stderr)
		}
		return 2
	}
	var se statusError
	if errors.As(err, &se) {
		fmt.Fprintf(stderr, "fieldsync %s\n", se)
		return se.status
	}
	fmt.Fprintln(stderr, "fieldsync:", err)
	return 1
}

// programUsage is the usage of the program itself.
func programUsage(w io.Writer) { fmt.Fprint(w, usage) }

// run is the whole program with its environment passed in, so tests can
// drive it like a shell would.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{msg: "no command given", usage: programUsage}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args[1:], getenv, stdout)
	case "org":
		return orgCmd(ctx, args[1:], getenv, stdin, stdout)
	case "user":
		return userCmd(ctx, args[1:], getenv, stdin, stdout)
	case "bench":
		return benchCmd(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{msg: fmt.Sprintf("unknown command %q", args[0]), usage: programUsage}
}
