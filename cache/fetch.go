package cache

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/bounds"
	"github.com/keyward/secrets/internal/followmark"
)

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
	follow := followmark.Marked(ctx)
	flights, index := c.flights(follow)
	if cl := flights[ref]; cl != nil {
		cl.waiters++
		return cl, false
	}
	if c.closed {
		cl := &call{done: make(chan struct{}), err: c.errClosed(ref)}
		close(cl.done)
		return cl, false
	}
	cl = &call{done: make(chan struct{}), waiters: 1, start: time.Now(), follow: follow, invStart: c.invSeq}
	flights[ref] = cl
	index.add(ref)
	c.wg.Add(1)
	c.backendCalls.Add(1)
	c.meterLocked(ref).calls[kindResolve].Add(1)
	go c.run(context.WithoutCancel(ctx), ref, cl)
	return cl, true
}

func (c *Cache) run(ctx context.Context, ref string, cl *call) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(ctx, c.o.FetchTimeout)
	stop := context.AfterFunc(c.closing, cancel)
	s, err := c.next.Resolve(ctx, ref)
	stop()
	cancel()
	cl.secret, cl.err, cl.stale = c.store(ref, cl, nil, s, err)
	close(cl.done)
	if cl.swept {
		c.mu.Lock()
		c.sweepActive--
		c.pumpLocked(c.now().UnixNano())
		c.mu.Unlock()
	}
}

// store records the outcome of a backend call for ref and returns what the
// waiting callers get. Exactly one of cl (a fetch) and b (Warm's batch) is set.
func (c *Cache) store(ref string, cl *call, b *batch, s secrets.Secret, err error) (secrets.Secret, error, *value) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixNano()
	if cl != nil {
		if flights, index := c.flights(cl.follow); flights[ref] == cl {
			delete(flights, ref)
			index.remove(ref)
		}
	}
	e := c.all[ref]
	if e != nil && cl != nil {
		e.refreshing.Store(false)
	}
	start := c.invSeq
	if cl != nil {
		start = cl.invStart
	} else if b != nil {
		start = b.invStart
	}
	keep := !c.closed && (cl == nil || !cl.invalidated) && (b == nil || b.mayStore(ref, e)) &&
		(err != nil || !c.followInvalidatedLocked(s.Source.Followed, start))
	if c.idleLocked() {
		clear(c.lastInv)
		clear(c.prefixInv)
	}
	if err == nil && s.ExpiredAt(time.Unix(0, now)) {
		err = secrets.ExpiredError("resolve", backendName(s.Source.Backend), ref, s.ExpiresAt)
	} else if err != nil {
		err = asError(ref, "", err, c.o.FetchTimeout)
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
		v := c.newValue(s, nil, now)
		e.val.Store(v)
		c.followLocked(e, s.Source.Followed)
		c.seq++
		e.seq = c.seq
		c.unwheelLocked(e)
		if v.refreshAt < v.freshUntil && c.refreshSweep {
			c.wheelLocked(refreshWheel, e, v.refreshAt/c.width)
		}
		c.scheduleCheckLocked(e, v, now)
		e.failures.Store(0)
		e.retryAt.Store(0)
		return s, nil, nil
	case code == secrets.CodeUnavailable && e != nil && (cl == nil || !cl.changed):
		// (A refresh after a version check found the value changed drops
		// it instead: it is known to be replaced.)
		if v := e.val.Load(); v != nil && v.err == nil && now < v.staleUntil && (v.hardExpiry == 0 || now < v.hardExpiry) {
			f := e.failures.Add(1)
			e.retryAt.Store(bounds.SaturatingAdd(now, int64(c.backoff(f))))
			return secrets.Secret{}, err, v
		}
		c.removeLocked(e)
	case code == secrets.CodeNotFound && c.o.NegativeTTL > 0:
		if e == nil {
			e = c.insertLocked(ref)
		}
		e.val.Store(c.newValue(secrets.Secret{}, err, now))
		c.seq++
		e.seq = c.seq
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
		if d > c.o.MaxBackoff/2 {
			return c.o.MaxBackoff // doubling would pass it (or overflow)
		}
		d *= 2
	}
	return min(d, c.o.MaxBackoff)
}

// newValue computes the deadlines of a value fetched at now. The additions
// saturate: a configured lifetime as long as time.Duration allows must mean
// "for ever", not wrap into the past and mean "never".
func (c *Cache) newValue(s secrets.Secret, err error, now int64) *value {
	v := &value{secret: s, err: err}
	if err == nil {
		v.secret.Source.Cached = true // what every hit returns
	}
	if err != nil {
		v.freshUntil = bounds.SaturatingAdd(now, int64(c.o.NegativeTTL))
		v.fastUntil, v.refreshAt, v.staleUntil = v.freshUntil, v.freshUntil, v.freshUntil
		return v
	}
	life := c.o.TTL
	if c.o.Jitter > 0 {
		life -= time.Duration(rand.Int64N(int64(c.o.Jitter)))
	}
	v.freshUntil = bounds.SaturatingAdd(now, int64(life))
	if !s.ExpiresAt.IsZero() {
		v.hardExpiry = unixNano(s.ExpiresAt)
		v.freshUntil = min(v.freshUntil, v.hardExpiry)
	}
	v.refreshAt = v.freshUntil
	if c.o.RefreshAhead < 1 {
		v.refreshAt = now + int64(float64(v.freshUntil-now)*c.o.RefreshAhead)
	}
	v.staleUntil = bounds.SaturatingAdd(v.freshUntil, int64(c.o.StaleGrace))
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
			c.variants.remove(k)
			c.followLocked(old, "")
			c.unwheelLocked(old)
			old.val.Store(nil)
			c.evictions.Add(1)
		}
	}
	// Clone: the key must not pin the caller's (possibly large) buffer.
	e := &entry{key: strings.Clone(ref)}
	e.m = c.meterLocked(e.key)
	c.lru.Add(e.key, e)
	c.all[e.key] = e
	c.variants.add(e.key)
	return e
}

func (c *Cache) removeLocked(e *entry) {
	if c.all[e.key] == e {
		delete(c.all, e.key)
		c.variants.remove(e.key)
		c.lru.Remove(e.key)
	}
	c.followLocked(e, "")
	c.unwheelLocked(e)
	e.val.Store(nil)
}

// followInvalidatedLocked reports whether the ref followed was invalidated
// (exactly, or by a prefix) after invalidation number start.
func (c *Cache) followInvalidatedLocked(followed string, start uint64) bool {
	if followed == "" || c.invSeq == start {
		return false
	}
	if c.lastInv[baseRef(followed)] > start {
		return true
	}
	for prefix, seq := range c.prefixInv {
		if seq > start && strings.HasPrefix(followed, prefix) {
			return true
		}
	}
	return false
}

// idleLocked reports that no fetch or Warm batch is in flight.
func (c *Cache) idleLocked() bool { return len(c.inflight)+len(c.followed)+len(c.batches) == 0 }

// noteInvLocked records an invalidation of a base ref ("db:7") or, with
// prefix, of every ref that starts with it, for followInvalidatedLocked.
func (c *Cache) noteInvLocked(ref string, prefix bool) {
	if c.idleLocked() {
		return // nothing in flight can have read it
	}
	c.invSeq++
	if prefix {
		c.prefixInv[ref] = c.invSeq
	} else {
		c.lastInv[ref] = c.invSeq
	}
}

// followLocked records that e's value was resolved through the ref
// followed ("" for none), in followers under its base ref.
func (c *Cache) followLocked(e *entry, followed string) {
	followed = baseRef(followed)
	if e.followed == followed {
		return
	}
	if set := c.followers[e.followed]; e.followed != "" {
		delete(set, e)
		if len(set) == 0 {
			delete(c.followers, e.followed)
		}
	}
	e.followed = followed
	if followed != "" {
		set := c.followers[followed]
		if set == nil {
			set = map[*entry]struct{}{}
			c.followers[followed] = set
		}
		set[e] = struct{}{}
	}
}

// wheelLocked puts e in bucket b of wheel w (refreshWheel, checkWheel),
// taking it out of its bucket there first if it is in one.
func (c *Cache) wheelLocked(w int, e *entry, b int64) {
	c.unwheelOneLocked(w, e)
	wheel := c.wheels[w]
	e.pos[w] = wheelPos{bucket: b, slot: len(wheel[b]), in: true}
	wheel[b] = append(wheel[b], e)
}

// unwheelLocked takes e out of every wheel it is in.
func (c *Cache) unwheelLocked(e *entry) {
	for w := range c.wheels {
		c.unwheelOneLocked(w, e)
	}
}

// unwheelOneLocked takes e out of wheel w, if it is there, in O(1): the
// bucket's last entry takes its slot.
func (c *Cache) unwheelOneLocked(w int, e *entry) {
	p := &e.pos[w]
	if !p.in {
		return
	}
	p.in = false
	wheel := c.wheels[w]
	bk := wheel[p.bucket]
	last := len(bk) - 1
	if p.slot != last {
		bk[p.slot] = bk[last]
		bk[p.slot].pos[w].slot = p.slot
	}
	bk[last] = nil
	if last == 0 {
		delete(wheel, p.bucket)
	} else {
		wheel[p.bucket] = bk[:last]
	}
}

// backendName names the backend that answered, or "cache" when none said.
func backendName(backend string) string {
	if backend != "" {
		return backend
	}
	return Backend
}

// asError makes every backend failure a *secrets.Error with a Code.
func asError(ref, backend string, err error, timeout time.Duration) error {
	var se *secrets.Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &secrets.Error{Op: "resolve", Backend: backendName(backend), Ref: ref, Code: secrets.CodeUnavailable,
			Reason: "the backend did not answer within the cache's fetch timeout of " + timeout.String(), Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &secrets.Error{Op: "resolve", Backend: backendName(backend), Ref: ref, Code: secrets.CodeUnavailable,
			Reason: "the backend call was canceled because the cache closed", Err: err}
	}
	// The cause's text comes from an unknown resolver: keep it reachable for
	// errors.As but classify it.
	return &secrets.Error{Op: "resolve", Backend: backendName(backend), Ref: ref, Code: secrets.CodeOf(err), Err: err}
}
