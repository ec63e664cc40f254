package cache_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/secretstest"
)

// hanging is a backend that, once hung, holds every call until the test
// releases it or the call's context ends: what a backend behind a network
// that drops packets looks like (the connection neither answers nor fails).
type hanging struct {
	*secretstest.Fake
	mu      sync.Mutex
	release chan struct{} // nil: answer at once
	started chan struct{} // receives a value as each hung call begins
}

func newHanging() *hanging {
	return &hanging{Fake: new(secretstest.Fake), started: make(chan struct{}, 16)}
}

// hang makes the following calls wait; the returned func releases them.
func (h *hanging) hang() (release func()) {
	ch := make(chan struct{})
	h.mu.Lock()
	h.release = ch
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			h.release = nil
			h.mu.Unlock()
			close(ch)
		})
	}
}

func (h *hanging) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	h.mu.Lock()
	ch := h.release
	h.mu.Unlock()
	if ch != nil {
		h.started <- struct{}{}
		select {
		case <-ch:
		case <-ctx.Done():
			return secrets.Secret{}, ctx.Err()
		}
	}
	return h.Fake.Resolve(ctx, ref)
}

// hungFetchTimeout is the fetch timeout of these tests: a caller that is
// still waiting after half of it has joined the hanging fetch for good.
const hungFetchTimeout = 20 * time.Second

type outcome struct {
	s   secrets.Secret
	err error
}

// resolveBounded resolves ref in a goroutine and fails t if no answer comes
// within half the fetch timeout (so the test fails rather than hangs).
func resolveBounded(t *testing.T, ctx context.Context, c *cache.Cache, ref string) outcome {
	t.Helper()
	res := make(chan outcome, 1)
	go func() {
		s, err := c.Resolve(ctx, ref)
		res <- outcome{s, err}
	}()
	return resolveBoundedResult(t, res)
}

func resolveBoundedResult(t *testing.T, res <-chan outcome) outcome {
	t.Helper()
	select {
	case o := <-res:
		return o
	case <-time.After(hungFetchTimeout / 2):
		t.Fatalf("Resolve still waiting after %v (fetch timeout %v): the caller joined the hanging fetch although a value within the grace window is cached",
			hungFetchTimeout/2, hungFetchTimeout)
		return outcome{}
	}
}

// wantStale checks that o is the stale value v, served and marked as stale.
func wantStale(t *testing.T, o outcome, v string) {
	t.Helper()
	if o.err != nil {
		t.Fatalf("Resolve failed with %v; want the stale value (it is within the grace window)", o.err)
	}
	if o.s.Reveal() != v {
		t.Fatalf("Resolve returned another value (%d bytes, want %d)", o.s.Len(), len(v))
	}
	if !o.s.Source.Stale || !o.s.Source.Cached {
		t.Fatalf("Source %+v: the answer is not marked as a stale cache hit", o.s.Source)
	}
}

// hungAfterTTL returns a cache over a hanging backend holding v for ref, its
// clock past the TTL and inside the grace window, the backend hung.
func hungAfterTTL(t *testing.T, o cache.Options) (c *cache.Cache, h *hanging, ref, v string, release func()) {
	t.Helper()
	h = newHanging()
	v = "sk-ant-test-" + token()
	ref = h.Set("bot", v)
	clk := newClock()
	o.TTL, o.Jitter, o.StaleGrace, o.FetchTimeout = time.Minute, -1, 10*time.Minute, hungFetchTimeout
	c = newCache(t, h, clk, o)
	mustResolve(t, c, ref, v)
	release = h.hang()
	t.Cleanup(release) // before the cache's Close (cleanups run last first)
	clk.Advance(2 * time.Minute)
	return c, h, ref, v, release
}

// Issue 10 item 4: a caller whose context is about to end gets the stale
// value, not context.DeadlineExceeded, while the fetch hangs.
func TestHangingBackendDeadlineCallerGetsStale(t *testing.T) {
	c, _, ref, v, _ := hungAfterTTL(t, cache.Options{StaleWait: -1}) // no bound but the caller's own
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	o := resolveBounded(t, ctx, c, ref)
	if errors.Is(o.err, context.DeadlineExceeded) {
		t.Fatalf("Resolve = %v; want the stale value before the caller's deadline", o.err)
	}
	wantStale(t, o, v)
	if st := c.Stats(); st.StaleServed != 1 || st.Misses != 2 {
		t.Fatalf("Stats = %+v, want 1 stale served and 2 misses (the warm-up and this one)", st)
	}
}

// Issue 10 item 4: a caller without a deadline gets the stale value once the
// fetch has been in flight for StaleWait, not after the whole fetch timeout;
// the fetch goes on and stores its result when the backend answers.
func TestHangingBackendCallerGetsStaleAfterStaleWait(t *testing.T) {
	c, h, ref, v, release := hungAfterTTL(t, cache.Options{}) // the default StaleWait
	wantStale(t, resolveBounded(t, context.Background(), c, ref), v)
	// A caller arriving while the same fetch still hangs (in flight longer
	// than StaleWait) gets the stale value too, without joining the backend.
	wantStale(t, resolveBounded(t, context.Background(), c, ref), v)
	if hung := len(h.started); hung != 1 {
		t.Fatalf("%d backend calls hung, want 1 (the fetch the two stale callers share)", hung)
	}

	// The backend answers at last, with a new value: the fetch stores it.
	v2 := "sk-ant-test-v2-" + token()
	h.Set("bot", v2)
	release()
	c.Quiesce()
	mustResolve(t, c, ref, v2)
	if st := c.Stats(); st.StaleServed != 2 {
		t.Fatalf("Stats = %+v, want 2 stale served", st)
	}
}

// The stale answer never outlives what it must not: a value past its
// ExpiresAt is not served however long the fetch hangs, and a caller whose
// ref was invalidated while it waited does not get the dropped value.
func TestHangingBackendStaleRules(t *testing.T) {
	t.Run("ExpiresAt", func(t *testing.T) {
		h := newHanging()
		v := "sk-ant-test-" + token()
		clk := newClock()
		s := secrets.NewSecret(v)
		s.ExpiresAt = clk.Now().Add(90 * time.Second)
		ref := h.SetSecret("bot", s)
		c := newCache(t, h, clk, cache.Options{TTL: time.Minute, Jitter: -1, StaleGrace: 10 * time.Minute,
			FetchTimeout: 200 * time.Millisecond, StaleWait: time.Millisecond})
		mustResolve(t, c, ref, v)
		release := h.hang()
		defer release()
		clk.Advance(2 * time.Minute) // past the TTL and past ExpiresAt
		o := resolveBounded(t, context.Background(), c, ref)
		if o.err == nil {
			t.Fatal("a value past its ExpiresAt was served stale")
		}
		wantCode(t, o.err, secrets.ErrUnavailable)
	})
	t.Run("Invalidate", func(t *testing.T) {
		c, h, ref, _, release := hungAfterTTL(t, cache.Options{StaleWait: -1})
		// The deadline leaves the test far more time than it needs to
		// invalidate before the caller would fall back on the stale value.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		res := make(chan outcome, 1)
		go func() {
			s, err := c.Resolve(ctx, ref)
			res <- outcome{s: s, err: err}
		}()
		<-h.started
		c.Invalidate(ref) // the key was rotated: the cached value must not be served
		o := resolveBoundedResult(t, res)
		if !errors.Is(o.err, context.DeadlineExceeded) {
			t.Fatalf("Resolve = %v (a value served: %v); want context.DeadlineExceeded: the invalidated value must not be served", o.err, o.err == nil)
		}
		release()
	})
	t.Run("NotMasked", func(t *testing.T) {
		// The fetch answers ErrNotFound inside StaleWait: the caller gets it.
		c, h, ref, _, release := hungAfterTTL(t, cache.Options{StaleWait: time.Hour})
		h.Fail("bot", &secrets.Error{Op: "resolve", Backend: "fake", Ref: ref, Code: secrets.CodeNotFound})
		res := make(chan outcome, 1)
		go func() {
			s, err := c.Resolve(context.Background(), ref)
			res <- outcome{s: s, err: err}
		}()
		<-h.started
		release()
		o := <-res
		wantCode(t, o.err, secrets.ErrNotFound)
	})
}
