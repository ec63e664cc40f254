package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	vaultapi "github.com/hashicorp/vault/api"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// keyManager is a secret manager the master-key story runs against.
type keyManager struct {
	ref    string            // ENCRYPTION_KEY_REF
	env    map[string]string // what reaches it (endpoint, credentials)
	config string            // KEYWARD_CONFIG's line for it
	// create stores the first key and returns its version.
	create func(t *testing.T, key string) string
	// current reads the manager's current key and version, as an operator
	// would with the manager's own tools.
	current func(t *testing.T) (key, version string)
}

// TestMasterKeyInAWS and TestMasterKeyInVault tell the whole story of a
// master key kept in a secret manager, on moto and on the real Vault dev
// server: rows encrypted under version 1; keyward genkey --store writes
// version 2 and prints its id, never the key; a store opened before picks
// the new primary up without a restart; old rows still decrypt; rotate
// moves every row to the new key; what must be refused is.
func TestMasterKeyInAWS(t *testing.T) {
	endpoint := testenv.MotoServer(t)
	sm := secretsmanager.New(secretsmanager.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	name := "keyward/master-" + randomValue(t, "")[:8]
	ctx := context.Background()
	masterKeyStory(t, keyManager{
		ref: "awssm:" + name,
		env: map[string]string{"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
			"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"},
		config: "awssm = awssm://",
		create: func(t *testing.T, key string) string {
			out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			return aws.ToString(out.VersionId)
		},
		current: func(t *testing.T) (string, string) {
			out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
			if err != nil {
				t.Fatal(err)
			}
			prev, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("AWSPREVIOUS")})
			if err != nil || aws.ToString(prev.VersionId) == aws.ToString(out.VersionId) {
				t.Fatalf("after genkey --store, AWSPREVIOUS is not the first key: %v", err)
			}
			return aws.ToString(out.SecretString), aws.ToString(out.VersionId)
		},
	})
}

func TestMasterKeyInVault(t *testing.T) {
	v := testenv.Vault(t)
	cfg := vaultapi.DefaultConfig()
	cfg.Address = v.Addr
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(v.RootToken)
	kv := c.KVv2("secret")
	ctx := context.Background()
	masterKeyStory(t, keyManager{
		ref:    "vault:secret/keyward/master#key",
		env:    map[string]string{"VAULT_ADDR": v.Addr, "VAULT_TOKEN": v.RootToken},
		config: "vault = vault://",
		create: func(t *testing.T, key string) string {
			s, err := kv.Put(ctx, "keyward/master", map[string]any{"key": key})
			if err != nil {
				t.Fatal(err)
			}
			return strconv.Itoa(s.VersionMetadata.Version)
		},
		current: func(t *testing.T) (string, string) {
			s, err := kv.Get(ctx, "keyward/master")
			if err != nil {
				t.Fatal(err)
			}
			key, _ := s.Data["key"].(string)
			return key, strconv.Itoa(s.VersionMetadata.Version)
		},
	})
}

// safeBuffer is a log destination shared with background reloads.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// storyClock is the long-running store's clock.
type storyClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *storyClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *storyClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var storedLine = regexp.MustCompile(`^(\S+): stored a new key as version (\S+)\n$`)

func masterKeyStory(t *testing.T, m keyManager) {
	ctx := context.Background()
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "keys.db")
	log := &safeBuffer{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(log, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })

	// The service's process: the manager's environment, the database, and
	// ENCRYPTION_KEY_REF instead of ENCRYPTION_KEY.
	for k, v := range m.env {
		t.Setenv(k, v)
	}
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv(fernetstore.EnvKey, "")
	t.Setenv(fernetstore.EnvPreviousKeys, "")
	t.Setenv(fernetstore.EnvKeyRefresh, "")
	t.Setenv(fernetstore.EnvKeyRef, m.ref)

	k1, err := fernetstore.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	v1 := m.create(t, k1)

	// Replica A: a long-running service, opened before the new version.
	clock := &storyClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	storeA := fernetstore.NewFromEnv(&fernetstore.Options{Now: clock.Now})
	cfg, err := secrets.ParseConfig(m.config)
	if err != nil {
		t.Fatal(err)
	}
	stA, err := secrets.OpenConfig(ctx, cfg, &secrets.StackOptions{Backends: map[string]secrets.KeyResolver{"db": storeA}})
	if err != nil {
		t.Fatal(err)
	}
	defer stA.Close()
	if _, err := storeA.Init(ctx); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{}
	for _, bot := range []string{"support", "sales", "ops"} {
		v := randomValue(t, "sk-ant-"+bot+"-")
		id, err := storeA.Put(ctx, bot, "anthropic", v, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		values[id] = v
	}
	ringA, err := storeA.Ring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ringA.Versions(); len(got) != 1 || got[0] != v1 {
		t.Fatalf("replica A's ring holds versions %v, want [%s]", got, v1)
	}
	resolveAll := func(version string) {
		t.Helper()
		for id, want := range values {
			s, err := stA.Resolve(ctx, "db:"+id)
			if err != nil || s.Reveal() != want || s.Version != version {
				t.Fatalf("db:%s: version %q, want %q (value matches: %v), %v", id, s.Version, version, s.Reveal() == want, err)
			}
		}
	}
	resolveAll(fernetstore.PrimaryKeyName)

	// The operator: keyward genkey --store writes version 2.
	h := newHarness(t)
	h.secret(k1)
	h.env = map[string]string{"DATABASE_URL": dbURL, secrets.ConfigEnv: m.config, fernetstore.EnvKeyRef: m.ref}
	for k, v := range m.env {
		h.env[k] = v
	}
	r := h.must(0, nil, "", "genkey", "--store", m.ref)
	match := storedLine.FindStringSubmatch(r.stdout)
	if match == nil || match[1] != m.ref {
		t.Fatalf("genkey --store printed %q, want %q: stored a new key as version ID", r.stdout, m.ref)
	}
	k2, v2 := m.current(t)
	h.secret(k2)
	if match[2] != v2 || v2 == v1 || k2 == k1 {
		t.Fatalf("genkey --store printed version %s; the manager's current version is %s (first %s)", match[2], v2, v1)
	}
	if _, err := fernetstore.ParseKeyRing(k2); err != nil {
		t.Fatalf("the key genkey --store wrote is not a Fernet key: %v", err)
	}
	// genkey's stdout may hold a key when it prints one; with --store it
	// must not (the harness does not search genkey's stdout itself).
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, k2) || strings.Contains(out, k1) {
			t.Fatal("genkey --store printed a key")
		}
	}
	if !strings.Contains(r.stderr, "keyward rotate") {
		t.Errorf("genkey --store does not say what to do next:\n%s", r.stderr)
	}

	// Replica A, not restarted: within the refresh interval it keeps v1;
	// once it has passed, it reads the manager again and takes v2.
	clock.Add(fernetstore.DefaultKeyRefresh)
	// The use that starts the read: it runs in the background, so a row
	// resolved once the new ring is in decrypts as previous-1 already
	// (under load the read can finish within this loop).
	for id, want := range values {
		s, err := stA.Resolve(ctx, "db:"+id)
		if err != nil || s.Reveal() != want || (s.Version != fernetstore.PrimaryKeyName && s.Version != fernetstore.KeyName(1)) {
			t.Fatalf("db:%s while the ring is read again: version %q (value matches: %v), %v", id, s.Version, s.Reveal() == want, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for ringA.Versions()[0] != v2 {
		if time.Now().After(deadline) {
			t.Fatalf("replica A never took version %s as primary (versions %v)", v2, ringA.Versions())
		}
		time.Sleep(time.Millisecond)
	}
	if got := ringA.Versions(); len(got) != 2 || got[1] != v1 {
		t.Fatalf("replica A's ring: %v, want [%s %s]", got, v2, v1)
	}
	// Old rows still decrypt, under the previous version; a new row is
	// encrypted under v2.
	resolveAll(fernetstore.KeyName(1))
	vNew := randomValue(t, "sk-ant-new-")
	idNew, err := storeA.Put(ctx, "new", "anthropic", vNew, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	values[idNew] = vNew
	db, err := storeA.DB()
	if err != nil {
		t.Fatal(err)
	}
	underOnly := func(key string) map[string]bool {
		t.Helper()
		ring, err := fernetstore.ParseKeyRing(key)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := db.QueryContext(ctx, "SELECT id, api_key FROM api_keys")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]bool{}
		for rows.Next() {
			var id, tok string
			if err := rows.Scan(&id, &tok); err != nil {
				t.Fatal(err)
			}
			_, err := ring.KeyOf(tok)
			out[id] = err == nil
		}
		return out
	}
	if !underOnly(k2)[idNew] {
		t.Fatal("a row put after the reload is not under the new key")
	}

	// keyward rotate's ring (refKeyRing: ENCRYPTION_KEY_REF read through
	// the configured stack), and keyward check and rotate.
	a := &app{stdout: new(bytes.Buffer), stderr: new(bytes.Buffer), getenv: func(k string) string {
		if v, ok := h.env[k]; ok {
			return v
		}
		return ""
	}}
	ring, err := a.refKeyRing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ring.Versions(); len(got) != 2 || got[0] != v2 || got[1] != v1 {
		t.Fatalf("rotate's ring: %v", got)
	}
	// check finds the rows under the old key, rotate moves them, and check
	// is then clean: the CLI itself, with ENCRYPTION_KEY_REF and no
	// ENCRYPTION_KEY.
	h.must(exitFindings, nil, "", "check")
	r = h.must(0, nil, "", "rotate")
	if !strings.Contains(r.stdout+r.stderr, "3") {
		t.Errorf("keyward rotate does not report the 3 rows it rewrote:\n%s", r)
	}
	h.must(0, nil, "", "check")
	for id, under := range underOnly(k2) {
		if !under {
			t.Errorf("row %s is not under the new key after the rotation", id)
		}
	}
	resolveAll(fernetstore.PrimaryKeyName)

	// What must be refused.
	h.must(exitUsage, nil, "", "genkey", "--store", "env:MASTER_KEY")
	h.must(exitUsage, nil, "", "genkey", "--store", "db:1")
	h.must(exitUsage, nil, "", "genkey", "--store", k2)
	r = h.must(exitConfig, map[string]string{fernetstore.EnvKey: k1}, "", "resolve", "db:"+idNew)
	if !strings.Contains(r.stderr, "both set") {
		t.Errorf("ENCRYPTION_KEY with ENCRYPTION_KEY_REF: %s", r)
	}
	for ref, say := range map[string]string{
		"db:1":           "this store's own scheme db:",
		"env:MASTER_KEY": "may not name an env: ref",
	} {
		t.Setenv(fernetstore.EnvKeyRef, ref)
		store := fernetstore.NewFromEnv(nil)
		st, err := secrets.OpenConfig(ctx, cfg, &secrets.StackOptions{Backends: map[string]secrets.KeyResolver{"db": store}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Resolve(ctx, "db:"+idNew)
		st.Close()
		if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), say) {
			t.Errorf("%s=%s: %v, want a refusal saying %q", fernetstore.EnvKeyRef, ref, err, say)
		}
	}
	t.Setenv(fernetstore.EnvKeyRef, m.ref)
	t.Setenv(fernetstore.EnvKey, k1)
	dbCfg, err := secrets.ParseConfig(m.config + "\ndb = fernet://?table=api_keys")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.OpenConfig(ctx, dbCfg, nil); !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "both set") || strings.Contains(err.Error(), k1) {
		t.Errorf("OpenConfig with ENCRYPTION_KEY and ENCRYPTION_KEY_REF: %v", err)
	}

	// No key in any output.
	for what, out := range map[string]string{"the log": log.String(), "the app's stdout": a.stdout.(*bytes.Buffer).String(), "the app's stderr": a.stderr.(*bytes.Buffer).String()} {
		for _, k := range []string{k1, k2} {
			if strings.Contains(out, k) {
				t.Errorf("%s holds a key", what)
			}
		}
	}
}
