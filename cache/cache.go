package cache

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/bounds"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Defaults and bounds for Options.
const (
	DefaultSize         = 1000
	MaxSize             = 1 << 20 // secrets are few; a bigger cache is a configuration mistake
	DefaultTTL          = 5 * time.Minute
	DefaultRefreshAhead = 0.8
	DefaultStaleGrace   = 10 * time.Minute
	DefaultStaleWait    = 500 * time.Millisecond
	DefaultNegativeTTL  = 5 * time.Second
	DefaultFetchTimeout = 10 * time.Second
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = 30 * time.Second
	DefaultResolution   = time.Millisecond
	DefaultMaxRefreshes = 16
)

// expiryGuard is how long before a secret's ExpiresAt the lock-free hit path
// stops trusting the coarse clock and reads the precise one: the coarse clock
// lags real time by about ClockResolution, so this leaves a wide margin.
const expiryGuard = time.Second

// maxResolution caps ClockResolution well inside expiryGuard.
const maxResolution = expiryGuard / 10

// Options configures New. A nil *Options means defaults. For the durations,
// zero means the default and a negative value turns the feature off.
type Options struct {
	// Size bounds the number of refs cached (found or not found). Zero or
	// negative means DefaultSize; above MaxSize it is clamped to MaxSize.
	// There is no unbounded mode.
	Size int
	// TTL is how long a value is served before it must be fetched again;
	// zero or negative means DefaultTTL. A secret's ExpiresAt shortens it.
	TTL time.Duration
	// Jitter shortens each entry's TTL by a random duration in [0, Jitter),
	// so refs fetched together do not expire together. Zero means TTL/10;
	// negative means none. It is capped at TTL/2.
	Jitter time.Duration
	// RefreshAhead is the fraction of an entry's lifetime after which a hit
	// starts one background refresh while still answering at once. Zero
	// means DefaultRefreshAhead; 1 or more, or negative, turns it off.
	RefreshAhead float64
	// StaleGrace is how long past its TTL a value may still be served while
	// the backend fails with ErrUnavailable. Zero means DefaultStaleGrace.
	StaleGrace time.Duration
	// StaleWait bounds how long a caller waits on a backend call when a
	// value within the grace window is cached: once the call has been in
	// flight this long (or shortly before the caller's own context deadline,
	// whichever comes first), the caller gets the stale value, and the call
	// goes on in the background and stores its result when it returns. So a
	// backend that hangs (a network that drops packets rather than refusing
	// connections) costs a caller at most StaleWait, not FetchTimeout. Zero
	// means DefaultStaleWait; negative means no bound but the caller's
	// deadline. Measured on the real clock, like FetchTimeout.
	StaleWait time.Duration
	// NegativeTTL is how long an ErrNotFound is remembered. Zero means
	// DefaultNegativeTTL.
	NegativeTTL time.Duration
	// FetchTimeout bounds each backend call, which runs detached from the
	// callers' contexts. Zero or negative means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries of a ref whose
	// backend is unavailable while its stale value is served; the wait
	// doubles from MinBackoff up to MaxBackoff. Zero means the defaults.
	MinBackoff, MaxBackoff time.Duration
	// Now returns the current time; nil means the real clock (its wall
	// reading: see the package doc on clock steps). Tests inject a
	// fake clock. With the real clock the hit path reads a coarse clock ticked
	// every ClockResolution by a background goroutine; with Now set it calls
	// Now on every resolve.
	Now func() time.Time
	// ClockResolution is the tick of the coarse clock (real clock only).
	// Zero or negative means DefaultResolution; above 100ms it is clamped to
	// 100ms, so that the coarse clock never lags a secret's ExpiresAt by
	// more than the margin the hit path keeps before it.
	ClockResolution time.Duration
	// LazyRefresh turns off the refresh sweep: without it, an entry is
	// refreshed ahead only when a hit arrives between RefreshAhead and the
	// end of its lifetime. With the sweep (the default), an entry that was hit
	// at least once since it was fetched is also refreshed when it reaches
	// RefreshAhead, so refs used less often than the refresh window still
	// never wait; an entry not hit during a whole lifetime is left to expire.
	LazyRefresh bool
	// MaxRefreshes bounds the sweep's refreshes in flight at once (each one
	// finishing starts the next queued), so that a bucket of thousands of due
	// entries does not burst against the backend. Zero or negative means
	// DefaultMaxRefreshes. Refreshes started by hits are not counted: there
	// is at most one per ref anyway.
	MaxRefreshes int
	// CheckInterval turns on version checks: when the resolver beneath
	// the cache is a secrets.VersionChecker (found with secrets.Find), an
	// entry whose value has a Version and was hit since its last check is
	// checked in the background once CheckInterval has passed since it
	// was fetched or last checked, with CurrentVersion, a call that costs
	// less than a fetch. A changed version refreshes the entry (a failed
	// refresh drops it: the value is known to be replaced); the same
	// version marks it checked. A scheme whose CurrentVersion fails with
	// an error that errors.Is errors.ErrUnsupported is not checked again;
	// other failures are ignored (the TTL still bounds the entry). Checks
	// share the sweep's MaxRefreshes bound and never delay a hit. Zero or
	// negative means no checks (the default).
	CheckInterval time.Duration
	// Prices are the backends' list prices in US dollars per 10,000 calls,
	// by ref scheme, for the cost estimate of Stats.Backends. Nil means
	// DefaultPrices(); a scheme not in a non-nil map costs 0. Negative,
	// NaN or infinite prices count as 0.
	Prices map[string]float64
}

// Stats counts what the cache did since New. Every resolve that reaches the
// cache (its context not already done, the cache not closed) is exactly one
// of Hits, NegativeHits or Misses.
type Stats struct {
	Hits         uint64 // answered from the cache with a value, without waiting on the backend
	Misses       uint64 // waited for a backend call (its own or one shared with other callers)
	BackendCalls uint64 // calls made beneath the cache: fetches, refreshes, each ResolveMany of Warm, version checks
	Refreshes    uint64 // background refreshes started (refresh-ahead and retries during an outage)
	StaleServed  uint64 // answers with a value past its TTL because the backend was unavailable or slower than StaleWait
	NegativeHits uint64 // answered with a remembered ErrNotFound
	Evictions    uint64 // entries dropped to keep the cache within Size
	// Backends breaks the calls down by the scheme of the refs (the text
	// before the first ':'; refs without one under ""), with the answers
	// given without a call and a cost estimate: the cost meter. Its
	// Avoided add up to Hits plus NegativeHits; its Calls add up to
	// BackendCalls when no Warm batch mixed schemes (a batch counts once
	// in BackendCalls and once in each of its schemes). At most 64
	// schemes are counted apart, the refs of any others under "*".
	Backends map[string]BackendStats
}

// Cache is a bounded, expiring, read-mostly cache in front of a KeyResolver.
// It is safe for concurrent use. Build it with New; stop it with Close.
type Cache struct {
	next secrets.KeyResolver
	o    Options // normalised copy
	now  func() time.Time
	clk  *coarseClock // nil when Options.Now is set

	// read is an immutable snapshot of the index, replaced whole, so the hit
	// path is one atomic load and one map lookup with no lock. It may hold
	// dead entries (val nil) until the next rebuild.
	read atomic.Pointer[map[string]*entry]
	// nextSweep: a resolve at or after this time sweeps (unix ns). Read by
	// every hit, written once a bucket width.
	nextSweep atomic.Int64

	// Padded away from the fields every hit reads.
	_ [128]byte
	// Counted off the hit path (a hit counts in its entry's meter, striped).
	misses, backendCalls, refreshes, staleServed, evictions atomic.Uint64

	mu         sync.Mutex
	lru        *simplelru.LRU[string, *entry] // owns recency and eviction
	all        map[string]*entry              // the live entries, mirroring lru
	readMisses int                            // lookups that found in all what read lacked
	inflight   map[string]*call
	// followed holds the fetches made for a follow (an entry naming the
	// ref, followmark): they join each other, never a fetch of inflight,
	// which may be waiting for them (two entries naming each other), nor
	// does a caller's fetch join them (under the mark, an entry naming yet
	// another ref is refused, which the caller's own resolve would follow).
	followed map[string]*call
	// variants indexes all by base ref (the text before the first '#' or
	// '?'): for each base, the keys that extend it, so that Invalidate of
	// a base drops its variants in O(variants). inflightVariants and
	// followedVariants do the same for inflight and followed.
	variants, inflightVariants, followedVariants variantIndex
	// followers maps a base ref to the entries whose value was resolved
	// through it (entry.followed): "bots:1", whose row names db:7, is
	// dropped with db:7.
	followers map[string]map[*entry]struct{}
	// invSeq numbers invalidations; lastInv and prefixInv hold, by base ref
	// and by prefix, the last one of each while a fetch is in flight, so
	// that a fetch that started before and was resolved through an
	// invalidated ref (Source.Followed) is not stored: it may hold the old
	// value. Cleared when nothing is in flight.
	invSeq    uint64
	lastInv   map[string]uint64
	prefixInv map[string]uint64
	// The refresh sweep: wheel holds, per bucket of refreshAt times, the
	// entries whose value becomes due then; buckets up to swept are done.
	// The check wheel does the same for the times their version check
	// is due (Options.CheckInterval).
	wheels [numWheels]map[int64][]*entry
	swept  int64
	width  int64 // bucket width, ns
	// refreshSweep: the sweep refreshes (not LazyRefresh, RefreshAhead on);
	// checker: the sweep checks versions (CheckInterval set and the
	// resolver beneath can). The sweep runs when either is on.
	refreshSweep bool
	checker      secrets.VersionChecker
	// Due entries wait in sweepQueue; at most MaxRefreshes of their
	// refreshes and checks run at once, each finishing one starting the
	// next, so a bucket of thousands does not hit the backend all at once.
	sweepQueue  []sweepItem
	sweepActive int
	// seq numbers the values stored (entry.seq is its value's), and
	// batches are Warm's ResolveMany calls running: a batch stores a
	// result only if no newer value was stored and no Invalidate or Purge
	// of the ref ran since the batch began (its read may predate them).
	seq     uint64
	batches map[*batch]struct{}
	closed  bool
	// meters holds each scheme's counters (at most maxMeters), prices the
	// normalised copy of Options.Prices.
	meters map[string]*meter
	prices map[string]float64
	// wg counts the background goroutines (fetches, the clock). A pointer:
	// the clock goroutine must not keep c reachable.
	wg        *sync.WaitGroup
	closing   context.Context
	cancel    context.CancelFunc
	clockOnce sync.Once
	isClosed  atomic.Bool
}

var (
	_ secrets.KeyResolver = (*Cache)(nil)
	_ secrets.Unwrapper   = (*Cache)(nil)
)

// entry is the stable node of one ref. Its value is swapped atomically on
// refresh, so a refresh never disturbs the read snapshot.
type entry struct {
	key        string
	m          *meter                // its scheme's counters, set at insert
	val        atomic.Pointer[value] // nil once the entry is dead
	touched    atomic.Int64          // coarse tick of the last recency update
	refreshing atomic.Bool           // a background refresh is running
	failures   atomic.Int32          // consecutive ErrUnavailable since the last success
	retryAt    atomic.Int64          // no background retry before this (unix ns)
	seq        uint64                // c.seq when its value was stored (under mu)
	// Its places in the refresh and check wheels (under mu): removed from
	// there as soon as it is dropped or re-stored, so the wheels hold live
	// entries only.
	pos [numWheels]wheelPos
	// checkAt is when its value's next version check is due, checking
	// whether one is running (under mu).
	checkAt  int64
	checking bool
	// followed is the base ref its value was resolved through, when its
	// backend's entry named another ref (Source.Followed), or "" (under mu):
	// an invalidation of that ref reaches it too (see followers).
	followed string
}

// wheelPos is an entry's place in one wheel, if in.
type wheelPos struct {
	bucket int64
	slot   int
	in     bool
}

// The wheels, indexes of Cache.wheels and entry.pos.
const (
	refreshWheel = iota
	checkWheel
	numWheels
)

// value is immutable once stored. Times are unix nanoseconds.
type value struct {
	secret     secrets.Secret
	err        error         // non-nil for a remembered ErrNotFound; else secret's Source.Cached is set
	fastUntil  int64         // the lock-free path answers before this
	refreshAt  int64         // a hit after this starts a background refresh
	freshUntil int64         // TTL (or ExpiresAt) ends
	staleUntil int64         // grace window ends (ErrUnavailable only)
	hardExpiry int64         // ExpiresAt; 0 means none
	hit        atomic.Uint32 // hitSinceFetch | hitSinceCheck
}

// The bits of value.hit, which every hit sets (in one atomic Or, and only
// when they are not both set already, so a hot entry's hits only read it).
const (
	hitSinceFetch = 1 << iota // the sweep refreshes it
	hitSinceCheck             // its version is worth checking; cleared by a check
	hitBoth       = hitSinceFetch | hitSinceCheck
)

// call is one backend fetch shared by every caller that misses the same ref.
type call struct {
	done        chan struct{}
	secret      secrets.Secret
	err         error
	stale       *value    // set when the fetch failed and a stale value may be served
	start       time.Time // when the backend call began (real clock, for StaleWait)
	swept       bool      // started by the sweep: counts in sweepActive
	waiters     int       // callers that joined or started it (for tests)
	invalidated bool      // Invalidate or Purge ran meanwhile: do not store the result
	invStart    uint64    // Cache.invSeq when it began (see lastInv)
	changed     bool      // a refresh after a version check found the value changed
	follow      bool      // in followed, not inflight
}

// New returns a Cache in front of next. It starts nothing: the coarse clock
// starts on the first miss. It panics if next is nil.
func New(next secrets.KeyResolver, opts *Options) *Cache {
	if next == nil {
		panic("cache: New with a nil KeyResolver")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	o = normalise(o)
	c := &Cache{next: next, o: o, now: o.Now, all: map[string]*entry{}, inflight: map[string]*call{}, followed: map[string]*call{}, wg: new(sync.WaitGroup),
		batches:  map[*batch]struct{}{},
		variants: variantIndex{}, inflightVariants: variantIndex{}, followedVariants: variantIndex{}, followers: map[string]map[*entry]struct{}{}, lastInv: map[string]uint64{}, prefixInv: map[string]uint64{},
		meters: map[string]*meter{}, prices: o.Prices}
	for w := range c.wheels {
		c.wheels[w] = map[int64][]*entry{}
	}
	c.refreshSweep = !o.LazyRefresh && o.RefreshAhead < 1
	if o.CheckInterval > 0 {
		c.checker, _ = secrets.Find[secrets.VersionChecker](next)
	}
	// Buckets narrow enough that an entry is refreshed well inside its
	// refresh window (the last 1-RefreshAhead of its lifetime), and
	// checked within a sixteenth of CheckInterval of its due time.
	c.width = int64(max(time.Millisecond, min(o.TTL/64, time.Duration(float64(o.TTL)*(1-o.RefreshAhead)/8))))
	if c.checker != nil {
		if c.refreshSweep {
			c.width = min(c.width, int64(max(time.Millisecond, o.CheckInterval/16)))
		} else {
			c.width = int64(max(time.Millisecond, o.CheckInterval/16))
		}
	}
	if !c.refreshSweep && c.checker == nil {
		c.nextSweep.Store(math.MaxInt64)
	}
	c.lru, _ = simplelru.NewLRU[string, *entry](o.Size, nil) // Size > 0 after normalise
	empty := map[string]*entry{}
	c.read.Store(&empty)
	c.closing, c.cancel = context.WithCancel(context.Background())
	if c.now == nil {
		c.now = time.Now
		c.clk = &coarseClock{stop: make(chan struct{})}
	}
	return c
}

func normalise(o Options) Options {
	if o.Size <= 0 {
		o.Size = DefaultSize
	}
	o.Size = min(o.Size, MaxSize)
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	switch {
	case o.Jitter == 0:
		o.Jitter = o.TTL / 10
	case o.Jitter < 0:
		o.Jitter = 0
	}
	o.Jitter = min(o.Jitter, o.TTL/2)
	switch {
	case o.RefreshAhead == 0:
		o.RefreshAhead = DefaultRefreshAhead
	case o.RefreshAhead < 0 || o.RefreshAhead >= 1 || math.IsNaN(o.RefreshAhead):
		o.RefreshAhead = 1
	}
	if o.StaleGrace == 0 {
		o.StaleGrace = DefaultStaleGrace
	}
	o.StaleGrace = max(o.StaleGrace, 0)
	if o.StaleWait == 0 {
		o.StaleWait = DefaultStaleWait
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	o.NegativeTTL = max(o.NegativeTTL, 0)
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.MaxRefreshes <= 0 {
		o.MaxRefreshes = DefaultMaxRefreshes
	}
	if o.ClockResolution <= 0 {
		o.ClockResolution = DefaultResolution
	}
	// The lock-free path trusts the coarse clock until expiryGuard before a
	// secret's ExpiresAt: a clock coarser than that could serve it past.
	o.ClockResolution = min(o.ClockResolution, maxResolution)
	// A copy: the caller may change its map after New.
	prices := o.Prices
	if prices == nil {
		prices = DefaultPrices()
	}
	o.Prices = make(map[string]float64, len(prices))
	for k, p := range prices {
		if p > 0 && !math.IsInf(p, 1) {
			o.Prices[k] = p
		}
	}
	return o
}

// Resolve returns the cached secret for ref, fetching it from next on a miss
// (one backend call however many callers miss ref at once). A hit takes no
// lock and makes no allocation; with the real clock it reads the coarse
// clock, an atomic load, instead of calling time.Now.
func (c *Cache) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	if err := ctx.Err(); err != nil {
		return secrets.Secret{}, secrets.ContextError("resolve", Backend, ref, err)
	}
	var now int64
	if c.clk != nil {
		now = c.clk.nanos.Load()
	} else {
		now = c.now().UnixNano()
	}
	if e := (*c.read.Load())[ref]; e != nil {
		if v := e.val.Load(); v != nil && now < v.fastUntil {
			if tick := now >> tickShift; e.touched.Load() != tick {
				c.touch(e, tick)
			}
			if v.hit.Load() != hitBoth {
				v.hit.Or(hitBoth)
			}
			if now >= c.nextSweep.Load() {
				c.sweep(now)
			}
			// answer's work, inlined by hand: returning the Secret through
			// a second frame showed up in the hit's profile.
			if v.err == nil {
				e.m.hits.inc()
			} else {
				e.m.negHits.inc() // v.secret is the zero Secret
			}
			return v.secret, v.err
		}
	}
	return c.resolveSlow(ctx, ref)
}

// tickShift makes recency updates at most about once a millisecond per ref:
// golang-lru's Get takes a lock and moves a list element, too much for every hit.
const tickShift = 20

// answer returns e's value v to a caller without a backend call, counting
// and annotating it.
func (c *Cache) answer(e *entry, v *value, stale bool) (secrets.Secret, error) {
	if v.err != nil {
		e.m.negHits.inc()
		return secrets.Secret{}, v.err
	}
	e.m.hits.inc()
	if stale {
		c.staleServed.Add(1)
		return staleSecret(v), nil
	}
	return v.secret, nil
}

// staleSecret is v's secret marked as served stale.
func staleSecret(v *value) secrets.Secret {
	s := v.secret
	s.Source.Stale = true
	return s
}

func (c *Cache) touch(e *entry, tick int64) {
	if e.touched.Load() == tick || e.touched.Swap(tick) == tick {
		return // another caller is doing it
	}
	c.mu.Lock()
	if e.val.Load() != nil {
		c.lru.Get(e.key)
	}
	c.mu.Unlock()
}

// resolveSlow reads the precise clock and handles everything but a plain hit.
func (c *Cache) resolveSlow(ctx context.Context, ref string) (secrets.Secret, error) {
	if c.isClosed.Load() {
		return secrets.Secret{}, c.errClosed(ref)
	}
	c.startClock()
	now := c.now().UnixNano()
	e := c.lookup(ref)
	if now >= c.nextSweep.Load() {
		if e != nil {
			// This resolve's hit counts for the sweep, as on the lock-free
			// path (the switch below marks it the same).
			if v := e.val.Load(); v != nil && v.err == nil && now < v.freshUntil && (v.hardExpiry == 0 || now < v.hardExpiry) {
				v.hit.Or(hitBoth)
			}
		}
		c.sweep(now)
	}
	var stale *value // a value the caller may fall back on if the fetch is slow
	var staleEntry *entry
	if e != nil {
		if v := e.val.Load(); v != nil {
			switch {
			case v.err != nil:
				if now < v.freshUntil {
					return c.answer(e, v, false)
				}
			case v.hardExpiry != 0 && now >= v.hardExpiry:
				// Never served past ExpiresAt, not even stale: fetch.
			case now < v.freshUntil:
				c.touch(e, now>>tickShift)
				if v.hit.Load() != hitBoth {
					v.hit.Or(hitBoth)
				}
				if now >= v.refreshAt && now >= e.retryAt.Load() {
					c.refresh(ctx, e)
				}
				return c.answer(e, v, false)
			case now < v.staleUntil && e.failures.Load() > 0:
				// The backend is known to be down: answer stale at once and
				// retry in the background once the backoff has passed.
				c.touch(e, now>>tickShift)
				if now >= e.retryAt.Load() {
					c.refresh(ctx, e)
				}
				return c.answer(e, v, true)
			case now < v.staleUntil:
				// Past its TTL, within the grace window: fetch, but fall
				// back on this value if the backend is slow to answer.
				stale, staleEntry = v, e
			}
		}
	}
	c.misses.Add(1)
	cl, _ := c.fetch(ctx, ref)
	var fallback *value
	if stale != nil {
		fallback = c.awaitOrStale(ctx, cl, staleEntry, stale)
	}
	if fallback == nil {
		select {
		case <-cl.done:
		case <-ctx.Done():
			return secrets.Secret{}, secrets.ContextError("resolve", Backend, ref, ctx.Err())
		}
	}
	if fallback == nil {
		if cl.err == nil {
			return cl.secret, nil
		}
		fallback = cl.stale
	}
	if fallback != nil {
		c.staleServed.Add(1)
		return staleSecret(fallback), nil
	}
	return secrets.Secret{}, cl.err
}

// deadlineMargin is how long before its context's deadline a caller stops
// waiting on a slow fetch and takes the stale value: a tenth of the time it
// has left, at most maxDeadlineMargin, which leaves it time to use the
// value (answering is a memory read) even on a loaded machine.
func deadlineMargin(left time.Duration) time.Duration {
	return min(left/10, maxDeadlineMargin)
}

const maxDeadlineMargin = 50 * time.Millisecond

// awaitOrStale waits for the fetch cl of a ref whose cached value stale is
// past its TTL but within the grace window. It returns nil once cl is done
// (or the caller's context is canceled: the caller reads which), or stale
// when the fetch has been in flight for StaleWait, or the caller's deadline
// is near or has passed, and stale may still be served. The fetch goes on
// either way and stores what it gets.
func (c *Cache) awaitOrStale(ctx context.Context, cl *call, e *entry, stale *value) *value {
	wait, bounded := time.Duration(0), false
	if c.o.StaleWait > 0 {
		wait, bounded = c.o.StaleWait-time.Since(cl.start), true
	}
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if d := left - deadlineMargin(left); !bounded || d < wait {
			wait, bounded = d, true
		}
	}
	var timeout <-chan time.Time
	if bounded {
		t := time.NewTimer(max(wait, 0))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-cl.done:
		return nil
	case <-timeout:
	case <-ctx.Done():
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil // canceled: the caller does not want an answer
		}
	}
	select {
	case <-cl.done:
		return nil // it answered meanwhile: prefer the fetched result
	default:
	}
	// The value may have been dropped meanwhile (Invalidate, Purge, Close,
	// or the fetch found the secret gone), and time has passed: check again
	// on the precise clock that it may still be served.
	now := c.now().UnixNano()
	if e.val.Load() != stale || now >= stale.staleUntil || (stale.hardExpiry != 0 && now >= stale.hardExpiry) {
		return nil
	}
	return stale
}

// lookup returns the live entry for ref, or nil.
func (c *Cache) lookup(ref string) *entry {
	if e := (*c.read.Load())[ref]; e != nil && e.val.Load() != nil {
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.all[ref]
	if e != nil {
		// The snapshot is behind. Rebuilding costs len(all), so do it once
		// that many lookups have paid the lock: amortised O(1), like sync.Map.
		c.readMisses++
		if c.readMisses >= len(c.all) {
			c.rebuildLocked()
		}
	}
	return e
}

func (c *Cache) rebuildLocked() {
	m := make(map[string]*entry, len(c.all))
	for k, e := range c.all {
		m[k] = e
	}
	c.read.Store(&m)
	c.readMisses = 0
}

// Purge drops every entry, like Invalidate of every ref. It never waits for
// the backend.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purgeLocked()
}

func (c *Cache) purgeLocked() {
	// Every entry is dropped below; none is reused, so their wheel marks
	// no longer matter.
	for _, w := range c.wheels {
		clear(w)
	}
	clear(c.sweepQueue)
	c.sweepQueue = nil
	for _, m := range []map[string]*call{c.inflight, c.followed} {
		for ref, cl := range m {
			cl.invalidated = true
			delete(m, ref)
		}
	}
	for b := range c.batches {
		for ref := range b.refs {
			b.refs[ref] = true
		}
	}
	for _, e := range c.all {
		e.val.Store(nil)
	}
	c.all = map[string]*entry{}
	clear(c.variants)
	clear(c.inflightVariants)
	clear(c.followedVariants)
	clear(c.followers)
	c.invSeq++
	c.prefixInv[""] = c.invSeq // everything
	c.lru.Purge()
	empty := map[string]*entry{}
	c.read.Store(&empty)
	c.readMisses = 0
}

// Len returns the number of refs cached, found or not found.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.all)
}

// Stats returns the counters since New. Backends' Calls and BackendCalls
// are read at one instant (both are counted under the cache's lock); the
// other counters are read one by one while the cache runs.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	by, hits, negHits := c.backendStatsLocked()
	calls := c.backendCalls.Load()
	c.mu.Unlock()
	return Stats{
		Hits:         hits,
		Misses:       c.misses.Load(),
		BackendCalls: calls,
		Refreshes:    c.refreshes.Load(),
		StaleServed:  c.staleServed.Load(),
		NegativeHits: negHits,
		Evictions:    c.evictions.Load(),
		Backends:     by,
	}
}

// Unwrap returns the resolver the cache is in front of, so secrets.Find can
// reach its optional abilities (io.Closer, Pinger, BatchResolver).
func (c *Cache) Unwrap() secrets.KeyResolver { return c.next }

// closeGrace is how long past FetchTimeout Close waits for backend calls
// that ignore the cancellation.
const closeGrace = time.Second

// Close stops the cache: it cancels the backend calls in flight, waits for
// every background goroutine to return, and drops the entries. Later resolves
// fail with ErrUnavailable. Close does not close next: the cache does not own
// it. Whoever opened the backend closes it, for example through
// secrets.Find[io.Closer](c.Unwrap()). Close is idempotent and returns nil.
//
// A backend that ignores its context's cancellation cannot be stopped: Close
// waits at most FetchTimeout plus a second for it, then returns, and that
// call's goroutine outlives Close until the backend returns (its result is
// not stored).
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.waitBounded()
		return nil
	}
	c.closed = true
	c.isClosed.Store(true)
	c.purgeLocked()
	c.mu.Unlock()
	c.cancel()
	if c.clk != nil {
		c.clockOnce.Do(func() {}) // a clock not yet started never starts
		c.clk.stopOnce.Do(func() { close(c.clk.stop) })
	}
	c.waitBounded()
	return nil
}

// waitBounded waits for the background goroutines, or FetchTimeout plus
// closeGrace if some backend call ignores the cancellation.
func (c *Cache) waitBounded() {
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(time.Duration(bounds.SaturatingAdd(int64(c.o.FetchTimeout), int64(closeGrace))))
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// Backend is the Backend of the errors the cache itself gives: the caller's
// context ended, or the cache is closed.
const Backend = "cache"

func (c *Cache) errClosed(ref string) error {
	return &secrets.Error{Op: "resolve", Backend: Backend, Ref: ref, Code: secrets.CodeUnavailable,
		Reason: "the cache is closed"}
}
