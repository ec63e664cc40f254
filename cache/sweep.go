package cache

import "context"

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
		for _, e := range c.wheel[b] {
			e.inWheel = false
		}
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
