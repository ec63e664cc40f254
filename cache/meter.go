package cache

import (
	"strings"
	"sync/atomic"
)

// BackendStats is what the cache did for the refs of one scheme: the backend
// calls it made, by kind, the answers it gave without one, and what the
// calls cost at the scheme's list price.
type BackendStats struct {
	// Calls counts the calls made to the resolvers beneath the cache for
	// refs of the scheme, by kind: "resolve" (a fetch or refresh through
	// Resolve), "batch" (a ResolveMany of Warm, counted once for each scheme
	// it held refs of) and "version" (a CurrentVersion check, see
	// Options.CheckInterval). Every kind is present, zero or not.
	Calls map[string]uint64
	// Avoided counts the answers given from the cache without a backend
	// call: hits and negative hits (a stale value served while the backend
	// is known to be down is one of the hits, as in Stats.Hits).
	Avoided uint64
	// Cost estimates the calls' price in US dollars: every call of every
	// kind at the scheme's price per 10,000 calls (Options.Prices). It is
	// a list-price estimate: a batch counts as one call whatever the
	// backend splits it into (AWS takes 20 ids a BatchGetSecretValue).
	Cost float64
}

// Call kinds, the keys of BackendStats.Calls.
const (
	kindResolve = iota
	kindBatch
	kindVersion
	numKinds
)

var kindNames = [numKinds]string{"resolve", "batch", "version"}

// DefaultPrices returns the list prices Options.Prices defaults to, in US
// dollars per 10,000 calls, by the schemes the default configuration serves
// those backends under: AWS Secrets Manager $0.05 per 10,000 API calls,
// Azure Key Vault $0.03 per 10,000 operations (standard tier). Each call
// returns a new map.
func DefaultPrices() map[string]float64 {
	return map[string]float64{"awssm": 0.05, "azurekv": 0.03}
}

// maxMeters bounds the schemes counted apart. The cache sits above the
// allow list, so the refs it sees may come from tenant-editable rows: a
// meter per distinct scheme would let them grow the cache's memory without
// bound. Refs of schemes past the bound are counted under otherScheme.
const (
	maxMeters   = 64
	otherScheme = "*"
)

// meter counts one scheme's traffic. The hit counters are striped, like the
// cache's other hit-path counters: each entry points at its scheme's meter,
// so a hit counts in it with no more work than one global counter took.
type meter struct {
	_             [128]byte // away from whatever the allocator put before it
	hits, negHits stripedCounter
	calls         [numKinds]atomic.Uint64
	price         float64 // USD per 10,000 calls
	// noCheck is set once CurrentVersion has answered ErrUnsupported for
	// a ref of the scheme: it is never asked again.
	noCheck atomic.Bool
}

// schemeOf is the text of ref before its first ':' ("" when it has none).
func schemeOf(ref string) string {
	if i := strings.IndexByte(ref, ':'); i >= 0 {
		return ref[:i]
	}
	return ""
}

// meterLocked returns the meter of ref's scheme, making it on first use.
func (c *Cache) meterLocked(ref string) *meter {
	scheme := schemeOf(ref)
	if m := c.meters[scheme]; m != nil {
		return m
	}
	if len(c.meters) >= maxMeters {
		scheme = otherScheme
		if m := c.meters[scheme]; m != nil {
			return m
		}
	}
	// Clone: the key must not pin the caller's ref.
	scheme = strings.Clone(scheme)
	m := &meter{price: c.prices[scheme]}
	if scheme == otherScheme && len(c.meters) >= maxMeters {
		m.price = 0 // a mixture of schemes has no one price
	}
	c.meters[scheme] = m
	return m
}

// backendStatsLocked returns the per-scheme breakdown, and the sums of the
// hit counters, which are Stats.Hits and Stats.NegativeHits.
func (c *Cache) backendStatsLocked() (by map[string]BackendStats, hits, negHits uint64) {
	by = make(map[string]BackendStats, len(c.meters))
	for scheme, m := range c.meters {
		h, n := m.hits.load(), m.negHits.load()
		hits += h
		negHits += n
		bs := BackendStats{Calls: make(map[string]uint64, numKinds), Avoided: h + n}
		var calls uint64
		for k := range numKinds {
			n := m.calls[k].Load()
			bs.Calls[kindNames[k]] = n
			calls += n
		}
		bs.Cost = float64(calls) * m.price / 10000
		by[scheme] = bs
	}
	return by, hits, negHits
}
