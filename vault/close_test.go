package vault

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/api"
	"go.uber.org/goleak"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/testenv"
)

// TestCloseReleasesConnections: a Store that made its client from the
// environment releases that client's keep-alive connections at Close, with
// token auth and with AppRole (login and renewal); their read and write
// loops would otherwise outlive it, one set per Store a host opens and
// closes. Checked against the real Vault dev server while it still runs
// (stopping the server would close the connections and hide the leak).
func TestCloseReleasesConnections(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	ctx := context.Background()
	var names []string
	for i := range 4 {
		names = append(names, fmt.Sprintf("bots/close-%d", i))
		if _, err := root.KVv2("secret").Put(ctx, names[i], map[string]any{"api_key": fmt.Sprintf("sk-close-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	appRole(t, root, "1h", "2h")
	t.Setenv("VAULT_ADDR", srv.Addr)
	t.Setenv("VAULT_MAX_RETRIES", "0")
	log, _ := quietLogger()

	for _, tc := range []struct{ name, url, token string }{
		{"token", "vault://?mount=secret", srv.RootToken},
		{"approle", "vault://?mount=secret&auth=approle", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("VAULT_TOKEN", tc.token)
			opt := goleak.IgnoreCurrent()
			for round := range 2 {
				s := openFromEnvKeepToken(t, tc.url)
				s.opts.Logger = log
				// Concurrent resolves open several connections.
				refs, want := make([]string, len(names)), make([]string, len(names))
				for i, name := range names {
					refs[i], want[i] = name+"#api_key", fmt.Sprintf("sk-close-%d", i)
				}
				testenv.ResolveConcurrently(t, s, refs, want)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if err := goleak.Find(opt); err != nil {
					t.Fatalf("round %d: goroutines left after Close:\n%v", round, err)
				}
			}
		})
	}
}

// openFromEnvKeepToken opens a Store as a service does (secrets.Open and
// Vault's environment), keeping the VAULT_TOKEN the test set.
func openFromEnvKeepToken(t *testing.T, rawURL string) *Store {
	t.Helper()
	r, err := secrets.Open(context.Background(), rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return r.(*Store)
}

// idleCounter is a transport that counts calls to CloseIdleConnections.
type idleCounter struct {
	http.RoundTripper
	closes atomic.Int32
}

func (c *idleCounter) CloseIdleConnections() { c.closes.Add(1) }

// TestCloseLeavesHostClientAlone: a Store given a client never closes that
// client's connections: the host may share it.
func TestCloseLeavesHostClientAlone(t *testing.T) {
	srv := testenv.Vault(t)
	cfg := api.DefaultConfig()
	cfg.Address = srv.Addr
	tr := &idleCounter{RoundTripper: cfg.HttpClient.Transport}
	cfg.HttpClient.Transport = tr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(srv.RootToken)
	ctx := context.Background()
	if _, err := c.KVv2("secret").Put(ctx, "bots/host", map[string]any{"api_key": "sk-host"}); err != nil {
		t.Fatal(err)
	}
	log, _ := quietLogger()
	s := New(c, &Options{Mount: "secret", Logger: log})
	if sec, err := s.Resolve(ctx, "bots/host#api_key"); err != nil || sec.Reveal() != "sk-host" {
		t.Fatalf("Resolve: (%d bytes, %v)", sec.Len(), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := tr.closes.Load(); n != 0 {
		t.Errorf("Close closed the host's idle connections (%d calls)", n)
	}
}
