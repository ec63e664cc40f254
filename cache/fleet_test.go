package cache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"

	"sync/atomic"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
)

// The fleet simulation (issue 13, "backend calls per day for 1,000 bots on
// 10 replicas"): replicas caches, each over its own counting fake backend
// of scheme awssm (priced at $0.05 per 10,000 calls), serve bots bots on one
// fake clock. Every replica resolves every bot once per period, the bots
// spread evenly over it (bot i at offset i*period/bots), so the fleet makes
// replicas*bots/period resolves a second. changes key changes a day, evenly
// spaced, each to a bot drawn at random (fixed seed), bump the bot's
// version in the shared store that all backends read.
//
// The resolve rate does not change the calls as long as every entry is hit
// between its fetch and its refresh point (the sweep then refreshes it
// ahead; see Options.LazyRefresh): with a 5 minute TTL that point comes
// about 3.6 to 4 minutes after a fetch, so any period below that gives the
// same calls. The simulation resolves each bot once a minute per replica;
// more often would only add hits.
type fleet struct {
	replicas, bots, changes int
	period, span            time.Duration
	o                       cache.Options
	notify                  bool // each change invalidates the bot on every replica
	checker                 bool // the backends can tell a version (VersionChecker)
}

// fleetStore is the backends' shared truth: each bot's current version.
type fleetStore struct {
	refs     []string
	index    map[string]int
	versions []atomic.Int64
}

// fleetBackend is one replica's view of the store, counting its calls.
type fleetBackend struct {
	store              *fleetStore
	resolves, versions atomic.Int64
}

func (b *fleetBackend) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	b.resolves.Add(1)
	i, ok := b.store.index[ref]
	if !ok {
		return secrets.Secret{}, &secrets.Error{Op: "resolve", Backend: "fleet", Ref: ref, Code: secrets.CodeNotFound, Reason: "no such bot"}
	}
	v := b.store.versions[i].Load()
	s := secrets.NewSecret("sk-fleet-" + strconv.Itoa(i) + "-v" + strconv.FormatInt(v, 10))
	s.Version = strconv.FormatInt(v, 10)
	return s, nil
}

// fleetChecker adds CurrentVersion (AWS DescribeSecret) to a fleetBackend.
type fleetChecker struct{ *fleetBackend }

func (b fleetChecker) CurrentVersion(ctx context.Context, ref string) (string, error) {
	b.versions.Add(1)
	i, ok := b.store.index[ref]
	if !ok {
		return "", &secrets.Error{Op: "version", Backend: "fleet", Ref: ref, Code: secrets.CodeNotFound, Reason: "no such bot"}
	}
	return strconv.FormatInt(b.store.versions[i].Load(), 10), nil
}

// fleetResult is what a simulated span cost the whole fleet.
type fleetResult struct {
	resolves          int64   // resolves the replicas answered
	backendResolves   int64   // GetSecretValue-like calls, counted by the backends
	backendVersions   int64   // DescribeSecret-like calls, counted by the backends
	meterCalls        uint64  // the same, as the caches' cost meters count them
	meterCost         float64 // the meters' estimate, USD
	staleAnswers      int64   // answers with a version older than the store's
	changes           int     // key changes made
	perReplicaMeterOK bool    // each replica's meter equals its backend's counts
}

func (r fleetResult) calls() int64 { return r.backendResolves + r.backendVersions }

func (f fleet) run(tb testing.TB) fleetResult {
	tb.Helper()
	store := &fleetStore{refs: make([]string, f.bots), index: map[string]int{}, versions: make([]atomic.Int64, f.bots)}
	for i := range f.bots {
		store.refs[i] = fmt.Sprintf("awssm:bots/%04d/anthropic", i)
		store.index[store.refs[i]] = i
		store.versions[i].Store(1)
	}
	clk := newClock()
	start := clk.ns.Load()
	backends := make([]*fleetBackend, f.replicas)
	caches := make([]*cache.Cache, f.replicas)
	for r := range caches {
		backends[r] = &fleetBackend{store: store}
		var next secrets.KeyResolver = backends[r]
		if f.checker {
			next = fleetChecker{backends[r]}
		}
		o := f.o
		o.Now = clk.Now
		o.Prices = map[string]float64{"awssm": 0.05}
		o.Size = max(o.Size, f.bots)
		caches[r] = cache.New(next, &o)
	}
	defer func() {
		for _, c := range caches {
			c.Close()
		}
	}()
	var res fleetResult
	rng := rand.New(rand.NewPCG(13, 13))
	step := f.period / time.Duration(f.bots) // one bot every step, on every replica
	changeEvery := time.Duration(0)
	if f.changes > 0 {
		changeEvery = 24 * time.Hour / time.Duration(f.changes)
	}
	nextChange := changeEvery / 2 // changes at the middle of their slices: all 50 in the day
	ctx := context.Background()
	for at, i := time.Duration(0), 0; at < f.span; at, i = at+step, (i+1)%f.bots {
		clk.ns.Store(start + int64(at))
		for changeEvery > 0 && at >= nextChange {
			nextChange += changeEvery
			bot := rng.IntN(f.bots)
			store.versions[bot].Add(1)
			res.changes++
			if f.notify {
				for _, c := range caches {
					c.Invalidate(store.refs[bot])
				}
			}
		}
		ref := store.refs[i]
		current := strconv.FormatInt(store.versions[i].Load(), 10)
		for _, c := range caches {
			s, err := c.Resolve(ctx, ref)
			if err != nil {
				tb.Fatalf("replica resolve of %s at +%v: %v", ref, at, err)
			}
			res.resolves++
			if s.Version != current {
				res.staleAnswers++
			}
			// The backend answers at once on the fake clock: let what
			// this resolve started in the background finish before the
			// clock moves on (else the simulation outruns its goroutines
			// and they store at a later fake time than a backend would).
			c.Settle()
		}
	}
	res.perReplicaMeterOK = true
	for r, c := range caches {
		c.Quiesce()
		b := backends[r]
		st := c.Stats().Backends["awssm"]
		res.backendResolves += b.resolves.Load()
		res.backendVersions += b.versions.Load()
		calls := st.Calls["resolve"] + st.Calls["batch"] + st.Calls["version"]
		res.meterCalls += calls
		res.meterCost += st.Cost
		if st.Calls["resolve"] != uint64(b.resolves.Load()) || st.Calls["version"] != uint64(b.versions.Load()) {
			res.perReplicaMeterOK = false
			tb.Errorf("replica %d: meter %v, backend %d resolves and %d version checks", r, st.Calls, b.resolves.Load(), b.versions.Load())
		}
	}
	return res
}

// fleetCases are the three configurations: A, a 5 minute TTL and no
// notification (changes noticed when the TTL ends); B, a 1 hour TTL with
// notification (the stack's Watcher invalidates a changed bot on every
// replica); C, a 1 hour TTL with 5 minute version checks and no notification.
func fleetCases(replicas, bots int, span time.Duration) []struct {
	name string
	f    fleet
} {
	base := fleet{replicas: replicas, bots: bots, changes: 50, period: time.Minute, span: span}
	a, b, c := base, base, base
	a.o = cache.Options{TTL: 5 * time.Minute}
	b.o, b.notify = cache.Options{TTL: time.Hour}, true
	c.o, c.checker = cache.Options{TTL: time.Hour, CheckInterval: 5 * time.Minute}, true
	return []struct {
		name string
		f    fleet
	}{{"A-ttl5m", a}, {"B-ttl1h-notify", b}, {"C-ttl1h-check5m", c}}
}

func logFleet(tb testing.TB, name string, f fleet, r fleetResult) {
	tb.Helper()
	perDay := float64(24*time.Hour) / float64(f.span)
	tb.Logf("%-16s %d replicas x %d bots, %v simulated, %d changes: %d resolves, backend calls %d (%d resolve + %d version) = %.0f/day, meter $%.4f = $%.4f/day; %d answers older than the store",
		name, f.replicas, f.bots, f.span, r.changes, r.resolves, r.calls(), r.backendResolves, r.backendVersions,
		float64(r.calls())*perDay, r.meterCost, r.meterCost*perDay, r.staleAnswers)
}

// TestFleetCallsPerDay runs the three cases and checks what it can prove:
// the meters count exactly the backends' calls at the set price, a
// notified fleet with a 1 hour TTL makes far fewer calls than a 5 minute
// TTL and serves no answer older than the store, and version checks
// replace fetches. It simulates 10 replicas of 100 bots for 2 hours (the
// same changes a day), which keeps it within seconds under the race
// detector; BenchmarkFleet is the full size (1,000 bots, one day).
func TestFleetCallsPerDay(t *testing.T) {
	bots, span := 100, 2*time.Hour
	results := map[string]fleetResult{}
	for _, tc := range fleetCases(10, bots, span) {
		r := tc.f.run(t)
		logFleet(t, tc.name, tc.f, r)
		results[tc.name] = r
		if !r.perReplicaMeterOK {
			continue
		}
		if r.meterCalls != uint64(r.calls()) {
			t.Errorf("%s: the meters count %d calls, the backends %d", tc.name, r.meterCalls, r.calls())
		}
		if want := float64(r.calls()) * 0.05 / 10000; !near(r.meterCost, want) {
			t.Errorf("%s: the meters estimate $%g for %d calls at $0.05 per 10,000, want $%g", tc.name, r.meterCost, r.calls(), want)
		}
	}
	a, b, c := results["A-ttl5m"], results["B-ttl1h-notify"], results["C-ttl1h-check5m"]
	if b.calls()*5 > a.calls() {
		t.Errorf("a notified fleet with a 1 hour TTL made %d backend calls, a 5 minute TTL %d: want at most a fifth", b.calls(), a.calls())
	}
	if b.staleAnswers != 0 {
		t.Errorf("with notification, %d answers were older than the store", b.staleAnswers)
	}
	if a.staleAnswers == 0 || c.staleAnswers == 0 {
		t.Errorf("without notification no answer was older than the store (A %d, C %d): the simulation's changes did not happen", a.staleAnswers, c.staleAnswers)
	}
	if c.backendVersions == 0 || c.backendResolves >= a.backendResolves {
		t.Errorf("version checks: %d checks and %d resolves (A: %d resolves); want checks made and fewer fetches than A", c.backendVersions, c.backendResolves, a.backendResolves)
	}
}

// BenchmarkFleet runs the full-size simulation once per iteration (run it
// with -benchtime 1x) and reports each case's backend calls and cost per
// simulated day.
func BenchmarkFleet(b *testing.B) {
	for _, tc := range fleetCases(10, 1000, 24*time.Hour) {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				r := tc.f.run(b)
				logFleet(b, tc.name, tc.f, r)
				b.ReportMetric(float64(r.calls()), "calls/day")
				b.ReportMetric(float64(r.backendVersions), "version-calls/day")
				b.ReportMetric(r.meterCost, "USD/day")
				b.ReportMetric(float64(r.staleAnswers), "stale-answers/day")
			}
		})
	}
}
