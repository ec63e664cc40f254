package cache_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/secretstest"
)

// benchKey is a 30-character ref, like "prod/anthropic/bot-0042/api_key".
const benchKey = "prod/anthropic/bot-0042/apikey"

// benchRefs is how many entries each structure holds, so that lookups are
// not served from a one-element map.
const benchRefs = 1000

func benchKeys() []string {
	keys := make([]string, benchRefs)
	for i := range keys {
		keys[i] = fmt.Sprintf("prod/anthropic/bot-%04d/apikey", i)
	}
	return keys
}

var (
	sinkString string
	sinkOK     bool
)

// BenchmarkHit compares a cached hit with the structures it is built from,
// one goroutine and then b.RunParallel, in one run.
func BenchmarkHit(b *testing.B) {
	keys := benchKeys()
	if len(benchKey) != 30 {
		b.Fatalf("benchKey has %d characters, want 30", len(benchKey))
	}

	m := make(map[string]string, benchRefs)
	l, _ := lru.New[string, string](benchRefs)
	x := expirable.NewLRU[string, string](benchRefs, nil, time.Hour)
	fake := new(secretstest.Fake)
	c := cache.New(fake, &cache.Options{Size: benchRefs, TTL: time.Hour})
	b.Cleanup(func() { c.Close(); x.Purge() })
	ctx := context.Background()
	for _, k := range keys {
		m[k] = "sk-bench"
		l.Add(k, "sk-bench")
		x.Add(k, "sk-bench")
		fake.Set(k, "sk-bench")
		if _, err := c.Resolve(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
	// Resolve each once more so the read snapshot holds them all.
	for range 2 {
		for _, k := range keys {
			c.Resolve(ctx, k)
		}
	}
	// A copy: a caller's ref is never the very string the cache stored, so
	// every lookup compares the 30 bytes (the same pointer would short-cut).
	key := strings.Clone(keys[42])

	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			sinkString, sinkOK = m[key]
		}
	})
	b.Run("golang-lru", func(b *testing.B) {
		for b.Loop() {
			sinkString, sinkOK = l.Get(key)
		}
	})
	b.Run("expirable", func(b *testing.B) {
		for b.Loop() {
			sinkString, sinkOK = x.Get(key)
		}
	})
	b.Run("cache", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := c.Resolve(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			sinkString = s.Version
		}
	})
	b.Run("map-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			var ok bool
			for pb.Next() {
				_, ok = m[key]
			}
			sinkOK = ok
		})
	})
	b.Run("golang-lru-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			var ok bool
			for pb.Next() {
				_, ok = l.Get(key)
			}
			sinkOK = ok
		})
	})
	b.Run("expirable-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			var ok bool
			for pb.Next() {
				_, ok = x.Get(key)
			}
			sinkOK = ok
		})
	})
	b.Run("cache-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Resolve(ctx, key); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
