package cache

import (
	"runtime"
	"time"
)

// Quiesce waits until no backend call is in flight or queued, so a test can check what
// a background refresh stored. It polls for goroutines to finish; it never
// waits for a TTL (the tests' clock is fake).
func (c *Cache) Quiesce() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		// A finishing sweep refresh leaves inflight before it starts the
		// next queued one: wait for both to drain.
		n := len(c.inflight) + c.sweepActive + len(c.sweepQueue)
		c.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return
		}
		runtime.Gosched()
		time.Sleep(50 * time.Microsecond)
	}
}

// ParseParams exposes the decorator's parameter parser to the tests.
var ParseParams = parseParams

// Decorate is the function registered as the "cache" decorator.
var Decorate = decorate

// Waiters returns how many callers joined (or started) the fetch in flight
// for ref: a test waits for this, not for Stats().Misses, which a caller
// counts a moment before it joins.
func (c *Cache) Waiters(ref string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.inflight[ref]; cl != nil {
		return cl.waiters
	}
	return 0
}

// WheelLen returns how many entries the refresh wheel holds, so a test can
// check that dropped entries leave it.
func (c *Cache) WheelLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, w := range c.wheels {
		for _, b := range w {
			n += len(b)
		}
	}
	return n
}

// InFlight reports whether a fetch for ref is in flight, among the callers'
// fetches and among the follows' (followmark).
func (c *Cache) InFlight(ref string) (inflight, followed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight[ref] != nil, c.followed[ref] != nil
}

// IndexLen returns how many refs the variant indexes hold (entries, and
// fetches in flight), so a test can check that they follow the maps they
// index and leak nothing.
func (c *Cache) IndexLen() (entries, flights int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.variants {
		entries += len(s)
	}
	for _, x := range []variantIndex{c.inflightVariants, c.followedVariants} {
		for _, s := range x {
			flights += len(s)
		}
	}
	return entries, flights
}

// Settle is Quiesce for a simulation on fake time that waits after every
// step: it yields instead of sleeping, so a step that started nothing costs
// one lock.
func (c *Cache) Settle() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.inflight) + c.sweepActive + len(c.sweepQueue)
		c.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return
		}
		runtime.Gosched()
	}
}
