package cache_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
)

// refBatch gives refBackend a batch ability (one call answers every ref) and
// counts its batch calls.
type refBatch struct {
	*refBackend
	mu      sync.Mutex
	batches int
}

func (b *refBatch) ResolveMany(ctx context.Context, refs []string) ([]secrets.Result, error) {
	b.mu.Lock()
	b.batches++
	b.mu.Unlock()
	out := make([]secrets.Result, len(refs))
	for i, ref := range refs {
		s, err := b.refBackend.Resolve(ctx, ref)
		out[i] = secrets.Result{Ref: ref, Secret: s, Err: err}
	}
	return out, nil
}

// checkMeterConsistent checks that the meter adds up to the global counters.
// With mixedBatches Warm batches that held several schemes were made, which
// count once in BackendCalls and once per scheme in the meter.
func checkMeterConsistent(t *testing.T, st cache.Stats, mixedBatchExtra uint64) {
	t.Helper()
	var avoided, calls uint64
	for _, bs := range st.Backends {
		avoided += bs.Avoided
		for _, n := range bs.Calls {
			calls += n
		}
	}
	if avoided != st.Hits+st.NegativeHits {
		t.Errorf("the meter's Avoided add up to %d, Hits+NegativeHits is %d", avoided, st.Hits+st.NegativeHits)
	}
	if calls != st.BackendCalls+mixedBatchExtra {
		t.Errorf("the meter's Calls add up to %d, BackendCalls is %d (+%d for mixed batches)", calls, st.BackendCalls, mixedBatchExtra)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

func TestCostMeter(t *testing.T) {
	r := &refBatch{refBackend: newRefBackend()}
	for _, b := range []string{"awssm:a", "awssm:b", "azurekv:a", "db:1", "plain"} {
		r.set(b, "sk-"+token(), "1")
	}
	c := newCache(t, r, newClock(), cache.Options{Prices: map[string]float64{"awssm": 0.05, "azurekv": 0.03, "db": -1}})
	ctx := context.Background()
	for range 10 {
		c.Resolve(ctx, "awssm:a") // 1 call, 9 hits
	}
	for range 3 {
		c.Resolve(ctx, "awssm:gone") // 1 call, 2 negative hits
	}
	c.Resolve(ctx, "db:1")
	c.Resolve(ctx, "db:1")
	c.Resolve(ctx, "plain") // no scheme: ""
	if err := c.Warm(ctx, []string{"awssm:b", "azurekv:a"}); err != nil {
		t.Fatal(err)
	}
	c.Resolve(ctx, "awssm:b")
	c.Resolve(ctx, "azurekv:a")
	st := c.Stats()
	calls := func(resolve, batch uint64) map[string]uint64 {
		return map[string]uint64{"resolve": resolve, "batch": batch, "version": 0}
	}
	want := map[string]cache.BackendStats{
		"awssm":   {Calls: calls(2, 1), Avoided: 12, Cost: 3 * 0.05 / 10000},
		"azurekv": {Calls: calls(0, 1), Avoided: 1, Cost: 0.03 / 10000},
		"db":      {Calls: calls(1, 0), Avoided: 1}, // a negative price counts as 0
		"":        {Calls: calls(1, 0)},
	}
	if len(st.Backends) != len(want) {
		t.Fatalf("Stats().Backends = %v, want %v", st.Backends, want)
	}
	for scheme, w := range want {
		got := st.Backends[scheme]
		if fmt.Sprint(got.Calls) != fmt.Sprint(w.Calls) || got.Avoided != w.Avoided || !near(got.Cost, w.Cost) {
			t.Errorf("Backends[%q] = %+v, want %+v", scheme, got, w)
		}
	}
	if r.totalCalls() != 6 || r.batches != 1 {
		t.Errorf("the backend answered %d resolves in %d batches, want 6 in 1", r.totalCalls(), r.batches)
	}
	checkMeterConsistent(t, st, 1) // the one batch held two schemes
}

// Nil Prices means DefaultPrices; a non-nil map is taken as it is.
func TestCostMeterPrices(t *testing.T) {
	for _, tc := range []struct {
		prices map[string]float64
		want   float64
	}{
		{nil, 0.05 / 10000},
		{map[string]float64{}, 0},
		{map[string]float64{"awssm": 0.5}, 0.5 / 10000},
	} {
		r := newRefBackend()
		r.set("awssm:a", "sk-"+token(), "1")
		c := newCache(t, r, newClock(), cache.Options{Prices: tc.prices})
		c.Resolve(context.Background(), "awssm:a")
		if got := c.Stats().Backends["awssm"].Cost; !near(got, tc.want) {
			t.Errorf("Prices %v: one call cost %g, want %g", tc.prices, got, tc.want)
		}
	}
	// The cache keeps its own copy of the prices.
	p := map[string]float64{"awssm": 0.05}
	r := newRefBackend()
	c := newCache(t, r, newClock(), cache.Options{Prices: p})
	p["awssm"] = 1000
	c.Resolve(context.Background(), "awssm:a")
	if got := c.Stats().Backends["awssm"].Cost; !near(got, 0.05/10000) {
		t.Errorf("a change of the caller's map after New changed the price: one call cost %g", got)
	}
}

// Hits from many goroutines on many schemes all count, in their scheme and
// in Hits; the schemes counted apart are bounded (the cache is above the
// allow list: tenants' rows may name any scheme).
func TestCostMeterParallelAndBounded(t *testing.T) {
	r := newRefBackend()
	const schemes = 100
	for i := range schemes {
		r.set(fmt.Sprintf("s%d:a", i), "sk-"+token(), "1")
	}
	c := newCache(t, r, newClock(), cache.Options{Size: 1000})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 500 {
				c.Resolve(context.Background(), fmt.Sprintf("s%d:a", (w+n)%schemes))
			}
		}()
	}
	wg.Wait()
	st := c.Stats()
	if st.Hits+st.Misses != 8*500 {
		t.Fatalf("Stats = %+v: %d resolves counted, want %d", st, st.Hits+st.Misses, 8*500)
	}
	if len(st.Backends) > 65 {
		t.Fatalf("the meter counts %d schemes apart, want at most 64 and \"*\"", len(st.Backends))
	}
	if _, ok := st.Backends["*"]; !ok {
		t.Fatalf("the schemes past the bound are not counted under \"*\": %v", st.Backends)
	}
	checkMeterConsistent(t, st, 0)
}

func TestPricesParam(t *testing.T) {
	o, err := cache.ParseParams(url.Values{"prices": {"awssm:0.04, vault:0,db:1e-3"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"awssm": 0.04, "azurekv": 0.03, "vault": 0, "db": 0.001}
	if fmt.Sprint(o.Prices) != fmt.Sprint(want) {
		t.Fatalf("prices parsed to %v, want %v (over the defaults)", o.Prices, want)
	}
	for _, bad := range []string{"awssm", "awssm:", ":0.05", "awssm:-0.01", "awssm:NaN", "awssm:Inf", "awssm:cheap",
		"awssm:0.05,", "awssm:0.05,awssm:0.06", ""} {
		_, err := cache.ParseParams(url.Values{"prices": {bad}})
		if !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("prices=%s: %v, want ErrInvalidRef", bad, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "prices") || (!strings.Contains(msg, "scheme:price") && !strings.Contains(msg, "twice")) {
			t.Errorf("prices=%s: the error %q does not name the parameter and its form", bad, msg)
		}
	}
	_, err = cache.ParseParams(url.Values{"prices": {"awssm:-1"}})
	if !strings.Contains(fmt.Sprint(err), `"awssm:-1"`) {
		t.Errorf("the error %v does not name the bad entry", err)
	}
}
