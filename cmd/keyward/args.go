package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	secrets "github.com/keyward/secrets"
)

// Arguments are refused without being repeated: an API key pasted where a
// command takes none (keyward put ... sk-ant-...) must not reach the
// terminal's scrollback, a CI log or a bug report. Cobra's own errors quote
// them ("unknown command \"sk-ant-...\" for \"keyward put\""), and so do
// pflag's ("invalid argument \"sk-ant-...\" for \"--dry-run\" flag"), so
// every command has an Args rule from here, the root refuses an unknown
// command itself, and flagError rewrites pflag's errors.

// putHint and updateHint say where the value goes instead of an argument.
const (
	putHint    = `put reads the secret from stdin: printf '%s' "$KEY" | keyward put --name N --provider P`
	updateHint = `update reads the new value from stdin: printf '%s' "$KEY" | keyward update ID`
)

// notRepeated ends a refusal that leaves an argument out.
const notRepeated = "not repeated here, in case it is a secret"

// takes is the Args rule of a command that takes n positional arguments
// (0 or 1), the one described by what ("the row id"). A wrong count is a
// usage error saying what the command takes, with hint (where the value
// goes, when a value may have been passed) or else its usage line.
func takes(n int, what, hint string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		want := "no arguments"
		if n == 1 {
			want = "one argument, " + what
		}
		given := "none given"
		switch {
		case len(args) == 1:
			given = "1 given, " + notRepeated
		case len(args) > 1:
			given = fmt.Sprintf("%d given, %s", len(args), "not repeated here, in case one is a secret")
		}
		if hint == "" {
			hint = "usage: " + c.UseLine()
		}
		return errorf(exitUsage, "%s takes %s (%s): %s", c.Name(), want, given, hint)
	}
}

// noArgs is takes(0, "", hint).
func noArgs(hint string) cobra.PositionalArgs { return takes(0, "", hint) }

// refArg is resolve's rule: one SCHEME:REF. The ref's own error quotes it,
// and a value pasted in its place (no scheme, or no valid one) would be
// printed: a ref that does not split is refused here without it.
func refArg(c *cobra.Command, args []string) error {
	if err := takes(1, "SCHEME:REF", "")(c, args); err != nil {
		return err
	}
	if _, _, err := secrets.SplitRef(args[0]); err != nil {
		return errorf(exitUsage, "%s takes one argument, SCHEME:REF: %s (the argument is %s)", c.Name(), reason(err), notRepeated)
	}
	return nil
}

// rootArgs refuses an unknown command, naming only the commands it resembles.
func rootArgs(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := "unknown command (" + notRepeated + "): keyward --help lists the commands"
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean keyward " + strings.Join(s, " or keyward ") + "?"
	}
	return errorf(exitUsage, "%s", msg)
}

// helpArgs is the help command's rule: a path of commands (help, help
// list), each one that exists; cobra printed an unknown one back.
func helpArgs(c *cobra.Command, args []string) error {
	cmd := c.Root()
	for _, name := range args {
		next := findCommand(cmd, name)
		if next == nil {
			return errorf(exitUsage, "help takes a command (the argument is %s): keyward --help lists the commands", notRepeated)
		}
		cmd = next
	}
	return nil
}

func findCommand(parent *cobra.Command, name string) *cobra.Command {
	for _, c := range parent.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	return nil
}

// flagName reports whether s can be printed as the flag name the operator
// typed: short, lower-case, like every keyward flag. Anything else (an API
// key after "--") is left out.
func flagName(s string) bool {
	return len(s) > 0 && len(s) <= 24 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

// flagError is the root's flag error function: pflag's error, rewritten
// so that no value, unknown flag group or malformed flag is repeated.
func flagError(c *cobra.Command, err error) error {
	see := fmt.Sprintf("(see keyward %s --help)", c.Name())
	if c == c.Root() {
		see = "(see keyward --help)"
	}
	var (
		notExist *pflag.NotExistError
		required *pflag.ValueRequiredError
		invalid  *pflag.InvalidValueError
		syntax   *pflag.InvalidSyntaxError
	)
	switch {
	case errors.As(err, &notExist):
		name := notExist.GetSpecifiedName()
		switch {
		case notExist.GetSpecifiedShortnames() != "":
			// -xsk-ant-...: only the one letter that is no flag.
			return errorf(exitUsage, "unknown shorthand flag -%s %s", name, see)
		case flagName(name):
			return errorf(exitUsage, "unknown flag --%s %s", name, see)
		}
		return errorf(exitUsage, "unknown flag (its name is %s) %s", notRepeated, see)
	case errors.As(err, &required):
		return errorf(exitUsage, "flag --%s needs a value %s", required.GetFlag().Name, see)
	case errors.As(err, &invalid):
		f := invalid.GetFlag()
		switch f.Value.(type) {
		case *intFlag, *outputFlag:
			// keyward's own flags: their messages give the range or the
			// choices, never the value.
			return errorf(exitUsage, "%v %s", errors.Unwrap(invalid), see)
		}
		if f.Value.Type() == "bool" {
			return errorf(exitUsage, "--%s takes true or false, or nothing (--%s alone is true) %s", f.Name, f.Name, see)
		}
		return errorf(exitUsage, "--%s does not take that value (%s) %s", f.Name, notRepeated, see)
	case errors.As(err, &syntax):
		return errorf(exitUsage, "bad flag syntax (the flag is %s): a flag is -x or --name %s", notRepeated, see)
	}
	return errorf(exitUsage, "%v %s", err, see)
}

// quietArgs gives every command without an Args rule noArgs, so that a
// command added later cannot fall back on cobra's rule, which echoes.
func quietArgs(c *cobra.Command) {
	for _, sub := range c.Commands() {
		if sub.Args == nil {
			sub.Args = noArgs("")
		}
		quietArgs(sub)
	}
}
