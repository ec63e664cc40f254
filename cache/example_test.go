package cache_test

import (
	"context"
	"fmt"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/secretstest"
)

func Example() {
	backend := new(secretstest.Fake)
	ref := backend.Set("anthropic-bot-7", "sk-ant-example")

	c := cache.New(backend, &cache.Options{Size: 1000, TTL: 5 * time.Minute})
	defer c.Close()

	ctx := context.Background()
	for range 3 {
		key, err := c.Resolve(ctx, ref)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("printed:", key, "length:", key.Len())
	}
	st := c.Stats()
	fmt.Printf("hits %d, misses %d, backend calls %d\n", st.Hits, st.Misses, st.BackendCalls)
	// Output:
	// printed: [redacted] length: 14
	// printed: [redacted] length: 14
	// printed: [redacted] length: 14
	// hits 2, misses 1, backend calls 1
}

// An outage: the backend fails with ErrUnavailable, and the cache keeps
// serving the last good value for the grace window.
func Example_staleIfError() {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	backend := new(secretstest.Fake)
	ref := backend.Set("bot", "sk-ant-example")
	c := cache.New(backend, &cache.Options{TTL: time.Minute, StaleGrace: 10 * time.Minute,
		Now: func() time.Time { return now }})
	defer c.Close()

	c.Resolve(context.Background(), ref)
	backend.FailAll(&secrets.Error{Op: "resolve", Backend: "fake", Ref: ref, Code: secrets.CodeUnavailable})

	now = now.Add(5 * time.Minute)
	key, err := c.Resolve(context.Background(), ref)
	fmt.Println("5m into the outage:", key.Len(), err)

	now = now.Add(10 * time.Minute)
	_, err = c.Resolve(context.Background(), ref)
	fmt.Println("15m into the outage:", err)
	fmt.Println("stale answers:", c.Stats().StaleServed)
	// Output:
	// 5m into the outage: 14 <nil>
	// 15m into the outage: keyward: fake: resolve "bot": unavailable
	// stale answers: 1
}

// Behind the audit decorator: the audit log tells a cache hit from a backend call.
func Example_audit() {
	backend := new(secretstest.Fake)
	ref := backend.Set("bot", "sk-ant-example")
	c := cache.New(backend, nil)
	defer c.Close()
	audited := secrets.NewAudit(c, secrets.AuditFunc(func(_ context.Context, ev secrets.AuditEvent) {
		fmt.Printf("%s backend=%s outcome=%s cache_hit=%v\n", ev.Ref, ev.Backend, ev.Outcome, ev.CacheHit)
	}), nil)
	audited.Resolve(context.Background(), ref)
	audited.Resolve(context.Background(), ref)
	// Output:
	// bot backend=fake outcome=ok cache_hit=false
	// bot backend=fake outcome=ok cache_hit=true
}

// The cost meter: backend calls by ref scheme, answers avoided, and the
// estimate in US dollars at the scheme's price per 10,000 calls. A changed
// key is invalidated with every #field variant of it.
func Example_costMeter() {
	aws := new(secretstest.Fake) // standing in for AWS Secrets Manager
	aws.Set("bots/7", `{"api_key":"sk-ant-example","org":"example-org"}`)
	mux := new(secrets.Mux)
	mux.Handle("awssm", aws)

	c := cache.New(mux, &cache.Options{Prices: map[string]float64{"awssm": 0.05}})
	defer c.Close()
	ctx := context.Background()
	for range 1000 {
		c.Resolve(ctx, "awssm:bots/7#api_key")
		c.Resolve(ctx, "awssm:bots/7#org")
	}
	c.Invalidate("awssm:bots/7") // rotated: both fields are fetched again
	c.Resolve(ctx, "awssm:bots/7#api_key")
	c.Resolve(ctx, "awssm:bots/7#org")

	m := c.Stats().Backends["awssm"]
	fmt.Printf("calls %d, avoided %d, cost $%.6f\n", m.Calls["resolve"], m.Avoided, m.Cost)
	// Output:
	// calls 4, avoided 1998, cost $0.000020
}
