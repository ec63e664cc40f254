package cache_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/internal/followmark"
)

// refBackend answers any ref: the value stored under its base ref (the text
// before the first '#' or '?') followed by the rest of the ref, so every
// variant of an entry changes when the entry does, as with a real backend's
// #field and ?version. It counts calls per exact ref, and holds every call
// while gate is non-nil and open.
type refBackend struct {
	mu    sync.Mutex
	vals  map[string]secrets.Secret
	calls map[string]int
	total int
	gate  chan struct{}
	fail  error // every resolve fails with it
}

func newRefBackend() *refBackend {
	return &refBackend{vals: map[string]secrets.Secret{}, calls: map[string]int{}}
}

func base(ref string) string {
	if i := strings.IndexAny(ref, "#?"); i >= 0 {
		return ref[:i]
	}
	return ref
}

// set stores value (with version) under the base ref b.
func (r *refBackend) set(b, value, version string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := secrets.NewSecret(value)
	s.Version = version
	r.vals[b] = s
}

// hold makes the calls from now on wait until the returned func is called.
func (r *refBackend) hold() (release func()) {
	g := make(chan struct{})
	r.mu.Lock()
	r.gate = g
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.gate = nil
		r.mu.Unlock()
		close(g)
	}
}

func (r *refBackend) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	r.mu.Lock()
	r.calls[ref]++
	r.total++
	gate, fail := r.gate, r.fail
	v, ok := r.vals[base(ref)]
	r.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return secrets.Secret{}, ctx.Err()
		}
	}
	if fail != nil {
		return secrets.Secret{}, fail
	}
	if !ok {
		return secrets.Secret{}, &secrets.Error{Op: "resolve", Backend: "refs", Ref: ref, Code: secrets.CodeNotFound, Reason: "no such entry"}
	}
	s := secrets.NewSecret(v.Reveal() + ref[len(base(ref)):])
	s.Version, s.ExpiresAt = v.Version, v.ExpiresAt
	return s, nil
}

// failResolves makes every resolve fail with err (nil ends it).
func (r *refBackend) failResolves(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

func (r *refBackend) callsOf(ref string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[ref]
}

func (r *refBackend) totalCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Invalidate of an entry's ref drops every #field and ?option variant of it
// (so a rotated row is not served under "db:7#org"), and only those: "db:70"
// and "db:7x" are other entries. Invalidate of a variant is exact.
func TestInvalidateCoversVariants(t *testing.T) {
	r := newRefBackend()
	v1, v2 := "sk-ant-test-v1-"+token(), "sk-ant-test-v2-"+token()
	other := "sk-ant-test-other-" + token()
	r.set("db:7", v1, "1")
	r.set("db:70", other, "1")
	r.set("db:7x", other, "1")
	c := newCache(t, r, newClock(), cache.Options{})
	variants := []string{"db:7", "db:7#org", "db:7?version=2#x", "db:7?x", "db:7#"}
	others := []string{"db:70", "db:70#org", "db:7x"}
	for _, ref := range append(variants, others...) {
		mustResolve(t, c, ref, map[bool]string{true: v1, false: other}[base(ref) == "db:7"]+ref[len(base(ref)):])
	}
	r.set("db:7", v2, "2")
	r.set("db:70", "sk-changed-"+token(), "2")
	r.set("db:7x", "sk-changed-"+token(), "2")

	// A variant is exact: the others stay cached.
	c.Invalidate("db:7#org")
	mustResolve(t, c, "db:7#org", v2+"#org")
	mustResolve(t, c, "db:7", v1)
	mustResolve(t, c, "db:7?x", v1+"?x")

	c.Invalidate("db:7")
	for _, ref := range variants {
		mustResolve(t, c, ref, v2+ref[len("db:7"):])
	}
	for _, ref := range others {
		before := r.callsOf(ref)
		mustResolve(t, c, ref, other+ref[len(base(ref)):])
		if r.callsOf(ref) != before {
			t.Fatalf("Invalidate(\"db:7\") dropped %s", ref)
		}
	}
	// Every variant cached is indexed: the four of db:7 and db:70#org.
	if n, _ := c.IndexLen(); n != 5 {
		t.Fatalf("the variant index holds %d refs, want the 5 cached variants", n)
	}
}

// Fetches in flight for a variant (a caller's, a follow's) and Warm batches
// holding one are not stored after Invalidate of the base: they may have read
// the value before it changed.
func TestInvalidateVariantsInFlight(t *testing.T) {
	for _, follow := range []bool{false, true} {
		t.Run(fmt.Sprintf("follow=%v", follow), func(t *testing.T) {
			r := newRefBackend()
			old, fresh := "sk-ant-test-old-"+token(), "sk-ant-test-new-"+token()
			r.set("db:7", old, "1")
			c := newCache(t, r, newClock(), cache.Options{})
			release := r.hold()
			ctx := context.Background()
			if follow {
				ctx = followmark.Mark(ctx)
			}
			done := make(chan error, 1)
			go func() {
				_, err := c.Resolve(ctx, "db:7#org")
				done <- err
			}()
			waitFor(t, "the fetch", func() bool { a, b := c.InFlight("db:7#org"); return a || b })
			r.set("db:7", fresh, "2")
			c.Invalidate("db:7")
			if a, b := c.InFlight("db:7#org"); a || b {
				t.Fatal("the fetch of the variant is still joinable after Invalidate of its base")
			}
			release()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			mustResolve(t, c, "db:7#org", fresh+"#org") // the old read was not stored
			if _, n := c.IndexLen(); n != 0 {
				t.Fatalf("the in-flight index holds %d refs after every fetch ended", n)
			}
		})
	}
	t.Run("warm", func(t *testing.T) {
		b := newHeldBatch()
		old, fresh := "sk-ant-test-old-"+token(), "sk-ant-test-new-"+token()
		b.Set("k", `{"org":"`+old+`"}`)
		other := b.Set("k2", `{"org":"`+old+`"}`)
		c := newCache(t, b, newClock(), cache.Options{})
		warmed := make(chan error, 1)
		go func() { warmed <- c.Warm(context.Background(), []string{"k#org", other + "#org"}) }()
		<-b.read
		b.Set("k", `{"org":"`+fresh+`"}`)
		c.Invalidate("k")
		close(b.release)
		if err := <-warmed; err != nil {
			t.Fatal(err)
		}
		calls := b.TotalCalls()
		mustResolve(t, c, other+"#org", old) // not a variant of k: stored
		if b.TotalCalls() != calls {
			t.Fatal("the batch's result for a ref that was not invalidated was not stored")
		}
		mustResolve(t, c, "k#org", fresh)
	})
}

// InvalidatePrefix drops every ref of a scheme, cached, in flight or in a
// batch, and nothing else.
func TestInvalidatePrefix(t *testing.T) {
	r := newRefBackend()
	old, fresh := "sk-ant-test-old-"+token(), "sk-ant-test-new-"+token()
	for _, b := range []string{"db:1", "db:2", "db:3", "env:A"} {
		r.set(b, old, "1")
	}
	c := newCache(t, r, newClock(), cache.Options{})
	for _, ref := range []string{"db:1", "db:2#x", "env:A", "env:A#x"} {
		mustResolve(t, c, ref, old+ref[len(base(ref)):])
	}
	release := r.hold()
	done := make(chan error, 1)
	go func() {
		_, err := c.Resolve(context.Background(), "db:3?v=1")
		done <- err
	}()
	waitFor(t, "the fetch", func() bool { return c.Waiters("db:3?v=1") == 1 })
	for _, b := range []string{"db:1", "db:2", "db:3", "env:A"} {
		r.set(b, fresh, "2")
	}
	c.InvalidatePrefix("db:")
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"db:1", "db:2#x", "db:3?v=1"} {
		mustResolve(t, c, ref, fresh+ref[len(base(ref)):])
	}
	for _, ref := range []string{"env:A", "env:A#x"} {
		mustResolve(t, c, ref, old+ref[len(base(ref)):]) // still cached
	}
	if c.Len() != 5 {
		t.Fatalf("the cache holds %d refs, want 5", c.Len())
	}
	c.InvalidatePrefix("")
	if c.Len() != 0 {
		t.Fatalf("InvalidatePrefix(\"\") left %d refs", c.Len())
	}
	if n, f := c.IndexLen(); n != 0 || f != 0 {
		t.Fatalf("the variant indexes hold %d entries and %d fetches after everything was dropped", n, f)
	}
}

// The variant index follows the entries through eviction, refetch and
// Purge: it never holds a ref that is not cached.
func TestVariantIndexFollowsEntries(t *testing.T) {
	r := newRefBackend()
	r.set("db:1", "sk-"+token(), "1")
	c := newCache(t, r, newClock(), cache.Options{Size: 4})
	for i := range 20 {
		c.Resolve(context.Background(), fmt.Sprintf("db:1#f%d", i))
		if n, _ := c.IndexLen(); n != c.Len() {
			t.Fatalf("after %d variants: the index holds %d refs, the cache %d", i+1, n, c.Len())
		}
	}
	c.Resolve(context.Background(), "db:1")
	c.Invalidate("db:1")
	if n, _ := c.IndexLen(); n != 0 || c.Len() != 0 {
		t.Fatalf("after Invalidate the index holds %d refs and the cache %d", n, c.Len())
	}
	c.Resolve(context.Background(), "db:1#a")
	c.Purge()
	if n, _ := c.IndexLen(); n != 0 {
		t.Fatalf("after Purge the index holds %d refs", n)
	}
}
