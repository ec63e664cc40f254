package cache

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	secrets "github.com/keyward/secrets"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Defaults and bounds for Options.
const (
	DefaultSize         = 1000
	MaxSize             = 1 << 20 // secrets are few; a bigger cache is a configuration mistake
	DefaultTTL          = 5 * time.Minute
	DefaultRefreshAhead = 0.8
	DefaultStaleGrace   = 10 * time.Minute
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
	// Now returns the current time; nil means the real clock. Tests inject a
	// fake clock. With the real clock the hit path reads a coarse clock ticked
	// every ClockResolution by a background goroutine; with Now set it calls
	// Now on every resolve.
	Now func() time.Time
	// ClockResolution is the tick of the coarse clock (real clock only).
	// Zero or negative means DefaultResolution.
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
}

// Stats counts what the cache did since New. Every resolve that reaches the
// cache (its context not already done, the cache not closed) is exactly one
// of Hits, NegativeHits or Misses.
type Stats struct {
	Hits         uint64 // answered from the cache with a value, without waiting on the backend
	Misses       uint64 // waited for a backend call (its own or one shared with other callers)
	BackendCalls uint64 // calls made to next: fetches, refreshes, and each ResolveMany of Warm
	Refreshes    uint64 // background refreshes started (refresh-ahead and retries during an outage)
	StaleServed  uint64 // answers with a value past its TTL because the backend was unavailable
	NegativeHits uint64 // answered with a remembered ErrNotFound
	Evictions    uint64 // entries dropped to keep the cache within Size
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

	// Counted on the hit path, so striped, and padded away from the fields
	// every hit reads (false sharing would cost more than the counting).
	_             [128]byte
	hits, negHits stripedCounter
	_             [128]byte
	// Counted off it.
	misses, backendCalls, refreshes, staleServed, evictions atomic.Uint64

	mu         sync.Mutex
	lru        *simplelru.LRU[string, *entry] // owns recency and eviction
	all        map[string]*entry              // the live entries, mirroring lru
	readMisses int                            // lookups that found in all what read lacked
	inflight   map[string]*call
	// The refresh sweep: wheel holds, per bucket of refreshAt times, the
	// entries whose value becomes due then; buckets up to swept are done.
	wheel map[int64][]*entry
	swept int64
	width int64 // bucket width, ns
	// Due entries wait in sweepQueue; at most MaxRefreshes of their
	// refreshes run at once, each finishing one starting the next, so a
	// bucket of thousands does not hit the backend all at once.
	sweepQueue  []*entry
	sweepActive int
	closed      bool
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
	val        atomic.Pointer[value] // nil once the entry is dead
	touched    atomic.Int64          // coarse tick of the last recency update
	refreshing atomic.Bool           // a background refresh is running
	failures   atomic.Int32          // consecutive ErrUnavailable since the last success
	retryAt    atomic.Int64          // no background retry before this (unix ns)
}

// value is immutable once stored. Times are unix nanoseconds.
type value struct {
	secret     secrets.Secret
	err        error // non-nil for a remembered ErrNotFound
	info       secrets.InfoSnapshot
	fastUntil  int64       // the lock-free path answers before this
	refreshAt  int64       // a hit after this starts a background refresh
	freshUntil int64       // TTL (or ExpiresAt) ends
	staleUntil int64       // grace window ends (ErrUnavailable only)
	hardExpiry int64       // ExpiresAt; 0 means none
	used       atomic.Bool // hit since fetched: the sweep refreshes it
}

// call is one backend fetch shared by every caller that misses the same ref.
type call struct {
	done        chan struct{}
	secret      secrets.Secret
	err         error
	info        secrets.InfoSnapshot
	stale       *value // set when the fetch failed and a stale value may be served
	swept       bool   // started by the sweep: counts in sweepActive
	waiters     int    // callers that joined or started it (for tests)
	invalidated bool   // Invalidate or Purge ran meanwhile: do not store the result
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
	c := &Cache{next: next, o: o, now: o.Now, all: map[string]*entry{}, inflight: map[string]*call{}, wg: new(sync.WaitGroup),
		wheel: map[int64][]*entry{}}
	// Buckets narrow enough that an entry is refreshed well inside its
	// refresh window (the last 1-RefreshAhead of its lifetime).
	c.width = int64(max(time.Millisecond, min(o.TTL/64, time.Duration(float64(o.TTL)*(1-o.RefreshAhead)/8))))
	if o.LazyRefresh || o.RefreshAhead >= 1 {
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
	return o
}

// Resolve returns the cached secret for ref, fetching it from next on a miss
// (one backend call however many callers miss ref at once). A hit takes no
// lock and makes no allocation; with the real clock it reads the coarse
// clock, an atomic load, instead of calling time.Now.
func (c *Cache) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	if err := ctx.Err(); err != nil {
		return secrets.Secret{}, err
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
			if !v.used.Load() {
				v.used.Store(true)
			}
			if now >= c.nextSweep.Load() {
				c.sweep(now)
			}
			// answer's work, inlined by hand: returning the Secret through
			// a second frame showed up in the hit's profile.
			if info := secrets.InfoFrom(ctx); info != nil {
				info.MarkCacheHit(false)
				info.Merge(v.info)
			}
			if v.err == nil {
				c.hits.inc()
			} else {
				c.negHits.inc() // v.secret is the zero Secret
			}
			return v.secret, v.err
		}
	}
	return c.resolveSlow(ctx, ref)
}

// tickShift makes recency updates at most about once a millisecond per ref:
// golang-lru's Get takes a lock and moves a list element, too much for every hit.
const tickShift = 20

// answer returns v to a caller without a backend call, counting and
// annotating it.
func (c *Cache) answer(ctx context.Context, v *value, stale bool) (secrets.Secret, error) {
	info := secrets.InfoFrom(ctx)
	if info != nil {
		info.MarkCacheHit(stale)
		info.Merge(v.info)
	}
	if v.err != nil {
		c.negHits.inc()
		return secrets.Secret{}, v.err
	}
	c.hits.inc()
	if stale {
		c.staleServed.Add(1)
	}
	return v.secret, nil
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
	if now >= c.nextSweep.Load() {
		c.sweep(now)
	}
	if e := c.lookup(ref); e != nil {
		if v := e.val.Load(); v != nil {
			switch {
			case v.err != nil:
				if now < v.freshUntil {
					return c.answer(ctx, v, false)
				}
			case v.hardExpiry != 0 && now >= v.hardExpiry:
				// Never served past ExpiresAt, not even stale: fetch.
			case now < v.freshUntil:
				c.touch(e, now>>tickShift)
				if !v.used.Load() {
					v.used.Store(true)
				}
				if now >= v.refreshAt && now >= e.retryAt.Load() {
					c.refresh(ctx, e)
				}
				return c.answer(ctx, v, false)
			case now < v.staleUntil && e.failures.Load() > 0:
				// The backend is known to be down: answer stale at once and
				// retry in the background once the backoff has passed.
				c.touch(e, now>>tickShift)
				if now >= e.retryAt.Load() {
					c.refresh(ctx, e)
				}
				return c.answer(ctx, v, true)
			}
		}
	}
	c.misses.Add(1)
	cl, _ := c.fetch(ctx, ref)
	select {
	case <-cl.done:
	case <-ctx.Done():
		return secrets.Secret{}, ctx.Err()
	}
	info := secrets.InfoFrom(ctx)
	info.Merge(cl.info)
	if cl.err == nil {
		return cl.secret, nil
	}
	if cl.stale != nil {
		info.MarkCacheHit(true)
		info.Merge(cl.stale.info)
		c.staleServed.Add(1)
		return cl.stale.secret, nil
	}
	return secrets.Secret{}, cl.err
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

// sweep starts a background refresh of every entry that was hit since it was
// fetched and whose refresh time has passed, bucket by bucket. One caller
// does it per bucket width; the others find nextSweep moved on.
func (c *Cache) sweep(now int64) {
	due := now / c.width // buckets before due are wholly past
	c.mu.Lock()
	if c.closed || now < c.nextSweep.Load() {
		c.mu.Unlock()
		return
	}
	if c.swept == 0 {
		c.swept = due - 1
	}
	var todo []*entry
	take := func(b int64) {
		todo = append(todo, c.wheel[b]...)
		delete(c.wheel, b)
	}
	if due-c.swept > int64(len(c.wheel)) {
		// The clock jumped (or the cache sat idle): walk the buckets
		// that exist rather than every bucket in between.
		for b := range c.wheel {
			if b < due {
				take(b)
			}
		}
	} else {
		for b := c.swept + 1; b < due; b++ {
			take(b)
		}
	}
	c.swept = due - 1
	c.nextSweep.Store((due + 1) * c.width)
	c.sweepQueue = append(c.sweepQueue, todo...)
	c.pumpLocked(now)
	c.mu.Unlock()
}

// pumpLocked starts queued sweep refreshes while fewer than MaxRefreshes
// run. Entries no longer due (refreshed, dropped, not hit) are skipped.
func (c *Cache) pumpLocked(now int64) {
	for c.sweepActive < c.o.MaxRefreshes && len(c.sweepQueue) > 0 && !c.closed {
		e := c.sweepQueue[0]
		c.sweepQueue[0] = nil
		c.sweepQueue = c.sweepQueue[1:]
		v := e.val.Load()
		if v == nil || v.err != nil || !v.used.Load() || now < v.refreshAt || now >= v.freshUntil ||
			now < e.retryAt.Load() || c.all[e.key] != e || !e.refreshing.CompareAndSwap(false, true) {
			continue
		}
		if cl, started := c.fetchLocked(context.Background(), e.key); started {
			cl.swept = true
			c.sweepActive++
			c.refreshes.Add(1)
		}
	}
	if len(c.sweepQueue) == 0 {
		c.sweepQueue = nil
	}
}

// refresh starts one background refresh of e, unless one is running.
func (c *Cache) refresh(ctx context.Context, e *entry) {
	if !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	if _, started := c.fetch(ctx, e.key); started {
		c.refreshes.Add(1)
	}
}

// fetch joins the backend call in flight for ref or starts one. The call
// runs in its own goroutine, detached from ctx's cancellation (but keeping
// its values), with its own timeout; Close cancels it.
func (c *Cache) fetch(ctx context.Context, ref string) (cl *call, started bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetchLocked(ctx, ref)
}

func (c *Cache) fetchLocked(ctx context.Context, ref string) (cl *call, started bool) {
	if cl := c.inflight[ref]; cl != nil {
		cl.waiters++
		return cl, false
	}
	if c.closed {
		cl := &call{done: make(chan struct{}), err: c.errClosed(ref)}
		close(cl.done)
		return cl, false
	}
	cl = &call{done: make(chan struct{}), waiters: 1}
	c.inflight[ref] = cl
	c.wg.Add(1)
	c.backendCalls.Add(1)
	go c.run(context.WithoutCancel(ctx), ref, cl)
	return cl, true
}

func (c *Cache) run(ctx context.Context, ref string, cl *call) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(ctx, c.o.FetchTimeout)
	stop := context.AfterFunc(c.closing, cancel)
	ctx, info := secrets.WithInfo(ctx)
	s, err := c.next.Resolve(ctx, ref)
	stop()
	cancel()
	cl.info = info.Snapshot()
	cl.secret, cl.err, cl.stale = c.store(ref, cl, s, err, cl.info)
	close(cl.done)
	if cl.swept {
		c.mu.Lock()
		c.sweepActive--
		c.pumpLocked(c.now().UnixNano())
		c.mu.Unlock()
	}
}

// store records the outcome of a backend call for ref and returns what the
// waiting callers get. cl is nil for Warm's batch results.
func (c *Cache) store(ref string, cl *call, s secrets.Secret, err error, info secrets.InfoSnapshot) (secrets.Secret, error, *value) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixNano()
	if cl != nil && c.inflight[ref] == cl {
		delete(c.inflight, ref)
	}
	e := c.all[ref]
	if e != nil && cl != nil {
		e.refreshing.Store(false)
	}
	keep := !c.closed && (cl == nil || !cl.invalidated)
	if err == nil && s.ExpiredAt(time.Unix(0, now)) {
		err = &secrets.Error{Op: "resolve", Backend: backendName(info), Ref: ref, Code: secrets.CodeExpired,
			Reason: "the secret expired at " + s.ExpiresAt.UTC().Format(time.RFC3339) + "; rotate it in its backend"}
	} else if err != nil {
		err = asError(ref, info, err, c.o.FetchTimeout)
	}
	if err != nil {
		s = secrets.Secret{}
	}
	if !keep {
		// Invalidated meanwhile (or closed): answer the callers that were
		// waiting, but leave the cache as Invalidate left it.
		return s, err, nil
	}
	switch code := secrets.CodeOf(err); {
	case err == nil:
		if e == nil {
			e = c.insertLocked(ref)
		}
		v := c.newValue(s, nil, info, now)
		e.val.Store(v)
		if v.refreshAt < v.freshUntil && c.nextSweep.Load() != math.MaxInt64 {
			b := v.refreshAt / c.width
			c.wheel[b] = append(c.wheel[b], e)
		}
		e.failures.Store(0)
		e.retryAt.Store(0)
		return s, nil, nil
	case code == secrets.CodeUnavailable && e != nil:
		if v := e.val.Load(); v != nil && v.err == nil && now < v.staleUntil && (v.hardExpiry == 0 || now < v.hardExpiry) {
			f := e.failures.Add(1)
			e.retryAt.Store(now + int64(c.backoff(f)))
			return secrets.Secret{}, err, v
		}
		c.removeLocked(e)
	case code == secrets.CodeNotFound && c.o.NegativeTTL > 0:
		if e == nil {
			e = c.insertLocked(ref)
		}
		e.val.Store(c.newValue(secrets.Secret{}, err, info, now))
		e.failures.Store(0)
		e.retryAt.Store(0)
	case e != nil:
		// ErrNotFound, ErrPermission, ErrExpired, ErrUndecryptable and the
		// rest are never masked: drop what was cached.
		c.removeLocked(e)
	}
	return secrets.Secret{}, err, nil
}

func (c *Cache) backoff(failures int32) time.Duration {
	d := c.o.MinBackoff
	for i := int32(1); i < failures && d < c.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.o.MaxBackoff)
}

// newValue computes the deadlines of a value fetched at now.
func (c *Cache) newValue(s secrets.Secret, err error, info secrets.InfoSnapshot, now int64) *value {
	v := &value{secret: s, err: err, info: info}
	if err != nil {
		v.freshUntil = now + int64(c.o.NegativeTTL)
		v.fastUntil, v.refreshAt, v.staleUntil = v.freshUntil, v.freshUntil, v.freshUntil
		return v
	}
	life := c.o.TTL
	if c.o.Jitter > 0 {
		life -= time.Duration(rand.Int64N(int64(c.o.Jitter)))
	}
	v.freshUntil = now + int64(life)
	if !s.ExpiresAt.IsZero() {
		v.hardExpiry = unixNano(s.ExpiresAt)
		v.freshUntil = min(v.freshUntil, v.hardExpiry)
	}
	v.refreshAt = v.freshUntil
	if c.o.RefreshAhead < 1 {
		v.refreshAt = now + int64(float64(v.freshUntil-now)*c.o.RefreshAhead)
	}
	v.staleUntil = v.freshUntil + int64(c.o.StaleGrace)
	v.fastUntil = v.refreshAt
	if v.hardExpiry != 0 {
		v.staleUntil = min(v.staleUntil, v.hardExpiry)
		if c.clk != nil {
			// The coarse clock may lag: stop the lock-free path early and
			// let the precise clock decide near the expiry.
			v.fastUntil = min(v.fastUntil, v.hardExpiry-int64(expiryGuard))
		}
	}
	return v
}

// unixNano is t.UnixNano without its overflow past the year 2262.
func unixNano(t time.Time) int64 {
	if t.After(time.Unix(0, math.MaxInt64)) {
		return math.MaxInt64
	}
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return t.UnixNano()
}

func (c *Cache) insertLocked(ref string) *entry {
	if c.lru.Len() >= c.o.Size {
		if k, old, ok := c.lru.RemoveOldest(); ok {
			delete(c.all, k)
			old.val.Store(nil)
			c.evictions.Add(1)
		}
	}
	// Clone: the key must not pin the caller's (possibly large) buffer.
	e := &entry{key: strings.Clone(ref)}
	c.lru.Add(e.key, e)
	c.all[e.key] = e
	return e
}

func (c *Cache) removeLocked(e *entry) {
	if c.all[e.key] == e {
		delete(c.all, e.key)
		c.lru.Remove(e.key)
	}
	e.val.Store(nil)
}

// warmParallel bounds the backend calls Warm runs at once without a batch ability.
const warmParallel = 8

// Warm fetches the refs that are not cached, or are due for a refresh, so
// that the first requests do not wait on the backend. When next, or a
// resolver it wraps (secrets.Find), is a secrets.BatchResolver, Warm makes
// one ResolveMany call for them all (the backend splits it as it must: AWS
// takes 20 ids a call); otherwise it resolves them a few at a time. It
// returns the per-ref failures joined (errors.Join), or the batch call's
// error. Note that a batch call reaches the BatchResolver directly, past any
// decorators between it and the cache.
func (c *Cache) Warm(ctx context.Context, refs []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.isClosed.Load() {
		return c.errClosed("")
	}
	c.startClock()
	now := c.now().UnixNano()
	need := make([]string, 0, len(refs))
	seen := make(map[string]bool, len(refs))
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		if e := c.lookup(ref); e != nil {
			if v := e.val.Load(); v != nil && v.err == nil && now < v.refreshAt {
				continue
			}
		}
		need = append(need, ref)
	}
	if len(need) == 0 {
		return nil
	}
	if b, ok := secrets.Find[secrets.BatchResolver](c.next); ok {
		return c.warmBatch(ctx, b, need)
	}
	calls := make([]*call, 0, len(need))
	wait := func(cl *call) error {
		select {
		case <-cl.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i, ref := range need {
		if i >= warmParallel {
			if err := wait(calls[i-warmParallel]); err != nil {
				return err
			}
		}
		cl, _ := c.fetch(ctx, ref)
		calls = append(calls, cl)
	}
	var errs []error
	for _, cl := range calls {
		if err := wait(cl); err != nil {
			return err
		}
		if cl.err != nil && cl.stale == nil {
			errs = append(errs, cl.err)
		}
	}
	return errors.Join(errs...)
}

func (c *Cache) warmBatch(ctx context.Context, b secrets.BatchResolver, need []string) error {
	bctx, info := secrets.WithInfo(ctx)
	c.backendCalls.Add(1)
	res, err := b.ResolveMany(bctx, need)
	snap := info.Snapshot()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return asError("", snap, err, c.o.FetchTimeout)
	}
	var errs []error
	for i, r := range res {
		ref := r.Ref
		if ref == "" && i < len(need) {
			ref = need[i]
		}
		if _, err, _ := c.store(ref, nil, r.Secret, r.Err, snap); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Invalidate drops ref from the cache, so the next resolve fetches it. A
// fetch already in flight for ref still answers its waiting callers but is
// not stored. It never waits for the backend.
func (c *Cache) Invalidate(ref string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.inflight[ref]; cl != nil {
		cl.invalidated = true
		delete(c.inflight, ref)
	}
	if e := c.all[ref]; e != nil {
		c.removeLocked(e)
	}
}

// Purge drops every entry, like Invalidate of every ref. It never waits for
// the backend.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purgeLocked()
}

func (c *Cache) purgeLocked() {
	clear(c.wheel)
	clear(c.sweepQueue)
	c.sweepQueue = nil
	for ref, cl := range c.inflight {
		cl.invalidated = true
		delete(c.inflight, ref)
	}
	for _, e := range c.all {
		e.val.Store(nil)
	}
	c.all = map[string]*entry{}
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

// Stats returns the counters since New.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits:         c.hits.load(),
		Misses:       c.misses.Load(),
		BackendCalls: c.backendCalls.Load(),
		Refreshes:    c.refreshes.Load(),
		StaleServed:  c.staleServed.Load(),
		NegativeHits: c.negHits.load(),
		Evictions:    c.evictions.Load(),
	}
}

// Unwrap returns the resolver the cache is in front of, so secrets.Find can
// reach its optional abilities (io.Closer, Pinger, BatchResolver).
func (c *Cache) Unwrap() secrets.KeyResolver { return c.next }

// Close stops the cache: it cancels the backend calls in flight, waits for
// every background goroutine to return, and drops the entries. Later resolves
// fail with ErrUnavailable. Close does not close next: the cache does not own
// it. Whoever opened the backend closes it, for example through
// secrets.Find[io.Closer](c.Unwrap()). Close is idempotent and returns nil.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
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
	c.wg.Wait()
	return nil
}

func (c *Cache) errClosed(ref string) error {
	return &secrets.Error{Op: "resolve", Backend: "cache", Ref: ref, Code: secrets.CodeUnavailable,
		Reason: "the cache is closed"}
}

// backendName names the backend that answered, or "cache" when none said.
func backendName(info secrets.InfoSnapshot) string {
	if info.Backend != "" {
		return info.Backend
	}
	return "cache"
}

// asError makes every backend failure a *secrets.Error with a Code.
func asError(ref string, info secrets.InfoSnapshot, err error, timeout time.Duration) error {
	var se *secrets.Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &secrets.Error{Op: "resolve", Backend: backendName(info), Ref: ref, Code: secrets.CodeUnavailable,
			Reason: "the backend did not answer within the cache's fetch timeout of " + timeout.String(), Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &secrets.Error{Op: "resolve", Backend: backendName(info), Ref: ref, Code: secrets.CodeUnavailable,
			Reason: "the backend call was canceled because the cache closed", Err: err}
	}
	// The cause's text comes from an unknown resolver: keep it reachable for
	// errors.As but classify it.
	return &secrets.Error{Op: "resolve", Backend: backendName(info), Ref: ref, Code: secrets.CodeOf(err), Err: err}
}

// coarseClock is the hit path's clock: an atomic read instead of time.Now.
// It holds no reference to the Cache, so an unclosed, unreachable Cache can
// still stop it (runtime.AddCleanup in startClock).
type coarseClock struct {
	nanos    atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
}

// startClock starts the coarse clock on the first miss (New starts nothing).
func (c *Cache) startClock() {
	if c.clk == nil {
		return
	}
	c.clockOnce.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return
		}
		clk, res, wg := c.clk, c.o.ClockResolution, c.wg
		clk.nanos.Store(time.Now().UnixNano())
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(res)
			defer t.Stop()
			for {
				select {
				case <-clk.stop:
					return
				case <-t.C:
					// time.Now, not the tick's time: a late tick must not set the clock back.
					clk.nanos.Store(time.Now().UnixNano())
				}
			}
		}()
		runtime.AddCleanup(c, func(clk *coarseClock) { clk.stopOnce.Do(func() { close(clk.stop) }) }, clk)
	})
}

// stripes spreads the hit counters over cache lines so that parallel hits do
// not fight over one line. A power of two.
const (
	stripesLog2 = 3
	stripes     = 1 << stripesLog2
)

// stripedCounter is a counter whose increments pick a stripe by the address
// of the caller's stack frame: goroutine stacks are distinct allocations, so
// concurrent goroutines mostly keep to different stripes, at the cost of a
// multiply. (A random draw per hit, math/rand/v2, cost more than the rest of
// the hit path.) Collisions are harmless: the stripes are atomic.
type stripedCounter struct {
	s [stripes]struct {
		n atomic.Uint64
		_ [120]byte // two cache lines apart: adjacent-line prefetch
	}
}

func (c *stripedCounter) inc() {
	var frame byte
	h := uint64(uintptr(unsafe.Pointer(&frame))>>12) * 0x9E3779B97F4A7C15
	c.s[h>>(64-stripesLog2)].n.Add(1)
}

func (c *stripedCounter) load() uint64 {
	var n uint64
	for i := range c.s {
		n += c.s[i].n.Load()
	}
	return n
}
