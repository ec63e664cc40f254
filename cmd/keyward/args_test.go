package main

import (
	"strings"
	"testing"

	"github.com/keyward/secrets/fernetstore"
)

// testKey returns a new ENCRYPTION_KEY.
func testKey(t *testing.T) string {
	t.Helper()
	k, err := fernetstore.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// argCanary stands for an API key pasted onto the command line.
const argCanary = "sk-ant-CANARY-7f3a9c"

// TestSecretArgumentRefused: a secret given where keyward takes none, or
// more arguments than a command takes, is a usage error (exit 2) that says
// what the command takes, and the value appears nowhere in the output.
// Cobra's own errors quoted it ("unknown command \"sk-ant-...\" for
// \"keyward put\"", pflag's "invalid argument \"sk-ant-...\" for
// \"--dry-run\" flag").
func TestSecretArgumentRefused(t *testing.T) {
	env := map[string]string{"ENCRYPTION_KEY": testKey(t), "DATABASE_URL": "sqlite:" + t.TempDir() + "/k.db"}
	cases := []struct {
		args []string
		says string // what the message must say the command takes
	}{
		{[]string{"put", "--name", "n", "--provider", "p", argCanary}, `put reads the secret from stdin: printf '%s' "$KEY" | keyward put`},
		{[]string{argCanary}, "keyward --help lists the commands"},
		{[]string{argCanary, "list"}, "keyward --help lists the commands"},
		{[]string{"update", "42", argCanary}, `update reads the new value from stdin: printf '%s' "$KEY" | keyward update ID`},
		{[]string{"update", "42", "--expires", "none", argCanary}, "keyward update ID"},
		{[]string{"list", "extra"}, "list takes no arguments"},
		{[]string{"list", argCanary}, "list takes no arguments"},
		{[]string{"resolve", "a", "b"}, "resolve takes one argument, SCHEME:REF"},
		{[]string{"resolve", "db:1", argCanary}, "resolve takes one argument, SCHEME:REF"},
		{[]string{"resolve", argCanary}, "resolve takes one argument, SCHEME:REF: the ref has no scheme"},
		{[]string{"resolve", "Sk-Ant:" + argCanary}, "resolve takes one argument, SCHEME:REF: the ref's scheme must be"},
		{[]string{"delete", "42", argCanary}, "delete takes one argument, the row id"},
		{[]string{"delete"}, "delete takes one argument, the row id"},
		{[]string{"update"}, "update takes one argument, the row id"},
		{[]string{"genkey", argCanary}, "genkey takes no arguments"},
		{[]string{"init", argCanary}, "init takes no arguments"},
		{[]string{"migrate", argCanary}, "migrate takes no arguments"},
		{[]string{"rotate", "--dry-run", argCanary}, "rotate takes no arguments"},
		{[]string{"check", argCanary}, "check takes no arguments"},
		{[]string{"version", argCanary}, "version takes no arguments"},
		{[]string{"completion", argCanary}, "completion takes one argument, the shell: bash, zsh, fish or powershell"},
		{[]string{"completion", "bash", argCanary}, "completion takes one argument, the shell"},
		{[]string{"help", argCanary}, "keyward --help lists the commands"},
		{[]string{"help", "list", argCanary}, "keyward --help lists the commands"},
		// Flags: pflag quotes a bad value, an unknown shorthand's whole
		// group and a malformed flag.
		{[]string{"list", "--value=" + argCanary}, "unknown flag --value"},
		{[]string{"--value=" + argCanary}, "unknown flag --value"},
		{[]string{"put", "--name", "n", "--provider", "p", "--" + argCanary}, "unknown flag (its name is not repeated"},
		{[]string{"put", "-" + argCanary}, "unknown shorthand flag -s"},
		{[]string{"list", "---" + argCanary}, "bad flag syntax"},
		{[]string{"migrate", "--dry-run=" + argCanary}, "--dry-run takes true or false"},
		{[]string{"migrate", "--batch=" + argCanary}, "--batch takes 1 to"},
		{[]string{"list", "--limit", argCanary}, "--limit takes 0 to"},
		{[]string{"list", "-o", argCanary}, "-o/--output takes text or json"},
	}
	for _, c := range cases {
		code, stdout, stderr := runInProcess(env, "", c.args...)
		what := strings.ReplaceAll(strings.Join(c.args, " "), argCanary, "CANARY")
		if strings.Contains(stdout+stderr, argCanary) || strings.Contains(stdout+stderr, "CANARY") {
			t.Errorf("keyward %s: the output repeats the argument", what)
			continue
		}
		if code != exitUsage || !strings.Contains(stderr, c.says) {
			t.Errorf("keyward %s: exit %d, want %d and %q on stderr\nstdout:\n%s\nstderr:\n%s", what, code, exitUsage, c.says, stdout, stderr)
		}
	}
}

// TestEveryCommandRefusesExtraArguments: each command, present and future,
// refuses a surplus argument without repeating it, so a command added
// without its own Args rule (cobra's default echoes it) fails here; and its
// help ends with the exit codes.
func TestEveryCommandRefusesExtraArguments(t *testing.T) {
	env := map[string]string{"ENCRYPTION_KEY": testKey(t), "DATABASE_URL": "sqlite:" + t.TempDir() + "/k.db"}
	a := &app{getenv: func(k string) string { return env[k] }}
	root := a.rootCommand()
	for _, c := range root.Commands() {
		if c.Hidden {
			continue // cobra's __complete: what a shell asks for completions of
		}
		if c.Name() != "help" {
			if code, out, _ := runInProcess(nil, "", c.Name(), "--help"); code != exitOK || !strings.Contains(out, "Exit codes: 0 ok; 1 findings") {
				t.Errorf("keyward %s --help: exit %d, no exit codes in\n%s", c.Name(), code, out)
			}
		}
		args := []string{c.Name(), "x1", "x2", "x3", argCanary}
		code, stdout, stderr := runInProcess(env, "", args...)
		if strings.Contains(stdout+stderr, "CANARY") {
			t.Errorf("keyward %s with extra arguments repeats them", c.Name())
		} else if code != exitUsage || !strings.Contains(stderr, c.Name()+" takes") && !strings.Contains(stderr, "lists the commands") {
			t.Errorf("keyward %s with extra arguments: exit %d, want %d and what it takes\nstdout:\n%s\nstderr:\n%s", c.Name(), code, exitUsage, stdout, stderr)
		}
	}
}

// TestUnknownCommandSuggests: a mistyped command is named back only as the
// command it resembles, never as typed.
func TestUnknownCommandSuggests(t *testing.T) {
	code, stdout, stderr := runInProcess(nil, "", "lsit")
	if code != exitUsage || !strings.Contains(stderr, "unknown command") || !strings.Contains(stderr, "did you mean keyward") || !strings.Contains(stderr, "keyward list?") || strings.Contains(stdout+stderr, "lsit") {
		t.Errorf("keyward lsit: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// keyward alone still prints its help and succeeds.
	code, stdout, _ = runInProcess(nil, "")
	if code != exitOK || !strings.Contains(stdout, "Available Commands") {
		t.Errorf("keyward alone: exit %d\n%s", code, stdout)
	}
	// help COMMAND still works.
	code, stdout, _ = runInProcess(nil, "", "help", "update")
	if code != exitOK || !strings.Contains(stdout, "keyward update ID") {
		t.Errorf("keyward help update: exit %d\n%s", code, stdout)
	}
}
