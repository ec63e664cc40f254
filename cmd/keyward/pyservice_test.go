package main

import (
	"strings"
	"testing"

	"github.com/keyward/secrets/internal/pyservice"
	"github.com/keyward/secrets/internal/testenv"
)

// pythonConfig is the configuration for the Python service's database:
// rows name their key's env var or AWS secret when api_key is NULL.
const pythonConfig = "db = fernet://?ref_columns=key_env_var:env,secret_name:awssm\nenv = env://\nawssm = awssm://"

// TestPythonServiceDatabase runs every command against the Python
// service's database as its operator would: the tables as SQLAlchemy made
// them, filled by Python (tokens from cryptography, plaintext, env and AWS
// references, an expired row, an empty row, legacy bot keys), DATABASE_URL
// in SQLAlchemy's form; then the Python service must still read every row.
// On the old code the first command failed: "converting ... to int64".
func TestPythonServiceDatabase(t *testing.T) {
	moto := testenv.MotoServer(t)
	for _, d := range pyservice.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			f := pyservice.New(t, d, &pyservice.Options{AWSEndpoint: moto})
			h := newHarness(t)
			h.secret(f.Canaries()...)
			env := func() map[string]string {
				m := map[string]string{"KEYWARD_CONFIG": pythonConfig}
				for _, kv := range f.Env() {
					k, v, _ := strings.Cut(kv, "=")
					m[k] = v
				}
				return m
			}
			row := func(k pyservice.Kind) pyservice.Row { return f.ByKind(t, pyservice.TableAPIKeys, k) }

			// check: findings for the plaintext, old-key, expired and
			// empty rows; none for the references.
			r := h.must(exitFindings, env(), "", "check")
			for _, k := range []pyservice.Kind{pyservice.KindPlaintext, pyservice.KindPreviousKey, pyservice.KindExpired, pyservice.KindEmpty} {
				if !strings.Contains(r.stdout, "row "+row(k).ID) {
					t.Errorf("check does not report the %s row:\n%s", k, r.stdout)
				}
			}
			for _, k := range []pyservice.Kind{pyservice.KindEnv, pyservice.KindSecret} {
				if strings.Contains(r.stdout, row(k).ID) {
					t.Errorf("check reports the %s reference row:\n%s", k, r.stdout)
				}
			}
			// list: reference rows show their kind and target.
			r = h.must(0, env(), "", "list")
			if !strings.Contains(r.stdout, "env:"+row(pyservice.KindEnv).EnvVar) || !strings.Contains(r.stdout, "reference") {
				t.Errorf("list does not show the env reference:\n%s", r.stdout)
			}
			// resolve: each kind through the stack.
			for _, k := range []pyservice.Kind{pyservice.KindEncrypted, pyservice.KindPreviousKey, pyservice.KindEnv, pyservice.KindSecret} {
				r := h.must(0, env(), "", "resolve", "--reveal", "db:"+row(k).ID)
				if r.stdout != row(k).Key+"\n" {
					t.Errorf("resolve --reveal of the %s row: %d bytes, not its key", k, len(r.stdout))
				}
			}
			h.must(exitFindings, env(), "", "resolve", "db:"+row(pyservice.KindExpired).ID)
			r = h.must(exitFindings, env(), "", "resolve", "db:"+row(pyservice.KindEmpty).ID)
			if !strings.Contains(r.stderr, "holds no key") {
				t.Errorf("resolve of the empty row: %s", r)
			}

			// migrate the plaintext row; rotate to a new primary key.
			h.must(exitFindings, env(), "", "migrate") // the old-key row is left for rotate
			f.NewPrimaryKey(t)
			h.secret(f.EncryptionKey)
			h.must(0, env(), "", "rotate")

			// The bots table's legacy keys, with text ids.
			bots := []string{"--table", "bots", "--column", "api_key"}
			r = h.must(exitFindings, env(), "", append(bots, "check")...)
			plainBot := f.ByKind(t, pyservice.TableBots, pyservice.KindPlaintext)
			if !strings.Contains(r.stdout, plainBot.ID) {
				t.Errorf("check of bots does not report the plaintext legacy key:\n%s", r.stdout)
			}
			h.must(exitFindings, env(), "", append(bots, "migrate")...) // the legacy token is under the old key now
			h.must(0, env(), "", append(bots, "rotate")...)
			r = h.must(0, env(), "", append(bots, "resolve", "--reveal", "db:"+plainBot.ID)...)
			if r.stdout != plainBot.Key+"\n" {
				t.Error("the migrated legacy bot key does not resolve to its key")
			}

			// put makes a UUID row the service can read too.
			r = h.must(0, env(), "sk-ant-put-canary-"+f.EncryptionKey[:8], "put", "--name", "new", "--provider", "anthropic")
			id := strings.TrimSpace(r.stdout)
			if len(id) != 36 || strings.Count(id, "-") != 4 {
				t.Fatalf("put on the UUID table printed %q, not a UUID", id)
			}
			f.APIKeys = append(f.APIKeys, pyservice.Row{Table: pyservice.TableAPIKeys, ID: id, Kind: pyservice.KindEncrypted, Key: "sk-ant-put-canary-" + f.EncryptionKey[:8]})

			// update gives the encrypted row, which a bot follows, a new
			// key: the Python service then reads it for the row and the bot.
			enc := row(pyservice.KindEncrypted)
			newKey := "sk-ant-updated-canary-" + f.EncryptionKey[:8]
			h.secret(newKey)
			h.must(0, env(), newKey, "update", enc.ID)
			if r := h.must(0, env(), "", "resolve", "--reveal", "db:"+enc.ID); r.stdout != newKey+"\n" {
				t.Errorf("resolve after update: %d bytes, not the new key", len(r.stdout))
			}
			setKey := func(rows []pyservice.Row) {
				for i := range rows {
					if rows[i].ID == enc.ID || rows[i].APIKeyID == enc.ID {
						rows[i].Key = newKey
					}
				}
			}
			setKey(f.APIKeys)
			setKey(f.Bots)

			// delete removes the row put made; a second delete finds nothing.
			h.must(0, env(), "", "delete", id)
			f.APIKeys = f.APIKeys[:len(f.APIKeys)-1]
			h.must(exitFindings, env(), "", "resolve", "db:"+id)
			h.must(exitFindings, env(), "", "delete", id)
			if d != pyservice.SQLite {
				// A row a bot still follows is kept by the foreign key, and
				// the operator is told why (not "unavailable").
				r = h.must(exitFindings, env(), "", "delete", enc.ID)
				if !strings.Contains(r.stderr, "still referenced through a foreign key") {
					t.Errorf("delete of a row a bot follows: %s", r)
				}
			}

			// Only the rows no command can fix are left: expired, and empty.
			r = h.must(exitFindings, env(), "", "check")
			if strings.Contains(r.stdout, "plaintext") || strings.Contains(r.stdout, "run keyward rotate") || !strings.Contains(r.stdout, row(pyservice.KindExpired).ID) {
				t.Errorf("check after migrate and rotate:\n%s", r.stdout)
			}
			pyservice.CheckPythonReads(t, f)
			pyservice.CheckSchemaUnchanged(t, f)
		})
	}
}
