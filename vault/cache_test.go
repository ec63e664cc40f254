package vault

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/internal/testenv"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestStaleThroughCache: with Vault stopped, a cache in front serves the
// last value past its TTL, because the Store reports ErrUnavailable (not
// ErrNotFound, which would be cached as a miss).
func TestStaleThroughCache(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	ctx := context.Background()
	if _, err := root.KVv2("secret").Put(ctx, "bots/anthropic", map[string]any{"api_key": "sk-ant-test-stale"}); err != nil {
		t.Fatal(err)
	}
	client, cnt := newClient(t, srv.Addr, srv.RootToken)
	log, _ := quietLogger()
	store := New(client, &Options{Mount: "secret", Logger: log})
	defer store.Close()
	clk := &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	c := cache.New(store, &cache.Options{TTL: time.Minute, Jitter: -1, RefreshAhead: -1, StaleGrace: time.Hour, Now: clk.Now})
	defer c.Close()

	ref := "bots/anthropic#api_key"
	if s, err := c.Resolve(ctx, ref); err != nil || s.Reveal() != "sk-ant-test-stale" {
		t.Fatalf("first resolve: %v", err)
	}
	before := cnt.n.Load()
	if _, err := c.Resolve(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if n := cnt.n.Load() - before; n != 0 {
		t.Errorf("a cache hit made %d calls to Vault, want 0", n)
	}

	srv.Stop(t)
	clk.Add(2 * time.Minute)
	if _, err := store.Resolve(ctx, ref); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("the Store itself with Vault stopped: got %v, want ErrUnavailable", err)
	}
	s, err := c.Resolve(ctx, ref)
	if err != nil || s.Reveal() != "sk-ant-test-stale" {
		t.Fatalf("through the cache with Vault stopped: %v, want the stale value", err)
	}
	if !s.Source.Stale || !s.Source.Cached {
		t.Errorf("the answer was not marked stale: %+v", s.Source)
	}
	if st := c.Stats(); st.StaleServed == 0 {
		t.Errorf("Stats.StaleServed = 0 after serving stale: %+v", st)
	}
}

// BenchmarkResolve measures a KV v2 resolve against a real dev server:
// straight to Vault, and through the cache (a hit), with the calls each
// makes to Vault.
func BenchmarkResolve(b *testing.B) {
	srv := testenv.Vault(b)
	root, _ := newClient(b, srv.Addr, srv.RootToken)
	ctx := context.Background()
	if _, err := root.KVv2("secret").Put(ctx, "bots/anthropic", map[string]any{"api_key": "sk-ant-bench", "org": "o"}); err != nil {
		b.Fatal(err)
	}
	client, cnt := newClient(b, srv.Addr, srv.RootToken)
	log, _ := quietLogger()
	store := New(client, &Options{Mount: "secret", Logger: log})
	defer store.Close()
	ref := "bots/anthropic#api_key"
	if _, err := store.Resolve(ctx, ref); err != nil { // token check and mount detection
		b.Fatal(err)
	}
	run := func(b *testing.B, r secrets.KeyResolver) {
		if _, err := r.Resolve(ctx, ref); err != nil {
			b.Fatal(err)
		}
		before := cnt.n.Load()
		b.ResetTimer()
		for b.Loop() {
			if _, err := r.Resolve(ctx, ref); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cnt.n.Load()-before)/float64(b.N), "calls/op")
	}
	b.Run("direct", func(b *testing.B) { run(b, store) })
	b.Run("cached", func(b *testing.B) {
		c := cache.New(store, &cache.Options{TTL: time.Hour})
		defer c.Close()
		run(b, c)
	})
}
