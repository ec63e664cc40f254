package secrets

import (
	"context"
	"log/slog"
	"sync"
)

// cacheInvalidator is what the stack's cache offers its watchers (package
// cache's *Cache).
type cacheInvalidator interface {
	// Invalidate drops ref and every #field and ?options variant of it.
	Invalidate(ref string)
	// ExpirePrefix makes every ref that starts with prefix due: fetched
	// again on its next resolve, served stale if the backend is down.
	ExpirePrefix(prefix string)
}

// watches are the Watch calls a stack runs, one per backend that is a
// Watcher, each invalidating that scheme's refs in the cache.
type watches struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startWatches starts, when the stack has a cache, the Watch of every
// backend of mux that is (or wraps) a Watcher. Watch does no I/O before its
// backend is opened by a resolve.
func startWatches(mux *Mux, c cacheInvalidator) *watches {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watches{cancel: cancel}
	for _, scheme := range mux.Schemes() {
		r, _ := mux.Resolver(scheme)
		wr, ok := Find[Watcher](r)
		if !ok {
			continue
		}
		h := &invalidating{scheme: scheme, c: c}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			if err := wr.Watch(ctx, h); err != nil && ctx.Err() == nil {
				slog.Warn("keyward: changes to this backend's entries cannot be watched, so a replica's cache keeps a changed key until its TTL ends",
					"scheme", scheme, "err", err)
			}
		}()
	}
	return w
}

func (w *watches) Close() error {
	w.cancel()
	w.wg.Wait()
	return nil
}

// invalidating is the ChangeHandler of one scheme: it drops the changed
// refs, every variant included, from the cache.
type invalidating struct {
	scheme string
	c      cacheInvalidator
}

func (h *invalidating) Changed(refs []string) {
	for _, ref := range refs {
		h.c.Invalidate(h.scheme + ":" + ref)
	}
}

// Lost expires the scheme's refs rather than dropping them: the watcher
// cannot vouch for them, but a backend that is down meanwhile (the likely
// reason the watch was lost) still has them answered from the cache.
func (h *invalidating) Lost() { h.c.ExpirePrefix(h.scheme + ":") }
