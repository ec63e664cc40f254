package main

import (
	"context"
	"database/sql"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyward/secrets/internal/pyservice"
	"github.com/keyward/secrets/internal/testenv"
)

// pyConfig is the KEYWARD_CONFIG that runs the service on the Python
// service's database (the README's): db: reads api_keys and follows
// key_env_var and secret_name, bots: reads the bots' legacy api_key.
const pyConfig = "db = fernet://?ref_columns=key_env_var:env,secret_name:awssm; " +
	"bots = fernet://?table=bots&plaintext=allow; " +
	"env = env://; awssm = awssm://; cache = on; audit = on"

// keywardURL is the fixture's database as DATABASE_URL in the URL forms
// fernetstore.OpenDB reads (the fixture's own DatabaseURL is SQLAlchemy's).
func keywardURL(f *pyservice.Fixture) string {
	switch f.Dialect {
	case pyservice.SQLite:
		return "sqlite:" + f.Path
	case pyservice.MySQL:
		return "mysql://" + f.DSN
	}
	return f.DSN
}

// addBot inserts a bot as the Python service's ORM does (a str(uuid4()) id,
// created_at utcnow(), SQLAlchemy's SQLite DATETIME text on SQLite) and
// lists it in f.Bots, so that CheckPythonReads checks it too. A bot with
// target reads that api_keys row's key; one without keeps legacy (its own
// api_key, here plaintext).
func addBot(t *testing.T, f *pyservice.Fixture, name, model string, target *pyservice.Row, legacy string) pyservice.Row {
	t.Helper()
	r := pyservice.Row{Table: pyservice.TableBots, ID: uuid.NewString(), Kind: pyservice.KindPlaintext, Key: legacy}
	var keyID, apiKey any
	if target != nil {
		r.Kind, r.APIKeyID, r.Key, r.Expired = pyservice.KindLinked, target.ID, target.Key, target.Expired
		keyID = target.ID
	} else {
		apiKey = legacy
	}
	var created any = time.Now().UTC()
	ph := "?, ?, ?, ?, ?, ?, ?"
	switch f.Dialect {
	case pyservice.SQLite:
		created = time.Now().UTC().Format("2006-01-02 15:04:05.000000")
	case pyservice.Postgres:
		ph = "$1, $2, $3, $4, $5, $6, $7"
	}
	_, err := f.Open(t).Exec("INSERT INTO bots (id, name, system_prompt, model, api_key_id, api_key, created_at) VALUES ("+ph+")",
		r.ID, name, "You are a helpful assistant.", model, keyID, apiKey, created)
	if err != nil {
		t.Fatalf("insert bot %s: %v", name, err)
	}
	f.Bots = append(f.Bots, r)
	return r
}

// tables lists the tables of the fixture's database (its schema, on
// PostgreSQL).
func tables(t *testing.T, f *pyservice.Fixture) []string {
	t.Helper()
	q := map[pyservice.Dialect]string{
		pyservice.SQLite:   "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
		pyservice.Postgres: "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1",
		pyservice.MySQL:    "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1",
	}[f.Dialect]
	rows, err := f.Open(t).Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// startOnPython starts the service on f's database, as an operator would run
// it next to the Python service: the Python service's ENCRYPTION_KEY,
// ENCRYPTION_KEY_PREVIOUS, key variables and AWS settings in the process
// environment (where the env, awssm and bots backends read them), and
// config as KEYWARD_CONFIG.
func startOnPython(t *testing.T, f *pyservice.Fixture, config string, extra map[string]string) *service {
	t.Helper()
	f.Setenv(t)
	dbURL := keywardURL(f)
	t.Setenv("DATABASE_URL", dbURL)
	env := map[string]string{
		"DATABASE_URL": dbURL, "ENCRYPTION_KEY": f.EncryptionKey, "ENCRYPTION_KEY_PREVIOUS": strings.Join(f.PreviousKeys, ","),
		"KEYWARD_CONFIG": config, "CHAT_RATE": "1000", "CHAT_BURST": "1000",
	}
	for k, v := range extra {
		env[k] = v
	}
	tok := clientToken(t, dbURL)
	s := start(t, env)
	s.token = tok
	return s
}

// clientToken makes a client token for every bot with the service's token
// command, as the operator does before the first start on the Python
// service's database (the command creates the chat_tokens table).
func clientToken(t *testing.T, dbURL string) string {
	t.Helper()
	var out, errOut strings.Builder
	env := map[string]string{"DATABASE_URL": dbURL}
	if code := runTokenCommand(context.Background(), []string{"add", "--name", "test", "--bots", "*"}, func(k string) string { return env[k] }, &out, &errOut); code != 0 {
		t.Fatalf("token add exited %d: %s", code, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

// withOnlyKey makes want the one key the stand-in accepts while fn runs, so
// that a chat that succeeds proves the service sent exactly that key.
func withOnlyKey(s *service, want string, fn func()) {
	s.standIn.mu.Lock()
	saved := s.standIn.valid
	s.standIn.valid = []string{want}
	s.standIn.mu.Unlock()
	defer func() {
		s.standIn.mu.Lock()
		s.standIn.valid = saved
		s.standIn.mu.Unlock()
	}()
	fn()
}

// Issue 12: the chat example runs on the Python service's database
// unchanged (SQLAlchemy's tables, filled by Python: UUID ids, Fernet tokens
// made by Python's cryptography, key_env_var and secret_name rows, legacy
// bot keys), on SQLite, PostgreSQL and MariaDB. Every bot chats with the key
// the Python service would pick (the stand-in knows only the key it is
// given for each chat), no table but chat_tokens is created or changed, the Python service still reads
// every row afterwards, and no key reaches the logs.
func TestPythonServiceDatabase(t *testing.T) {
	endpoint := testenv.MotoServer(t)
	for _, d := range pyservice.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			f := pyservice.New(t, d, &pyservice.Options{AWSEndpoint: endpoint})
			envRow := f.ByKind(t, pyservice.TableAPIKeys, pyservice.KindEnv)
			expiredRow := f.ByKind(t, pyservice.TableAPIKeys, pyservice.KindExpired)
			plainRow := f.ByKind(t, pyservice.TableAPIKeys, pyservice.KindPlaintext)
			addBot(t, f, "Env bot", "claude-3-5-sonnet-20241022", &envRow, "")
			addBot(t, f, "Expired bot", "claude-3-5-sonnet-20241022", &expiredRow, "")
			// Its provider is its api_keys row's (openai), not its model's.
			addBot(t, f, "Plaintext row bot", "claude-3-5-sonnet-20241022", &plainRow, "")
			gptKey := "sk-proj-chatpy-" + randomHex(12)
			addBot(t, f, "GPT legacy bot", "gpt-4o-mini", nil, gptKey)
			// The operator's first step on this database: a client token,
			// in the one table the service adds (chat_tokens).
			clientToken(t, keywardURL(f))
			before := tables(t, f)

			s := startOnPython(t, f, pyConfig, nil)
			ctx := context.Background()

			type want struct {
				code     int
				provider string
				says     string // in the error, for a failure
			}
			wants := map[string]want{
				"Support bot":            {200, "anthropic", ""}, // api_key_id -> a Python-made token
				"Research bot":           {200, "anthropic", ""}, // api_key_id -> secret_name in AWS (moto)
				"Env bot":                {200, "anthropic", ""}, // api_key_id -> key_env_var
				"Legacy bot":             {200, "anthropic", ""}, // its own plaintext api_key
				"Legacy bot (encrypted)": {200, "anthropic", ""}, // its own token
				"GPT legacy bot":         {200, "openai", ""},    // plaintext; provider from "gpt-"
				"Expired bot":            {http.StatusForbidden, "anthropic", "has expired"},
				// Plaintext in api_keys resolves only with plaintext=allow on
				// the db line: without it, a clear failure.
				"Plaintext row bot": {http.StatusInternalServerError, "openai", "undecryptable"},
			}
			var learnt []string
			for _, r := range f.Bots {
				b, err := s.bots.get(ctx, r.ID)
				if err != nil {
					t.Fatalf("%s: %v", r, err)
				}
				w, ok := wants[b.Name]
				if !ok {
					t.Fatalf("%s: no expectation for bot %q", r, b.Name)
				}
				if b.Provider != w.provider {
					t.Errorf("bot %q: provider %q, want %q", b.Name, b.Provider, w.provider)
				}
				if w.code == http.StatusOK {
					learnt = append(learnt, r.Key)
				}
				var code int
				var body map[string]string
				withOnlyKey(s, r.Key, func() { code, body = s.post(t, "/api/chat/"+r.ID, `{"message":"hello"}`) })
				switch {
				case code != w.code:
					t.Errorf("bot %q (%s, ref %s): %d %v, want %d\nlog: %s", b.Name, r, b.KeyRef, code, body, w.code, s.stderr)
				case w.code == http.StatusOK && (body["bot"] != b.Name || body["reply"] != "stand-in reply to: hello"):
					t.Errorf("bot %q: %v", b.Name, body)
				case w.code != http.StatusOK && !strings.Contains(body["error"], w.says):
					t.Errorf("bot %q: error %q, want it to say %q", b.Name, body["error"], w.says)
				}
			}
			// The stand-in knows no key it did not issue: on this database
			// it issued none (withOnlyKey gave it each bot's in turn).
			s.standIn.mu.RLock()
			if n := len(s.standIn.valid); n != 0 {
				t.Errorf("the stand-in knows %d keys it did not issue", n)
			}
			s.standIn.mu.RUnlock()
			if len(learnt) == 0 {
				t.Error("no bot chatted")
			}

			for path, says := range map[string]string{
				"/api/chat/" + uuid.NewString():        "no bot with id",
				"/api/chat/1":                          "no bot with id",
				"/api/chat/" + strings.Repeat("a", 37): "no such bot",
			} {
				if code, body := s.post(t, path, `{"message":"hi"}`); code != http.StatusNotFound || !strings.Contains(body["error"], says) {
					t.Errorf("%s: %d %v, want 404 saying %q", path, code, body, says)
				}
			}
			out := s.stdout.String()
			if want := "/api/chat/" + f.Bots[0].ID; !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}

			if after := tables(t, f); !slices.Equal(after, before) {
				t.Errorf("the service changed the database's tables: %v, was %v", after, before)
			}
			pyservice.CheckSchemaUnchanged(t, f)
			pyservice.CheckPythonReads(t, f)
			s.assertNoKeys(t, append(f.Canaries(), gptKey)...)
		})
	}
}

// Issue 12: without a configuration line for the bots table, the service
// says at start which line to add, bots that keep their own key fail with
// that advice, and the others still chat. A database whose bots table is
// neither shape stops the start, naming both.
func TestPythonDatabaseWithoutBotsLine(t *testing.T) {
	f := pyservice.New(t, pyservice.SQLite, nil)
	s := startOnPython(t, f, "db = fernet://?ref_columns=key_env_var:env,secret_name:awssm; env = env://; awssm = awssm://; audit = on", nil)
	line := "bots = fernet://?table=bots&plaintext=allow"
	if !strings.Contains(s.stderr.String(), line) {
		t.Errorf("the start does not say which line to add (%s):\n%s", line, s.stderr)
	}
	legacy := f.ByKind(t, pyservice.TableBots, pyservice.KindPlaintext)
	code, body := s.post(t, "/api/chat/"+legacy.ID, `{"message":"hi"}`)
	if code != http.StatusInternalServerError || !strings.Contains(body["error"], line) {
		t.Errorf("legacy bot without the bots line: %d %v, want 500 naming the line", code, body)
	}
	linked := f.ByKind(t, pyservice.TableBots, pyservice.KindLinked)
	withOnlyKey(s, linked.Key, func() {
		if code, body := s.post(t, "/api/chat/"+linked.ID, `{"message":"hi"}`); code != http.StatusOK {
			t.Errorf("linked bot: %d %v", code, body)
		}
	})
	s.assertNoKeys(t, f.Canaries()...)

	// A bots table of neither shape.
	db := f.Open(t)
	if _, err := db.Exec("ALTER TABLE bots RENAME TO bots_py"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE bots (id VARCHAR(36) PRIMARY KEY, name VARCHAR(255))"); err != nil {
		t.Fatal(err)
	}
	err := runUntilReady(t, map[string]string{"DATABASE_URL": keywardURL(f), "CHAT_DATA_DIR": t.TempDir(),
		"ENCRYPTION_KEY": f.EncryptionKey, "KEYWARD_CONFIG": pyConfig})
	if err == nil || !strings.Contains(err.Error(), "api_key_ref") || !strings.Contains(err.Error(), "api_key_id") {
		t.Errorf("a bots table of neither shape: run = %v; want an error naming both shapes", err)
	}
}

// A bot's provider in the Python schema: its api_keys row's, else its
// model's ("claude" anthropic, "gpt" openai), else CHAT_DEFAULT_PROVIDER.
func TestPythonBotProvider(t *testing.T) {
	for _, tc := range []struct {
		keyProvider, model, dflt, want, problem string
	}{
		{"openai", "claude-3-5-sonnet", "", "openai", ""},
		{"Anthropic", "", "", "anthropic", ""},
		{"", "claude-3-haiku", "", "anthropic", ""},
		{"", "GPT-4o", "", "openai", ""},
		{"", "llama-3", "openai", "openai", ""},
		{"", "llama-3", "", "", "CHAT_DEFAULT_PROVIDER"},
		{"", "", "", "", "CHAT_DEFAULT_PROVIDER"},
	} {
		b := &botStore{defaultProvider: tc.dflt}
		got, problem := b.providerOf("Some bot", sql.NullString{String: tc.keyProvider, Valid: tc.keyProvider != ""},
			sql.NullString{String: tc.model, Valid: tc.model != ""})
		if got != tc.want || (tc.problem == "") != (problem == "") || !strings.Contains(problem, tc.problem) {
			t.Errorf("providerOf(%q, %q, default %q) = %q, %q; want %q, a problem naming %q", tc.keyProvider, tc.model, tc.dflt, got, problem, tc.want, tc.problem)
		}
	}
	err := runUntilReady(t, map[string]string{"CHAT_DATA_DIR": t.TempDir(), "CHAT_DEFAULT_PROVIDER": "gemini"})
	if err == nil || !strings.Contains(err.Error(), "CHAT_DEFAULT_PROVIDER") {
		t.Errorf("CHAT_DEFAULT_PROVIDER=gemini: run = %v; want a refusal naming the variable", err)
	}
}
