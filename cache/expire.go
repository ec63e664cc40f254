package cache

import "strings"

// ExpirePrefix makes every ref that starts with prefix due (and every entry
// resolved through such a ref: Source.Followed), as if its TTL had ended: its next resolve fetches it again, but the value is kept within its
// stale grace, so that a backend that is unavailable meanwhile is answered
// from it (Options.StaleGrace). It is what a watcher that lost its
// connection means: it can no longer vouch for those values, nor say that
// they changed; a value it knows changed is dropped with Invalidate
// instead. A remembered ErrNotFound is dropped. Fetches in flight for those
// refs still answer their callers but are not stored (they may have read
// before the loss). It walks the whole cache and never waits for the
// backend. An empty prefix expires everything.
func (c *Cache) ExpirePrefix(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.noteInvLocked(prefix, true)
	c.invalidateFlightsLocked(prefix)
	now := c.now().UnixNano()
	for k, e := range c.all {
		if !strings.HasPrefix(k, prefix) && (e.followed == "" || !strings.HasPrefix(e.followed, prefix)) {
			continue // neither its ref nor the one it was resolved through
		}
		v := e.val.Load()
		if v == nil {
			continue
		}
		if v.err != nil || v.staleUntil <= now {
			c.removeLocked(e)
			continue
		}
		// fastUntil 0: the lock-free path, on its coarse clock, never
		// answers it; the next resolve fetches it (no sweep refresh or check
		// of a due value).
		c.unwheelLocked(e)
		// A refresh that failed before (the same outage that lost the
		// watch, often) must not make the next resolve answer stale
		// without asking the backend, which may answer again.
		e.failures.Store(0)
		e.retryAt.Store(0)
		e.val.Store(&value{secret: v.secret, fastUntil: 0, refreshAt: now, freshUntil: now,
			staleUntil: v.staleUntil, hardExpiry: v.hardExpiry})
	}
}
