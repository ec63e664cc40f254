package cache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"

	secrets "github.com/keyward/secrets"
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

// measureCPU runs f (a benchmark body) and reports its CPU time per op as
// "cpu-ns/op". For RunParallel bodies it is the CPU of both goroutines per op:
// equal to the serial figure when the goroutines do not slow each other down.
func measureCPU(b *testing.B, f func()) {
	start, ok := cpuTime()
	f()
	if end, ok2 := cpuTime(); ok && ok2 && b.N > 0 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}

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
		measureCPU(b, func() {
			for b.Loop() {
				sinkString, sinkOK = m[key]
			}
		})
	})
	b.Run("golang-lru", func(b *testing.B) {
		measureCPU(b, func() {
			for b.Loop() {
				sinkString, sinkOK = l.Get(key)
			}
		})
	})
	b.Run("expirable", func(b *testing.B) {
		measureCPU(b, func() {
			for b.Loop() {
				sinkString, sinkOK = x.Get(key)
			}
		})
	})
	b.Run("cache", func(b *testing.B) {
		measureCPU(b, func() {
			b.ReportAllocs()
			for b.Loop() {
				s, err := c.Resolve(ctx, key)
				if err != nil {
					b.Fatal(err)
				}
				sinkString = s.Version
			}
		})
	})
	b.Run("map-parallel", func(b *testing.B) {
		measureCPU(b, func() {
			b.RunParallel(func(pb *testing.PB) {
				var ok bool
				for pb.Next() {
					_, ok = m[key]
				}
				sinkOK = ok
			})
		})
	})
	b.Run("golang-lru-parallel", func(b *testing.B) {
		measureCPU(b, func() {
			b.RunParallel(func(pb *testing.PB) {
				var ok bool
				for pb.Next() {
					_, ok = l.Get(key)
				}
				sinkOK = ok
			})
		})
	})
	b.Run("expirable-parallel", func(b *testing.B) {
		measureCPU(b, func() {
			b.RunParallel(func(pb *testing.PB) {
				var ok bool
				for pb.Next() {
					_, ok = x.Get(key)
				}
				sinkOK = ok
			})
		})
	})
	b.Run("cache-parallel", func(b *testing.B) {
		measureCPU(b, func() {
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
	})
}

// The Zipf workload: zipfResolves resolves over zipfRefs refs drawn from a
// Zipf distribution (s = 1.1, rank 0 hottest), TTL 5 minutes of fake time,
// the backend (secretstest.Fake) sleeping a real 20 ms on every call.
//
// Fake time is driven by the workload: resolve number i happens at
// start + i*zipfStep, that is 1,000 resolves a second of fake time, so the
// 1,000,000 resolves span 16m40s, more than three TTLs. Workers pull i from a
// shared counter and advance the clock before resolving, so time only moves
// forward. Latency is real time around Resolve, per resolve.
//
// The no-cache baseline resolves the fake directly. At 20 ms a call, a million
// resolves would take 20,000 s of waiting, so it runs zipfNoCacheResolves
// (same distribution) with more workers; its calls per 1,000 resolves are
// 1,000 by construction and its latency is the backend's.
const (
	zipfRefs            = 10_000
	zipfResolves        = 1_000_000
	zipfNoCacheResolves = 20_000
	zipfStep            = time.Millisecond
	zipfTTL             = 5 * time.Minute
	zipfLatency         = 20 * time.Millisecond
	zipfWorkers         = 64
	zipfNoCacheWorkers  = 400
)

func zipfSequence(n int) []uint32 {
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, zipfRefs-1)
	seq := make([]uint32, n)
	for i := range seq {
		seq[i] = uint32(z.Uint64())
	}
	return seq
}

func zipfRefName(i uint32) string { return fmt.Sprintf("bots/%05d/anthropic-api-key", i) }

type zipfResult struct {
	calls     int
	latencies []time.Duration // per resolve, in resolve order
}

func runZipf(b *testing.B, r secrets.KeyResolver, f *secretstest.Fake, clk *fakeClock, seq []uint32, workers int) zipfResult {
	refs := make([]string, zipfRefs)
	for i := range refs {
		refs[i] = zipfRefName(uint32(i))
	}
	start := clk.ns.Load()
	lat := make([]time.Duration, len(seq))
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	before := f.TotalCalls()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(seq)) {
					return
				}
				at := start + i*int64(zipfStep)
				for cur := clk.ns.Load(); cur < at && !clk.ns.CompareAndSwap(cur, at); cur = clk.ns.Load() {
				}
				t0 := time.Now()
				_, err := r.Resolve(ctx, refs[seq[i]])
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d resolves failed", n)
	}
	return zipfResult{calls: f.TotalCalls() - before, latencies: lat}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func reportZipf(b *testing.B, res zipfResult, warm int) {
	n := len(res.latencies)
	b.ReportMetric(float64(res.calls)*1000/float64(n), "calls/1k")
	b.ReportMetric(float64(percentile(res.latencies, 0.50)), "p50-ns")
	b.ReportMetric(float64(percentile(res.latencies, 0.99)), "p99-ns")
	if warm > 0 && warm < n {
		after := res.latencies[warm:]
		b.ReportMetric(float64(percentile(after, 0.99)), "p99-warm-ns")
		b.ReportMetric(float64(percentile(after, 0.999)), "p99.9-warm-ns")
		slow := 0
		for _, d := range after {
			if d >= zipfLatency {
				slow++
			}
		}
		b.ReportMetric(float64(slow)*100/float64(len(after)), "%waited-warm")
	}
}

func newZipfBackend() *secretstest.Fake {
	f := new(secretstest.Fake)
	for i := range zipfRefs {
		f.Set(zipfRefName(uint32(i)), fmt.Sprintf("sk-ant-zipf-%05d", i))
	}
	f.SetLatency(zipfLatency)
	return f
}

// BenchmarkZipf runs the whole workload once per iteration: run it with
// -benchtime 1x. Metrics: backend calls per 1,000 resolves, p50 and p99
// resolve latency over all resolves, and after warm-up (the first TTL of
// fake time, 300,000 resolves) the p99, p99.9 and the share of resolves
// that waited at least the backend's 20 ms.
func BenchmarkZipf(b *testing.B) {
	seq := zipfSequence(zipfResolves)
	warm := int(zipfTTL / zipfStep)
	for _, v := range []struct {
		name string
		o    cache.Options
	}{
		{"cache", cache.Options{}},
		{"cache-maxrefreshes256", cache.Options{MaxRefreshes: 256}},
		{"cache-lazyrefresh", cache.Options{LazyRefresh: true}},
	} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				f := newZipfBackend()
				clk := newClock()
				o := v.o
				o.Size, o.TTL, o.Now = zipfRefs, zipfTTL, clk.Now
				c := cache.New(f, &o)
				res := runZipf(b, c, f, clk, seq, zipfWorkers)
				c.Close()
				reportZipf(b, res, warm)
			}
		})
	}
	b.Run("nocache", func(b *testing.B) {
		for b.Loop() {
			f := newZipfBackend()
			res := runZipf(b, f, f, newClock(), seq[:zipfNoCacheResolves], zipfNoCacheWorkers)
			reportZipf(b, res, 0)
		}
	})
}
