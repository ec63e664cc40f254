package main

// Client API tokens for POST /api/chat/{bot_id} (issue 14, item 2).
//
// A token is "kwc_" followed by 64 hex digits (32 random bytes), so a leaked
// one is found by `grep -E 'kwc_[0-9a-f]{64}'` (and by secret scanners). It
// is shown once, when it is made, and never stored or logged: the table
// chat_tokens keeps its SHA-256 hash, the bots it may chat as, and a short
// hint (its first 8 hex digits) by which an operator matches a leaked token
// to its row to revoke it.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyward/secrets/fernetstore"
)

const (
	// tokenTable is the table of the service's client tokens.
	tokenTable = "chat_tokens"
	// tokenPrefix starts every client token.
	tokenPrefix = "kwc_"
	// tokenHintLen is how many hex digits after the prefix the table keeps
	// and list shows: 32 of the token's 256 bits, which leaves 224 unknown
	// (no help to a guesser) and tells an operator which row a leaked token
	// is.
	tokenHintLen = 8
	// devTokenFile, in CHAT_DATA_DIR, keeps the development token of the
	// zero-config start (mode 0600), as devKeyFile keeps the development
	// ENCRYPTION_KEY.
	devTokenFile = ".chat-dev-token"
	// devTokenName is the development token's name in the table.
	devTokenName = "development (zero-config start)"
	// allBots is the scope of a token that may chat as every bot.
	allBots = "*"

	maxTokenName = 200  // characters, the name column's VARCHAR(200)
	maxBotID     = 64   // characters of one bot id (a UUID is 36)
	maxBots      = 1000 // bot ids in one token's scope
)

// The errors of check, for the server to answer with: errTokenMissing,
// errTokenUnknown and errTokenRevoked are a 401 (with WWW-Authenticate:
// Bearer), errTokenScope a 403. Any other error of check is the database's
// (a 503). None of them, nor any other error here, holds a token.
var (
	errTokenMissing = errors.New("no client token: send Authorization: Bearer <token>")
	errTokenUnknown = errors.New("unknown client token")
	errTokenRevoked = errors.New("the client token has been revoked")
	errTokenScope   = errors.New("the client token may not chat as this bot")

	// errTokenNotFound is revoke's for an id with no token.
	errTokenNotFound = errors.New("no such token")
	// errTokenAlreadyRevoked is revoke's for a token revoked before; it
	// stays revoked, with its first revocation time.
	errTokenAlreadyRevoked = errors.New("the token was already revoked")
)

// tokenStore keeps the client tokens in the service's own database, the one
// DATABASE_URL names.
//
// check makes one query per request and caches nothing, so a revoke takes
// effect on the very next request, in this process and in every other one
// on the same database.
type tokenStore struct {
	db      *sql.DB
	dialect fernetstore.Dialect
	// table is the tokens table's name, tokenTable when empty (tests use
	// others). It comes from code, never from configuration.
	table string
}

// tokenInfo is what list shows of a token: never the token, nor its hash.
type tokenInfo struct {
	ID   int64
	Name string
	// Bots are the bot ids the token may chat as; ["*"] for every bot.
	Bots []string
	// Hint is "kwc_" and the token's first 8 hex digits.
	Hint    string
	Created time.Time
	// Revoked is when the token was revoked; zero while it is active.
	Revoked time.Time
}

func (s *tokenStore) tbl() string {
	name := s.table
	if name == "" {
		name = tokenTable
	}
	if s.dialect == fernetstore.MySQL {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

func (s *tokenStore) ph(n int) string {
	if s.dialect == fernetstore.Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// exists reports whether the tokens table exists (on a database the service
// may not create tables in, the Python service's).
func (s *tokenStore) exists(ctx context.Context) (bool, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT 1 FROM "+s.tbl()+" WHERE 1 = 0")
	if err != nil {
		// Whether the error is a missing table or an outage, the
		// database tells apart: ping it.
		if perr := s.db.PingContext(ctx); perr != nil {
			return false, perr
		}
		return false, nil
	}
	return true, rows.Close()
}

// createTable creates the tokens table if it does not exist. hash is
// UNIQUE: its index is what check looks a token up by.
func (s *tokenStore) createTable(ctx context.Context) error {
	id, ts, suffix := "INTEGER PRIMARY KEY AUTOINCREMENT", "TIMESTAMP", ""
	switch s.dialect {
	case fernetstore.Postgres:
		id, ts = "BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ"
	case fernetstore.MySQL:
		id, ts, suffix = "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", "DATETIME(6)", " DEFAULT CHARSET=utf8mb4"
	}
	_, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+s.tbl()+` (
	id `+id+`,
	name VARCHAR(200) NOT NULL,
	hash VARCHAR(64) NOT NULL UNIQUE,
	hint VARCHAR(16) NOT NULL,
	bots TEXT NOT NULL,
	created_at `+ts+` NOT NULL,
	revoked_at `+ts+` NULL)`+suffix)
	if err != nil {
		return fmt.Errorf("create the client token table: %w", err)
	}
	return nil
}

// tokenHash is what the table keeps of a token: the hex SHA-256 of the
// whole token. A token is 32 random bytes, so a fast hash is right: a
// slow one (bcrypt, argon2) protects guessable passwords, and no one can
// guess 256 random bits, nor find them from their SHA-256. The hash is
// also the lookup key, which a salted slow hash could not be.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenHint is the part of a token the table keeps and list shows.
func tokenHint(token string) string {
	return token[:len(tokenPrefix)+tokenHintLen]
}

// wellFormed says whether token has the shape of a client token: the
// prefix and 64 lower-case hex digits.
func wellFormed(token string) bool {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok || len(rest) != 64 {
		return false
	}
	for _, c := range []byte(rest) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return tokenPrefix + hex.EncodeToString(b), nil
}

// checkTokenName refuses an empty or overlong name, or one with control
// characters (list prints names one to a line).
func checkTokenName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", errors.New("a token needs a name (who or what uses it)")
	case !utf8.ValidString(name):
		return "", errors.New("the token name is not valid UTF-8")
	case utf8.RuneCountInString(name) > maxTokenName:
		return "", fmt.Errorf("the token name is longer than %d characters", maxTokenName)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", errors.New("the token name holds control characters")
	}
	return name, nil
}

// normalizeBots checks a token's scope: bot ids (trimmed, deduplicated, in
// the order given), or "*" alone for every bot.
func normalizeBots(bots []string) ([]string, error) {
	var out []string
	seen := make(map[string]bool)
	for _, b := range bots {
		b = strings.TrimSpace(b)
		switch {
		case b == "":
			continue
		case b == allBots:
		case len(b) > maxBotID:
			return nil, fmt.Errorf("bot id %.20q... is longer than %d characters", b, maxBotID)
		case strings.ContainsRune(b, ','):
			return nil, errors.New("a bot id cannot hold a comma")
		case strings.IndexFunc(b, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 || !utf8.ValidString(b):
			return nil, fmt.Errorf("bot id %q holds spaces or control characters", b)
		}
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	switch {
	case len(out) == 0:
		return nil, errors.New("a token needs at least one bot id, or * for every bot")
	case seen[allBots] && len(out) > 1:
		return nil, errors.New("* (every bot) cannot be given with bot ids")
	case len(out) > maxBots:
		return nil, fmt.Errorf("a token may name at most %d bots; use * for every bot", maxBots)
	}
	return out, nil
}

// add makes a token named name that may chat as bots (bot ids, or "*" for
// every bot) and returns its id and the token, the one time it is seen.
func (s *tokenStore) add(ctx context.Context, name string, bots []string) (id int64, token string, err error) {
	name, err = checkTokenName(name)
	if err != nil {
		return 0, "", err
	}
	bots, err = normalizeBots(bots)
	if err != nil {
		return 0, "", err
	}
	token, err = newToken()
	if err != nil {
		return 0, "", fmt.Errorf("make a token: %w", err)
	}
	id, err = s.insert(ctx, name, token, bots)
	if err != nil {
		return 0, "", err
	}
	return id, token, nil
}

// insert stores token's hash and hint (never the token).
func (s *tokenStore) insert(ctx context.Context, name, token string, bots []string) (int64, error) {
	q := fmt.Sprintf("INSERT INTO %s (name, hash, hint, bots, created_at) VALUES (%s, %s, %s, %s, %s)",
		s.tbl(), s.ph(1), s.ph(2), s.ph(3), s.ph(4), s.ph(5))
	args := []any{name, tokenHash(token), tokenHint(token), strings.Join(bots, ","), dbNow()}
	var id int64
	if s.dialect == fernetstore.Postgres {
		if err := s.db.QueryRowContext(ctx, q+" RETURNING id", args...).Scan(&id); err != nil {
			return 0, fmt.Errorf("store the token: %w", err)
		}
		return id, nil
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err == nil {
		id, err = res.LastInsertId()
	}
	if err != nil {
		return 0, fmt.Errorf("store the token: %w", err)
	}
	return id, nil
}

// dbNow is the time written to the table: UTC, in microseconds, which
// every dialect's column keeps exactly.
func dbNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// revoke revokes the token id from the next request on: errTokenNotFound
// if there is none, errTokenAlreadyRevoked if it was revoked before.
func (s *tokenStore) revoke(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, fmt.Sprintf("UPDATE %s SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL", s.tbl(), s.ph(1), s.ph(2)), dbNow(), id)
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	} else if n > 0 {
		return nil
	}
	var revoked nullTime
	err = s.db.QueryRowContext(ctx, fmt.Sprintf("SELECT revoked_at FROM %s WHERE id = %s", s.tbl(), s.ph(1)), id).Scan(&revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("token %d: %w", id, errTokenNotFound)
	case err != nil:
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	return fmt.Errorf("token %d: %w", id, errTokenAlreadyRevoked)
}

// each calls fn with every token, by id, as the rows arrive.
func (s *tokenStore) each(ctx context.Context, fn func(tokenInfo) error) error {
	rows, err := s.db.QueryContext(ctx, "SELECT id, name, bots, hint, created_at, revoked_at FROM "+s.tbl()+" ORDER BY id")
	if err != nil {
		return fmt.Errorf("list the tokens: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ti tokenInfo
		var bots string
		var created, revoked nullTime
		if err := rows.Scan(&ti.ID, &ti.Name, &bots, &ti.Hint, &created, &revoked); err != nil {
			return fmt.Errorf("list the tokens: %w", err)
		}
		ti.Bots, ti.Created, ti.Revoked = strings.Split(bots, ","), created.t, revoked.t
		if err := fn(ti); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list the tokens: %w", err)
	}
	return nil
}

// list returns every token, by id.
func (s *tokenStore) list(ctx context.Context) ([]tokenInfo, error) {
	var out []tokenInfo
	err := s.each(ctx, func(ti tokenInfo) error {
		out = append(out, ti)
		return nil
	})
	return out, err
}

// check says whether token may chat as the bot botID, and returns its row's
// id when it may (for the access log). The error is nil, or
// errTokenMissing, errTokenUnknown, errTokenRevoked, errTokenScope, or the
// database's error (which never holds the token).
//
// The row is found by the token's hash, through the hash column's unique
// index, so the time a lookup takes depends on the hash, not on how much of
// a guess matches a real token: no timing oracle on the token. Nothing is
// cached: a revoke is seen by the next check.
func (s *tokenStore) check(ctx context.Context, token, botID string) (int64, error) {
	if token == "" {
		return 0, errTokenMissing
	}
	if !wellFormed(token) {
		// Not a token's shape (which is public): no query.
		return 0, errTokenUnknown
	}
	var id int64
	var bots string
	var revoked nullTime
	err := s.db.QueryRowContext(ctx, fmt.Sprintf("SELECT id, bots, revoked_at FROM %s WHERE hash = %s", s.tbl(), s.ph(1)), tokenHash(token)).Scan(&id, &bots, &revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, errTokenUnknown
	case err != nil:
		return 0, fmt.Errorf("look up the client token: %w", err)
	case revoked.valid:
		return 0, errTokenRevoked
	}
	for _, b := range strings.Split(bots, ",") {
		if b == allBots || b == botID {
			return id, nil
		}
	}
	return 0, errTokenScope
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header (the scheme in any case, RFC 9110), or "" when there is none or
// the header has another scheme.
func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// ensureDevToken returns the development token of the zero-config start,
// kept in dataDir/.chat-dev-token (mode 0600): made with scope "*" on the
// first run, reused on later ones, and added to the table again when the
// table lacks it (a fresh database). A development token that was revoked
// stays revoked: a new one takes its place in the file.
//
// The file is written before the table, so a failure in between leaves a
// token the next run adds, never a row without its file.
func (s *tokenStore) ensureDevToken(ctx context.Context, dataDir string) (token string, err error) {
	path := filepath.Join(dataDir, devTokenFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if token, err = newToken(); err != nil {
			return "", fmt.Errorf("make the development token: %w", err)
		}
		if err := writeDevToken(path, token, false); errors.Is(err, os.ErrExist) {
			// Another process made it first: use its.
			return s.ensureDevToken(ctx, dataDir)
		} else if err != nil {
			return "", err
		}
	case err != nil:
		return "", fmt.Errorf("read the development token: %w", err)
	default:
		token = strings.TrimSpace(string(b))
		if !wellFormed(token) {
			return "", fmt.Errorf("the development token in %s is malformed: delete the file to make a new one", path)
		}
	}

	var revoked nullTime
	err = s.db.QueryRowContext(ctx, fmt.Sprintf("SELECT revoked_at FROM %s WHERE hash = %s", s.tbl(), s.ph(1)), tokenHash(token)).Scan(&revoked)
	switch {
	case err == nil && !revoked.valid:
		return token, nil
	case err == nil:
		if token, err = newToken(); err != nil {
			return "", fmt.Errorf("make the development token: %w", err)
		}
		if err := writeDevToken(path, token, true); err != nil {
			return "", err
		}
	case !errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("look up the development token: %w", err)
	}
	if _, err := s.insert(ctx, devTokenName, token, []string{allBots}); err != nil {
		// Another process on the same database may have added it.
		if _, again := s.check(ctx, token, ""); again == nil {
			return token, nil
		}
		return "", fmt.Errorf("add the development token: %w", err)
	}
	return token, nil
}

// writeDevToken writes the development token file, mode 0600: a new file
// (os.ErrExist if there is one), or with replace, a new file renamed over
// the old one.
func writeDevToken(path, token string, replace bool) error {
	if !replace {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return err
		}
		if err == nil {
			_, err = f.WriteString(token + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(path)
			}
		}
		if err != nil {
			return fmt.Errorf("write the development token: %w", err)
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), devTokenFile+".*")
	if err != nil {
		return fmt.Errorf("write the development token: %w", err)
	}
	_, err = f.WriteString(token + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o600) // CreateTemp's mode already; made sure
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write the development token: %w", err)
	}
	return nil
}

// nullTime scans a nullable time column of any of the three dialects:
// time.Time (PostgreSQL, MySQL with parseTime, SQLite's TIMESTAMP
// columns), or the text SQLite or MySQL without parseTime return.
type nullTime struct {
	t     time.Time
	valid bool
}

func (n *nullTime) Scan(v any) error {
	var s string
	switch x := v.(type) {
	case nil:
		*n = nullTime{}
		return nil
	case time.Time:
		*n = nullTime{t: x, valid: true}
		return nil
	case []byte:
		s = string(x)
	case string:
		s = x
	default:
		return fmt.Errorf("a time column holds a %T", v)
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999 -0700 MST"} {
		if t, err := time.Parse(layout, s); err == nil {
			*n = nullTime{t: t, valid: true}
			return nil
		}
	}
	return fmt.Errorf("a time column holds %q, which is no time", s)
}

const tokenUsage = `usage:
  chatservice token add --name NAME --bots ID[,ID...]   make a token that may chat as those bots
  chatservice token add --name NAME --bots '*'          make a token that may chat as every bot
  chatservice token list                                list the tokens (never the tokens themselves)
  chatservice token revoke ID                           revoke a token from its next request on

The tokens are kept, hashed, in the database of DATABASE_URL (default
sqlite:<CHAT_DATA_DIR or .>/chatservice.db). A client sends its token as
Authorization: Bearer <token>.
`

// runTokenCommand runs "chatservice token ARGS" (args are what follows
// "token") and returns the exit code: 0, 1 for a failure, 2 for a usage
// error. The token add makes is printed once, alone on a line of stdout;
// nothing else prints a token.
func runTokenCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return runTokens(ctx, args, getenv, stdout, stderr, tokenTable)
}

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// runTokens is runTokenCommand on the tokens table named table.
func runTokens(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, table string) int {
	err := tokenCommand(ctx, args, getenv, stdout, stderr, table)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "chatservice token: %s\n\n%s", ue.msg, tokenUsage)
		return 2
	}
	fmt.Fprintf(stderr, "chatservice token: %v\n", err)
	return 1
}

func tokenCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, table string) error {
	if len(args) == 0 {
		return usagef("missing subcommand (add, list or revoke)")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("chatservice token "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // runTokens prints the error and the usage once
	var name, bots string
	switch sub {
	case "add":
		fs.StringVar(&name, "name", "", "who or what uses the token")
		fs.StringVar(&bots, "bots", "", "the bot ids it may chat as, comma-separated, or * for every bot")
	case "list", "revoke":
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, tokenUsage)
		return flag.ErrHelp
	default:
		return usagef("unknown subcommand %q (want add, list or revoke)", sub)
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, tokenUsage)
		return err
	} else if err != nil {
		return usagef("%s: %v", sub, err)
	}
	rest := fs.Args()

	// The arguments are checked before the database is opened.
	var scope []string
	var id int64
	switch sub {
	case "add":
		if len(rest) > 0 {
			return usagef("add: unexpected argument %q (an unquoted * is expanded by the shell: write --bots '*')", rest[0])
		}
		seen := make(map[string]bool)
		fs.Visit(func(f *flag.Flag) { seen[f.Name] = true })
		if !seen["name"] {
			return usagef("add: --name is required")
		}
		if _, err := checkTokenName(name); err != nil {
			return usagef("add: --name: %v", err)
		}
		if !seen["bots"] {
			return usagef("add: --bots is required (bot ids, comma-separated, or '*' for every bot)")
		}
		var err error
		if scope, err = normalizeBots(strings.Split(bots, ",")); err != nil {
			return usagef("add: --bots: %v", err)
		}
	case "list":
		if len(rest) > 0 {
			return usagef("list: unexpected argument %q", rest[0])
		}
	case "revoke":
		if len(rest) != 1 {
			return usagef("revoke: want one token id (see token list), got %d arguments", len(rest))
		}
		var err error
		if id, err = strconv.ParseInt(rest[0], 10, 64); err != nil || id <= 0 {
			return usagef("revoke: the token id %q is not a positive integer (see token list)", rest[0])
		}
	}

	dataDir := getenv("CHAT_DATA_DIR")
	if dataDir == "" {
		dataDir = "."
	}
	dsn := getenv("DATABASE_URL")
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(dataDir, "chatservice.db")
	}
	db, err := fernetstore.OpenDB(dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	dialect, err := fernetstore.DetectDialect(db)
	if err != nil {
		return err
	}
	s := &tokenStore{db: db, dialect: dialect, table: table}
	if err := s.createTable(ctx); err != nil {
		return err
	}

	switch sub {
	case "add":
		id, token, err := s.add(ctx, name, scope)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, token)
		fmt.Fprintf(stderr, "token %d (%s, bots %s) added. It is shown only this once and cannot be shown again: "+
			"store it now (the database keeps only its SHA-256 hash); if it is lost, revoke it and add another.\n",
			id, strings.TrimSpace(name), strings.Join(scope, ","))
	case "list":
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tBOTS\tTOKEN\tCREATED\tREVOKED")
		err := s.each(ctx, func(ti tokenInfo) error {
			revoked := "-"
			if !ti.Revoked.IsZero() {
				revoked = ti.Revoked.UTC().Format(time.RFC3339)
			}
			_, err := fmt.Fprintf(w, "%d\t%s\t%s\t%s...\t%s\t%s\n", ti.ID, ti.Name, strings.Join(ti.Bots, ","), ti.Hint,
				ti.Created.UTC().Format(time.RFC3339), revoked)
			return err
		})
		if err != nil {
			return err
		}
		return w.Flush()
	case "revoke":
		switch err := s.revoke(ctx, id); {
		case errors.Is(err, errTokenAlreadyRevoked):
			fmt.Fprintf(stderr, "token %d was already revoked\n", id)
		case errors.Is(err, errTokenNotFound):
			return fmt.Errorf("no token with id %d (see token list)", id)
		case err != nil:
			return err
		default:
			fmt.Fprintf(stderr, "token %d revoked: it is refused from the next request on\n", id)
		}
	}
	return nil
}
