package vault

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/goleak"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
	"github.com/keyward/secrets/internal/testenv"
	"github.com/keyward/secrets/secretstest"
)

// counter is an http.RoundTripper that counts the requests that reach the
// network, and remembers their paths.
type counter struct {
	next  http.RoundTripper
	n     atomic.Int64
	mu    sync.Mutex
	paths []string
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	c.mu.Lock()
	c.paths = append(c.paths, r.URL.Path)
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *counter) Paths() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.paths...)
}

// newClient returns a client of addr with token, no retries (so an outage
// shows at once), and a request counter.
func newClient(t testing.TB, addr, token string) (*api.Client, *counter) {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	cnt := &counter{next: cfg.HttpClient.Transport}
	cfg.HttpClient.Transport = cnt
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c, cnt
}

// quietLogger returns a logger writing to a buffer the test can search.
func quietLogger() (*slog.Logger, *testenv.Buffer) {
	b := &testenv.Buffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// kvData is how the harness stores a value: a JSON object as the secret's
// keys (vault kv put secret/x api_key=... org=...), anything else as the
// single key "value" (vault kv put secret/x value=...).
func kvData(value string) map[string]any {
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(value))
	d.UseNumber()
	if err := d.Decode(&m); err == nil && m != nil && !d.More() {
		return m
	}
	return map[string]any{"value": value}
}

var invalidRefs = []string{
	"../sys/policy/root", "/abs/path", "a/../../b", "a/./b", "a//b", "dir/",
	"%2e%2e/sys/x", "a/%252e%252e/b", `a\b`, "x?version=0", "x?version=-1",
	"x?version=abc", "x?bogus=1",
}

func TestConformanceKVv2(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	secretstest.RunConformance(t, secretstest.Harness{
		New: func(t *testing.T) secretstest.Subject {
			return newSubject(t, srv, &Options{Mount: "secret"}, func(name, value string) (string, error) {
				_, err := root.KVv2("secret").Put(context.Background(), "conf/"+name, kvData(value))
				return "conf/" + name, err
			})
		},
		Backend:     Backend,
		MissingRef:  "conf/kw-missing",
		InvalidRefs: invalidRefs,
		Documents:   true,
	})
}

func TestConformanceKVv1(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	enableKVv1(t, root, "kv1")
	secretstest.RunConformance(t, secretstest.Harness{
		New: func(t *testing.T) secretstest.Subject {
			// No default mount: refs name it.
			return newSubject(t, srv, nil, func(name, value string) (string, error) {
				_, err := root.Logical().Write("kv1/"+name, kvData(value))
				return "kv1/" + name, err
			})
		},
		Backend:     Backend,
		MissingRef:  "kv1/kw-missing",
		InvalidRefs: append([]string{"kv1", "sys/policy/root", "auth/token/lookup-self", "kv1/x?version=1"}, invalidRefs...),
		Documents:   true,
	})
}

// newSubject is a fresh Store on srv for one conformance subtest, closed when
// it ends, and put as its way to store a value.
func newSubject(t *testing.T, srv *testenv.VaultServer, opts *Options, put func(name, value string) (string, error)) secretstest.Subject {
	client, _ := newClient(t, srv.Addr, srv.RootToken)
	o := Options{}
	if opts != nil {
		o = *opts
	}
	o.Logger, _ = quietLogger()
	store := New(client, &o)
	t.Cleanup(func() { store.Close() })
	return secretstest.Subject{Resolver: store, Put: func(t *testing.T, name, value string, _ time.Time) (string, error) {
		return put(name, value)
	}}
}

func enableKVv1(t testing.TB, root *api.Client, mount string) {
	t.Helper()
	err := root.Sys().Mount(mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}})
	if err != nil {
		t.Fatalf("enabling a KV v1 mount: %v", err)
	}
}

// TestTraversalNoRequest needs no server: refused refs must fail before any
// request is made, so the client points at a closed port and counts.
func TestTraversalNoRequest(t *testing.T) {
	client, cnt := newClient(t, "http://127.0.0.1:1", "kw-test-token")
	for _, opts := range []*Options{{Mount: "secret"}, nil} {
		store := New(client, opts)
		refs := append([]string{"", "#field", "sys/policy/root", "auth/token/lookup-self", "identity/entity/id/x", "secret"}, invalidRefs...)
		if opts != nil {
			refs = append(refs, "../../sys/seal-status", "%2F..%2Fsys")
		}
		for _, ref := range refs {
			if opts != nil && (strings.HasPrefix(ref, "sys/") || strings.HasPrefix(ref, "auth/") || strings.HasPrefix(ref, "identity/") || ref == "secret") {
				continue // under a default mount these are ordinary paths inside it
			}
			_, err := store.Resolve(context.Background(), ref)
			if !errors.Is(err, secrets.ErrInvalidRef) {
				t.Errorf("Resolve(%q) with %+v: got %v, want ErrInvalidRef", ref, opts, err)
			}
		}
	}
	if n := cnt.n.Load(); n != 0 {
		t.Fatalf("%d requests reached Vault for refused refs: %v", n, cnt.Paths())
	}
}

func TestCallsPerResolve(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	enableKVv1(t, root, "kv1")
	ctx := context.Background()
	for _, p := range []string{"a", "b", "c"} {
		if _, err := root.KVv2("secret").Put(ctx, "bots/"+p, map[string]any{"api_key": "sk-ant-test-" + p}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Logical().Write("kv1/bots/"+p, map[string]any{"api_key": "sk-ant-v1-" + p}); err != nil {
			t.Fatal(err)
		}
	}
	client, cnt := newClient(t, srv.Addr, srv.RootToken)
	log, _ := quietLogger()
	store := New(client, &Options{Logger: log})
	defer store.Close()

	resolve := func(ref, want string) int64 {
		t.Helper()
		before := cnt.n.Load()
		s, err := store.Resolve(ctx, ref)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", ref, err)
		}
		if s.Reveal() != want {
			t.Fatalf("Resolve(%q) returned another value", ref)
		}
		return cnt.n.Load() - before
	}
	// First resolve: token lookup-self, mount detection, read.
	if n := resolve("secret/bots/a#api_key", "sk-ant-test-a"); n != 3 {
		t.Errorf("first resolve made %d calls, want 3 (lookup-self, mount, read): %v", n, cnt.Paths())
	}
	for _, p := range []string{"a", "b", "c"} {
		if n := resolve("secret/bots/"+p+"#api_key", "sk-ant-test-"+p); n != 1 {
			t.Errorf("KV v2 resolve after the mount is known made %d calls, want 1: %v", n, cnt.Paths())
		}
	}
	if n := resolve("kv1/bots/a#api_key", "sk-ant-v1-a"); n != 2 {
		t.Errorf("first KV v1 resolve made %d calls, want 2 (mount, read)", n)
	}
	if n := resolve("kv1/bots/b#api_key", "sk-ant-v1-b"); n != 1 {
		t.Errorf("KV v1 resolve after the mount is known made %d calls, want 1", n)
	}
	// Concurrent first resolves of a new mount share one detection.
	enableKVv1(t, root, "kv1b")
	if _, err := root.Logical().Write("kv1b/x", map[string]any{"value": "sk-x"}); err != nil {
		t.Fatal(err)
	}
	before := cnt.n.Load()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := store.Resolve(ctx, "kv1b/x"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	mountCalls := 0
	for _, p := range cnt.Paths() {
		if strings.Contains(p, "sys/internal/ui/mounts/kv1b") {
			mountCalls++
		}
	}
	if mountCalls != 1 || cnt.n.Load()-before != 9 {
		t.Errorf("8 concurrent first resolves: %d mount detections and %d calls, want 1 and 9", mountCalls, cnt.n.Load()-before)
	}
}

func TestKVv2Versions(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	enableKVv1(t, root, "kv1")
	kv := root.KVv2("secret")
	ctx := context.Background()
	for _, v := range []string{"sk-ant-test-v1", "sk-ant-test-v2", "sk-ant-test-v3"} {
		if _, err := kv.Put(ctx, "rot", map[string]any{"api_key": v}); err != nil {
			t.Fatal(err)
		}
	}
	client, _ := newClient(t, srv.Addr, srv.RootToken)
	log, _ := quietLogger()
	store := New(client, &Options{Mount: "secret", Logger: log})
	defer store.Close()

	check := func(ref, want, version string) {
		t.Helper()
		s, err := store.Resolve(ctx, ref)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", ref, err)
		}
		if s.Reveal() != want || s.Version != version {
			t.Fatalf("Resolve(%q): version %q, want %q (value matches: %v)", ref, s.Version, version, s.Reveal() == want)
		}
		if !s.ExpiresAt.IsZero() {
			t.Fatalf("Resolve(%q): a KV secret has ExpiresAt %v", ref, s.ExpiresAt)
		}
	}
	check("rot#api_key", "sk-ant-test-v3", "3")
	check("rot?version=1#api_key", "sk-ant-test-v1", "1")
	check("rot?version=2#api_key", "sk-ant-test-v2", "2")

	notFound := func(ref, why string) {
		t.Helper()
		_, err := store.Resolve(ctx, ref)
		if !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("Resolve(%q): got %v, want ErrNotFound", ref, err)
		}
		if !strings.Contains(err.Error(), why) {
			t.Errorf("Resolve(%q): %q does not say %q", ref, err, why)
		}
	}
	// Delete the latest version (soft delete) and destroy version 1.
	if err := kv.Delete(ctx, "rot"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Destroy(ctx, "rot", []int{1}); err != nil {
		t.Fatal(err)
	}
	notFound("rot#api_key", "version 3 was deleted")
	notFound("rot?version=1#api_key", "version 1 was destroyed")
	notFound("rot?version=99", "no secret")
	check("rot?version=2#api_key", "sk-ant-test-v2", "2")

	// ?version on a KV v1 mount is a mistake, not a silent latest read.
	if _, err := root.Logical().Write("kv1/x", map[string]any{"value": "sk-x"}); err != nil {
		t.Fatal(err)
	}
	store1 := New(client, &Options{Logger: log})
	if _, err := store1.Resolve(ctx, "kv1/x?version=1"); !errors.Is(err, secrets.ErrInvalidRef) {
		t.Fatalf("?version on KV v1: got %v, want ErrInvalidRef", err)
	}
}

func TestErrors(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	ctx := context.Background()
	value := "sk-ant-test-" + srv.RootToken[8:20]
	if _, err := root.KVv2("secret").Put(ctx, "allowed/k", map[string]any{"value": value}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Put(ctx, "other/k", map[string]any{"value": value}); err != nil {
		t.Fatal(err)
	}
	err := root.Sys().PutPolicy("allowed", `path "secret/data/allowed/*" { capabilities = ["read"] }`)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"allowed"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	client, _ := newClient(t, srv.Addr, tok.Auth.ClientToken)
	log, logs := quietLogger()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	store := New(client, &Options{Logger: log, Now: func() time.Time { return now }})
	defer store.Close()

	if s, err := store.Resolve(ctx, "secret/allowed/k"); err != nil || s.Reveal() != value {
		t.Fatalf("Resolve(allowed): %v", err)
	}
	// The static token's expiry is known after first use, and logged.
	if exp := store.TokenExpiry(); exp.Before(now.Add(59*time.Minute)) || exp.After(now.Add(time.Hour)) {
		t.Errorf("TokenExpiry() = %v, want about %v", exp, now.Add(time.Hour))
	}
	if !strings.Contains(logs.String(), "not renewed") || !strings.Contains(logs.String(), "2026-11-26T13:00:00Z") && !strings.Contains(logs.String(), "2026-11-26T12:59:5") {
		t.Errorf("the token check did not log the expiry: %s", logs.String())
	}

	var all []string
	want := func(ref string, code error) {
		t.Helper()
		_, err := store.Resolve(ctx, ref)
		if !errors.Is(err, code) {
			t.Fatalf("Resolve(%q): got %v, want %v", ref, err, code)
		}
		var se *secrets.Error
		if !errors.As(err, &se) || se.Backend != Backend {
			t.Fatalf("Resolve(%q): %T, Backend not %q", ref, err, Backend)
		}
		all = append(all, err.Error())
	}
	want("secret/other/k", secrets.ErrPermission)
	want("nosuchmount/k", secrets.ErrPermission) // Vault hides which mounts exist
	want("secret/allowed/missing", secrets.ErrNotFound)
	// The api's own error stays reachable with errors.As.
	_, err = store.Resolve(ctx, "secret/other/k")
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 403 {
		t.Errorf("errors.As(*api.ResponseError) failed on %v", err)
	}

	// A token Vault does not know.
	bad, _ := newClient(t, srv.Addr, "kw-not-a-token-"+srv.RootToken[8:16])
	badStore := New(bad, &Options{Logger: log})
	_, err = badStore.Resolve(ctx, "secret/allowed/k")
	if !errors.Is(err, secrets.ErrPermission) || !strings.Contains(err.Error(), "lookup-self") {
		t.Fatalf("unknown token: got %v, want ErrPermission from the token check", err)
	}
	all = append(all, err.Error())
	noTok, _ := newClient(t, srv.Addr, "")
	_, err = New(noTok, &Options{Logger: log}).Resolve(ctx, "secret/allowed/k")
	if !errors.Is(err, secrets.ErrPermission) || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Fatalf("no token: got %v", err)
	}

	for _, msg := range all {
		for _, leak := range []string{value, tok.Auth.ClientToken, srv.RootToken, "Error making API request", "URL:", srv.Addr} {
			if strings.Contains(msg, leak) {
				t.Errorf("error %q holds %q: Vault's raw error or a credential", msg, leak[:min(len(leak), 12)])
			}
		}
	}
	if strings.Contains(logs.String(), tok.Auth.ClientToken) || strings.Contains(logs.String(), value) {
		t.Error("the log holds the token or a value")
	}

	// A client whose own timeout is already over: ErrUnavailable, not a hang.
	slow, _ := newClient(t, srv.Addr, srv.RootToken)
	slow.SetClientTimeout(time.Nanosecond)
	if _, err := New(slow, &Options{Logger: log}).Resolve(ctx, "secret/allowed/k"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("client timeout: got %v, want ErrUnavailable", err)
	}

	// Sealed last: a sealed dev server cannot be unsealed by the test.
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	_, err = store.Resolve(ctx, "secret/allowed/k")
	if !errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "sealed") {
		t.Errorf("sealed: got %v, want ErrUnavailable saying sealed", err)
	}
	if err := store.Ping(ctx); !errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("Ping while sealed: got %v, want ErrUnavailable", err)
	}
}

// TestServerStoppedAndRestarted stops Vault under a Store: resolves fail
// with ErrUnavailable; once Vault is back on the same address the same Store
// works again without being reopened.
func TestServerStoppedAndRestarted(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	ctx := context.Background()
	put := func(v string) {
		t.Helper()
		if _, err := root.KVv2("secret").Put(ctx, "bots/anthropic", map[string]any{"api_key": v}); err != nil {
			t.Fatal(err)
		}
	}
	put("sk-ant-test-before")
	client, _ := newClient(t, srv.Addr, srv.RootToken)
	log, _ := quietLogger()
	store := New(client, &Options{Mount: "secret", Logger: log})
	defer store.Close()
	ref := "bots/anthropic#api_key"
	if s, err := store.Resolve(ctx, ref); err != nil || s.Reveal() != "sk-ant-test-before" {
		t.Fatalf("before: %v", err)
	}

	srv.Stop(t)
	_, err := store.Resolve(ctx, ref)
	if !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("with Vault stopped: got %v, want ErrUnavailable", err)
	}
	if err := store.Ping(ctx); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("Ping with Vault stopped: got %v, want ErrUnavailable", err)
	}

	srv.Start(t) // a dev server starts empty, with the same root token
	put("sk-ant-test-after")
	if err := store.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	if s, err := store.Resolve(ctx, ref); err != nil || s.Reveal() != "sk-ant-test-after" {
		t.Fatalf("after restart: %v", err)
	}
}

// appRole enables AppRole with a role whose tokens live ttl, renewable up to
// maxTTL, reading secret/ except secret/private/, and sets VAULT_ROLE_ID and VAULT_SECRET_ID.
func appRole(t *testing.T, root *api.Client, ttl, maxTTL string) {
	t.Helper()
	if err := root.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	policy := `path "secret/data/*" { capabilities = ["read"] }
path "secret/data/private/*" { capabilities = ["deny"] }`
	if err := root.Sys().PutPolicy("reader", policy); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/approle/role/app", map[string]any{
		"token_policies": "reader", "token_ttl": ttl, "token_max_ttl": maxTTL,
	}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().Read("auth/approle/role/app/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Logical().Write("auth/approle/role/app/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_ROLE_ID", rid.Data["role_id"].(string))
	t.Setenv("VAULT_SECRET_ID", sid.Data["secret_id"].(string))
}

// openFromEnv opens a Store the way a service does: secrets.Open and
// Vault's environment.
func openFromEnv(t *testing.T, srv *testenv.VaultServer, rawURL string) *Store {
	t.Helper()
	t.Setenv("VAULT_ADDR", srv.Addr)
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("VAULT_MAX_RETRIES", "0")
	r, err := secrets.Open(context.Background(), rawURL)
	if err != nil {
		t.Fatal(err)
	}
	s := r.(*Store)
	log, _ := quietLogger()
	s.opts.Logger = log
	return s
}

// noLeaks checks, after every other cleanup (the server's stop included),
// that the test left no goroutine behind: the Store's renewal goroutine and
// its LifetimeWatcher must be gone after Close.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// TestAppRoleRenewal is the one test that waits on Vault's clock: the token
// lives 10 s, so resolves that keep working past 13 s with the same token
// prove the LifetimeWatcher renewed it.
func TestAppRoleRenewal(t *testing.T) {
	noLeaks(t)
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	appRole(t, root, "10s", "10m")
	ctx := context.Background()
	if _, err := root.KVv2("secret").Put(ctx, "bots/anthropic", map[string]any{"api_key": "sk-ant-test-renew"}); err != nil {
		t.Fatal(err)
	}
	store := openFromEnv(t, srv, "vault://?mount=secret&auth=approle")
	log, logs := quietLogger()
	store.opts.Logger = log

	start := time.Now()
	if s, err := store.Resolve(ctx, "bots/anthropic#api_key"); err != nil || s.Reveal() != "sk-ant-test-renew" {
		t.Fatalf("first resolve: %v", err)
	}
	c, _ := store.Client()
	token := c.Token()
	firstExpiry := store.TokenExpiry()
	if firstExpiry.IsZero() {
		t.Fatal("TokenExpiry is zero after an AppRole login with a 10s TTL")
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < 13*time.Second {
		<-tick.C
		if _, err := store.Resolve(ctx, "bots/anthropic#api_key"); err != nil {
			t.Fatalf("resolve at %v: %v", time.Since(start).Round(time.Second), err)
		}
	}
	if c.Token() != token {
		t.Fatal("the Store logged in again instead of renewing its token")
	}
	look, err := root.Auth().Token().Lookup(token)
	if err != nil {
		t.Fatalf("the original token is gone after 13s: %v", err)
	}
	if ttl, _ := look.TokenTTL(); ttl <= 0 {
		t.Fatalf("the token has TTL %v", ttl)
	}
	if !store.TokenExpiry().After(firstExpiry) {
		t.Errorf("TokenExpiry did not move forward: %v then %v", firstExpiry, store.TokenExpiry())
	}
	if !strings.Contains(logs.String(), "vault: token renewed") {
		t.Errorf("no renewal was logged: %s", logs.String())
	}
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), "sk-ant-test-renew") {
		t.Error("the log holds the token or the value")
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Resolve(ctx, "bots/anthropic#api_key"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("Resolve after Close: got %v, want ErrUnavailable", err)
	}
}

// TestReloginAfterRevoke revokes the Store's token behind its back: the next
// resolve logs in again and succeeds, and renewal follows the new token.
func TestReloginAfterRevoke(t *testing.T) {
	noLeaks(t)
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	appRole(t, root, "1h", "24h")
	ctx := context.Background()
	if _, err := root.KVv2("secret").Put(ctx, "bots/anthropic", map[string]any{"api_key": "sk-ant-test-relogin"}); err != nil {
		t.Fatal(err)
	}
	store := openFromEnv(t, srv, "vault://?mount=secret&auth=approle")
	log, logs := quietLogger()
	store.opts.Logger = log
	defer store.Close()
	if _, err := store.Resolve(ctx, "bots/anthropic#api_key"); err != nil {
		t.Fatal(err)
	}
	c, _ := store.Client()
	old := c.Token()
	if err := root.Auth().Token().RevokeTree(old); err != nil {
		t.Fatal(err)
	}
	s, err := store.Resolve(ctx, "bots/anthropic#api_key")
	if err != nil || s.Reveal() != "sk-ant-test-relogin" {
		t.Fatalf("resolve after the token was revoked: %v", err)
	}
	if c.Token() == old {
		t.Fatal("the token did not change")
	}
	if !strings.Contains(logs.String(), "logging in again") {
		t.Errorf("the re-login was not logged: %s", logs.String())
	}
	// A path the valid token may not read is a permission error, and no login.
	logins := strings.Count(logs.String(), "vault: logged in")
	if _, err := store.Resolve(ctx, "private/x"); !errors.Is(err, secrets.ErrPermission) {
		t.Fatalf("a path outside the policy: got %v, want ErrPermission", err)
	}
	if n := strings.Count(logs.String(), "vault: logged in"); n != logins {
		t.Errorf("a permission error caused %d logins", n-logins)
	}
}

func TestAppRoleBadCredentials(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	appRole(t, root, "1h", "24h")
	t.Setenv("VAULT_SECRET_ID", "kw-wrong-secret-id-0123456789")
	store := openFromEnv(t, srv, "vault://?mount=secret&auth=approle")
	defer store.Close()
	_, err := store.Resolve(context.Background(), "bots/anthropic#api_key")
	if !errors.Is(err, secrets.ErrPermission) {
		t.Fatalf("wrong secret id: got %v (code %v), want ErrPermission", err, secrets.CodeOf(err))
	}
	for _, leak := range []string{"kw-wrong-secret-id", t.Name()} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q holds a credential", err)
		}
	}
	t.Log(err)
}

func TestAuthConfigErrors(t *testing.T) {
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_ROLE_ID", "")
	t.Setenv("VAULT_ROLE_ID_FILE", "")
	t.Setenv("VAULT_KUBERNETES_TOKEN_FILE", t.TempDir()+"/absent")
	for _, u := range []string{"vault://?auth=approle", "vault://?auth=kubernetes&role=app"} {
		r, err := secrets.Open(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Resolve(context.Background(), "secret/x")
		if !errors.Is(err, secrets.ErrPermission) {
			t.Errorf("%s: got %v, want ErrPermission", u, err)
		}
		t.Log(err)
		r.(*Store).Close()
	}
}

func TestOpenURL(t *testing.T) {
	for _, u := range []string{
		"vault://?mount=secret", "vault://", "vault://?auth=token", "vault://?auth=approle&auth_mount=approle2",
		"vault://?auth=kubernetes&role=app", "vault://?mount=kv/team-a/",
	} {
		r, err := secrets.Open(context.Background(), u)
		if err != nil {
			t.Errorf("Open(%q): %v", u, err)
			continue
		}
		if _, ok := r.(*Store); !ok {
			t.Errorf("Open(%q) = %T", u, r)
		}
	}
	for _, u := range []string{
		"vault://?mount=secret&token=x", "vault://vault.example.com?mount=secret", "vault://?auth=ldap",
		"vault://?auth=kubernetes", "vault://?auth=approle&role=x", "vault://?mount=../sys", "vault://?mount=sys",
		"vault://?role=x", "vault://?mount=a&mount=b",
	} {
		_, err := secrets.Open(context.Background(), u)
		if !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("Open(%q): got %v, want ErrInvalidRef", u, err)
		}
	}
}

// TestDynamicSecretExpiry checks the lease-to-ExpiresAt mapping with an
// injected clock. The dev server has no dynamic engine that issues leases
// on a read without an external system (a database, a cloud), so this is
// the one behaviour tested on Vault's answer type rather than the server.
func TestDynamicSecretExpiry(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	d := &conn{opts: Options{Now: func() time.Time { return now }}}
	dyn := &api.Secret{LeaseID: "database/creds/app/abc", LeaseDuration: 3600, Renewable: true,
		Data: map[string]any{"username": "v-app-x", "password": "pw-test-1"}}
	got, err := d.value(mountInfo{path: "database/", typ: "database", kind: otherEngine}, dyn, "password")
	if err != nil || got.Document["password"] != "pw-test-1" {
		t.Fatalf("value: %v", err)
	}
	if !got.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, now.Add(time.Hour))
	}
	// KV v1 answers carry a lease_duration hint but no lease: no expiry.
	kv1 := &api.Secret{LeaseDuration: 2764800, Data: map[string]any{"value": "sk-x"}}
	got, err = d.value(mountInfo{path: "kv/", typ: "kv", kind: kvV1}, kv1, "")
	if err != nil || !got.ExpiresAt.IsZero() || got.Data != "sk-x" {
		t.Errorf("KV v1: ExpiresAt = %v, err %v; want none", got.ExpiresAt, err)
	}
}

// docDriver serves one data map the way the Store serves Vault's answer.
type docDriver map[string]any

func (m docDriver) Get(_ context.Context, ref driver.Ref) (driver.Value, error) {
	return document(m, ref.Field)
}

// TestPick: vault's document rule under the core's #field rule. A map that
// is only {"value": "..."} is that value, and a #field picks from it as from
// any JSON text, "#value" included (it used to return the bare value: the
// ref without "#value" does that).
func TestPick(t *testing.T) {
	for _, c := range []struct {
		data  map[string]any
		field string
		want  string
		code  secrets.Code
	}{
		{map[string]any{"value": "sk-1"}, "", "sk-1", secrets.CodeUnknown},
		{map[string]any{"value": "sk-1"}, "value", "", secrets.CodeInvalidRef},
		{map[string]any{"value": `{"value":"v"}`}, "value", "v", secrets.CodeUnknown},
		{map[string]any{"value": `{"k":"v"}`}, "k", "v", secrets.CodeUnknown},
		{map[string]any{"value": "sk-1"}, "k", "", secrets.CodeInvalidRef},
		{map[string]any{"value": `{"k":"v"}`}, "x", "", secrets.CodeNotFound},
		{map[string]any{"a": "1", "b": json.Number("2")}, "", `{"a":"1","b":2}`, secrets.CodeUnknown},
		{map[string]any{"a": "1", "b": json.Number("2")}, "b", "2", secrets.CodeUnknown},
		{map[string]any{"a": "1", "value": "v"}, "", `{"a":"1","value":"v"}`, secrets.CodeUnknown},
		{map[string]any{"a": "1", "value": "v"}, "value", "v", secrets.CodeUnknown},
		{map[string]any{"a": "1"}, "x", "", secrets.CodeNotFound},
	} {
		ref := "x"
		if c.field != "" {
			ref += "#" + c.field
		}
		got, err := driver.New(Backend, docDriver(c.data), nil).Resolve(context.Background(), ref)
		if code := secrets.CodeOf(err); got.Reveal() != c.want || (err != nil || c.code != secrets.CodeUnknown) && code != c.code {
			t.Errorf("%v#%s = %q, %v; want %q, %v", c.data, c.field, got.Reveal(), err, c.want, c.code)
		}
	}
}

// TestErrorTextFiltered checks the classification of Vault's error answers
// on the api's own error type: only the status and known phrases show.
func TestErrorTextFiltered(t *testing.T) {
	for status, code := range map[int]secrets.Code{
		403: secrets.CodePermission, 404: secrets.CodeNotFound, 503: secrets.CodeUnavailable,
		500: secrets.CodeUnavailable, 429: secrets.CodeUnavailable, 502: secrets.CodeUnavailable, 400: secrets.CodeInvalidRef,
	} {
		re := &api.ResponseError{HTTPMethod: "GET", URL: "http://127.0.0.1:8200/v1/secret/data/x", StatusCode: status,
			Errors: []string{"permission denied", "1 error occurred: sk-ant-test-echoed"}}
		err := classify("reading secret/data/x", re)
		if secrets.CodeOf(err) != code {
			t.Errorf("HTTP %d: code %v, want %v", status, secrets.CodeOf(err), code)
		}
		if strings.Contains(err.Error(), "sk-ant-test-echoed") || strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("HTTP %d: %q holds Vault's raw error text", status, err)
		}
		var got *api.ResponseError
		if !errors.As(err, &got) || got != re {
			t.Errorf("HTTP %d: the api error is not reachable with errors.As", status)
		}
	}
	if err := classify("reading", &url.Error{Op: "Get", URL: "u", Err: context.Canceled}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}
