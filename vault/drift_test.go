package vault

// One test per drift the driver layer removes (issue 11): each checks that
// vault follows the core's one rule, not a rule of its own.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/testenv"
	"github.com/keyward/secrets/secretstest"
)

// gate is a loopback proxy in front of the real Vault that can refuse
// (502) or hang every request, and remembers the paths it saw.
type gate struct {
	mode  atomic.Int32 // gateUp, gateDown or gateHang
	hung  chan struct{}
	mu    sync.Mutex
	paths []string
	URL   string
}

const (
	gateUp = iota
	gateDown
	gateHang
)

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	g := &gate{hung: make(chan struct{}, 64)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.paths = append(g.paths, r.URL.Path)
		g.mu.Unlock()
		switch g.mode.Load() {
		case gateDown:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte(`{"errors":["upstream connect error"]}`))
			return
		case gateHang:
			select {
			case g.hung <- struct{}{}:
			default:
			}
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// count returns how many requests had a path containing part.
func (g *gate) count(part string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, p := range g.paths {
		if strings.Contains(p, part) {
			n++
		}
	}
	return n
}

// driftEnv is a dev server with a KV v1 mount "kv1", a gate in front of it,
// and a Store (no default mount) reading through the gate with the root token.
type driftEnv struct {
	srv   *testenv.VaultServer
	gate  *gate
	store *Store
	put   func(path string, data map[string]any)
}

func newDriftEnv(t *testing.T) *driftEnv {
	t.Helper()
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	enableKVv1(t, root, "kv1")
	g := newGate(t, srv.Addr)
	client, _ := newClient(t, g.URL, srv.RootToken)
	log, _ := quietLogger()
	e := &driftEnv{srv: srv, gate: g, store: New(client, &Options{Logger: log})}
	t.Cleanup(func() { e.store.Close() })
	e.put = func(path string, data map[string]any) {
		t.Helper()
		var err error
		if rest, ok := strings.CutPrefix(path, "secret/"); ok {
			_, err = root.KVv2("secret").Put(context.Background(), rest, data)
		} else {
			_, err = root.Logical().Write(path, data)
		}
		if err != nil {
			t.Fatalf("writing %s: %v", path, err)
		}
	}
	return e
}

func wantFields(t *testing.T, what string, err error, code secrets.Code, op, ref string) *secrets.Error {
	t.Helper()
	return testenv.WantError(t, what, err, code, op, Backend, ref)
}

// The context rule: a caller's ended ctx, before the call or during it, is
// secrets.ContextError naming the backend and the ref, in Resolve, Ping and
// every Result of ResolveMany. (vault returned the bare ctx.Err().)
func TestDriftContext(t *testing.T) {
	e := newDriftEnv(t)
	e.put("secret/drift/k", map[string]any{"api_key": "sk-drift-ctx"})
	check := func(what string, err, ctxErr error, op, ref string) {
		t.Helper()
		testenv.WantContextError(t, what, err, ctxErr, op, Backend, ref)
	}
	canceled := testenv.Canceled()
	_, err := e.store.Resolve(canceled, "secret/drift/k#api_key")
	check("Resolve, canceled before", err, context.Canceled, "resolve", "secret/drift/k#api_key")
	check("Ping, canceled before", e.store.Ping(canceled), context.Canceled, "ping", "")
	out, err := secrets.ResolveMany(canceled, e.store, []string{"secret/drift/k", "secret/drift/k#api_key"})
	check("ResolveMany's whole error", err, context.Canceled, "resolve", "")
	for _, res := range out {
		check("ResolveMany's result", res.Err, context.Canceled, "resolve", res.Ref)
	}

	// Canceled while Vault hangs on the read.
	if _, err := e.store.Resolve(context.Background(), "secret/drift/k"); err != nil {
		t.Fatal(err)
	}
	e.gate.mode.Store(gateHang)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := e.store.Resolve(ctx, "secret/drift/k#api_key"); done <- err }()
	<-e.gate.hung
	cancel()
	check("Resolve, canceled during the read", <-done, context.Canceled, "resolve", "secret/drift/k#api_key")

	dl, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	_, err = e.store.Resolve(dl, "secret/drift/k")
	check("Resolve past the deadline", err, context.DeadlineExceeded, "resolve", "secret/drift/k")
}

// The #field rule is the core's: for a secret whose keys are a document,
// vault answers every field exactly as the Fake does for that document,
// value for value and code for code.
func TestDriftField(t *testing.T) {
	e := newDriftEnv(t)
	doc := `{"api_key":"sk-1","n":60,"f":1.5,"t":true,"z":null,"arr":[1,"a"],"o":{"rpm":60},"e":"","u":"\u00e9\n"}`
	var fake secretstest.Fake
	fake.Set("doc", doc)
	e.put("secret/drift/doc", kvData(doc))
	e.put("kv1/drift/doc", kvData(doc))
	ctx := context.Background()
	for _, base := range []string{"secret/drift/doc", "kv1/drift/doc"} {
		for _, f := range []string{"api_key", "n", "f", "t", "z", "arr", "o", "e", "u", "missing"} {
			want, wantErr := fake.Resolve(ctx, "doc#"+f)
			got, err := e.store.Resolve(ctx, base+"#"+f)
			switch {
			case wantErr != nil:
				if secrets.CodeOf(err) != secrets.CodeOf(wantErr) {
					t.Errorf("%s#%s: vault gives %v, the core's rule %v", base, f, err, wantErr)
				}
			case err != nil:
				t.Errorf("%s#%s: vault gives %v, the core's rule a value", base, f, err)
			case got.Reveal() != want.Reveal():
				t.Errorf("%s#%s: vault gives %q, the core's rule %q", base, f, got.Reveal(), want.Reveal())
			}
		}
	}
}

// Every error names the caller's operation, the backend and the ref as the
// caller wrote it (#field and ?version included), whichever path made it:
// ref rules, the open, the mount, the read, the core's #field rule, Ping.
func TestDriftErrorFields(t *testing.T) {
	e := newDriftEnv(t)
	e.put("secret/drift/plain", map[string]any{"value": "sk-plain"})
	e.put("kv1/drift/plain", map[string]any{"value": "sk-plain"})
	for _, c := range []struct {
		ref  string
		code secrets.Code
	}{
		{"secret/drift/missing#api_key", secrets.CodeNotFound},
		{"secret/drift/plain?version=99#api_key", secrets.CodeNotFound},
		{"secret/drift/plain#api_key", secrets.CodeInvalidRef},
		{"secret/drift/plain#missing", secrets.CodeInvalidRef},
		{"kv1/drift/plain?version=1", secrets.CodeInvalidRef},
		{"kv1/drift/missing#f", secrets.CodeNotFound},
		{"secret/../sys/x#f", secrets.CodeInvalidRef},
		{"secret/x?version=0", secrets.CodeInvalidRef},
		{"sys/policy/root", secrets.CodeInvalidRef},
	} {
		_, err := e.store.Resolve(context.Background(), c.ref)
		wantFields(t, c.ref, err, c.code, "resolve", c.ref)
	}
	noTok, _ := newClient(t, e.gate.URL, "")
	s := New(noTok, nil)
	defer s.Close()
	_, err := s.Resolve(context.Background(), "secret/drift/plain#f")
	wantFields(t, "no token", err, secrets.CodePermission, "resolve", "secret/drift/plain#f")
	e.gate.mode.Store(gateDown)
	wantFields(t, "Ping with Vault down", e.store.Ping(context.Background()), secrets.CodeUnavailable, "ping", "")
	_, err = e.store.Resolve(context.Background(), "kv1/drift/plain#value")
	wantFields(t, "a read with Vault down", err, secrets.CodeUnavailable, "resolve", "kv1/drift/plain#value")
}

// Lazy opening is the core's: a failed open (Vault down at start) is tried
// again by the next call; callers that arrive while an open runs share it
// but each waits on its own ctx, so a short deadline is not held hostage by
// another caller's slow login.
func TestDriftLazyOpen(t *testing.T) {
	e := newDriftEnv(t)
	e.put("secret/drift/k", map[string]any{"api_key": "sk-drift-open"})
	ctx := context.Background()

	e.gate.mode.Store(gateDown)
	_, err := e.store.Resolve(ctx, "secret/drift/k#api_key")
	wantFields(t, "an open with Vault down", err, secrets.CodeUnavailable, "resolve", "secret/drift/k#api_key")
	e.gate.mode.Store(gateUp)
	if s, err := e.store.Resolve(ctx, "secret/drift/k#api_key"); err != nil || s.Reveal() != "sk-drift-open" {
		t.Fatalf("the open was not tried again once Vault was up: %v", err)
	}

	// A fresh Store whose open hangs in the token check.
	client, _ := newClient(t, e.gate.URL, e.srv.RootToken)
	log, _ := quietLogger()
	s := New(client, &Options{Logger: log})
	defer s.Close()
	e.gate.mode.Store(gateHang)
	first, cancelFirst := context.WithCancel(ctx)
	defer cancelFirst()
	firstDone := make(chan error, 1)
	go func() { _, err := s.Resolve(first, "secret/drift/k"); firstDone <- err }()
	<-e.gate.hung
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	secondDone := make(chan error, 1)
	go func() { _, err := s.Resolve(short, "secret/drift/k#api_key"); secondDone <- err }()
	select {
	case err := <-secondDone:
		got := wantFields(t, "a waiter past its deadline", err, secrets.CodeUnavailable, "resolve", "secret/drift/k#api_key")
		if !errors.Is(got, context.DeadlineExceeded) {
			t.Fatalf("a waiter past its deadline: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a caller with a 100ms deadline waited 20s on another caller's open")
	}
	select {
	case err := <-firstDone:
		t.Fatalf("the waiter returned only after the opener's open ended (%v): it waited on another caller's open, not on its own ctx", err)
	default:
	}
	cancelFirst()
	if err := <-firstDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the opener, canceled: %v", err)
	}

	// Concurrent first calls share one open: one token check.
	e.gate.mode.Store(gateUp)
	before := e.gate.count("lookup-self")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Resolve(ctx, "secret/drift/k#api_key"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.gate.count("lookup-self") - before; n != 1 {
		t.Errorf("8 concurrent first resolves made %d token checks, want 1", n)
	}
}

// ResolveMany has the core's shape: one Result per ref, in order; refs that
// differ only by #field cost one read; invalid refs fail alone; a failure of
// the whole call (the open) is on every Result and also returned.
func TestDriftResolveMany(t *testing.T) {
	e := newDriftEnv(t)
	doc := map[string]any{"api_key": "sk-many", "org": "org-1"}
	e.put("secret/drift/doc", doc)
	refs := []string{"secret/drift/doc#api_key", "../x", "secret/drift/doc#org", "secret/drift/doc", "secret/drift/missing"}
	out, err := secrets.ResolveMany(context.Background(), e.store, refs)
	if err != nil {
		t.Fatalf("ResolveMany: %v", err)
	}
	whole, _ := json.Marshal(doc)
	want := []string{"sk-many", "", "org-1", string(whole), ""}
	for i, res := range out {
		if res.Ref != refs[i] {
			t.Fatalf("result %d is for %q, want %q", i, res.Ref, refs[i])
		}
		if want[i] != "" && (res.Err != nil || res.Secret.Reveal() != want[i]) {
			t.Errorf("result %q: %v", refs[i], res.Err)
		}
	}
	wantFields(t, "an invalid ref in a batch", out[1].Err, secrets.CodeInvalidRef, "resolve", "../x")
	wantFields(t, "a missing secret in a batch", out[4].Err, secrets.CodeNotFound, "resolve", "secret/drift/missing")
	if n := e.gate.count("secret/data/drift/doc"); n != 1 {
		t.Errorf("three refs to one secret cost %d reads, want 1", n)
	}

	client, _ := newClient(t, e.gate.URL, e.srv.RootToken)
	s := New(client, nil)
	defer s.Close()
	e.gate.mode.Store(gateDown)
	refs = []string{"secret/drift/doc#api_key", "secret/drift/x"}
	out, err = secrets.ResolveMany(context.Background(), s, refs)
	testenv.WantBatchFailure(t, "a failed open", out, err, refs, secrets.CodeUnavailable, Backend)
}

// The closed state is the core's: after Close every call fails with
// ErrUnavailable, Ping included, and reaches no Vault; Close twice is safe.
func TestDriftClosed(t *testing.T) {
	e := newDriftEnv(t)
	e.put("secret/drift/k", map[string]any{"api_key": "sk-drift-close"})
	if _, err := e.store.Resolve(context.Background(), "secret/drift/k"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	before := e.gate.count("")
	_, err := e.store.Resolve(context.Background(), "secret/drift/k#api_key")
	wantFields(t, "Resolve after Close", err, secrets.CodeUnavailable, "resolve", "secret/drift/k#api_key")
	wantFields(t, "Ping after Close", e.store.Ping(context.Background()), secrets.CodeUnavailable, "ping", "")
	out, _ := secrets.ResolveMany(context.Background(), e.store, []string{"secret/drift/k"})
	wantFields(t, "ResolveMany after Close", out[0].Err, secrets.CodeUnavailable, "resolve", "secret/drift/k")
	if err := e.store.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if after := e.gate.count(""); after != before {
		t.Errorf("calls after Close made %d requests to Vault", after-before)
	}
}
