package secrets

import (
	"context"
	"sync"
)

// TRANSITIONAL (issue 11): the context-carried Info is replaced by
// Secret.Source; nothing reads it any more. It stays only until every
// backend's port to the driver layer has removed its SetBackend call, and is
// deleted then.

// Info is what the layers of a stack learn about one resolve, for the audit
// decorator: which backend answered, whether a cache answered instead, and
// whether the value was legacy plaintext. Layers record into the Info found
// with InfoFrom; every method is safe on a nil *Info and for concurrent use.
type Info struct {
	mu        sync.Mutex
	backend   string
	cacheHit  bool
	stale     bool
	plaintext bool
}

// InfoSnapshot is a copy of an Info's fields.
type InfoSnapshot struct {
	Backend   string // the backend that answered, "" if unknown
	CacheHit  bool   // a cache answered without calling the backend
	Stale     bool   // the cache answered with a stale value because the backend failed
	Plaintext bool   // the value was stored as legacy plaintext (fernetstore migration mode)
}

type infoKey struct{}

// WithInfo returns a context carrying a fresh Info, and the Info.
func WithInfo(ctx context.Context) (context.Context, *Info) {
	i := new(Info)
	return context.WithValue(ctx, infoKey{}, i), i
}

// InfoFrom returns the Info carried by ctx, or nil.
func InfoFrom(ctx context.Context) *Info {
	i, _ := ctx.Value(infoKey{}).(*Info)
	return i
}

// SetBackend records the backend that answered, unless an inner layer already did.
func (i *Info) SetBackend(name string) {
	if i == nil {
		return
	}
	i.mu.Lock()
	if i.backend == "" {
		i.backend = name
	}
	i.mu.Unlock()
}

// MarkCacheHit records that a cache answered without calling the backend;
// stale is true when it served a stale value because the backend failed.
func (i *Info) MarkCacheHit(stale bool) {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.cacheHit = true
	i.stale = i.stale || stale
	i.mu.Unlock()
}

// MarkPlaintext records that the value was read from legacy plaintext.
func (i *Info) MarkPlaintext() {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.plaintext = true
	i.mu.Unlock()
}

// Merge copies what o recorded into i (a cache copies what its detached fetch
// learned into each waiting caller's Info).
func (i *Info) Merge(o InfoSnapshot) {
	if i == nil {
		return
	}
	i.mu.Lock()
	if i.backend == "" {
		i.backend = o.Backend
	}
	i.cacheHit = i.cacheHit || o.CacheHit
	i.stale = i.stale || o.Stale
	i.plaintext = i.plaintext || o.Plaintext
	i.mu.Unlock()
}

// Snapshot returns a copy of what has been recorded.
func (i *Info) Snapshot() InfoSnapshot {
	if i == nil {
		return InfoSnapshot{}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return InfoSnapshot{Backend: i.backend, CacheHit: i.cacheHit, Stale: i.stale, Plaintext: i.plaintext}
}
