package cache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
)

// flakyBackend answers v-N (N its call count) until down is set, then
// ErrUnavailable.
type flakyBackend struct {
	calls atomic.Int64
	down  atomic.Bool
}

func (b *flakyBackend) Resolve(_ context.Context, ref string) (secrets.Secret, error) {
	n := b.calls.Add(1)
	if b.down.Load() {
		return secrets.Secret{}, &secrets.Error{Op: "resolve", Backend: "flaky", Ref: ref, Code: secrets.CodeUnavailable, Reason: "down"}
	}
	return secrets.NewSecret(ref + "-v" + string(rune('0'+n%10))), nil
}

// TestExpirePrefix: an expired ref is fetched again on its next resolve;
// while the backend is down it is answered stale instead of failing (what
// InvalidatePrefix would do); other schemes are untouched.
func TestExpirePrefix(t *testing.T) {
	b := &flakyBackend{}
	c := cache.New(b, &cache.Options{TTL: time.Hour})
	defer c.Close()
	ctx := context.Background()
	first, err := c.Resolve(ctx, "db:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(ctx, "env:X"); err != nil {
		t.Fatal(err)
	}
	c.ExpirePrefix("db:")
	again, err := c.Resolve(ctx, "db:1")
	if err != nil || again.Reveal() == first.Reveal() || b.calls.Load() != 3 {
		t.Fatalf("after ExpirePrefix: %v, %d calls; want a new fetch", err, b.calls.Load())
	}
	if _, err := c.Resolve(ctx, "env:X"); err != nil || b.calls.Load() != 3 {
		t.Fatalf("env:X was fetched again (%d calls): ExpirePrefix reached another scheme", b.calls.Load())
	}
	// Down: an expired value is served stale, not an error.
	b.down.Store(true)
	c.ExpirePrefix("db:")
	s, err := c.Resolve(ctx, "db:1")
	if err != nil || s.Reveal() != again.Reveal() || !s.Source.Stale {
		t.Fatalf("with the backend down after ExpirePrefix: %v (stale %v)", err, s.Source.Stale)
	}
	// InvalidatePrefix, by contrast, leaves nothing to fall back on.
	c.InvalidatePrefix("db:")
	if _, err := c.Resolve(ctx, "db:1"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("after InvalidatePrefix with the backend down: %v", err)
	}
}
