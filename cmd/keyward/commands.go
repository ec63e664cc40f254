package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
)

func (a *app) genkeyCommand() *cobra.Command {
	var store *string
	c := &cobra.Command{
		Use:   "genkey [--store REF]",
		Short: "Print a new ENCRYPTION_KEY",
		Long: `Print a new random Fernet key as ENCRYPTION_KEY=<key>, in the form Python's
Fernet.generate_key() prints (and Fernet(key) accepts). To rotate, move the
current key to ENCRYPTION_KEY_PREVIOUS, set the new one, and run keyward rotate.`,
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if *store != "" {
				return a.genkeyStore(cmd.Context(), *store) // genkey_store.go
			}
			k, err := fernetstore.GenerateKey()
			if err != nil {
				return errorf(exitConfig, "%v", err)
			}
			fmt.Fprintf(a.stdout, "%s=%s\n", fernetstore.EnvKey, k)
			return nil
		},
	}
	store = a.genkeyStoreFlag(c)
	return c
}

func (a *app) initCommand() *cobra.Command {
	var notify bool
	c := &cobra.Command{
		Use:   "init [--notify]",
		Short: "Create the table of the encrypted column",
		Long: `Create the table (api_keys, or --table) with the default schema if it does not
exist: id, name, provider, the value column (api_key, or --column), expires_at,
created_at, and the ref_columns of the configuration's db line; id_type=text on
that line makes VARCHAR(36) ids. An existing table is left as it is and checked:
what it lacks for the options is named (exit 3). It needs no ENCRYPTION_KEY,
and it is the only command that creates a SQLite database file.

--notify also installs the change triggers, so that every replica's cache hears
of a changed row at once, whoever wrote it (the Python service too): on
PostgreSQL a trigger that NOTIFYs the changed ids (keyward's own writes do so
without it); on MariaDB and SQLite the change log table keyward_changes and
triggers that write to it, which replicas poll (without them, changes reach a
replica's cache only when its TTL ends). It is idempotent, adds no column, and
needs the privilege to create triggers.`,
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openSchemaStore()
			if err != nil {
				return err
			}
			info, err := s.Init(cmd.Context())
			if err != nil {
				return classify(err)
			}
			table := info.Table
			if table == "" {
				table = a.tableName()
			}
			if info.Created {
				fmt.Fprintf(a.stdout, "created table %s\n", table)
			} else {
				fmt.Fprintf(a.stdout, "table %s is ready: it has what keyward needs", table)
				if len(info.Absent) > 0 {
					fmt.Fprintf(a.stdout, " (keyward does without its missing %s)", strings.Join(info.Absent, ", "))
				}
				fmt.Fprintln(a.stdout)
			}
			if notify {
				if err := s.InstallTriggers(cmd.Context()); err != nil {
					return classify(err)
				}
				fmt.Fprintf(a.stdout, "change triggers of %s installed: every write to it now reaches the replicas' caches\n", table)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&notify, "notify", false, "also install the change triggers, so replicas hear of every write (see above)")
	return c
}

func (a *app) tableName() string {
	if o, err := a.storeOptions(); err == nil && o.Table != "" {
		return o.Table
	}
	return "api_keys"
}

// maxSecret bounds what put reads from stdin: an API key is short, and a
// runaway pipe should fail, not fill the database.
const maxSecret = 64 << 10

func (a *app) putCommand() *cobra.Command {
	var givenID, name, provider, expires string
	c := &cobra.Command{
		Use:   "put --name NAME --provider PROVIDER [--id ID] [--expires DATE] < secret",
		Short: "Store a secret read from stdin; print its id",
		Long: `Store a secret in the encrypted column, encrypted under ENCRYPTION_KEY, and
print the new row's id on stdout (services resolve it as db:<id>): --id ID, else
a new UUID on a table of text ids, else the database's next integer id.

The secret is read from stdin, never from an argument (the process list is
public): printf '%s' "$KEY" | keyward put --name prod --provider anthropic.
One trailing newline is dropped; an empty secret is refused. On a terminal the
secret is read without echo. --expires takes RFC 3339 (2027-01-31T00:00:00Z)
or a date (2027-01-31, meaning 00:00 UTC that day).`,
		Args: noArgs(putHint),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var exp time.Time
			if expires != "" {
				t, err := parseExpires(expires)
				if err != nil {
					return withCode(exitUsage, err)
				}
				exp = t
			}
			value, err := a.readSecret("keyward put --name N --provider P")
			if err != nil {
				return err
			}
			s, err := a.openStore()
			if err != nil {
				return err
			}
			id, err := s.Insert(cmd.Context(), fernetstore.Row{ID: givenID, Name: name, Provider: provider, ExpiresAt: exp}, value)
			if err != nil {
				if givenID != "" && duplicateKey(err) {
					return errorf(exitUsage, "row %s exists already: give another --id, or replace its value with keyward update %s", clean(givenID), clean(givenID))
				}
				// The store names the id in an error about it (a schema
				// problem names none): the operator's --id, a usage error.
				var se *secrets.Error
				if givenID != "" && errors.As(err, &se) && se.Code == secrets.CodeInvalidRef && se.Ref == givenID {
					return errorf(exitUsage, "--id: %s", reason(err))
				}
				return classify(err)
			}
			fmt.Fprintln(a.stdout, id)
			fmt.Fprintf(a.stderr, "stored row %s; services resolve it as db:%s\n", id, fernetstore.RowRef(id))
			if !exp.IsZero() && !exp.After(time.Now()) {
				fmt.Fprintf(a.stderr, "warning: --expires %s is in the past: the row is already expired\n", exp.UTC().Format(time.RFC3339))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&name, "name", "", "the secret's name, such as prod-anthropic (required)")
	f.StringVar(&provider, "provider", "", "the provider, such as anthropic or openai (required)")
	f.StringVar(&expires, "expires", "", "expiry: RFC 3339 or YYYY-MM-DD (00:00 UTC)")
	f.StringVar(&givenID, "id", "", "the new row's id (default: a new UUID on a table of text ids, else the database's next id)")
	c.MarkFlagRequired("name")
	c.MarkFlagRequired("provider")
	return c
}

// duplicateKey reports whether an insert failed on a unique key (the id
// put --id gives exists), from the codes the drivers keep reachable:
// PostgreSQL's SQLSTATE 23505, MySQL's ER_DUP_ENTRY, SQLite's
// SQLITE_CONSTRAINT_PRIMARYKEY and _UNIQUE.
func duplicateKey(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return my.Number == 1062
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		return lite.Code() == 1555 || lite.Code() == 2067
	}
	return false
}

// parseExpires reads --expires: RFC 3339, or a date meaning 00:00 UTC.
func parseExpires(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("--expires must be RFC 3339 (2027-01-31T00:00:00Z) or a date (2027-01-31)")
}

// readSecret reads the secret from stdin: without echo on a terminal, and
// with one trailing newline (\n or \r\n) dropped. usage is the command
// line the empty-secret message shows.
func (a *app) readSecret(usage string) (string, error) {
	var b []byte
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, "secret (input hidden): ")
		v, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", errorf(exitUsage, "reading the secret from the terminal: %v", err)
		}
		b = v
	} else {
		v, err := io.ReadAll(io.LimitReader(a.stdin, maxSecret+1))
		if err != nil {
			return "", errorf(exitUsage, "reading the secret from stdin: %v", err)
		}
		if len(v) > maxSecret {
			return "", errorf(exitUsage, "the secret on stdin is longer than %d bytes: pipe only the secret", maxSecret)
		}
		b = v
	}
	if bytes.HasSuffix(b, []byte("\r\n")) {
		b = b[:len(b)-2]
	} else if bytes.HasSuffix(b, []byte("\n")) {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "", errorf(exitUsage, "the secret is empty: pipe it on stdin, such as printf '%%s' \"$KEY\" | %s", usage)
	}
	return string(b), nil
}

// stateName is the state column of list: the library's states, with the
// primary key's simply "encrypted".
func stateName(s fernetstore.State) string {
	if s == fernetstore.StatePrimary {
		return "encrypted"
	}
	return string(s)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// listState is a state as list prints it and --state takes it.
type listState struct {
	name  string
	state fernetstore.State
}

// stateNames are the states list prints and --state takes, in the order
// help gives them.
var stateNames = []listState{
	{"encrypted", fernetstore.StatePrimary},
	{"encrypted-old-key", fernetstore.StateOldKey},
	{"plaintext", fernetstore.StatePlaintext},
	{"undecryptable", fernetstore.StateUndecryptable},
	{"reference", fernetstore.StateReference},
	{"empty", fernetstore.StateEmpty},
	{"bad-reference", fernetstore.StateBadReference},
	{"expired", fernetstore.StateExpired},
}

// parseStates reads --state: names list prints, repeated or comma-separated.
func parseStates(values []string) ([]fernetstore.State, error) {
	var out []fernetstore.State
	for _, v := range values {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			i := slices.IndexFunc(stateNames, func(s listState) bool { return s.name == name })
			if i < 0 {
				valid := make([]string, len(stateNames))
				for i, s := range stateNames {
					valid[i] = s.name
				}
				// A mistyped state is quoted; anything else is not (it
				// could be a value pasted into the wrong place).
				what := "a --state value"
				if len(name) <= 32 && strings.Trim(name, "abcdefghijklmnopqrstuvwxyz-_") == "" {
					what = fmt.Sprintf("--state %q", name)
				}
				return nil, fmt.Errorf("%s is not a state: give one or more of %s (repeat --state or separate them with commas)",
					what, strings.Join(valid, ", "))
			}
			if !slices.Contains(out, stateNames[i].state) {
				out = append(out, stateNames[i].state)
			}
		}
	}
	return out, nil
}

// maxLimit bounds --limit; 0 lists every row.
const maxLimit = 1 << 30

func (a *app) listCommand() *cobra.Command {
	var (
		stateFlags []string
		provider   string
		limit      int
		format     string
	)
	c := &cobra.Command{
		Use:   "list [--state STATE,...] [--provider P] [--limit N] [-o json]",
		Short: "List rows: id, name, provider, state, key, expiry (never values)",
		Long: `List the rows of the encrypted column in id order: id, name, provider, state,
the key a token is under, where a reference row's key lives, and expiry. Values
are never printed; the state comes from the value's structure and an HMAC
check, without decrypting. States: encrypted (under ENCRYPTION_KEY),
encrypted-old-key (run keyward rotate), plaintext (run keyward migrate),
undecryptable (no key opens it), reference (the row names where its key lives,
such as env:ANTHROPIC_API_KEY_1, in its ref_columns), empty (the row holds no
key), expired (past expires_at; --state also matches the state under it).

The table is read a page at a time, so any size lists in little memory; the
text columns widen when a later page has a wider cell. The REF column appears
when the configuration's db line names ref_columns. --state keeps rows in any
of the states given (repeat it, or separate with commas), --provider one
provider's rows, --limit the first N. -o json prints one document,
{"rows":[...]}, with each row's id, name, provider, state, encryption, key,
ref, expires_at and created_at.`,
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			states, err := parseStates(stateFlags)
			if err != nil {
				return withCode(exitUsage, err)
			}
			s, err := a.openStore()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if provider != "" {
				info, err := s.Describe(ctx)
				if err != nil {
					return classify(err)
				}
				if _, ok := info.Columns["provider"]; !ok {
					return errorf(exitUsage, "--provider: table %s has no provider column to filter on", a.tableName())
				}
			}
			opts := &fernetstore.ListOptions{Provider: provider, States: states, Limit: limit}
			if format == outputJSON {
				return a.listJSON(ctx, s, opts)
			}
			o, err := a.storeOptions()
			if err != nil {
				return err
			}
			refs := len(o.RefColumns) > 0
			header := []string{"ID", "NAME", "PROVIDER", "STATE", "KEY", "EXPIRES"}
			if refs {
				header = slices.Insert(header, 5, "REF")
			}
			out := bufio.NewWriter(a.stdout)
			tw := newTable(out, header...)
			n := 0
			for e, err := range s.Entries(ctx, opts) {
				if err != nil {
					// The rows so far are printed: they are true, and the
					// error says where the listing stopped. With none, not
					// even the header is.
					if n > 0 {
						tw.flush()
						out.Flush()
					}
					return classify(err)
				}
				n++
				cells := []string{clean(e.ID), orDash(clean(e.Name)), orDash(clean(e.Provider)),
					stateName(e.State), orDash(e.Key), formatTime(e.ExpiresAt)}
				if refs {
					cells = slices.Insert(cells, 5, orDash(clean(e.Ref)))
				}
				tw.add(cells...)
			}
			if err := tw.flush(); err != nil {
				return err
			}
			return out.Flush()
		},
	}
	f := c.Flags()
	f.StringSliceVar(&stateFlags, "state", nil, "keep rows in these states: encrypted, encrypted-old-key, plaintext, undecryptable, reference, empty, bad-reference, expired")
	f.StringVar(&provider, "provider", "", "keep the rows of this provider")
	f.Var(&intFlag{value: &limit, name: "limit", min: 0, max: maxLimit, unit: "rows (0 for every row)", example: 100},
		"limit", "list at most this many rows (0: every row)")
	addOutputFlag(c, &format)
	return c
}

// listJSON streams list -o json: {"rows":[...]}, an entry at a time.
func (a *app) listJSON(ctx context.Context, s *fernetstore.Store, opts *fernetstore.ListOptions) error {
	doc := newJSONDoc(a.stdout, "rows")
	for e, err := range s.Entries(ctx, opts) {
		if err != nil {
			return doc.abort(classify(err))
		}
		doc.add(entryJSON(e))
	}
	return doc.end(nil)
}

// clean keeps a name printable in one table cell: the C0 and C1 controls
// and DEL (a terminal acts on them: ESC and CSI), the format characters
// (Unicode Cf: the bidi overrides and isolates that reorder what the
// operator reads, zero-width characters) and the line and paragraph
// separators become '?'.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r < 0x20, r >= 0x7f && r <= 0x9f,
			r == '\u2028', r == '\u2029', unicode.Is(unicode.Cf, r):
			return '?'
		}
		return r
	}, s)
}

func (a *app) resolveCommand() *cobra.Command {
	var reveal bool
	c := &cobra.Command{
		Use:   "resolve [--reveal] SCHEME:REF",
		Short: "Resolve a ref through the configured stack; print it masked",
		Long: `Resolve SCHEME:REF (db:42, env:ANTHROPIC_API_KEY, awssm:prod/anthropic#api_key,
azurekv:name, vault:secret/bots/anthropic#api_key) through the configured stack
and print the value masked (sk-ant-…Xy9), with its version and expiry on
stderr. --reveal prints the value alone on stdout: the only output of keyward
that ever holds a value.`,
		Args: refArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := args[0]
			if _, _, err := secrets.SplitRef(ref); err != nil {
				return withCode(exitUsage, err)
			}
			st, err := a.stack(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			sec, err := st.Resolve(cmd.Context(), ref)
			if err != nil {
				if secrets.CodeOf(err) == secrets.CodeInvalidRef && configProblem(err) == "" {
					return withCode(exitUsage, err)
				}
				return classify(err)
			}
			if reveal {
				fmt.Fprintln(a.stdout, sec.Reveal())
			} else {
				fmt.Fprintln(a.stdout, mask(sec.Reveal()))
			}
			var meta []string
			if sec.Version != "" {
				meta = append(meta, "version "+clean(sec.Version))
			}
			if !sec.ExpiresAt.IsZero() {
				meta = append(meta, "expires "+formatTime(sec.ExpiresAt))
			}
			if len(meta) > 0 {
				fmt.Fprintf(a.stderr, "%s: %s\n", ref, strings.Join(meta, ", "))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&reveal, "reveal", false, "print the value itself, alone, instead of a mask")
	return c
}

func (a *app) walkCommand(op string) *cobra.Command {
	var dryRun bool
	var batch int
	var format string
	c := &cobra.Command{
		Use:  op + " [--dry-run] [--batch N] [-o json]",
		Args: noArgs(""),
	}
	switch op {
	case "migrate":
		c.Short = "Encrypt legacy plaintext rows under ENCRYPTION_KEY"
		c.Long = `Encrypt every legacy plaintext row under ENCRYPTION_KEY, in batches, each row
with a compare-and-swap on its old value: safe while services run, from two
processes at once, and to interrupt (Ctrl-C); run it again to finish. Tokens
are left as they are (keyward rotate moves old-key tokens), and so are
reference rows (their keys live elsewhere) and rows that hold no key. Progress
goes to stderr (a bar on a terminal), the final report to stdout. Exit 0 only
when every row that holds a key is then encrypted under ENCRYPTION_KEY.`
	case "rotate":
		c.Short = "Re-encrypt rows under old keys with ENCRYPTION_KEY"
		c.Long = `Re-encrypt under ENCRYPTION_KEY every token made under a key in
ENCRYPTION_KEY_PREVIOUS, keeping each token's timestamp. To rotate: run keyward
genkey, move the current key to ENCRYPTION_KEY_PREVIOUS, set the new one as
ENCRYPTION_KEY (services first, then this command), run keyward rotate, and
drop the old key once keyward check passes. Batched, compare-and-swap, safe to
interrupt and rerun; reference rows are left alone. Exit 0 only when every row
that holds a key is then encrypted under ENCRYPTION_KEY (plaintext rows need
keyward migrate).`
	}
	c.Long += `

The table is walked a batch at a time, and counted (for the bar, and for the
verdict at the end) a page at a time, so any size runs in little memory.
-o json prints one document on stdout, {"report":{...},"left":{...},"done":...}:
the walk's counts, the table's rows not under ENCRYPTION_KEY afterwards, and
whether none are left; the report's prose then goes to stderr.`
	f := c.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "count what would change; write nothing")
	batch = fernetstore.DefaultBatchSize
	f.Var(&intFlag{value: &batch, name: "batch", min: 1, max: fernetstore.MaxBatchSize, unit: "rows per transaction", example: fernetstore.DefaultBatchSize},
		"batch", fmt.Sprintf("rows read and updated per transaction, 1 to %d", fernetstore.MaxBatchSize))
	addOutputFlag(c, &format)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return a.walk(cmd.Context(), op, dryRun, batch, format)
	}
	return c
}

// walkJSON is the document of migrate/rotate -o json.
type walkJSON struct {
	Report jsonReport `json:"report"`
	Left   *jsonLeft  `json:"left,omitempty"` // nil when the walk failed
	Done   bool       `json:"done"`
	Error  string     `json:"error,omitempty"`
}

func (a *app) walk(ctx context.Context, op string, dryRun bool, batch int, format string) error {
	s, err := a.openStore()
	if err != nil {
		return err
	}
	// The report's prose is the output in text; beside a JSON document it
	// goes to stderr, so stdout is the document alone.
	prose := a.stdout
	if format == outputJSON {
		prose = a.stderr
	}
	// A walk cut short after it read rows still reports them (a resume
	// starts from its position); one that failed before has no document.
	fail := func(rep fernetstore.Report, err error) error {
		if format == outputJSON && rep.Scanned > 0 {
			writeJSON(a.stdout, walkJSON{Report: reportJSON(rep), Error: oneLine(err)})
		}
		return err
	}
	// A bar needs the row count; plain lines do without it, and so skip a
	// scan of the table (counting costs about a third of the walk itself).
	total := -1
	if isTerminal(a.stderr) {
		before, err := summarize(ctx, s)
		if err != nil {
			return classify(err)
		}
		total = before.rows
	}
	prog := newProgress(a.stderr, op, total)
	opts := &fernetstore.WalkOptions{BatchSize: batch, DryRun: dryRun, Progress: prog.update}
	var rep fernetstore.Report
	if op == "migrate" {
		rep, err = s.Migrate(ctx, opts)
	} else {
		rep, err = s.Rotate(ctx, opts)
	}
	prog.finish()
	if err == nil || rep.Scanned > 0 {
		a.printReport(prose, op, rep) // an error before any row is the whole story
	}
	if err != nil {
		if ctx.Err() != nil {
			return fail(rep, errorf(exitInterrupted, "%s interrupted after %d rows (%d rewritten): run keyward %s again to finish; rows already done are skipped",
				op, rep.Scanned, rep.Done, op))
		}
		return fail(rep, classify(err))
	}
	// The walk's own counts are not the criterion: rows written by others
	// meanwhile, or left for the other command, are. Ask the table, a page
	// at a time.
	left, err := summarize(ctx, s)
	if err != nil {
		return fail(rep, classify(err))
	}
	done := left.total() == 0
	if format == outputJSON {
		if err := writeJSON(a.stdout, walkJSON{Report: reportJSON(rep), Left: left.json(), Done: done}); err != nil {
			return err
		}
	}
	var verdict string
	switch {
	case done && left.references+left.empty == 0:
		verdict = fmt.Sprintf("done: all %d rows are encrypted under the primary key", left.rows)
	case done:
		verdict = fmt.Sprintf("done: all %s that hold a key here are encrypted under the primary key; %s",
			plural(left.rows-left.references-left.empty, "row"), left.elsewhere())
	case dryRun:
		verdict = "dry run: nothing was written; " + left.String()
	default:
		verdict = "not done: " + left.String()
	}
	fmt.Fprintf(prose, "%s: %s\n", op, verdict)
	if done {
		return nil
	}
	return &exitError{code: exitFindings, err: errSilent}
}

func (a *app) printReport(w io.Writer, op string, r fernetstore.Report) {
	verb := "rewritten"
	if r.DryRun {
		verb = "would be rewritten"
	}
	fmt.Fprintf(w, "%s: %d rows scanned, %d %s, %d already current, %d changed by others meanwhile (skipped), %d undecryptable",
		op, r.Scanned, r.Done, verb, r.AlreadyCurrent, r.Skipped, r.Undecryptable)
	if op == "rotate" {
		fmt.Fprintf(w, ", %d plaintext (left for keyward migrate)", r.Plaintext)
	}
	if r.References > 0 {
		fmt.Fprintf(w, ", %s left alone (their keys live elsewhere)", plural(r.References, "reference row"))
	}
	if r.Null > 0 {
		fmt.Fprintf(w, ", %s no key (see keyward check)", holds(r.Null))
	}
	fmt.Fprintln(w)
	if len(r.UndecryptableIDs) > 0 {
		fmt.Fprintf(w, "%s: undecryptable rows, left untouched: damaged or wrapped tokens, or tokens no key in ENCRYPTION_KEY or ENCRYPTION_KEY_PREVIOUS opens; inspect them: %s\n",
			op, strings.Join(r.UndecryptableIDs, ", "))
	}
}

// plural is "1 row" or "2 rows".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// holds is "1 row holds" or "2 rows hold".
func holds(n int) string {
	if n == 1 {
		return "1 row holds"
	}
	return fmt.Sprintf("%d rows hold", n)
}

// leftover counts a table's rows by what they need: rows not encrypted
// under the primary key (the work left), and rows with no key here.
type leftover struct {
	rows                             int
	oldKey, plaintext, undecryptable int
	references, empty                int // never work for migrate or rotate
}

func (l leftover) total() int { return l.oldKey + l.plaintext + l.undecryptable }

func (l leftover) String() string {
	var parts []string
	if l.plaintext > 0 {
		parts = append(parts, fmt.Sprintf("%d plaintext (run keyward migrate)", l.plaintext))
	}
	if l.oldKey > 0 {
		parts = append(parts, fmt.Sprintf("%d under a previous key (run keyward rotate)", l.oldKey))
	}
	if l.undecryptable > 0 {
		parts = append(parts, fmt.Sprintf("%d undecryptable (see keyward check)", l.undecryptable))
	}
	if e := l.elsewhere(); e != "" {
		parts = append(parts, e)
	}
	return strings.Join(parts, ", ")
}

// elsewhere says what is left alone: reference rows and rows with no key.
func (l leftover) elsewhere() string {
	var parts []string
	if l.references > 0 {
		parts = append(parts, plural(l.references, "reference row")+" left alone (their keys live elsewhere)")
	}
	if l.empty > 0 {
		parts = append(parts, holds(l.empty)+" no key (see keyward check)")
	}
	return strings.Join(parts, ", ")
}

// summarize counts the table's rows by state, streaming them: memory does
// not grow with the table.
func summarize(ctx context.Context, s *fernetstore.Store) (leftover, error) {
	var l leftover
	for e, err := range s.Entries(ctx, &fernetstore.ListOptions{AnyOrder: true}) {
		if err != nil {
			return leftover{}, err
		}
		l.rows++
		switch e.Encryption {
		case fernetstore.StateOldKey:
			l.oldKey++
		case fernetstore.StatePlaintext:
			l.plaintext++
		case fernetstore.StateUndecryptable:
			l.undecryptable++
		case fernetstore.StateReference:
			l.references++
		case fernetstore.StateEmpty, fernetstore.StateBadReference:
			l.empty++ // no usable key: keyward check says why
		}
	}
	return l, nil
}

// pingTimeout bounds each backend's ping in check.
const pingTimeout = 15 * time.Second

func (a *app) checkCommand() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "check [-o json]",
		Short: "Exit non-zero if any row or backend needs attention",
		Long: `Check the encrypted column and the backends, printing one line per finding:
rows in plaintext, undecryptable, expired, not under ENCRYPTION_KEY, or holding
no key at all (neither a value nor a reference), and backends that cannot be
reached. Reference rows (their keys live where their ref_columns say) are not
findings. The backends checked are db (the encrypted column on --db) plus the
schemes configured in KEYWARD_CONFIG or KEYWARD_CONFIG_FILE; with no
configuration, db and env (the cloud defaults would only fail where they are
not set up).

The table is read a page at a time, so any size checks in little memory.
-o json prints one document on stdout: {"findings":[...],"rows":N,"ok":...},
each finding a row's ({"row","name","provider","problem","hint"}; problem is
the row's state) or a backend's ({"backend","problem","hint","error"}), then
the counts by state; the summary line goes to stderr.`,
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.check(cmd.Context(), format)
		},
	}
	addOutputFlag(c, &format)
	return c
}

// rowFinding is a row's finding in check -o json. Problem is the row's
// state as list names it; Key and ExpiresAt say which key or when.
type rowFinding struct {
	Row       string     `json:"row"`
	Name      string     `json:"name"`
	Provider  string     `json:"provider"`
	Problem   string     `json:"problem"`
	Hint      string     `json:"hint"`
	Key       string     `json:"key,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// backendFinding is a backend's finding in check -o json.
type backendFinding struct {
	Backend string `json:"backend"`
	Problem string `json:"problem"`
	Hint    string `json:"hint,omitempty"`
	Error   string `json:"error"`
}

// checkSummary ends the document of check -o json.
type checkSummary struct {
	Rows        int            `json:"rows"`
	Findings    int            `json:"finding_count"`
	Unreachable int            `json:"unreachable"`
	OK          bool           `json:"ok"`
	Counts      map[string]int `json:"counts"` // rows by state (expired rows also under the state beneath)
	Backends    []string       `json:"backends"`
}

func (a *app) check(ctx context.Context, format string) error {
	if _, err := a.openStore(); err != nil {
		return err
	}
	st, err := a.stack(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	schemes := []string{"db", "env"}
	if a.explicit {
		schemes = []string{"db"}
		for s := range a.cfg.Backends {
			if s != "db" {
				schemes = append(schemes, s)
			}
		}
		slices.Sort(schemes[1:])
	}
	// Findings are printed as they are found (a million plaintext rows are
	// a million lines, never a million entries in memory): as lines on
	// stdout, or as items of the JSON document, with the summary on stderr.
	jsonOut := format == outputJSON
	out := bufio.NewWriter(a.stdout)
	defer out.Flush()
	doc := newJSONDoc(a.stdout, "findings")
	prose := io.Writer(out)
	if jsonOut {
		prose = a.stderr
	}
	findings, unreachable := 0, 0
	dbUp := true
	for _, scheme := range schemes {
		r, ok := st.Mux.Resolver(scheme)
		if !ok {
			continue
		}
		p, ok := r.(secrets.Pinger)
		if !ok {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err := p.Ping(pctx)
		cancel()
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return doc.abort(withCode(exitInterrupted, ctx.Err()))
		}
		if scheme == "db" {
			dbUp = false
			if c := classify(err); exitCodeOf(c) == exitConfig {
				return doc.abort(c)
			}
		}
		unreachable++
		findings++
		f := backendFinding{Backend: scheme, Problem: "unreachable", Error: oneLine(err)}
		text := "unreachable"
		switch secrets.CodeOf(err) {
		case secrets.CodeInvalidRef, secrets.CodeUnknownScheme:
			f.Problem, f.Hint = "cannot be opened", "check its URL in the configuration"
			text = "cannot be opened (check its URL in the configuration)"
		case secrets.CodePermission:
			f.Problem = "refuses the credentials"
			text = f.Problem
		}
		if jsonOut {
			doc.add(f)
		} else {
			fmt.Fprintf(out, "backend %s: %s: %s\n", scheme, text, f.Error)
		}
	}
	rows := 0
	counts := map[string]int{}
	if dbUp {
		noKey := a.noKeyColumns()
		report := func(e fernetstore.Entry, problem, text, hint string) {
			findings++
			if jsonOut {
				f := rowFinding{Row: e.ID, Name: e.Name, Provider: e.Provider, Problem: problem, Hint: hint}
				switch problem {
				case stateName(fernetstore.StateOldKey):
					f.Key = e.Key
				case stateName(fernetstore.StateExpired):
					f.ExpiresAt = nullTime(e.ExpiresAt)
				}
				doc.add(f)
				return
			}
			fmt.Fprintf(out, "row %s (%s, %s): %s\n", clean(e.ID), orDash(clean(e.Name)), orDash(clean(e.Provider)), text)
		}
		// Findings come in the order that reads the table fastest (on
		// SQLite with text ids, the rows' physical order).
		for e, err := range a.store.Entries(ctx, &fernetstore.ListOptions{AnyOrder: true}) {
			if err != nil {
				return doc.abort(classify(err))
			}
			rows++
			counts[stateName(e.Encryption)]++
			id := clean(e.ID)
			switch e.Encryption {
			case fernetstore.StatePlaintext:
				const hint = "run keyward migrate"
				report(e, "plaintext", "plaintext: "+hint, hint)
			case fernetstore.StateUndecryptable:
				const hint = "a missing previous key, or a damaged value: store it again with keyward put"
				report(e, "undecryptable", "undecryptable: no key in ENCRYPTION_KEY or ENCRYPTION_KEY_PREVIOUS opens it ("+hint+")",
					"no key in ENCRYPTION_KEY or ENCRYPTION_KEY_PREVIOUS opens it: "+hint)
			case fernetstore.StateOldKey:
				const hint = "run keyward rotate"
				report(e, stateName(fernetstore.StateOldKey), "encrypted under "+e.Key+": "+hint, hint)
			case fernetstore.StateEmpty:
				hint := noKey + "; store one with keyward update " + id
				report(e, "empty", "holds no key: "+hint, hint)
			case fernetstore.StateBadReference:
				hint := "store the key with keyward update " + id + " and clear that column (it must hold a variable or secret name)"
				report(e, "bad-reference", "a reference column holds what looks like a key, not a name, and is never shown: "+hint, hint)
			}
			if e.State == fernetstore.StateExpired {
				counts[stateName(fernetstore.StateExpired)]++
				hint := "store a new key with keyward update " + id + " --expires DATE (or --expires none)"
				if e.Encryption == fernetstore.StateReference {
					hint = "renew the key at " + clean(e.Ref) + ", then move the row's expires_at"
				}
				report(e, "expired", "expired at "+formatTime(e.ExpiresAt)+": "+hint, hint)
			}
		}
	}
	if jsonOut {
		if err := doc.end(checkSummary{Rows: rows, Findings: findings, Unreachable: unreachable,
			OK: findings == 0, Counts: counts, Backends: schemes}); err != nil {
			return err
		}
	}
	switch {
	case unreachable > 0:
		fmt.Fprintf(prose, "check: %d findings, %d backends unreachable\n", findings, unreachable)
		return &exitError{code: exitUnavailable, err: errSilent}
	case findings > 0:
		fmt.Fprintf(prose, "check: %d findings in %d rows\n", findings, rows)
		return &exitError{code: exitFindings, err: errSilent}
	}
	what := fmt.Sprintf("%d rows encrypted under the primary key", rows)
	if refs := counts[stateName(fernetstore.StateReference)]; refs > 0 {
		what = fmt.Sprintf("%d rows: %d encrypted under the primary key, %s (their keys live elsewhere)",
			rows, rows-refs, plural(refs, "reference row"))
	}
	fmt.Fprintf(prose, "check: ok: %s, none expired; backends answer: %s\n", what, strings.Join(schemes, ", "))
	return nil
}

// noKeyColumns says which columns an empty row has empty: "api_key,
// key_env_var and secret_name are all NULL or empty".
func (a *app) noKeyColumns() string {
	cols := []string{"api_key"}
	if o, err := a.storeOptions(); err == nil {
		if o.ValueColumn != "" {
			cols[0] = o.ValueColumn
		}
		for _, r := range o.RefColumns {
			cols = append(cols, r.Column)
		}
	}
	switch len(cols) {
	case 1:
		return cols[0] + " is NULL or empty"
	case 2:
		return cols[0] + " and " + cols[1] + " are both NULL or empty"
	}
	return strings.Join(cols[:len(cols)-1], ", ") + " and " + cols[len(cols)-1] + " are all NULL or empty"
}

func exitCodeOf(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitUsage
}

// oneLine keeps a multi-line (joined) error on one finding line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
