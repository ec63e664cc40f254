package cache_test

// Second attack review of the change notification layer (issue 13):
// ExpirePrefix, which a watch's Lost now calls instead of dropping.

import (
	"context"
	"testing"
	"time"

	"github.com/keyward/secrets/cache"
)

// TestAttack2ExpireAfterFailedRefreshServesStale: a refresh-ahead that
// failed (the database blinked: the same blink that drops the watch's
// connection) leaves the entry with failures > 0 and a retry time. When
// the watch is back it calls Lost, and ExpirePrefix makes the value due
// but keeps failures and retryAt: the next resolves take the "backend known
// to be down" branch and answer the old value stale at once, without
// asking the backend, until the backoff has passed, although the backend
// answers fine and the key may have been rotated during the blink (which
// is exactly what the Lost is about). Here the clock stands still, so no
// resolve ever reaches the backend again.
// Fix: ExpirePrefix resets e.failures and e.retryAt (a due value is
// fetched, and served stale only if that fetch fails).
func TestAttack2ExpireAfterFailedRefreshServesStale(t *testing.T) {
	b := &flakyBackend{}
	clk := newClock()
	c := newCache(t, b, clk, cache.Options{TTL: time.Minute, Jitter: -1, RefreshAhead: 0.5})
	ctx := context.Background()
	first, err := c.Resolve(ctx, "db:1")
	if err != nil {
		t.Fatal(err)
	}
	b.down.Store(true)
	clk.Advance(40 * time.Second) // past the refresh point, still fresh
	if _, err := c.Resolve(ctx, "db:1"); err != nil {
		t.Fatal(err)
	}
	c.Quiesce() // the refresh ran and failed
	b.down.Store(false)
	calls := b.calls.Load()
	c.ExpirePrefix("db:") // the watch is back: Lost
	s, err := c.Resolve(ctx, "db:1")
	if err != nil {
		t.Fatal(err)
	}
	c.Quiesce()
	if s.Reveal() == first.Reveal() || s.Source.Stale || b.calls.Load() == calls {
		t.Errorf("after ExpirePrefix, with the backend answering, a resolve got the old value (stale %v) and the backend was called %d times: the value is served on a failure from before the Lost", s.Source.Stale, b.calls.Load()-calls)
	}
}
