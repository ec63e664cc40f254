package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	secrets "github.com/keyward/secrets"
	_ "github.com/keyward/secrets/all" // every backend for resolve and check
	"github.com/keyward/secrets/fernetstore"
)

// The exit codes; doc.go documents them for operators.
const (
	exitOK          = 0
	exitFindings    = 1
	exitUsage       = 2
	exitConfig      = 3
	exitUnavailable = 4
	exitInterrupted = 130
)

// exitCodesHelp ends every command's help.
const exitCodesHelp = `
Exit codes: 0 ok; 1 findings or work left (rows not under the primary key,
expired or undecryptable; a secret, or the row of update or delete, not
found); 2 usage error; 3 configuration error (ENCRYPTION_KEY missing or
malformed, bad --db, missing table); 4 backend unavailable; 130 interrupted
(run the command again to finish).`

// exitError carries the exit code an error should end the process with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	var e *exitError
	if errors.As(err, &e) {
		return err
	}
	return &exitError{code: code, err: err}
}

func errorf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// app is one invocation: its I/O, environment and global flags, and the
// store and stack opened from them on first use.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	dbURL, table, column string
	command              string // the command's name, set before it runs
	warnedDB             bool   // warned once that --db holds a password

	storeOnce sync.Once
	store     *fernetstore.Store
	db        *sql.DB // the store's; New leaves it open, close closes it
	storeErr  error

	cfg            *secrets.Config
	dbOpts         *fernetstore.Options // from the configuration's db line
	explicit       bool                 // the configuration came from KEYWARD_CONFIG(_FILE)
	auditTableName string               // the configuration's audit = db table, for keyward audit
}

// run is the whole program, minus the process: main passes os.Args[1:], the
// standard streams, os.Getenv and a context canceled by SIGINT/SIGTERM.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	defer a.close()
	if err == nil {
		return exitOK
	}
	code := exitUsage // cobra's own errors: unknown command or flag, wrong arguments
	var e *exitError
	if errors.As(err, &e) {
		code = e.code
	}
	if e != nil && e.err == errSilent {
		return code // the command printed its findings itself
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "keyward: ") { // a *secrets.Error names keyward already
		msg = "keyward: " + msg
	}
	fmt.Fprintln(stderr, msg)
	if code == exitUsage && e == nil {
		fmt.Fprintln(stderr, "run keyward --help for usage")
	}
	return code
}

// errSilent ends a command with a non-zero code after it printed its own findings.
var errSilent = errors.New("findings")

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "keyward",
		Short: "Manage the API keys of a keyward service",
		Long: `keyward manages the API keys of a keyward service: encryption keys, the
encrypted column (db: refs), plaintext migration, key rotation, and checks.

Keys come from ENCRYPTION_KEY (primary) and ENCRYPTION_KEY_PREVIOUS (older keys,
comma-separated, decrypt only). The database comes from --db, else DATABASE_URL,
else sqlite:keyward.db. Other backends come from KEYWARD_CONFIG or
KEYWARD_CONFIG_FILE (not both), else every backend under its defaults; a
db = fernet://... line there gives the table, columns, dialect= and
plaintext= of the encrypted column.
` + exitCodesHelp,
		SilenceErrors: true,
		SilenceUsage:  true,
		// keyward alone prints this help; anything else that is not a
		// command is refused without being repeated (rootArgs).
		Args: rootArgs,
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
		// --version and keyward version print the same text.
		Version:                    buildVersion(),
		SuggestionsMinimumDistance: 2,
	}
	root.SetVersionTemplate("{{.Version}}")
	// keyward's own completion command (completion.go) replaces cobra's,
	// which quotes an unknown shell back.
	root.CompletionOptions.DisableDefaultCmd = true
	root.PersistentPreRun = func(c *cobra.Command, _ []string) { a.command = c.Name() }
	pf := root.PersistentFlags()
	pf.StringVar(&a.dbURL, "db", "", "database URL: sqlite:PATH, postgres://..., mysql://... (default $DATABASE_URL, else sqlite:keyward.db)")
	pf.StringVar(&a.table, "table", "", "table of the encrypted column (default api_keys, or the configuration's db table)")
	pf.StringVar(&a.column, "column", "", "value column of the table (default api_key)")
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(a.genkeyCommand(), a.initCommand(), a.putCommand(), a.updateCommand(), a.deleteCommand(),
		a.listCommand(), a.resolveCommand(), a.walkCommand("migrate"), a.walkCommand("rotate"), a.checkCommand(),
		a.auditCommand(), a.versionCommand(), a.completionCommand())
	for _, c := range root.Commands() {
		c.Long = strings.TrimSpace(c.Long) + "\n" + exitCodesHelp
	}
	root.InitDefaultHelpCmd()
	if help := findCommand(root, "help"); help != nil {
		help.Args = helpArgs
	}
	quietArgs(root)
	return root
}

func (a *app) close() {
	if a.store != nil {
		a.store.Close()
	}
	if a.db != nil {
		a.db.Close()
	}
}

// loadConfig reads the stack configuration through the library
// (secrets.ConfigFromLookup on a.getenv), and the encrypted column's options
// from its db = fernet://... line (fernetstore.ParseURL, as the fernet://
// opener reads it), so a typo in any line is a configuration error here.
func (a *app) loadConfig() (*secrets.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	c, err := secrets.ConfigFromLookup(a.getenv)
	if err != nil {
		return nil, errorf(exitConfig, "the configuration (%s or %s): %v", secrets.ConfigEnv, secrets.ConfigFileEnv, err)
	}
	a.explicit = a.getenv(secrets.ConfigEnv) != "" || a.getenv(secrets.ConfigFileEnv) != ""
	if !a.explicit {
		// The operator's own terminal: no audit lines unless configured.
		c.Audit = false
	}
	// One process, a few resolves: a cache would only add a goroutine.
	c.Cache = ""
	// audit = db names the table keyward audit reads. keyward's own
	// resolves are logged to stderr instead of written there: the table
	// is in DATABASE_URL's database, which --db may not be.
	a.auditTableName, c.AuditTable = c.AuditTable, ""
	opts := &fernetstore.Options{}
	if raw, ok := c.Backends["db"]; ok {
		if opts, err = fernetstore.ParseURL(raw); err != nil {
			return nil, errorf(exitConfig, "the configuration's db line (keyward's db: is the encrypted column on --db): %v", err)
		}
	}
	a.cfg, a.dbOpts = c, opts
	return c, nil
}

// storeOptions are the fernetstore options of the configuration's db line,
// with --column in place of its value column; --table naming another table
// starts from the defaults (the Python service's bots table with its legacy
// api_key column: --table bots --column api_key).
func (a *app) storeOptions() (*fernetstore.Options, error) {
	if _, err := a.loadConfig(); err != nil {
		return nil, err
	}
	o := *a.dbOpts
	if a.table != "" && a.table != o.Table && (o.Table != "" || a.table != "api_keys") {
		// Another table than the db line's: its columns and ref_columns
		// describe that table, not this one; keep only the dialect.
		o = fernetstore.Options{Table: a.table, Dialect: o.Dialect}
	}
	if a.column != "" {
		o.ValueColumn = a.column
	}
	return &o, nil
}

// keyRing reads ENCRYPTION_KEY and ENCRYPTION_KEY_PREVIOUS through a.getenv
// (fernetstore.KeyRingFromLookup).
func (a *app) keyRing() (*fernetstore.KeyRing, error) {
	if strings.TrimSpace(a.getenv(fernetstore.EnvKeyRef)) != "" {
		// The key ring lives in a secret manager (genkey_store.go).
		return a.refKeyRing(context.Background())
	}
	if strings.TrimSpace(a.getenv(fernetstore.EnvKey)) == "" {
		return nil, errorf(exitConfig, "%s is not set: run keyward genkey and export the line it prints (keep the old key in %s when rotating)",
			fernetstore.EnvKey, fernetstore.EnvPreviousKeys)
	}
	ring, err := fernetstore.KeyRingFromLookup(a.getenv)
	if err != nil {
		return nil, errorf(exitConfig, "%s", reason(err))
	}
	return ring, nil
}

// reason is the Reason of a *secrets.Error (which never holds a value),
// without the "keyward: fernet: op: code:" framing.
func reason(err error) string {
	var e *secrets.Error
	if errors.As(err, &e) && e.Reason != "" {
		return e.Reason
	}
	return err.Error()
}

func (a *app) databaseURL() string {
	if a.dbURL != "" {
		if !a.warnedDB && dsnHasPassword(a.dbURL) {
			a.warnedDB = true
			fmt.Fprintln(a.stderr, "keyward: warning: --db holds a password, which other users can read in the process list; set DATABASE_URL instead")
		}
		return a.dbURL
	}
	if u := a.getenv(fernetstore.EnvDatabaseURL); u != "" {
		return u
	}
	return fernetstore.DefaultDatabaseURL
}

// databaseSource names where databaseURL came from, for errors.
func (a *app) databaseSource() string {
	switch {
	case a.dbURL != "":
		return "--db"
	case a.getenv(fernetstore.EnvDatabaseURL) != "":
		return fernetstore.EnvDatabaseURL
	}
	return "the default database " + fernetstore.DefaultDatabaseURL
}

// openStore opens the encrypted column on --db with the keys from the
// environment. It does no I/O: the first query connects.
func (a *app) openStore() (*fernetstore.Store, error) { return a.open(true) }

// open opens the invocation's store once, with the key ring when withKeys
// (openStore), without it otherwise (openSchemaStore).
func (a *app) open(withKeys bool) (*fernetstore.Store, error) {
	a.storeOnce.Do(func() {
		var ring *fernetstore.KeyRing
		if withKeys {
			var err error
			if ring, err = a.keyRing(); err != nil {
				a.storeErr = err
				return
			}
		}
		opts, err := a.storeOptions()
		if err != nil {
			a.storeErr = err
			return
		}
		// Only init creates a database: every other command opens one that
		// must exist, so a mistyped SQLite path is an error, not a new
		// empty file.
		db, err := fernetstore.OpenDBWith(a.databaseURL(), &fernetstore.DBOptions{MustExist: a.command != "init"})
		if err != nil {
			// The reason never quotes the URL (it may hold a password).
			a.storeErr = errorf(exitConfig, "%s: %s", a.databaseSource(), reason(err))
			return
		}
		a.db = db
		a.store = fernetstore.New(db, ring, opts)
	})
	return a.store, a.storeErr
}

// stack builds the configured stack with "db" served by the store on --db,
// opened lazily so that resolving env:NAME needs no ENCRYPTION_KEY.
func (a *app) stack(ctx context.Context) (*secrets.Stack, error) {
	c, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	db := secrets.Lazy(func(context.Context) (secrets.KeyResolver, error) {
		s, err := a.openStore()
		if err != nil {
			return nil, err
		}
		return s, nil
	})
	st, err := secrets.OpenConfig(ctx, c, &secrets.StackOptions{
		Backends: map[string]secrets.KeyResolver{"db": db},
		Auditor:  secrets.SlogAuditor(slog.New(slog.NewTextHandler(a.stderr, nil))),
	})
	if err != nil {
		return nil, errorf(exitConfig, "the configuration: %v", err)
	}
	return st, nil
}

// classify maps an error from the store or a backend to an exit code and,
// for the common database mistakes, a hint saying what to do.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var e *exitError
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return withCode(exitInterrupted, err)
	}
	if hint := configProblem(err); hint != "" {
		return errorf(exitConfig, "%v\n%s", err, hint)
	}
	switch secrets.CodeOf(err) {
	case secrets.CodeUnavailable:
		return withCode(exitUnavailable, err)
	case secrets.CodeInvalidRef, secrets.CodeUnknownScheme:
		return withCode(exitConfig, err)
	}
	return withCode(exitFindings, err)
}

// dsnHasPassword reports whether a database URL carries a password: a ':'
// in the user information before the '@' ("postgres://u:pw@host",
// "mysql://u:pw@tcp(host:3306)/db").
func dsnHasPassword(dsn string) bool {
	_, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return false
	}
	userinfo, _, ok := strings.Cut(rest, "@")
	return ok && !strings.ContainsAny(userinfo, "/?#") && strings.Contains(userinfo, ":")
}
