// Command fieldsync is the fieldsync server and its admin tool.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // users' time zones resolve on machines without zoneinfo
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fieldsync:", err)
		os.Exit(exitCode(err))
	}
}

const usage = `usage: fieldsync <command> [flags]

commands:
  serve [--demo] [flags]        run the HTTP server (serve -h lists flags)
  migrate [up|status]           apply or show database migrations
  org create --name N --admin-email E
                                create an organisation and its admin
                                (password from stdin or FIELDSYNC_ADMIN_PASSWORD)
  user create --org ORG --email E --role rep|manager|admin [--team T] [--name N]
                                create a user (password as for org create)
  bench [flags]                 measure push/pull throughput against the raw
                                database ceiling (bench -h lists flags)
  version                       print the version
`

// usageError marks a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg + "\n\n" + usage }

func exitCode(err error) int {
	if _, ok := err.(usageError); ok {
		return 2
	}
	return 1
}

// run is the whole program with its environment passed in, so tests can
// drive it like a shell would.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args[1:], getenv, stdout, stderr)
	case "org":
		return orgCmd(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "user":
		return userCmd(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "fieldsync", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}
