package cache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/secretstest"
)

// The refresh wheel holds live entries only: evicted, invalidated and
// refreshed entries leave it at once, so its size is bounded by Size, not by
// fetch rate times TTL.
func TestWheelIsBoundedBySize(t *testing.T) {
	f := new(secretstest.Fake)
	clk := newClock()
	const size = 10
	c := newCache(t, f, clk, cache.Options{Size: size, TTL: time.Hour})
	ctx := context.Background()
	for i := range 1000 {
		ref := f.Set(fmt.Sprint("bot", i), "sk-ant-test-"+token())
		if _, err := c.Resolve(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			c.Invalidate(ref)
		}
		if n := c.WheelLen(); n > size {
			t.Fatalf("after %d fetches the wheel holds %d entries, above Size %d", i+1, n, size)
		}
	}
	if c.WheelLen() == 0 {
		t.Fatal("the wheel holds nothing: the sweep is not exercised")
	}
	// Refreshing a live entry moves it in the wheel rather than adding it again.
	ref := f.Set("hot", "sk-ant-test-"+token())
	c.Resolve(ctx, ref)
	for range 50 {
		clk.Advance(55 * time.Minute) // past its refresh point, before its TTL
		c.Resolve(ctx, ref)
		c.Quiesce()
		if n := c.WheelLen(); n > size {
			t.Fatalf("after refreshes the wheel holds %d entries, above Size %d", n, size)
		}
	}
}
