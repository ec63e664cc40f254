package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
)

func (a *app) genkeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "genkey",
		Short: "Print a new ENCRYPTION_KEY",
		Long: `Print a new random Fernet key as ENCRYPTION_KEY=<key>, in the form Python's
Fernet.generate_key() prints (and Fernet(key) accepts). To rotate, move the
current key to ENCRYPTION_KEY_PREVIOUS, set the new one, and run keyward rotate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := fernetstore.GenerateKey()
			if err != nil {
				return errorf(exitConfig, "%v", err)
			}
			fmt.Fprintf(a.stdout, "%s=%s\n", fernetstore.EnvKey, k)
			return nil
		},
	}
}

func (a *app) initCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the table of the encrypted column",
		Long: `Create the table (api_keys, or --table) with the default schema if it does not
exist: id, name, provider, the value column (api_key, or --column), expires_at,
created_at. An existing table is left as it is.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openStore()
			if err != nil {
				return err
			}
			if err := s.CreateSchema(cmd.Context()); err != nil {
				return classify(err)
			}
			fmt.Fprintf(a.stdout, "table %s is ready\n", a.tableName())
			return nil
		},
	}
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
	var name, provider, expires string
	c := &cobra.Command{
		Use:   "put --name NAME --provider PROVIDER [--expires DATE] < secret",
		Short: "Store a secret read from stdin; print its id",
		Long: `Store a secret in the encrypted column, encrypted under ENCRYPTION_KEY, and
print the new row's id on stdout (services resolve it as db:<id>).

The secret is read from stdin, never from an argument (the process list is
public): printf '%s' "$KEY" | keyward put --name prod --provider anthropic.
One trailing newline is dropped; an empty secret is refused. On a terminal the
secret is read without echo. --expires takes RFC 3339 (2027-01-31T00:00:00Z)
or a date (2027-01-31, meaning 00:00 UTC that day).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var exp time.Time
			if expires != "" {
				t, err := parseExpires(expires)
				if err != nil {
					return withCode(exitUsage, err)
				}
				exp = t
			}
			value, err := a.readSecret()
			if err != nil {
				return err
			}
			s, err := a.openStore()
			if err != nil {
				return err
			}
			id, err := s.Put(cmd.Context(), name, provider, value, exp)
			if err != nil {
				return classify(err)
			}
			fmt.Fprintln(a.stdout, id)
			fmt.Fprintf(a.stderr, "stored row %s; services resolve it as db:%s\n", id, id)
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
	c.MarkFlagRequired("name")
	c.MarkFlagRequired("provider")
	return c
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
// with one trailing newline (\n or \r\n) dropped.
func (a *app) readSecret() (string, error) {
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
		return "", errorf(exitUsage, "the secret is empty: pipe it on stdin, such as printf '%%s' \"$KEY\" | keyward put --name N --provider P")
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

func (a *app) listCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List rows: id, name, provider, state, key, expiry (never values)",
		Long: `List every row of the encrypted column: id, name, provider, state, the key a
token is under, and expiry. Values are never printed; the state comes from the
value's structure and an HMAC check, without decrypting. States: encrypted
(under ENCRYPTION_KEY), encrypted-old-key (run keyward rotate), plaintext (run
keyward migrate), undecryptable (no key opens it), expired.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openStore()
			if err != nil {
				return err
			}
			rows, err := s.List(cmd.Context())
			if err != nil {
				return classify(err)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tPROVIDER\tSTATE\tKEY\tEXPIRES")
			for _, e := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, orDash(clean(e.Name)), orDash(clean(e.Provider)),
					stateName(e.State), orDash(e.Key), formatTime(e.ExpiresAt))
			}
			return tw.Flush()
		},
	}
}

// clean keeps a name printable in one table cell.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
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
		Args: cobra.ExactArgs(1),
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
				if secrets.CodeOf(err) == secrets.CodeInvalidRef {
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
	c := &cobra.Command{
		Use:  op + " [--dry-run] [--batch N]",
		Args: cobra.NoArgs,
	}
	switch op {
	case "migrate":
		c.Short = "Encrypt legacy plaintext rows under ENCRYPTION_KEY"
		c.Long = `Encrypt every legacy plaintext row under ENCRYPTION_KEY, in batches, each row
with a compare-and-swap on its old value: safe while services run, from two
processes at once, and to interrupt (Ctrl-C); run it again to finish. Tokens
are left as they are (keyward rotate moves old-key tokens). Progress goes to
stderr (a bar on a terminal), the final report to stdout. Exit 0 only when
every row is then encrypted under ENCRYPTION_KEY.`
	case "rotate":
		c.Short = "Re-encrypt rows under old keys with ENCRYPTION_KEY"
		c.Long = `Re-encrypt under ENCRYPTION_KEY every token made under a key in
ENCRYPTION_KEY_PREVIOUS, keeping each token's timestamp. To rotate: run keyward
genkey, move the current key to ENCRYPTION_KEY_PREVIOUS, set the new one as
ENCRYPTION_KEY (services first, then this command), run keyward rotate, and
drop the old key once keyward check passes. Batched, compare-and-swap, safe to
interrupt and rerun. Exit 0 only when every row is then encrypted under
ENCRYPTION_KEY (plaintext rows need keyward migrate).`
	}
	f := c.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "count what would change; write nothing")
	batch = fernetstore.DefaultBatchSize
	f.Var(&intFlag{value: &batch, name: "batch", min: 1, max: fernetstore.MaxBatchSize, unit: "rows per transaction", example: fernetstore.DefaultBatchSize},
		"batch", fmt.Sprintf("rows read and updated per transaction, 1 to %d", fernetstore.MaxBatchSize))
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return a.walk(cmd.Context(), op, dryRun, batch)
	}
	return c
}

func (a *app) walk(ctx context.Context, op string, dryRun bool, batch int) error {
	s, err := a.openStore()
	if err != nil {
		return err
	}
	// A bar needs the row count; plain lines do without it, and so skip a
	// scan of the table (List costs about a third of the walk itself).
	total := -1
	if isTerminal(a.stderr) {
		before, err := s.List(ctx)
		if err != nil {
			return classify(err)
		}
		total = len(before)
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
	a.printReport(op, rep)
	if err != nil {
		if ctx.Err() != nil {
			return errorf(exitInterrupted, "%s interrupted after %d rows (%d rewritten): run keyward %s again to finish; rows already done are skipped",
				op, rep.Scanned, rep.Done, op)
		}
		return classify(err)
	}
	// The walk's own counts are not the criterion: rows written by others
	// meanwhile, or left for the other command, are. Ask the table.
	after, err := s.List(ctx)
	if err != nil {
		return classify(err)
	}
	left := summarize(after)
	if left.total() == 0 {
		fmt.Fprintf(a.stdout, "%s: done: all %d rows are encrypted under the primary key\n", op, len(after))
		return nil
	}
	if dryRun {
		fmt.Fprintf(a.stdout, "%s: dry run: nothing was written; %s\n", op, left)
	} else {
		fmt.Fprintf(a.stdout, "%s: not done: %s\n", op, left)
	}
	return &exitError{code: exitFindings, err: errSilent}
}

func (a *app) printReport(op string, r fernetstore.Report) {
	verb := "rewritten"
	if r.DryRun {
		verb = "would be rewritten"
	}
	fmt.Fprintf(a.stdout, "%s: %d rows scanned, %d %s, %d already current, %d changed by others meanwhile (skipped), %d undecryptable",
		op, r.Scanned, r.Done, verb, r.AlreadyCurrent, r.Skipped, r.Undecryptable)
	if op == "rotate" {
		fmt.Fprintf(a.stdout, ", %d plaintext (left for keyward migrate)", r.Plaintext)
	}
	if r.Null > 0 {
		fmt.Fprintf(a.stdout, ", %d NULL", r.Null)
	}
	fmt.Fprintln(a.stdout)
	if len(r.UndecryptableIDs) > 0 {
		fmt.Fprintf(a.stdout, "%s: undecryptable rows, left untouched: damaged or wrapped tokens, or tokens no key in ENCRYPTION_KEY or ENCRYPTION_KEY_PREVIOUS opens; inspect them: %s\n",
			op, strings.Join(r.UndecryptableIDs, ", "))
	}
}

// leftover counts rows that are not encrypted under the primary key.
type leftover struct{ oldKey, plaintext, undecryptable int }

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
	return strings.Join(parts, ", ")
}

func summarize(rows []fernetstore.Entry) leftover {
	var l leftover
	for _, e := range rows {
		switch e.Encryption {
		case fernetstore.StateOldKey:
			l.oldKey++
		case fernetstore.StatePlaintext:
			l.plaintext++
		case fernetstore.StateUndecryptable:
			l.undecryptable++
		}
	}
	return l
}

// pingTimeout bounds each backend's ping in check.
const pingTimeout = 15 * time.Second

func (a *app) checkCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Exit non-zero if any row or backend needs attention",
		Long: `Check the encrypted column and the backends, printing one line per finding:
rows in plaintext, undecryptable, expired, or not under ENCRYPTION_KEY, and
backends that cannot be reached. The backends checked are db (the encrypted
column on --db) plus the schemes configured in KEYWARD_CONFIG or
KEYWARD_CONFIG_FILE; with no configuration, db and env (the cloud defaults
would only fail where they are not set up).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.check(cmd.Context())
		},
	}
}

func (a *app) check(ctx context.Context) error {
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
	findings, unreachable := 0, 0
	finding := func(format string, args ...any) {
		findings++
		fmt.Fprintf(a.stdout, format+"\n", args...)
	}
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
			return withCode(exitInterrupted, ctx.Err())
		}
		if scheme == "db" {
			dbUp = false
			if c := classify(err); exitCodeOf(c) == exitConfig {
				return c
			}
		}
		unreachable++
		problem := "unreachable"
		switch secrets.CodeOf(err) {
		case secrets.CodeInvalidRef, secrets.CodeUnknownScheme:
			problem = "cannot be opened (check its URL in the configuration)"
		case secrets.CodePermission:
			problem = "refuses the credentials"
		}
		finding("backend %s: %s: %s", scheme, problem, oneLine(err))
	}
	rows := 0
	if dbUp {
		entries, err := a.store.List(ctx)
		if err != nil {
			return classify(err)
		}
		rows = len(entries)
		for _, e := range entries {
			what := fmt.Sprintf("row %s (%s, %s)", e.ID, orDash(clean(e.Name)), orDash(clean(e.Provider)))
			switch e.Encryption {
			case fernetstore.StatePlaintext:
				finding("%s: plaintext: run keyward migrate", what)
			case fernetstore.StateUndecryptable:
				finding("%s: undecryptable: no key in ENCRYPTION_KEY or ENCRYPTION_KEY_PREVIOUS opens it (a missing previous key, or a damaged value: store it again with keyward put)", what)
			case fernetstore.StateOldKey:
				finding("%s: encrypted under %s: run keyward rotate", what, e.Key)
			}
			if e.State == fernetstore.StateExpired {
				finding("%s: expired at %s: store a new value with keyward put and point the service at it", what, formatTime(e.ExpiresAt))
			}
		}
	}
	switch {
	case unreachable > 0:
		fmt.Fprintf(a.stdout, "check: %d findings, %d backends unreachable\n", findings, unreachable)
		return &exitError{code: exitUnavailable, err: errSilent}
	case findings > 0:
		fmt.Fprintf(a.stdout, "check: %d findings in %d rows\n", findings, rows)
		return &exitError{code: exitFindings, err: errSilent}
	}
	fmt.Fprintf(a.stdout, "check: ok: %d rows encrypted under the primary key, none expired; backends answer: %s\n",
		rows, strings.Join(schemes, ", "))
	return nil
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
