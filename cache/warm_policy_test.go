package cache_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/secretstest"
)

// tenantBackend is a batch-capable backend serving "env:" with a public and
// a private key; the tenant's allow list names only the public one.
func tenantBackend() (b *batchFake, public, private string) {
	b = &batchFake{Fake: new(secretstest.Fake)}
	public, private = "sk-public-"+token(), "sk-private-CANARY-"+token()
	b.Set("public", public)
	b.Set("private", private)
	return b, public, private
}

// checkWarmRespectsAllowList warms a disallowed and an allowed ref through c
// and checks that the disallowed one never reached the backend, is still
// refused by top, and that the allowed one was warmed in one batch.
func checkWarmRespectsAllowList(t *testing.T, b *batchFake, public, private string, c *cache.Cache, top secrets.KeyResolver) {
	t.Helper()
	ctx := context.Background()
	_, err := top.Resolve(ctx, "env:private")
	wantCode(t, err, secrets.ErrPermission)

	err = c.Warm(ctx, []string{"env:public", "env:private"})
	wantCode(t, err, secrets.ErrPermission)
	if strings.Contains(err.Error(), private) {
		t.Fatal("Warm's error holds the private value")
	}
	if n := b.Calls("private"); n != 0 {
		t.Fatalf("Warm read the disallowed ref from the backend (%d calls)", n)
	}
	if n := b.batches.Load(); n != 1 {
		t.Fatalf("Warm made %d batch calls, want 1: the batch ability is still used through the layers", n)
	}
	s, err := top.Resolve(ctx, "env:private")
	if err == nil || s.Reveal() != "" {
		t.Fatal("after Warm, the disallowed ref resolves")
	}
	wantCode(t, err, secrets.ErrPermission)
	if strings.Contains(err.Error(), private) {
		t.Fatal("the refusal holds the private value")
	}
	if n := b.Calls("private"); n != 0 {
		t.Fatalf("the disallowed ref reached the backend (%d calls)", n)
	}
	calls := b.TotalCalls()
	mustResolve(t, top, "env:public", public)
	if b.TotalCalls() != calls {
		t.Fatal("the allowed ref was not warmed: resolving it called the backend")
	}
}

// Issue 10 item 1: a cache over AllowRefs(mux) refuses env:private, and
// Warm must not fetch it past the allow list.
func TestWarmGoesThroughTheAllowList(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(allowed secrets.KeyResolver) secrets.KeyResolver
	}{
		{"allow", func(r secrets.KeyResolver) secrets.KeyResolver { return r }},
		{"timeout-allow", func(r secrets.KeyResolver) secrets.KeyResolver { return secrets.WithTimeout(r, time.Minute) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, public, private := tenantBackend()
			mux := new(secrets.Mux)
			mux.Handle("env", b)
			allowed, err := secrets.AllowRefs(mux, []string{"env:public"})
			if err != nil {
				t.Fatal(err)
			}
			c := newCache(t, tc.wrap(allowed), newClock(), cache.Options{})
			checkWarmRespectsAllowList(t, b, public, private, c, c)
		})
	}
}

// The same through a configured Stack: the allow list sits beneath the
// cache, so Warm's batch meets it.
func TestWarmInAStackGoesThroughTheAllowList(t *testing.T) {
	for _, conf := range []string{
		"cache = on\nallow = env:public",
		"cache = on\naudit = on\ntimeout = 1m\nallow = env:public",
	} {
		t.Run(strings.ReplaceAll(conf, "\n", ";"), func(t *testing.T) {
			b, public, private := tenantBackend()
			c, err := secrets.ParseConfig(conf)
			if err != nil {
				t.Fatal(err)
			}
			var events []secrets.AuditEvent
			st, err := secrets.OpenConfig(context.Background(), c, &secrets.StackOptions{
				Backends: map[string]secrets.KeyResolver{"env": b},
				Auditor:  secrets.AuditFunc(func(_ context.Context, ev secrets.AuditEvent) { events = append(events, ev) }),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			cc, ok := secrets.Find[*cache.Cache](st)
			if !ok {
				t.Fatal("no cache in the stack")
			}
			checkWarmRespectsAllowList(t, b, public, private, cc, st)
			for _, ev := range events {
				if ev.Ref == "env:private" && ev.Outcome != "permission_denied" {
					t.Errorf("audit event for env:private: %q", ev.Outcome)
				}
				if ev.Err != nil && strings.Contains(ev.Err.Error(), private) {
					t.Error("an audit event holds the private value")
				}
			}
		})
	}
}

// Every layer beneath the cache judges warmed refs, expiry included: a
// secret the expiry decorator calls expired is not stored by Warm.
func TestWarmGoesThroughExpiry(t *testing.T) {
	b := &batchFake{Fake: new(secretstest.Fake)}
	clk := newClock()
	v := "sk-expiring-CANARY-" + token()
	s := secrets.NewSecret(v)
	s.ExpiresAt = clk.Now().Add(30 * time.Minute)
	b.SetSecret("k", s)
	// The decorator's clock is an hour ahead of the cache's: to it the
	// secret has expired, to the cache it has not.
	later := func() time.Time { return clk.Now().Add(time.Hour) }
	c := newCache(t, secrets.EnforceExpiry(b, &secrets.ExpiryOptions{Now: later}), clk, cache.Options{})
	err := c.Warm(context.Background(), []string{"k"})
	wantCode(t, err, secrets.ErrExpired)
	if b.batches.Load() != 1 {
		t.Fatalf("%d batch calls, want 1", b.batches.Load())
	}
	got, err := c.Resolve(context.Background(), "k")
	if !errors.Is(err, secrets.ErrExpired) || got.Reveal() != "" {
		t.Fatalf("after Warm, the expired secret resolves (err %v)", err)
	}
	if strings.Contains(err.Error(), v) {
		t.Fatal("the error holds the value")
	}
}

// shortBatch answers only the first ref of a batch: a misbehaving backend.
type shortBatch struct{ *secretstest.Fake }

func (s shortBatch) ResolveMany(ctx context.Context, refs []string) ([]secrets.Result, error) {
	v, err := s.Fake.Resolve(ctx, refs[0])
	return []secrets.Result{{Ref: refs[0], Secret: v, Err: err}}, nil
}

// A ref the batch left unanswered is reported, not silently skipped.
func TestWarmReportsUnansweredRefs(t *testing.T) {
	b := shortBatch{new(secretstest.Fake)}
	b.Set("a", "sk-a-"+token())
	b.Set("b", "sk-b-"+token())
	c := newCache(t, b, newClock(), cache.Options{})
	err := c.Warm(context.Background(), []string{"a", "b"})
	wantCode(t, err, secrets.ErrUnavailable)
	if !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("the error does not name the unanswered ref: %v", err)
	}
}
