package main

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/joho/godotenv"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// The deployment sizes of examples/deployments, each a .env file that
// `go run ./examples/chatservice --env-file examples/deployments/<size>.env`
// starts. The tests read the same files, put the test's own settings over
// them (as variables set in the environment win over the file), run in a
// fresh directory (the files' relative paths land there) and chat with every
// bot.

// deploymentsDir is examples/deployments, made absolute at package start
// (the tests then change directory).
var deploymentsDir = func() string {
	dir, err := filepath.Abs(filepath.Join("..", "deployments"))
	if err != nil {
		panic(err)
	}
	return dir
}()

// deploymentHost is the Host the medium and large files trust.
const deploymentHost = "chat.example.com"

// deploymentEnv returns the size's .env file merged under overrides.
func deploymentEnv(t *testing.T, size string, overrides map[string]string) map[string]string {
	t.Helper()
	env, err := godotenv.Read(filepath.Join(deploymentsDir, size+".env"))
	if err != nil {
		t.Fatalf("%s.env: %v", size, err)
	}
	for k, v := range overrides {
		env[k] = v
	}
	return env
}

// inFreshDir makes a data directory and runs the rest of the test in it, so
// that the files' relative paths (sqlite:chatservice.db,
// dotenv=chatservice.env) resolve there, as from an operator's working
// directory.
func inFreshDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

// freshSchema makes a PostgreSQL schema for one test, dropped at its end,
// and returns the DSN whose search_path is that schema (so the service's
// tables, bots and api_key_usage included, are the test's alone), and a
// connection to it.
func freshSchema(t *testing.T) (dsn string, db *sql.DB) {
	t.Helper()
	base := testenv.PostgresDSN(t)
	admin, err := fernetstore.OpenDB(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	name := "deploy_" + randomHex(6)
	if _, err := admin.Exec("CREATE SCHEMA " + name); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	dsn = u.String()
	if db, err = fernetstore.OpenDB(dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return dsn, db
}

// chatAs posts a chat to bot id with Host host (the request's address
// otherwise) and the service's client token.
func (s *service) chatAs(t *testing.T, host, id string) (int, map[string]string) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + cmp.Or(s.token, s.devToken)}
	if host != "" {
		h["Host"] = host
	}
	code, m, _ := s.do(t, http.MethodPost, "/api/chat/"+id, `{"message":"hello"}`, h)
	return code, m
}

// chatWithEveryBot chats as each bot the service has and wants the
// stand-in's answer; it returns how many bots there are.
func (s *service) chatWithEveryBot(t *testing.T, host string) int {
	t.Helper()
	all, err := s.bots.all(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("the service has no bots")
	}
	for _, b := range all {
		code, body := s.chatAs(t, host, b.ID)
		if code != http.StatusOK || body["bot"] != b.Name || body["reply"] != "stand-in reply to: hello" {
			t.Errorf("bot %s (%s, %s): %d %v\nlog: %s", b.ID, b.Name, b.KeyRef, code, body, s.stderr)
		}
	}
	return len(all)
}

// withClientToken gives s a client token of its own (a start with a real
// ENCRYPTION_KEY makes no development token), as `token add` does.
func (s *service) withClientToken(t *testing.T) {
	t.Helper()
	if s.devToken != "" {
		t.Fatal("a development client token on a start with ENCRYPTION_KEY set")
	}
	_, tok, err := s.tokens.add(context.Background(), "deployment-test", []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	s.token = tok
}

// awaitAuditRows waits until the audit table holds at least want rows (its
// writer flushes in the background) and returns how many it holds.
func awaitAuditRows(t *testing.T, db *sql.DB, want int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM api_key_usage").Scan(&n)
		if err == nil && n >= want {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("api_key_usage holds %d rows (%v), want at least %d", n, err, want)
		}
		// Polling a background writer, not waiting out a TTL.
		time.Sleep(20 * time.Millisecond)
	}
}

// issuedKeys are the keys in the stand-in's file of dir: every demo key.
func issuedKeys(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, standInKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// TestDeploymentEnvFiles checks that each file parses, holds only the
// service's settings, and no secret.
func TestDeploymentEnvFiles(t *testing.T) {
	keyLike := regexp.MustCompile(`sk-[A-Za-z0-9_-]{6,}|kwc_[0-9a-fA-F]{8,}|(?m)^\s*(export\s+)?(ENCRYPTION_KEY|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|PGPASSWORD|VAULT_TOKEN)\s*=`)
	for _, size := range []string{"small", "medium", "large"} {
		t.Run(size, func(t *testing.T) {
			path := filepath.Join(deploymentsDir, size+".env")
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if keyLike.Match(raw) {
				t.Errorf("%s holds something that looks like a key or a secret variable: %q", path, keyLike.Find(raw))
			}
			env, err := godotenv.Read(path)
			if err != nil {
				t.Fatalf("%s does not parse: %v", path, err)
			}
			for k, v := range env {
				if k != "DATABASE_URL" && k != secrets.ConfigEnv && !strings.HasPrefix(k, "CHAT_") {
					t.Errorf("%s sets %s: only CHAT_*, DATABASE_URL and KEYWARD_CONFIG belong in it", path, k)
				}
				if keyLike.MatchString(v) {
					t.Errorf("%s: %s looks like a key", path, k)
				}
			}
			if u, err := url.Parse(env["DATABASE_URL"]); err != nil {
				t.Errorf("%s: DATABASE_URL does not parse", path)
			} else if _, has := u.User.Password(); has {
				t.Errorf("%s: DATABASE_URL holds a password", path)
			}
			if strings.Contains(env[secrets.ConfigEnv], "\n") {
				t.Errorf("%s: KEYWARD_CONFIG must be one ;-separated line", path)
			}
			cfg, err := secrets.ParseConfig(env[secrets.ConfigEnv])
			if err != nil {
				t.Fatalf("%s: KEYWARD_CONFIG: %v", path, err)
			}
			if cfg.AuditTable != secrets.DefaultAuditTable || cfg.Cache == "" || len(cfg.Allow) == 0 {
				t.Errorf("%s: want audit = db, a cache and an allow list; got audit table %q, cache %q, allow %v", path, cfg.AuditTable, cfg.Cache, cfg.Allow)
			}
			// The settings themselves pass the service's checks.
			if _, err := loadSettings(func(k string) string { return env[k] }); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		})
	}
	readme, err := os.ReadFile(filepath.Join(deploymentsDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []string{"small", "medium", "large"} {
		if cmd := "go run ./examples/chatservice --env-file examples/deployments/" + size + ".env"; !strings.Contains(string(readme), cmd) {
			t.Errorf("the README lacks the command %q", cmd)
		}
	}
}

// TestDeploymentSmall: SQLite, the encrypted column, the development key
// and token of a first try.
func TestDeploymentSmall(t *testing.T) {
	dir := inFreshDir(t)
	env := deploymentEnv(t, "small", map[string]string{"CHAT_DATA_DIR": dir})
	if _, ok := env[fernetstore.EnvKey]; ok {
		t.Fatal("small.env sets ENCRYPTION_KEY")
	}
	s := start(t, env)
	if s.devToken == "" {
		t.Fatal("the first try of small (no ENCRYPTION_KEY) made no development client token")
	}
	if _, err := os.Stat(filepath.Join(dir, "chatservice.db")); err != nil {
		t.Fatalf("the SQLite file is not where DATABASE_URL=sqlite:chatservice.db puts it: %v", err)
	}
	if n := s.chatWithEveryBot(t, ""); n != 2 {
		t.Errorf("%d bots, want the 2 seeded", n)
	}
	db, err := fernetstore.OpenDB("sqlite:" + filepath.Join(dir, "chatservice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The warm-up and the two chats: four resolves.
	awaitAuditRows(t, db, 4)
	s.assertNoKeys(t, issuedKeys(t, dir)...)
}

// TestDeploymentMedium: PostgreSQL, tenants' keys in the column, the
// service's own in the environment, and the Host, CORS and proxy settings
// of the file in force.
func TestDeploymentMedium(t *testing.T) {
	dsn, db := freshSchema(t)
	dir := inFreshDir(t)
	key, err := fernetstore.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// The service's own key: an environment variable of the process, where
	// the env backend reads it.
	houseKey := "sk-ant-house-" + randomHex(16)
	t.Setenv("ANTHROPIC_API_KEY", houseKey)
	env := deploymentEnv(t, "medium", map[string]string{"CHAT_DATA_DIR": dir, "DATABASE_URL": dsn, fernetstore.EnvKey: key})
	s := start(t, env)
	s.withClientToken(t)
	ctx := context.Background()
	if err := s.bots.add(ctx, "house", "anthropic", "env:ANTHROPIC_API_KEY"); err != nil {
		t.Fatal(err)
	}
	s.standIn.accept(houseKey)
	// A tenant's key, put in the column as `keyward put` does.
	tenantKey := "sk-ant-tenant-" + randomHex(16)
	id, err := s.keys.Put(ctx, "tenant-a", "anthropic", tenantKey, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.bots.add(ctx, "tenant-a", "anthropic", "db:"+id); err != nil {
		t.Fatal(err)
	}
	s.standIn.accept(tenantKey)

	if n := s.chatWithEveryBot(t, deploymentHost); n != 4 {
		t.Errorf("%d bots, want the 2 seeded and 2 added", n)
	}
	// The file's settings are in force: a Host not trusted, a preflight
	// from the app's origin and from another.
	if code, body := s.chatAs(t, "", "1"); code != http.StatusBadRequest || body["code"] != "untrusted_host" {
		t.Errorf("a chat to the listen address, not %s: %d %v, want 400 untrusted_host", deploymentHost, code, body)
	}
	for origin, want := range map[string]int{"https://app.example.com": http.StatusNoContent, "https://elsewhere.example": http.StatusForbidden} {
		req, _ := http.NewRequest(http.MethodOptions, "http://"+s.addr+"/api/chat/1", nil)
		req.Host = deploymentHost
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || (want == http.StatusNoContent) != (resp.Header.Get("Access-Control-Allow-Origin") == origin) {
			t.Errorf("preflight from %s: %d, Access-Control-Allow-Origin %q; want %d", origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), want)
		}
	}
	if cfg, err := loadSettings(func(k string) string { return env[k] }); err != nil || len(cfg.trustedProxies) != 1 || cfg.trustedProxies[0].String() != "10.0.0.0/8" {
		t.Errorf("the settings of medium.env: %v; want the trusted proxies 10.0.0.0/8", err)
	}
	// A ref outside the allow list does not resolve, whatever a row says.
	if _, err := s.stack.Resolve(ctx, "env:HOME"); secrets.CodeOf(err) != secrets.CodePermission {
		t.Errorf("env:HOME through the medium stack: %v, want a permission error", err)
	}
	// The warm-up's 2 and the 4 chats.
	awaitAuditRows(t, db, 6)
	s.assertNoKeys(t, append(issuedKeys(t, dir), houseKey, tenantKey, key)...)
}

// awsCalls counts the Secrets Manager calls that pass through a proxy in
// front of moto, by X-Amz-Target ("secretsmanager.GetSecretValue").
type awsCalls struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *awsCalls) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n["secretsmanager."+op]
}

// countingProxy returns the URL of a proxy to endpoint that counts calls.
func countingProxy(t *testing.T, endpoint string) (string, *awsCalls) {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	calls := &awsCalls{n: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.mu.Lock()
		calls.n[r.Header.Get("X-Amz-Target")]++
		calls.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

// TestDeploymentLarge: every key in AWS Secrets Manager (moto), bots made
// as the README says, the cache warmed with one BatchGetSecretValue, so the
// first chat is a cache hit, and the audit rows in PostgreSQL.
func TestDeploymentLarge(t *testing.T) {
	dsn, db := freshSchema(t)
	moto := testenv.MotoServer(t)
	dir := inFreshDir(t)
	proxy, calls := countingProxy(t, moto)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": proxy, "AWS_ACCESS_KEY_ID": "testing",
		"AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"} {
		t.Setenv(k, v)
	}
	ctx := context.Background()

	// Step 2 of the README: the secrets, and the stand-in's keys file.
	sm := secretsmanager.New(secretsmanager.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(moto), // straight to moto: not counted
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	keys := map[string]string{"support": "sk-ant-demo-" + randomHex(16), "sales": "sk-openai-demo-" + randomHex(16)}
	var issued strings.Builder
	for name, value := range keys {
		doc, _ := json.Marshal(map[string]string{"api_key": value})
		if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String("chat/bots/" + name), SecretString: aws.String(string(doc))}); err != nil {
			t.Fatal(err)
		}
		issued.WriteString(value + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, standInKeysFile), []byte(issued.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Step 3: the bots, with the README's own SQL.
	for _, stmt := range readmeSQL(t) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("the README's SQL: %v\n%s", err, stmt)
		}
	}

	encKey, err := fernetstore.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	env := deploymentEnv(t, "large", map[string]string{"CHAT_DATA_DIR": dir, "DATABASE_URL": dsn, fernetstore.EnvKey: encKey})
	s := start(t, env)
	s.withClientToken(t)

	// The warm-up: both keys in one batch call, none one by one.
	c, ok := secrets.Find[*cache.Cache](s.stack)
	if !ok {
		t.Fatal("the large stack has no cache")
	}
	warm := c.Stats()
	warmBatch, warmSingle := calls.get("BatchGetSecretValue"), calls.get("GetSecretValue")
	if batch, single := warmBatch, warmSingle; batch != 1 || single != 0 {
		t.Errorf("the warm-up made %d BatchGetSecretValue and %d GetSecretValue calls, want 1 and 0 (stats %+v)", batch, single, warm)
	}
	if warm.BackendCalls != 1 {
		t.Errorf("the cache made %d backend calls to warm 2 keys, want 1 batch (stats %+v)", warm.BackendCalls, warm)
	}

	if n := s.chatWithEveryBot(t, deploymentHost); n != 2 {
		t.Errorf("%d bots, want the README's 2", n)
	}
	after := c.Stats()
	if after.BackendCalls != warm.BackendCalls || after.Hits < warm.Hits+2 {
		t.Errorf("the chats after the warm-up: %d backend calls (was %d), %d hits (was %d); want every chat a cache hit",
			after.BackendCalls, warm.BackendCalls, after.Hits, warm.Hits)
	}
	if batch, single := calls.get("BatchGetSecretValue")-warmBatch, calls.get("GetSecretValue")-warmSingle; batch != 0 || single != 0 {
		t.Errorf("the chats called BatchGetSecretValue %d and GetSecretValue %d times, want 0 (cache hits)", batch, single)
	}
	// No bot was seeded: the table the README filled is the service's.
	all, _ := s.bots.all(ctx)
	for _, b := range all {
		if !strings.HasPrefix(b.KeyRef, "awssm:chat/bots/") {
			t.Errorf("bot %s has ref %s, want awssm:chat/bots/...", b.Name, b.KeyRef)
		}
	}
	// The warm-up's 2 rows and the chats' 2.
	awaitAuditRows(t, db, 4)
	var awsRows int
	if err := db.QueryRow("SELECT COUNT(*) FROM api_key_usage WHERE ref LIKE 'awssm:chat/bots/%'").Scan(&awsRows); err != nil || awsRows < 4 {
		t.Errorf("api_key_usage holds %d rows of awssm refs (%v), want at least 4", awsRows, err)
	}
	s.assertNoKeys(t, keys["support"], keys["sales"], encKey)
}

// readmeSQL returns the statements of the ```sql block of the deployments
// README (large's bots).
func readmeSQL(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deploymentsDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```sql\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("the deployments README has no ```sql block")
	}
	var out []string
	for _, stmt := range strings.Split(block, ";") {
		if stmt = strings.TrimSpace(stmt); stmt != "" {
			out = append(out, stmt)
		}
	}
	if len(out) != 2 {
		t.Fatalf("the README's SQL has %d statements, want CREATE TABLE and INSERT", len(out))
	}
	return out
}
