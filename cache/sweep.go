package cache

import "context"

// sweepItem is a due entry waiting in the sweep queue: for a refresh, or for
// a version check.
type sweepItem struct {
	e     *entry
	check bool
}

// sweep starts a background refresh of every entry that was hit since it was
// fetched and whose refresh time has passed, and a version check of every
// entry whose check is due, bucket by bucket. One caller does it per bucket
// width; the others find nextSweep moved on.
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
	for w, wheel := range c.wheels {
		take := func(b int64) {
			for _, e := range wheel[b] {
				e.pos[w].in = false
				c.sweepQueue = append(c.sweepQueue, sweepItem{e: e, check: w == checkWheel})
			}
			delete(wheel, b)
		}
		if due-c.swept > int64(len(wheel)) {
			// The clock jumped (or the cache sat idle): walk the buckets
			// that exist rather than every bucket in between.
			for b := range wheel {
				if b < due {
					take(b)
				}
			}
		} else {
			for b := c.swept + 1; b < due; b++ {
				take(b)
			}
		}
	}
	c.swept = due - 1
	c.nextSweep.Store((due + 1) * c.width)
	c.pumpLocked(now)
	c.mu.Unlock()
}

// pumpLocked starts queued sweep refreshes and checks while fewer than
// MaxRefreshes run. Entries no longer due (refreshed, dropped, not hit) are
// skipped.
func (c *Cache) pumpLocked(now int64) {
	for c.sweepActive < c.o.MaxRefreshes && len(c.sweepQueue) > 0 && !c.closed {
		it := c.sweepQueue[0]
		c.sweepQueue[0] = sweepItem{}
		c.sweepQueue = c.sweepQueue[1:]
		e := it.e
		if it.check {
			c.checkLocked(e, now)
			continue
		}
		v := e.val.Load()
		if v == nil || v.err != nil || v.hit.Load()&hitSinceFetch == 0 || now < v.refreshAt || now >= v.freshUntil ||
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
