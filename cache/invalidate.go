package cache

import "strings"

// Invalidate drops ref from the cache, so the next resolve fetches it. A ref
// without '#' or '?' names an entry of the backend, and every variant of it
// is dropped too: ref followed by '#' or '?' and anything ("db:7#org",
// "db:7?version=2#x"; not "db:70"), as a backend that announces a change of
// "db:7" means, and so is every entry whose value was resolved through it
// (an entry naming db:7: Source.Followed). A ref with '#' or '?' is dropped
// exactly. It costs the
// number of variants cached, not the size of the cache.
//
// A fetch already in flight for a dropped ref (a refresh, a caller's miss,
// a Warm batch holding it) still answers its waiting callers but is not
// stored: it may have read the value before the change. Invalidate never
// waits for the backend.
func (c *Cache) Invalidate(ref string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.invalidateLocked(ref)
	if baseRef(ref) != ref {
		return
	}
	c.noteInvLocked(ref, false)
	// invalidateLocked deletes from these sets as they are walked, which a
	// range allows.
	for v := range c.variants[ref] {
		c.invalidateLocked(v)
	}
	for v := range c.inflightVariants[ref] {
		c.invalidateLocked(v)
	}
	for v := range c.followedVariants[ref] {
		c.invalidateLocked(v)
	}
	// The entries resolved through ref ("bots:1", whose row names db:7).
	for e := range c.followers[ref] {
		c.invalidateLocked(e.key)
	}
	for b := range c.batches {
		for v := range b.variants[ref] {
			b.refs[v] = true
		}
	}
}

// invalidateLocked drops exactly ref: its entry, its fetches in flight and
// its place in running batches.
func (c *Cache) invalidateLocked(ref string) {
	for _, follow := range []bool{false, true} {
		flights, index := c.flights(follow)
		if cl := flights[ref]; cl != nil {
			cl.invalidated = true
			delete(flights, ref)
			index.remove(ref)
		}
	}
	for b := range c.batches {
		if _, ok := b.refs[ref]; ok {
			b.refs[ref] = true
		}
	}
	if e := c.all[ref]; e != nil {
		c.removeLocked(e)
	}
}

// InvalidatePrefix drops every ref that starts with prefix ("db:" when every
// entry of the backend behind scheme db may have changed, as a watcher that
// lost its connection reports), with the same rules for fetches in flight as
// Invalidate. It walks the whole cache: it is meant for rare events, not for
// one changed entry. An empty prefix drops everything, like Purge.
func (c *Cache) InvalidatePrefix(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.noteInvLocked(prefix, true)
	c.invalidateFlightsLocked(prefix)
	for k, e := range c.all {
		if strings.HasPrefix(k, prefix) || (e.followed != "" && strings.HasPrefix(e.followed, prefix)) {
			c.removeLocked(e)
		}
	}
}

// invalidateFlightsLocked marks every fetch in flight and every Warm batch
// ref that starts with prefix as not to be stored: they may have read
// before the change.
func (c *Cache) invalidateFlightsLocked(prefix string) {
	for _, follow := range []bool{false, true} {
		flights, index := c.flights(follow)
		for ref, cl := range flights {
			if strings.HasPrefix(ref, prefix) {
				cl.invalidated = true
				delete(flights, ref)
				index.remove(ref)
			}
		}
	}
	for b := range c.batches {
		for ref := range b.refs {
			if strings.HasPrefix(ref, prefix) {
				b.refs[ref] = true
			}
		}
	}
}

// flights returns the map of fetches in flight that a fetch for a follow (or
// not) joins, and its variant index.
func (c *Cache) flights(follow bool) (map[string]*call, variantIndex) {
	if follow {
		return c.followed, c.followedVariants
	}
	return c.inflight, c.inflightVariants
}

// baseRef is ref without its '#field' or '?options': the entry of the
// backend that ref reads.
func baseRef(ref string) string {
	if i := strings.IndexAny(ref, "#?"); i >= 0 {
		return ref[:i]
	}
	return ref
}

// variantIndex maps a base ref to the set of refs that extend it with '#' or
// '?' (a ref equal to its base is not in it). Sets are dropped when they
// empty, so the index holds no more than the maps it indexes.
type variantIndex map[string]map[string]struct{}

func (x variantIndex) add(ref string) {
	base := baseRef(ref)
	if len(base) == len(ref) {
		return
	}
	set := x[base]
	if set == nil {
		set = map[string]struct{}{}
		x[base] = set
	}
	set[ref] = struct{}{}
}

func (x variantIndex) remove(ref string) {
	base := baseRef(ref)
	if len(base) == len(ref) {
		return
	}
	if set := x[base]; set != nil {
		delete(set, ref)
		if len(set) == 0 {
			delete(x, base)
		}
	}
}
