package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/fieldsync/fieldsync/models"
)

// command is one subcommand's flag set and synopsis, from which its usage
// is printed: on -h to stdout, after a usage error to stderr.
type command struct {
	name     string // "user create"
	synopsis string // what follows the name in the usage line
	fs       *flag.FlagSet
}

func newCommand(name, synopsis string) *command {
	return &command{name: name, synopsis: synopsis, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
}

// printUsage writes "usage: fieldsync NAME SYNOPSIS" and the flags.
func (c *command) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: fieldsync %s %s\n", c.name, c.synopsis)
	c.fs.SetOutput(w)
	c.fs.PrintDefaults()
}

// parse parses args, which must hold flags only. On -h it prints the usage
// to stdout and returns flag.ErrHelp, which the caller turns into success
// with ignoreHelp. The flag package prints nothing itself: its complaint
// becomes the usage error's one line.
func (c *command) parse(args []string, stdout io.Writer) error {
	c.fs.SetOutput(io.Discard)
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printUsage(stdout)
			return err
		}
		return c.usageErr("%s", err)
	}
	if c.fs.NArg() > 0 {
		return c.usageErr("unexpected argument %q", c.fs.Arg(0))
	}
	return nil
}

// usageErr is a mistake in this command's line.
func (c *command) usageErr(format string, a ...any) error {
	return usageError{cmd: c.name, msg: fmt.Sprintf(format, a...), usage: c.printUsage}
}

// invalid turns a validation error into a usage error of this command: a
// models field error reads "--name is required", anything else as it is.
func (c *command) invalid(err error) error {
	var me *models.Error
	if errors.As(err, &me) && len(me.Fields) > 0 {
		return c.usageErr("%s %s", me.Fields[0].Field, me.Fields[0].Message)
	}
	return c.usageErr("%s", err)
}

// group is a command with subcommands, such as org and user.
type group struct {
	name string
	subs []sub
}

// sub is a subcommand's name and synopsis: a group lists them, and
// the subcommand's command is made from one.
type sub struct{ name, synopsis string }

func (s sub) command() *command { return newCommand(s.name, s.synopsis) }

func (g group) printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage:")
	for _, c := range g.subs {
		fmt.Fprintf(w, "  fieldsync %s %s\n", c.name, c.synopsis)
	}
	fmt.Fprintf(w, "(fieldsync %s SUBCOMMAND -h lists its flags)\n", g.name)
}

// pick returns the subcommand args[0] names, or a usage error of the
// group. A -h prints the group's usage to stdout and returns flag.ErrHelp.
func (g group) pick(args []string, stdout io.Writer) (string, error) {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		g.printUsage(stdout)
		return "", flag.ErrHelp
	}
	var names []string
	for _, c := range g.subs {
		names = append(names, strings.TrimPrefix(c.name, g.name+" "))
	}
	want := strings.Join(names, ", ")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", usageError{cmd: g.name, msg: "want a subcommand: " + want, usage: g.printUsage}
	}
	for _, n := range names {
		if args[0] == n {
			return n, nil
		}
	}
	return "", usageError{cmd: g.name, msg: fmt.Sprintf("unknown subcommand %q (want %s)", args[0], want), usage: g.printUsage}
}
