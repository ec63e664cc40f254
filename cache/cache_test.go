package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/secretstest"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// cache is closed, and Close must stop its clock, refreshes and fetches.
// The benchmarks' expirable.LRU baseline starts a goroutine it never stops.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/hashicorp/golang-lru/v2/expirable.NewLRU[...].func1"))
}

func token() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// fakeClock is the tests' clock: time moves only when the test says.
type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := new(fakeClock)
	c.ns.Store(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// newCache returns a cache over fake with a fake clock, closed at cleanup.
func newCache(t *testing.T, next secrets.KeyResolver, clk *fakeClock, o cache.Options) *cache.Cache {
	t.Helper()
	o.Now = clk.Now
	c := cache.New(next, &o)
	t.Cleanup(func() { c.Close() })
	return c
}

func mustResolve(t *testing.T, r secrets.KeyResolver, ref, want string) {
	t.Helper()
	s, err := r.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", ref, err)
	}
	if s.Reveal() != want {
		t.Fatalf("Resolve(%q) returned a different value (%d bytes, want %d)", ref, s.Len(), len(want))
	}
}

func wantCode(t *testing.T, err, code error) {
	t.Helper()
	if !errors.Is(err, code) {
		t.Fatalf("got %v, want errors.Is(err, %v)", err, code)
	}
	var e *secrets.Error
	if !errors.As(err, &e) {
		t.Fatalf("%T is not a *secrets.Error: %v", err, err)
	}
}

func unavailable(ref string) error {
	return &secrets.Error{Op: "resolve", Backend: "fake", Ref: ref, Code: secrets.CodeUnavailable, Reason: "the fake is down"}
}

func TestConformance(t *testing.T) {
	secretstest.RunConformance(t, secretstest.Harness{
		New: func(t *testing.T) secretstest.Subject {
			f := new(secretstest.Fake)
			f.SetClock(time.Now)
			return secretstest.Subject{Resolver: cacheFor(t, f), Put: func(t *testing.T, name, value string, expiresAt time.Time) (string, error) {
				s := secrets.NewSecret(value)
				s.ExpiresAt = expiresAt
				return f.SetSecret(name, s), nil
			}}
		},
		Backend: "fake", ContextBackend: cache.Backend,
		MissingRef: "no-such-secret", InvalidRefs: []string{"name#", "name?x=1", "%zz"},
		Documents: true, Expiry: true,
	})
}

func cacheFor(t *testing.T, next secrets.KeyResolver) *cache.Cache {
	c := cache.New(next, nil) // the real clock and its ticker
	t.Cleanup(func() { c.Close() })
	return c
}

// gated is a backend whose calls wait until the gate opens (or their context ends).
type gated struct {
	*secretstest.Fake
	gate chan struct{}
}

func newGated() *gated { return &gated{Fake: new(secretstest.Fake), gate: make(chan struct{})} }

func (g *gated) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return secrets.Secret{}, ctx.Err()
	}
	return g.Fake.Resolve(ctx, ref)
}

// waitFor polls cond while goroutines get going; it fails after 10 s of real time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func TestThousandCallersOneBackendCall(t *testing.T) {
	g := newGated()
	val := "sk-ant-test-" + token()
	ref := g.Set("bot", val)
	c := newCache(t, g, newClock(), cache.Options{})

	// The first caller starts the fetch, then cancels: only it fails.
	first, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := c.Resolve(first, ref)
		firstErr <- err
	}()
	waitFor(t, "the first miss", func() bool { return c.Stats().Misses == 1 })

	const n = 1000
	var wg sync.WaitGroup
	var ok, bad atomic.Int64
	for range n - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.Resolve(context.Background(), ref)
			if err == nil && s.Reveal() == val {
				ok.Add(1)
			} else {
				bad.Add(1)
			}
		}()
	}
	waitFor(t, "1000 waiting callers", func() bool { return c.Waiters(ref) == n })
	cancelFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("the canceled caller got %v, want context.Canceled", err)
	}
	close(g.gate)
	wg.Wait()
	if ok.Load() != n-1 || bad.Load() != 0 {
		t.Fatalf("%d callers got the value and %d did not; want %d and 0", ok.Load(), bad.Load(), n-1)
	}
	if calls := g.Calls(ref); calls != 1 {
		t.Fatalf("the backend was called %d times for %d concurrent misses, want 1", calls, n)
	}
	st := c.Stats()
	if st.BackendCalls != 1 || st.Misses != n || st.Hits != 0 {
		t.Fatalf("Stats = %+v, want 1 backend call, %d misses, 0 hits", st, n)
	}
	mustResolve(t, c, ref, val)
	if st := c.Stats(); st.Hits != 1 || g.Calls(ref) != 1 {
		t.Fatalf("after the fetch: Stats = %+v, backend calls %d; want a hit and no new call", st, g.Calls(ref))
	}
}

func TestOutageServesStaleWithinGrace(t *testing.T) {
	f := new(secretstest.Fake)
	v1 := "sk-ant-test-v1-" + token()
	ref := f.Set("bot", v1)
	clk := newClock()
	const ttl, grace = time.Minute, 5 * time.Minute
	c := newCache(t, f, clk, cache.Options{TTL: ttl, Jitter: -1, StaleGrace: grace,
		MinBackoff: time.Second, MaxBackoff: 30 * time.Second})
	mustResolve(t, c, ref, v1)
	start := clk.Now()

	f.FailAll(unavailable(ref))
	var served, failed, resolves int
	for clk.Now().Sub(start) < 10*time.Minute {
		clk.Advance(5 * time.Second)
		resolves++
		s, err := c.Resolve(context.Background(), ref)
		c.Quiesce()
		inGrace := clk.Now().Before(start.Add(ttl + grace))
		switch {
		case inGrace && err != nil:
			t.Fatalf("at +%v (inside the grace window) Resolve failed: %v", clk.Now().Sub(start), err)
		case inGrace && s.Reveal() != v1:
			t.Fatalf("at +%v Resolve returned another value", clk.Now().Sub(start))
		case inGrace:
			served++
		case err == nil:
			t.Fatalf("at +%v (past the grace window) Resolve served a stale value", clk.Now().Sub(start))
		default:
			wantCode(t, err, secrets.ErrUnavailable)
			failed++
		}
	}
	if served == 0 || failed == 0 {
		t.Fatalf("served %d stale and failed %d: the test did not cross the grace window", served, failed)
	}
	st := c.Stats()
	if st.StaleServed == 0 {
		t.Fatalf("Stats = %+v: no stale value counted", st)
	}
	// Backoff: inside the grace window the backend is retried far less often
	// than it is asked (every resolve past the window is a call).
	if calls := f.Calls(ref); calls >= resolves {
		t.Fatalf("the down backend was called %d times for %d resolves; backoff should space the retries", calls, resolves)
	}

	// Back up: the next resolve fetches the fresh value.
	v2 := "sk-ant-test-v2-" + token()
	f.Set("bot", v2)
	f.FailAll(nil)
	clk.Advance(time.Second)
	mustResolve(t, c, ref, v2)
}

func TestOutageRecoveryWithinOneRefresh(t *testing.T) {
	f := new(secretstest.Fake)
	v1 := "sk-ant-test-v1-" + token()
	ref := f.Set("bot", v1)
	clk := newClock()
	const maxBackoff = 20 * time.Second
	c := newCache(t, f, clk, cache.Options{TTL: time.Minute, Jitter: -1, StaleGrace: 10 * time.Minute, MaxBackoff: maxBackoff})
	mustResolve(t, c, ref, v1)

	f.FailAll(unavailable(ref))
	for range 40 { // 4 minutes of outage, in 6 s steps
		clk.Advance(6 * time.Second)
		mustResolve(t, c, ref, v1)
		c.Quiesce()
	}
	v2 := "sk-ant-test-v2-" + token()
	f.Set("bot", v2)
	f.FailAll(nil)
	refreshes := c.Stats().Refreshes
	clk.Advance(maxBackoff) // the next retry is due by now, however many failures came before
	mustResolve(t, c, ref, v1)
	c.Quiesce()
	if got := c.Stats().Refreshes - refreshes; got != 1 {
		t.Fatalf("%d refreshes after the backend came back, want 1", got)
	}
	mustResolve(t, c, ref, v2)
}

func TestErrorsAreNotMaskedByStaleValues(t *testing.T) {
	for _, code := range []secrets.Code{secrets.CodeNotFound, secrets.CodePermission, secrets.CodeExpired, secrets.CodeUndecryptable} {
		t.Run(code.Name(), func(t *testing.T) {
			f := new(secretstest.Fake)
			v := "sk-ant-test-" + token()
			ref := f.Set("bot", v)
			clk := newClock()
			c := newCache(t, f, clk, cache.Options{TTL: time.Minute, Jitter: -1, StaleGrace: time.Hour, NegativeTTL: -1})
			mustResolve(t, c, ref, v)
			f.Fail("bot", &secrets.Error{Op: "resolve", Backend: "fake", Ref: ref, Code: code})
			clk.Advance(2 * time.Minute)
			_, err := c.Resolve(context.Background(), ref)
			wantCode(t, err, code)
			// And it stays failed: the value was dropped, not kept for later.
			_, err = c.Resolve(context.Background(), ref)
			wantCode(t, err, code)
			if c.Stats().StaleServed != 0 {
				t.Fatalf("a stale value was served over %v", code)
			}
		})
	}
}

// A refresh-ahead that learns the secret is gone or denied drops the value at
// once rather than serving it until the TTL ends.
func TestRefreshFailureDropsValue(t *testing.T) {
	f := new(secretstest.Fake)
	v := "sk-ant-test-" + token()
	ref := f.Set("bot", v)
	clk := newClock()
	c := newCache(t, f, clk, cache.Options{TTL: time.Minute, Jitter: -1, RefreshAhead: 0.5})
	mustResolve(t, c, ref, v)
	f.Fail("bot", &secrets.Error{Op: "resolve", Backend: "fake", Ref: ref, Code: secrets.CodePermission})
	clk.Advance(40 * time.Second)
	if _, err := c.Resolve(context.Background(), ref); err != nil {
		t.Fatalf("the hit that starts the refresh failed: %v", err)
	}
	c.Quiesce()
	_, err := c.Resolve(context.Background(), ref)
	wantCode(t, err, secrets.ErrPermission)
}

func TestNeverServedPastExpiresAt(t *testing.T) {
	for _, down := range []bool{false, true} {
		t.Run(fmt.Sprintf("backend-down=%v", down), func(t *testing.T) {
			f := new(secretstest.Fake)
			clk := newClock()
			expires := clk.Now().Add(30 * time.Second)
			s := secrets.NewSecret("sk-ant-test-" + token())
			s.ExpiresAt = expires
			ref := f.SetSecret("bot", s)
			c := newCache(t, f, clk, cache.Options{TTL: 5 * time.Minute, StaleGrace: time.Hour})
			mustResolve(t, c, ref, s.Reveal())
			if down {
				f.FailAll(unavailable(ref))
			}
			for range 60 {
				clk.Advance(time.Second)
				got, err := c.Resolve(context.Background(), ref)
				c.Quiesce()
				if !clk.Now().Before(expires) {
					if err == nil {
						t.Fatalf("at %v, %v after ExpiresAt, the cache served a value (ExpiresAt %v)",
							clk.Now().Format(time.TimeOnly), clk.Now().Sub(expires), got.ExpiresAt.Format(time.TimeOnly))
					}
					if down {
						wantCode(t, err, secrets.ErrUnavailable)
					} else {
						wantCode(t, err, secrets.ErrExpired)
					}
				} else if err != nil {
					t.Fatalf("at %v before ExpiresAt: %v", expires.Sub(clk.Now()), err)
				}
			}
		})
	}
}

func TestNegativeCaching(t *testing.T) {
	f := new(secretstest.Fake)
	clk := newClock()
	c := newCache(t, f, clk, cache.Options{NegativeTTL: 10 * time.Second})
	for range 3 {
		_, err := c.Resolve(context.Background(), "missing")
		wantCode(t, err, secrets.ErrNotFound)
	}
	if calls, st := f.Calls("missing"), c.Stats(); calls != 1 || st.NegativeHits != 2 || st.Misses != 1 {
		t.Fatalf("backend calls %d, Stats %+v; want 1 call, 1 miss, 2 negative hits", calls, st)
	}
	// Created meanwhile: still not found until the negative TTL ends.
	v := "sk-ant-test-" + token()
	f.Set("missing", v)
	clk.Advance(9 * time.Second)
	_, err := c.Resolve(context.Background(), "missing")
	wantCode(t, err, secrets.ErrNotFound)
	clk.Advance(time.Second)
	mustResolve(t, c, "missing", v)

	// NegativeTTL < 0: every resolve asks the backend.
	c2 := newCache(t, f, clk, cache.Options{NegativeTTL: -1})
	for range 3 {
		c2.Resolve(context.Background(), "other")
	}
	if calls := f.Calls("other"); calls != 3 {
		t.Fatalf("negative caching off: %d backend calls for 3 resolves, want 3", calls)
	}
}

func TestRefreshAhead(t *testing.T) {
	g := newGated()
	close(g.gate)
	v1 := "sk-ant-test-v1-" + token()
	ref := g.Set("bot", v1)
	clk := newClock()
	c := newCache(t, g, clk, cache.Options{TTL: time.Minute, Jitter: -1, RefreshAhead: 0.5})
	mustResolve(t, c, ref, v1)

	clk.Advance(29 * time.Second)
	mustResolve(t, c, ref, v1)
	if st := c.Stats(); st.Refreshes != 0 || st.BackendCalls != 1 {
		t.Fatalf("before the refresh point: Stats = %+v, want no refresh", st)
	}

	// Past half the TTL: hits answer at once with v1 while one refresh runs,
	// held here by a closed gate so that every hit sees it in flight.
	g.gate = make(chan struct{})
	v2 := "sk-ant-test-v2-" + token()
	g.Set("bot", v2)
	clk.Advance(2 * time.Second)
	for range 100 {
		mustResolve(t, c, ref, v1)
	}
	close(g.gate)
	c.Quiesce()
	st := c.Stats()
	if st.Refreshes != 1 || st.BackendCalls != 2 || st.Misses != 1 {
		t.Fatalf("Stats = %+v, want 1 refresh, 2 backend calls and the first miss only", st)
	}
	mustResolve(t, c, ref, v2)

	// A hot ref never waits: five more TTLs of steady hits, no new miss.
	for range 5 * 60 {
		clk.Advance(time.Second)
		mustResolve(t, c, ref, v2)
		c.Quiesce()
	}
	if st := c.Stats(); st.Misses != 1 {
		t.Fatalf("a hot ref waited on the backend: Stats = %+v", st)
	}
}

// The sweep refreshes an entry that was hit since it was fetched even when no
// hit falls in its refresh window, and leaves alone one that was not.
func TestRefreshSweep(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprintf("LazyRefresh=%v", lazy), func(t *testing.T) {
			f := new(secretstest.Fake)
			used := f.Set("used", "sk-used-v1")
			unused := f.Set("unused", "sk-unused")
			hot := f.Set("hot", "sk-hot")
			clk := newClock()
			c := newCache(t, f, clk, cache.Options{TTL: time.Minute, Jitter: -1, RefreshAhead: 0.5, LazyRefresh: lazy})
			for _, ref := range []string{used, unused, hot} {
				c.Resolve(context.Background(), ref)
			}
			clk.Advance(time.Second)
			mustResolve(t, c, used, "sk-used-v1") // hit once: worth keeping warm
			f.Set("used", "sk-used-v2")
			// Only the hot ref is asked for in the refresh window; its
			// resolves drive the sweep.
			for range 12 {
				clk.Advance(5 * time.Second)
				mustResolve(t, c, hot, "sk-hot")
				c.Quiesce()
			}
			misses := c.Stats().Misses
			mustResolve(t, c, unused, "sk-unused")
			if got := c.Stats().Misses - misses; got != 1 {
				t.Fatalf("the entry never hit after its fetch: %d misses, want 1 (it is left to expire)", got)
			}
			s, err := c.Resolve(context.Background(), used)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Stats().Misses - misses - 1
			switch {
			case !lazy && (got != 0 || s.Reveal() != "sk-used-v2"):
				t.Fatalf("the used entry: %d misses, fresh value %v; want a hit on the refreshed value", got, s.Reveal() == "sk-used-v2")
			case lazy && got != 1:
				t.Fatalf("LazyRefresh: %d misses for the used entry, want 1", got)
			}
		})
	}
}

// A bucket of many due entries is refreshed at most 16 at a time, each
// finished refresh starting the next: no burst against the backend.
func TestRefreshSweepIsBounded(t *testing.T) {
	g := newGated()
	close(g.gate)
	clk := newClock()
	c := newCache(t, g, clk, cache.Options{TTL: time.Minute, Jitter: -1, RefreshAhead: 0.5})
	const n = 100
	refs := make([]string, n)
	for i := range refs {
		refs[i] = g.Set(fmt.Sprint("bot", i), "sk-v1")
		c.Resolve(context.Background(), refs[i])
	}
	clk.Advance(time.Second)
	for _, ref := range refs {
		mustResolve(t, c, ref, "sk-v1")
	}
	for i := range refs {
		g.Set(fmt.Sprint("bot", i), "sk-v2")
	}
	g.gate = make(chan struct{})
	before := c.Stats().BackendCalls
	clk.Advance(31 * time.Second)
	mustResolve(t, c, refs[0], "sk-v1") // sweeps: all 100 are due
	if got := c.Stats().BackendCalls - before; got != 16 {
		t.Fatalf("the sweep started %d refreshes at once, want 16", got)
	}
	close(g.gate)
	c.Quiesce()
	if st := c.Stats(); st.Refreshes != n || st.BackendCalls-before != n {
		t.Fatalf("Stats = %+v: want all %d entries refreshed once", st, n)
	}
	for _, ref := range refs {
		mustResolve(t, c, ref, "sk-v2")
	}
}

func TestJitterSpreadsExpiry(t *testing.T) {
	f := new(secretstest.Fake)
	clk := newClock()
	c := newCache(t, f, clk, cache.Options{TTL: 10 * time.Minute, Jitter: 5 * time.Minute, RefreshAhead: -1})
	const n = 50
	for i := range n {
		ref := f.Set(fmt.Sprint("bot", i), "sk-"+token())
		c.Resolve(context.Background(), ref)
	}
	check := func(at time.Duration, lo, hi int) int {
		t.Helper()
		clk.ns.Store(newClock().ns.Load() + int64(at))
		before := f.TotalCalls()
		for i := range n {
			c.Resolve(context.Background(), fmt.Sprint("bot", i))
		}
		got := f.TotalCalls() - before
		if got < lo || got > hi {
			t.Fatalf("at +%v: %d of %d entries expired, want %d to %d", at, got, n, lo, hi)
		}
		return got
	}
	check(5*time.Minute-time.Nanosecond, 0, 0) // TTL - Jitter: none expired yet
	check(7*time.Minute+30*time.Second, 1, n-1)
}

// batchFake gives secretstest.Fake a batch ability, 20 refs a call like AWS
// BatchGetSecretValue, and counts its batch calls.
type batchFake struct {
	*secretstest.Fake
	batches atomic.Int64
}

func (b *batchFake) ResolveMany(ctx context.Context, refs []string) ([]secrets.Result, error) {
	out := make([]secrets.Result, 0, len(refs))
	for i := 0; i < len(refs); i += 20 {
		b.batches.Add(1)
		for _, ref := range refs[i:min(i+20, len(refs))] {
			s, err := b.Fake.Resolve(ctx, ref)
			out = append(out, secrets.Result{Ref: ref, Secret: s, Err: err})
		}
	}
	return out, nil
}

func TestWarm(t *testing.T) {
	const n = 100
	setup := func(f *secretstest.Fake) []string {
		refs := make([]string, n)
		for i := range refs {
			refs[i] = f.Set(fmt.Sprint("bot", i), fmt.Sprint("sk-ant-test-", i))
		}
		return append(refs, "missing")
	}
	t.Run("batch", func(t *testing.T) {
		b := &batchFake{Fake: new(secretstest.Fake)}
		refs := setup(b.Fake)
		// Behind another decorator: the decorator's own ResolveMany passes the batch on.
		c := newCache(t, secrets.EnforceExpiry(b, nil), newClock(), cache.Options{})
		err := c.Warm(context.Background(), refs)
		wantCode(t, err, secrets.ErrNotFound) // "missing", reported, not fatal
		if got, want := b.batches.Load(), int64((n+1+19)/20); got != want {
			t.Fatalf("%d batch calls for %d refs, want %d", got, n+1, want)
		}
		if st := c.Stats(); st.BackendCalls != 1 {
			t.Fatalf("Stats = %+v, want the one ResolveMany counted", st)
		}
		before := b.TotalCalls()
		for i := range n {
			mustResolve(t, c, refs[i], fmt.Sprint("sk-ant-test-", i))
		}
		_, err = c.Resolve(context.Background(), "missing")
		wantCode(t, err, secrets.ErrNotFound)
		if b.TotalCalls() != before {
			t.Fatal("resolves after Warm called the backend")
		}
		// Warming again skips what is cached.
		if err := c.Warm(context.Background(), refs[:n]); err != nil {
			t.Fatal(err)
		}
		if b.batches.Load() != int64((n+1+19)/20) {
			t.Fatal("a second Warm of cached refs called the backend")
		}
	})
	t.Run("one-by-one", func(t *testing.T) {
		f := new(secretstest.Fake)
		refs := setup(f)
		c := newCache(t, f, newClock(), cache.Options{})
		err := c.Warm(context.Background(), refs)
		wantCode(t, err, secrets.ErrNotFound)
		if st := c.Stats(); st.BackendCalls != n+1 {
			t.Fatalf("Stats = %+v, want %d backend calls without a batch ability", st, n+1)
		}
		before := f.TotalCalls()
		for i := range n {
			mustResolve(t, c, refs[i], fmt.Sprint("sk-ant-test-", i))
		}
		if f.TotalCalls() != before {
			t.Fatal("resolves after Warm called the backend")
		}
	})
}

func TestEvictionBound(t *testing.T) {
	f := new(secretstest.Fake)
	clk := newClock()
	const size = 10
	c := newCache(t, f, clk, cache.Options{Size: size})
	for i := range 100 {
		c.Resolve(context.Background(), f.Set(fmt.Sprint("bot", i), "sk-"+token()))
		if c.Len() > size {
			t.Fatalf("after %d refs the cache holds %d, above its size %d", i+1, c.Len(), size)
		}
	}
	if st := c.Stats(); st.Evictions != 100-size {
		t.Fatalf("Stats = %+v, want %d evictions", st, 100-size)
	}
	// Least recently used goes first: touch bot90, then add one more.
	clk.Advance(10 * time.Millisecond) // recency is updated at most once a millisecond per ref
	c.Resolve(context.Background(), "bot90")
	c.Resolve(context.Background(), f.Set("bot100", "sk-"+token()))
	before := f.TotalCalls()
	c.Resolve(context.Background(), "bot90")
	if f.TotalCalls() != before {
		t.Fatal("the recently used bot90 was evicted")
	}
	c.Resolve(context.Background(), "bot91")
	if f.TotalCalls() != before+1 {
		t.Fatal("the least recently used bot91 was not evicted")
	}
}

func TestSizeIsBounded(t *testing.T) {
	f := new(secretstest.Fake)
	for _, size := range []int{0, -1} {
		c := newCache(t, f, newClock(), cache.Options{Size: size})
		for i := range cache.DefaultSize + 10 {
			c.Resolve(context.Background(), fmt.Sprint("missing", i))
		}
		if c.Len() != cache.DefaultSize {
			t.Fatalf("Size %d: the cache holds %d, want the default bound %d", size, c.Len(), cache.DefaultSize)
		}
	}
}

func TestInvalidateAndPurge(t *testing.T) {
	g := newGated()
	close(g.gate)
	v1 := "sk-ant-test-v1-" + token()
	ref := g.Set("bot", v1)
	other := g.Set("other", "sk-"+token())
	c := newCache(t, g, newClock(), cache.Options{})
	mustResolve(t, c, ref, v1)
	c.Resolve(context.Background(), other)

	v2 := "sk-ant-test-v2-" + token()
	g.Set("bot", v2)
	mustResolve(t, c, ref, v1) // cached
	c.Invalidate(ref)
	mustResolve(t, c, ref, v2)

	// Invalidate while a fetch is in flight: it returns at once, the
	// waiting caller still gets its answer, and the answer is not stored.
	c.Purge()
	if c.Len() != 0 {
		t.Fatalf("after Purge the cache holds %d", c.Len())
	}
	g.gate = make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Resolve(context.Background(), ref)
		done <- err
	}()
	waitFor(t, "the fetch", func() bool { return c.Waiters(ref) == 1 })
	c.Invalidate(ref) // must not wait for the gated backend
	c.Purge()
	close(g.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the invalidated fetch to finish", func() bool { return c.Len() == 0 && g.Calls(ref) == 3 })
	calls := g.Calls(ref)
	mustResolve(t, c, ref, v2)
	if g.Calls(ref) != calls+1 {
		t.Fatal("the result of a fetch invalidated in flight was stored")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	g := newGated() // never opened: the fetch hangs until Close cancels it
	ref := g.Set("bot", "sk-"+token())
	c := cache.New(g, nil) // real clock: Close must stop its ticker too
	hot := new(secretstest.Fake)
	c2 := cache.New(hot, nil)
	mustResolve(t, c2, hot.Set("x", "sk-x"), "sk-x")

	res := make(chan error, 1)
	go func() {
		_, err := c.Resolve(context.Background(), ref)
		res <- err
	}()
	waitFor(t, "the fetch", func() bool { return c.Stats().BackendCalls == 1 })
	c.Close()
	c2.Close()
	err := <-res
	wantCode(t, err, secrets.ErrUnavailable)
	_, err = c2.Resolve(context.Background(), "x")
	wantCode(t, err, secrets.ErrUnavailable)
	if err := c.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if err := c.Warm(context.Background(), []string{ref}); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("Warm after Close: %v", err)
	}
	goleak.VerifyNone(t)
}

// closer records whether it was closed.
type closer struct {
	*secretstest.Fake
	closed bool
}

func (c *closer) Close() error { c.closed = true; return nil }

func TestCloseLeavesNextOpen(t *testing.T) {
	b := &closer{Fake: new(secretstest.Fake)}
	c := cache.New(b, nil)
	c.Close()
	if b.closed {
		t.Fatal("Cache.Close closed the backend it does not own")
	}
	got, ok := secrets.Find[io.Closer](c.Unwrap())
	if !ok || got != io.Closer(b) {
		t.Fatal("secrets.Find does not reach the backend's Close through the cache")
	}
}

func TestAuditSeesCacheHits(t *testing.T) {
	f := new(secretstest.Fake)
	v := "sk-ant-test-" + token()
	ref := f.Set("bot", v)
	clk := newClock()
	c := newCache(t, f, clk, cache.Options{TTL: time.Minute, Jitter: -1, StaleGrace: time.Hour})
	var events []secrets.AuditEvent
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	audited := secrets.NewAudit(c, secrets.AuditFunc(func(ctx context.Context, ev secrets.AuditEvent) {
		events = append(events, ev)
		secrets.SlogAuditor(logger).Audit(ctx, ev)
	}), nil)

	mustResolve(t, audited, ref, v) // miss
	mustResolve(t, audited, ref, v) // hit
	f.FailAll(unavailable(ref))
	clk.Advance(2 * time.Minute)
	mustResolve(t, audited, ref, v) // stale, after waiting on the failed fetch
	mustResolve(t, audited, ref, v) // stale at once (backoff)

	want := []struct{ hit, stale bool }{{false, false}, {true, false}, {true, true}, {true, true}}
	if len(events) != len(want) {
		t.Fatalf("%d audit events, want %d", len(events), len(want))
	}
	for i, w := range want {
		ev := events[i]
		if ev.CacheHit != w.hit || ev.Stale != w.stale || ev.Backend != "fake" || ev.Outcome != "ok" {
			t.Errorf("event %d: CacheHit %v Stale %v Backend %q Outcome %q; want %v %v \"fake\" \"ok\"",
				i, ev.CacheHit, ev.Stale, ev.Backend, ev.Outcome, w.hit, w.stale)
		}
	}
	if strings.Contains(logs.String(), v) {
		t.Fatal("the audit log holds the secret value")
	}
}

// plaintextBackend answers as fernetstore does for a legacy plaintext row.
type plaintextBackend struct{ *secretstest.Fake }

func (p plaintextBackend) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	s, err := p.Fake.Resolve(ctx, ref)
	s.Source = secrets.Source{Backend: "fernet", Plaintext: true}
	return s, err
}

// The backend's provenance reaches every caller: the callers that shared the
// fetch (not cached), and later hits (cached).
func TestSourceOfTheFetchReachesEveryCaller(t *testing.T) {
	g := newGated()
	ref := g.Set("bot", "sk-"+token())
	// The fetch is shared by three callers.
	c := newCache(t, gatedResolver{g, plaintextBackend{g.Fake}}, newClock(), cache.Options{})
	srcs := make([]secrets.Source, 4)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _ := c.Resolve(context.Background(), ref)
			srcs[i] = s.Source
		}()
	}
	waitFor(t, "three callers on one fetch", func() bool { return c.Waiters(ref) == 3 })
	close(g.gate)
	wg.Wait()
	s, _ := c.Resolve(context.Background(), ref)
	srcs[3] = s.Source
	for i, src := range srcs {
		if src.Backend != "fernet" || !src.Plaintext || src.Cached != (i == 3) || src.Stale {
			t.Errorf("caller %d: Source %+v, want backend fernet, plaintext, cached %v", i, src, i == 3)
		}
	}
}

// gatedResolver waits on g's gate, then asks r.
type gatedResolver struct {
	g *gated
	r secrets.KeyResolver
}

func (gr gatedResolver) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	select {
	case <-gr.g.gate:
	case <-ctx.Done():
		return secrets.Secret{}, ctx.Err()
	}
	return gr.r.Resolve(ctx, ref)
}

func TestStats(t *testing.T) {
	f := new(secretstest.Fake)
	ref := f.Set("bot", "sk-"+token())
	clk := newClock()
	c := newCache(t, f, clk, cache.Options{TTL: time.Minute, Jitter: -1, RefreshAhead: 0.5, Size: 2})
	c.Resolve(context.Background(), ref)       // miss, call 1
	c.Resolve(context.Background(), ref)       // hit
	c.Resolve(context.Background(), "missing") // miss, call 2
	c.Resolve(context.Background(), "missing") // negative hit
	clk.Advance(31 * time.Second)
	c.Resolve(context.Background(), ref) // hit + refresh, call 3
	c.Quiesce()
	c.Resolve(context.Background(), f.Set("third", "sk-3")) // miss, call 4, evicts the LRU entry
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	c.Resolve(canceled, ref) // not counted: the context was done
	want := cache.Stats{Hits: 2, Misses: 3, BackendCalls: 4, Refreshes: 1, StaleServed: 0, NegativeHits: 1, Evictions: 1}
	got := c.Stats()
	// The refs have no scheme: the meter counts them all under "".
	wantBackends := map[string]cache.BackendStats{"": {Calls: map[string]uint64{"resolve": 4, "batch": 0, "version": 0}, Avoided: 3}}
	if fmt.Sprint(got.Backends) != fmt.Sprint(wantBackends) {
		t.Errorf("Stats().Backends = %v\nwant               %v", got.Backends, wantBackends)
	}
	got.Backends = nil
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("Stats = %+v\nwant    %+v", got, want)
	}
}

func TestRealClockHits(t *testing.T) {
	f := new(secretstest.Fake)
	v := "sk-ant-test-" + token()
	ref := f.Set("bot", v)
	c := cacheFor(t, f)
	for range 1000 {
		mustResolve(t, c, ref, v)
	}
	if st := c.Stats(); st.Misses != 1 || st.Hits != 999 || f.Calls(ref) != 1 {
		t.Fatalf("Stats = %+v, backend calls %d; want 1 miss and 999 hits", st, f.Calls(ref))
	}
}

func TestBackendErrorsAreClassified(t *testing.T) {
	f := new(secretstest.Fake)
	f.Fail("plain", errors.New("a plain error from a resolver that is not keyward's"))
	c := newCache(t, f, newClock(), cache.Options{})
	_, err := c.Resolve(context.Background(), "plain")
	var e *secrets.Error
	if !errors.As(err, &e) || e.Code != secrets.CodeUnknown || e.Ref != "plain" {
		t.Fatalf("got %#v, want a *secrets.Error for the ref", err)
	}

	// A backend slower than FetchTimeout: ErrUnavailable, without the caller's context ending.
	slow := new(secretstest.Fake)
	slow.SetLatency(time.Hour)
	ref := slow.Set("bot", "sk-"+token())
	c2 := newCache(t, slow, newClock(), cache.Options{FetchTimeout: time.Millisecond})
	_, err = c2.Resolve(context.Background(), ref)
	wantCode(t, err, secrets.ErrUnavailable)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want it to wrap the fetch's deadline", err)
	}
}

// Many goroutines resolve, invalidate, purge, warm and move the clock at
// once (run it under -race): every answer is a value once stored under that
// ref, or an error with a code the backend could give; nothing deadlocks.
func TestStress(t *testing.T) {
	f := &batchFake{Fake: new(secretstest.Fake)}
	const refs = 50
	for i := range refs {
		f.Set(fmt.Sprint("bot", i), fmt.Sprintf("sk-bot%d-v0", i))
	}
	clk := newClock()
	c := newCache(t, f, clk, cache.Options{Size: 20, TTL: time.Second, NegativeTTL: 100 * time.Millisecond,
		StaleGrace: time.Second, FetchTimeout: time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	deadline := time.Now().Add(300 * time.Millisecond)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				i := (w*7 + n*13) % (refs + 5) // a few refs that do not exist
				ref := fmt.Sprint("bot", i)
				switch n % 50 {
				case 0:
					c.Invalidate(ref)
				case 1:
					if w == 0 {
						c.Purge()
					}
				case 2:
					c.Warm(context.Background(), []string{ref, "bot1", "bot2"})
				case 3:
					clk.Advance(37 * time.Millisecond)
				case 4:
					if i < refs {
						f.Set(ref, fmt.Sprintf("sk-bot%d-v%d", i, n))
					}
				case 5:
					if w == 1 {
						f.FailAll(unavailable(ref))
					} else if w == 2 {
						f.FailAll(nil)
					}
				}
				report := func(err error) {
					select {
					case errs <- err:
					default: // enough reported
					}
				}
				s, err := c.Resolve(context.Background(), ref)
				switch {
				case err == nil && !strings.HasPrefix(s.Reveal(), fmt.Sprintf("sk-bot%d-v", i)):
					report(fmt.Errorf("%s resolved to another ref's value", ref))
				case err != nil && !errors.Is(err, secrets.ErrNotFound) && !errors.Is(err, secrets.ErrUnavailable):
					report(fmt.Errorf("%s: unexpected error %v", ref, err))
				}
				if n := c.Len(); n > 20 {
					report(fmt.Errorf("the cache holds %d entries, above its size 20", n))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := c.Stats()
	if st.Hits == 0 || st.Misses == 0 {
		t.Errorf("Stats = %+v: the stress test did not exercise both hits and misses", st)
	}
	checkMeterConsistent(t, st, 0) // refreshes may still run: the meter is read with BackendCalls at once
}

func TestDecorator(t *testing.T) {
	f := new(secretstest.Fake)
	v := "sk-ant-test-" + token()
	ref := f.Set("bot", v)
	r, err := cache.Decorate(f, url.Values{"size": {"10"}, "ttl": {"1m"}, "jitter": {"0"}, "refresh_ahead": {"0.5"},
		"stale_grace": {"10m"}, "negative_ttl": {"0"}})
	if err != nil {
		t.Fatal(err)
	}
	c := r.(*cache.Cache)
	defer c.Close()
	mustResolve(t, c, ref, v)
	mustResolve(t, c, ref, v)
	if f.Calls(ref) != 1 {
		t.Fatal("the decorated resolver does not cache")
	}
	// The name is taken by this package's init.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("registering \"cache\" again did not panic: the package did not register it")
			}
		}()
		secrets.RegisterDecorator("cache", cache.Decorate)
	}()
}

func TestParams(t *testing.T) {
	o, err := cache.ParseParams(url.Values{"size": {"10"}, "ttl": {"1m"}, "jitter": {"0"}, "stale_grace": {"0"},
		"negative_ttl": {"2s"}, "refresh_ahead": {"1"}, "stale_wait": {"250ms"}})
	if err != nil {
		t.Fatal(err)
	}
	want := cache.Options{Size: 10, TTL: time.Minute, Jitter: -1, StaleGrace: -1, StaleWait: 250 * time.Millisecond, NegativeTTL: 2 * time.Second, RefreshAhead: 1}
	if fmt.Sprintf("%+v", *o) != fmt.Sprintf("%+v", want) {
		t.Fatalf("ParseParams = %+v, want %+v", *o, want)
	}
	for _, bad := range []string{
		"size=0", "size=-5", "size=lots", "size=99999999999", "ttl=0", "ttl=-1m", "ttl=5", "jitter=-1s",
		"ttl=1m&jitter=31s", "jitter=3m", "refresh_ahead=0", "refresh_ahead=1.5", "refresh_ahead=NaN",
		"stale_grace=forever", "negative_ttl=-1s", "stale_wait=0", "stale_wait=-1s", "size=1&size=2", "capacity=10",
	} {
		q, _ := url.ParseQuery(bad)
		_, err := cache.ParseParams(q)
		if !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("ParseParams(%q) = %v, want ErrInvalidRef", bad, err)
		}
	}
	_, err = cache.ParseParams(url.Values{"capacity": {"10"}})
	if msg := fmt.Sprint(err); !strings.Contains(msg, "size, ttl, jitter, refresh_ahead, stale_grace, stale_wait, negative_ttl") {
		t.Fatalf("the unknown-parameter error does not name the known ones: %s", msg)
	}
}

func FuzzParams(f *testing.F) {
	for _, s := range []string{"size=10&ttl=5m", "jitter=30s&refresh_ahead=0.8", "stale_grace=0&negative_ttl=5s", "x=1", "ttl=1m&jitter=31s",
		"stale_grace=2562047h", "ttl=2562047h&negative_ttl=2562047h", "stale_wait=10s", "size=9223372036854775807", "refresh_ahead=1e-300",
		"check=5m&prices=awssm:0.05,azurekv:0.03", "prices=x:1e308", "check=8760h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		o, err := cache.ParseParams(q)
		if err != nil {
			var e *secrets.Error
			if !errors.As(err, &e) || e.Code != secrets.CodeInvalidRef {
				t.Fatalf("ParseParams(%q): %v is not an ErrInvalidRef *secrets.Error", raw, err)
			}
			return
		}
		const year = 8760 * time.Hour
		if o.Size < 0 || o.Size > cache.MaxSize || o.TTL < 0 || o.RefreshAhead < 0 || o.RefreshAhead > 1 ||
			o.TTL > year || o.Jitter > year || o.StaleGrace > year || o.NegativeTTL > year ||
			o.StaleWait < 0 || o.StaleWait > cache.DefaultFetchTimeout || o.CheckInterval > year {
			t.Fatalf("ParseParams(%q) accepted %+v", raw, *o)
		}
		for scheme, p := range o.Prices {
			if !(p >= 0) || math.IsInf(p, 0) {
				t.Fatalf("ParseParams(%q) accepted the price %v for %q", raw, p, scheme)
			}
		}
		c := cache.New(new(secretstest.Fake), o)
		c.Close()
	})
}
