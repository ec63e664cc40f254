package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/keyward/secrets/fernetstore"
)

// bot is a bot the service chats as. KeyRef is a keyward ref ("db:1",
// "env:OPENAI_API_KEY", "awssm:prod/anthropic#api_key"): the bot store never
// reads a key, only where it lives.
type bot struct {
	// ID is the row id: an integer in this example's own table, a UUID in
	// the Python service's.
	ID       string
	Name     string
	Provider string
	KeyRef   string
	// Problem, when set, says why the bot cannot chat as the service is
	// configured, in words safe to show a client; KeyRef or Provider is
	// then empty.
	Problem string
}

// botShape is which bots table the database holds.
type botShape int

const (
	// ownBots is this example's table: bots(id integer, name, provider,
	// api_key_ref), created and seeded by the service.
	ownBots botShape = iota
	// pythonBots is the Python service's table, which belongs to that
	// service and is only read: bots(id VARCHAR(36), name, model,
	// api_key_id -> api_keys(id), api_key), a bot's key being its api_keys
	// row's, else its own legacy api_key.
	pythonBots
)

// legacyLine is the configuration line that serves the Python bots' own
// api_key column: a second fernet table on the same DATABASE_URL, in
// migration mode because that column often holds plaintext.
const legacyLine = "bots = fernet://?table=bots&plaintext=allow"

type botStore struct {
	db      *sql.DB
	dialect fernetstore.Dialect
	shape   botShape

	// For pythonBots, set at start (usePython):

	// keyTable, keyID and keyProvider are the db line's table (api_keys)
	// and its id and provider columns, quoted; keyProvider is "" when the
	// table has none. A bot's provider is its api_keys row's.
	keyTable, keyID, keyProvider string
	// legacyScheme is the Mux scheme whose configuration line reads the bots
	// table's own api_key ("bots"); "" when the configuration has none, and
	// a bot without api_key_id then cannot chat.
	legacyScheme string
	// defaultProvider (CHAT_DEFAULT_PROVIDER) is the provider of a bot whose
	// provider neither an api_keys row nor its model names.
	defaultProvider string
}

func (b *botStore) ph(n int) string {
	if b.dialect == fernetstore.Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// quote quotes a table or column name that fernetstore already checked
// (letters, digits, '_', and one '.' in a schema-qualified table), as
// fernetstore quotes it.
func (b *botStore) quote(name string) string {
	q := `"`
	if b.dialect == fernetstore.MySQL {
		q = "`"
	}
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = q + p + q
	}
	return strings.Join(parts, ".")
}

// columns returns the lower-cased column names of table, from a query that
// reads no row; found is false when the table does not exist. The query's
// failure is told apart from a database that is down by a ping, which
// needs no catalog query per dialect.
func (b *botStore) columns(ctx context.Context, table string) (cols map[string]bool, found bool, err error) {
	rows, err := b.db.QueryContext(ctx, "SELECT * FROM "+table+" WHERE 1=0")
	if err != nil {
		if perr := b.db.PingContext(ctx); perr != nil {
			return nil, false, perr
		}
		return nil, false, nil
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, false, err
	}
	cols = make(map[string]bool, len(names))
	for _, n := range names {
		cols[strings.ToLower(n)] = true
	}
	return cols, true, rows.Err()
}

// detect finds which bots table the database holds; with none, it is this
// example's own, which createTable makes.
func (b *botStore) detect(ctx context.Context) error {
	cols, found, err := b.columns(ctx, "bots")
	switch {
	case err != nil:
		return fmt.Errorf("read the bots table: %w", err)
	case !found || cols["api_key_ref"]:
		b.shape = ownBots
	case cols["api_key_id"] && cols["api_key"]:
		b.shape = pythonBots
	default:
		return errors.New("the bots table has neither this example's columns (id, name, provider, api_key_ref) " +
			"nor the Python service's (id, name, model, api_key_id, api_key): point DATABASE_URL at a database with one of them, or at a new one")
	}
	return nil
}

// usePython sets up reading the Python service's bots: keys is what
// fernetstore found of the db line's table, legacyScheme the scheme serving
// the bots' own api_key ("" for none). It returns the advice to print at
// start, if any.
func (b *botStore) usePython(ctx context.Context, keys fernetstore.TableInfo, keyOpts *fernetstore.Options, legacyScheme, defaultProvider string) ([]string, error) {
	b.keyTable, b.keyID = b.quote(keys.Table), b.quote(keys.Columns["id"])
	if p, ok := keys.Columns["provider"]; ok {
		b.keyProvider = b.quote(p)
	}
	b.legacyScheme, b.defaultProvider = legacyScheme, defaultProvider
	var advice []string
	if legacyScheme == "" {
		advice = append(advice, "bots without api_key_id keep their own key in bots.api_key, which this configuration does not read: add the line `"+legacyLine+"` to KEYWARD_CONFIG")
	}
	if len(keyOpts.RefColumns) == 0 {
		cols, _, err := b.columns(ctx, b.keyTable)
		if err != nil {
			return nil, fmt.Errorf("read the %s table: %w", keys.Table, err)
		}
		if cols["key_env_var"] || cols["secret_name"] {
			advice = append(advice, keys.Table+" rows whose key is in key_env_var or secret_name do not resolve without ref_columns: write the db line as `db = fernet://?ref_columns=key_env_var:env,secret_name:awssm`")
		}
	}
	return advice, nil
}

// parseID reads a bot id from a URL: a positive integer in this example's
// table, text of at most 36 characters (a UUID) in the Python service's.
// The result is the query argument; why says what a bad one should be.
func (b *botStore) parseID(s string) (arg any, why string) {
	if b.shape == ownBots {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, "bot ids are integers"
		}
		return id, ""
	}
	if s == "" || len(s) > 36 || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return nil, "bot ids are UUIDs"
	}
	return s, ""
}

func (b *botStore) createTable(ctx context.Context) error {
	if b.shape != ownBots {
		return errors.New("the bots table is the Python service's: it is never created or changed here")
	}
	id := "INTEGER PRIMARY KEY"
	switch b.dialect {
	case fernetstore.Postgres:
		id = "BIGSERIAL PRIMARY KEY"
	case fernetstore.MySQL:
		id = "BIGINT AUTO_INCREMENT PRIMARY KEY"
	}
	_, err := b.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS bots (
	id `+id+`,
	name VARCHAR(200) NOT NULL,
	provider VARCHAR(50) NOT NULL,
	api_key_ref VARCHAR(1000) NOT NULL)`)
	return err
}

// selectBots is the SELECT of every bot, to which get adds its WHERE.
func (b *botStore) selectBots() string {
	if b.shape == ownBots {
		return "SELECT id, name, provider, api_key_ref FROM bots"
	}
	if b.keyProvider == "" {
		return "SELECT b.id, b.name, b.model, b.api_key_id, NULL FROM bots b"
	}
	return "SELECT b.id, b.name, b.model, b.api_key_id, k." + b.keyProvider +
		" FROM bots b LEFT JOIN " + b.keyTable + " k ON k." + b.keyID + " = b.api_key_id"
}

// scan reads a row of selectBots.
func (b *botStore) scan(rows interface{ Scan(...any) error }) (bot, error) {
	var r bot
	if b.shape == ownBots {
		var id int64
		err := rows.Scan(&id, &r.Name, &r.Provider, &r.KeyRef)
		r.ID = strconv.FormatInt(id, 10)
		return r, err
	}
	var model, keyID, keyProvider sql.NullString
	if err := rows.Scan(&r.ID, &r.Name, &model, &keyID, &keyProvider); err != nil {
		return r, err
	}
	var problem string
	r.Provider, problem = b.providerOf(r.Name, keyProvider, model)
	// As the Python service picks a bot's key: its api_keys row if it has
	// api_key_id (Python's truth test: NULL and "" are none), else its own
	// api_key, which the legacy line's store reads by the bot's id.
	switch {
	case keyID.String != "":
		r.KeyRef = "db:" + refEscaper.Replace(keyID.String)
	case b.legacyScheme != "":
		r.KeyRef = b.legacyScheme + ":" + refEscaper.Replace(r.ID)
	default:
		problem = fmt.Sprintf("bot %q keeps its own API key in bots.api_key, which this service's configuration does not read: add the line `%s` to KEYWARD_CONFIG", r.Name, legacyLine)
	}
	r.Problem = problem
	return r, nil
}

// refEscaper escapes what a ref reads as syntax in an id ('%', '?', '#'),
// so the ref names exactly that row.
var refEscaper = strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")

// providerOf is a Python bot's provider: its api_keys row's provider
// column, else the one its model names ("claude-..." is Anthropic's,
// "gpt-..." OpenAI's), else CHAT_DEFAULT_PROVIDER; problem says why there is
// none.
func (b *botStore) providerOf(name string, keyProvider, model sql.NullString) (provider, problem string) {
	if p := strings.ToLower(strings.TrimSpace(keyProvider.String)); p != "" {
		return p, ""
	}
	m := strings.ToLower(model.String)
	switch {
	case strings.HasPrefix(m, "claude"):
		return "anthropic", ""
	case strings.HasPrefix(m, "gpt"):
		return "openai", ""
	case b.defaultProvider != "":
		return b.defaultProvider, ""
	}
	return "", fmt.Sprintf("bot %q has no api_keys row naming its provider, and its model %q names none: set CHAT_DEFAULT_PROVIDER to anthropic or openai", name, model.String)
}

// get returns the bot whose id is arg (from parseID); sql.ErrNoRows if none.
func (b *botStore) get(ctx context.Context, arg any) (bot, error) {
	where := " WHERE id = "
	if b.shape == pythonBots {
		where = " WHERE b.id = "
	}
	return b.scan(b.db.QueryRowContext(ctx, b.selectBots()+where+b.ph(1), arg))
}

func (b *botStore) all(ctx context.Context) ([]bot, error) {
	order := " ORDER BY id"
	if b.shape == pythonBots {
		order = " ORDER BY b.id"
	}
	rows, err := b.db.QueryContext(ctx, b.selectBots()+order)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bot
	for rows.Next() {
		r, err := b.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// add inserts a bot into this example's own table (seed, tests).
func (b *botStore) add(ctx context.Context, name, provider, keyRef string) error {
	_, err := b.db.ExecContext(ctx, fmt.Sprintf("INSERT INTO bots (name, provider, api_key_ref) VALUES (%s, %s, %s)", b.ph(1), b.ph(2), b.ph(3)),
		name, provider, keyRef)
	return err
}

// setRef points a bot of this example's own table at another key ref: how a
// bot moves between backends.
func (b *botStore) setRef(ctx context.Context, id int64, keyRef string) error {
	_, err := b.db.ExecContext(ctx, fmt.Sprintf("UPDATE bots SET api_key_ref = %s WHERE id = %s", b.ph(1), b.ph(2)), keyRef, id)
	return err
}
