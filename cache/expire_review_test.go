package cache_test

// Second attack review of the change notification layer (issue 13):
// ExpirePrefix, which a watch's Lost now calls instead of dropping.

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
)

// TestReview2ExpireAfterFailedRefreshServesStale: a refresh-ahead that
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
func TestReview2ExpireAfterFailedRefreshServesStale(t *testing.T) {
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

// followingBackend answers "bots:1" with the value of db:7 it read when the
// call began, Source.Followed "db:7" (a row whose ref column names db:7),
// holding the call until gate is closed.
type followingBackend struct {
	calls   atomic.Int64
	value   atomic.Value // db:7's current value
	entered chan struct{}
	gate    chan struct{}
}

func (b *followingBackend) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	b.calls.Add(1)
	v := b.value.Load().(string) // read through db:7 now
	select {
	case b.entered <- struct{}{}:
	default:
	}
	select {
	case <-b.gate:
	case <-ctx.Done():
		return secrets.Secret{}, ctx.Err()
	}
	s := secrets.NewSecret(v)
	if ref == "bots:1" {
		s.Source.Followed = "db:7"
	}
	return s, nil
}

// TestReview2FollowerFetchInFlightKeepsOldValue: a fetch of bots:1 (a
// refresh-ahead, a miss) that has read through db:7 when db:7 changes is
// not known as a follower of db:7 yet (followers learn Source.Followed
// when the fetch stores), so Invalidate("db:7") neither drops it nor marks
// the call invalidated, and it stores the old key for a whole TTL (an hour
// in a stack with notification). The same race for the ref itself is
// handled (invalidated calls are not stored); for followers it is not.
// Fix: when storing a value with Source.Followed, refuse it if that base
// ref was invalidated after the call started (a per-base-ref invalidation
// sequence number compared with the call's start seq), as for the ref.
func TestReview2FollowerFetchInFlightKeepsOldValue(t *testing.T) {
	b := &followingBackend{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	b.value.Store("sk-a2-follow-old")
	c := cache.New(b, &cache.Options{TTL: time.Hour})
	defer c.Close()
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := c.Resolve(ctx, "bots:1")
		done <- err
	}()
	<-b.entered // bots:1's fetch has read db:7
	b.value.Store("sk-a2-follow-new")
	c.Invalidate("db:7") // the watch announces db:7
	close(b.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s, err := c.Resolve(ctx, "bots:1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Reveal() == "sk-a2-follow-old" {
		t.Errorf("after db:7 changed and was invalidated, bots:1 (which follows it) is cached with the old key read before the change (%d backend calls)", b.calls.Load())
	}
}
