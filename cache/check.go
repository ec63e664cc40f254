package cache

import (
	"context"
	"errors"

	"github.com/keyward/secrets/internal/bounds"
)

// scheduleCheckLocked puts e, which holds v, in the check wheel for
// CheckInterval from now, if versions are checked, v has one, its scheme
// has not refused checks, and the check would come before v's TTL ends
// (after which the entry is fetched anyway).
func (c *Cache) scheduleCheckLocked(e *entry, v *value, now int64) {
	if c.checker == nil || v.err != nil || v.secret.Version == "" || e.m.noCheck.Load() {
		return
	}
	e.checkAt = bounds.SaturatingAdd(now, int64(c.o.CheckInterval))
	if e.checkAt < v.freshUntil {
		c.wheelLocked(checkWheel, e, e.checkAt/c.width)
	}
}

// checkLocked starts the version check of e, taken from the sweep queue,
// if it is still due: its value (with a Version) still cached and fresh,
// and no check or refresh of it running. An entry not hit since its last
// check is not worth a call: it is scheduled again.
func (c *Cache) checkLocked(e *entry, now int64) {
	v := e.val.Load()
	if v == nil || v.err != nil || v.secret.Version == "" || c.all[e.key] != e || e.checking ||
		e.pos[checkWheel].in || now < e.checkAt || now >= v.freshUntil || e.m.noCheck.Load() {
		return
	}
	if v.hit.Load()&hitSinceCheck == 0 || e.refreshing.Load() {
		// Not used lately, or a refresh is about to replace the value (and
		// schedule its own check; if it fails, this one stands).
		c.scheduleCheckLocked(e, v, now)
		return
	}
	e.checking = true
	c.sweepActive++
	c.backendCalls.Add(1)
	e.m.calls[kindVersion].Add(1)
	c.wg.Add(1)
	go c.runCheck(e, v)
}

// runCheck asks the backend for the current version of e's value v and acts
// on the answer, unless the entry was dropped, invalidated or given a newer
// value meanwhile (the newer value has its own schedule).
func (c *Cache) runCheck(e *entry, v *value) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.closing, c.o.FetchTimeout)
	version, err := c.checker.CurrentVersion(ctx, e.key)
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	e.checking = false
	c.sweepActive--
	now := c.now().UnixNano()
	defer c.pumpLocked(now)
	live := !c.closed && c.all[e.key] == e && e.val.Load() == v
	switch {
	case err != nil && errors.Is(err, errors.ErrUnsupported):
		// This backend (or this configuration of it) cannot tell versions.
		e.m.noCheck.Store(true)
	case !live:
	case err != nil:
		// Ignored: the TTL still bounds the value.
		c.scheduleCheckLocked(e, v, now)
	case version == v.secret.Version:
		v.hit.And(^uint32(hitSinceCheck))
		c.scheduleCheckLocked(e, v, now)
	default:
		// Changed: fetch the new value in the background; hits get the old
		// one until it is stored. store drops the entry if the fetch fails.
		if !e.refreshing.CompareAndSwap(false, true) {
			c.scheduleCheckLocked(e, v, now) // a refresh is running already
			return
		}
		cl, started := c.fetchLocked(context.Background(), e.key)
		cl.changed = true
		if started {
			c.refreshes.Add(1)
		}
	}
}
