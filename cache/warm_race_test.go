package cache_test

import (
	"context"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/secretstest"
)

// heldBatch is a batch-capable backend whose ResolveMany reads every value at
// once, reports that it has, then holds its answer until released: the test
// decides exactly what happens between the batch's read and its store.
type heldBatch struct {
	*secretstest.Fake
	read    chan struct{}
	release chan struct{}
}

func newHeldBatch() *heldBatch {
	return &heldBatch{Fake: new(secretstest.Fake), read: make(chan struct{}), release: make(chan struct{})}
}

func (b *heldBatch) ResolveMany(ctx context.Context, refs []string) ([]secrets.Result, error) {
	out := make([]secrets.Result, len(refs))
	for i, ref := range refs {
		s, err := b.Fake.Resolve(ctx, ref)
		out[i] = secrets.Result{Ref: ref, Secret: s, Err: err}
	}
	close(b.read)
	<-b.release
	return out, nil
}

// A Warm batch that read a value before the ref was rotated (and invalidated,
// or purged, or simply fetched again) must not replace the newer value.
func TestWarmBatchDoesNotStoreOverNewerValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(c *cache.Cache, ref string) // between the batch's read and its store
	}{
		{"invalidate", func(c *cache.Cache, ref string) { c.Invalidate(ref) }},
		{"purge", func(c *cache.Cache, ref string) { c.Purge() }},
		{"newer-fetch", func(c *cache.Cache, ref string) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newHeldBatch()
			old, fresh := "sk-ant-test-old-"+token(), "sk-ant-test-new-"+token()
			ref := b.Set("k", old)
			c := newCache(t, secrets.EnforceExpiry(b, nil), newClock(), cache.Options{})
			warmed := make(chan error, 1)
			go func() { warmed <- c.Warm(context.Background(), []string{ref}) }()
			<-b.read
			b.Set("k", fresh) // rotated in the backend
			tc.after(c, ref)
			mustResolve(t, c, ref, fresh) // a request fetches the new value
			close(b.release)
			if err := <-warmed; err != nil {
				t.Fatal(err)
			}
			calls := b.TotalCalls()
			mustResolve(t, c, ref, fresh) // not the batch's old value
			if b.TotalCalls() != calls {
				t.Fatal("the value fetched during the batch was not kept")
			}
		})
	}
}

// Without anything newer, the batch's results are stored as before.
func TestWarmBatchStoresWhenNothingNewer(t *testing.T) {
	b := newHeldBatch()
	v := "sk-ant-test-" + token()
	ref := b.Set("k", v)
	other := b.Set("other", "sk-ant-test-other-"+token())
	c := newCache(t, b, newClock(), cache.Options{})
	warmed := make(chan error, 1)
	go func() { warmed <- c.Warm(context.Background(), []string{ref, other}) }()
	<-b.read
	c.Invalidate(other) // invalidating one ref leaves the others' results stored
	close(b.release)
	if err := <-warmed; err != nil {
		t.Fatal(err)
	}
	calls := b.TotalCalls()
	mustResolve(t, c, ref, v)
	if b.TotalCalls() != calls {
		t.Fatal("the batch's result was not stored")
	}
	c.Resolve(context.Background(), other)
	if b.TotalCalls() != calls+1 {
		t.Fatal("the batch's result for a ref invalidated meanwhile was stored")
	}
}
