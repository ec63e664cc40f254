package cache

import (
	"context"
	"errors"

	secrets "github.com/keyward/secrets"
)

// warmParallel bounds the backend calls Warm runs at once without a batch ability.
const warmParallel = 8

// Warm fetches the refs that are not cached, or are due for a refresh, so
// that the first requests do not wait on the backend. When the resolver the
// cache is directly in front of is a secrets.BatchResolver, Warm makes one
// ResolveMany call on it for them all; otherwise it resolves them a few at a
// time. Either way the refs go through every layer beneath the cache (allow
// list, expiry, timeout: each decorator is a BatchResolver that judges every
// ref of a batch and passes the batch on), down to the backend's own batch
// ability if it has one (AWS takes 20 ids a call). Warm never looks deeper
// with secrets.Find: that would walk past those layers. It returns the
// per-ref failures joined (errors.Join), or the batch call's error. A batch
// result is not stored when the ref was invalidated (or purged), or a newer
// value stored, while the batch ran: the batch may have read it before a
// rotation.
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
	// Only the resolver directly beneath: its ResolveMany applies its policy
	// and passes the batch on through the layers under it.
	if b, ok := c.next.(secrets.BatchResolver); ok {
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

// batch is one Warm ResolveMany in progress. refs maps each ref asked for to
// whether an Invalidate or Purge of it ran since the batch began; seq is
// c.seq then. Both are guarded by c.mu. variants indexes refs by base ref,
// for Invalidate of a base; it is built before the batch is registered and
// never changes.
type batch struct {
	refs     map[string]bool
	variants variantIndex
	seq      uint64
	invStart uint64 // Cache.invSeq when it began (see Cache.lastInv)
}

// mayStore reports whether the batch's result for ref may be stored over e
// (nil when nothing is cached): the batch read it before whatever was
// stored or invalidated since it began, so those win.
func (b *batch) mayStore(ref string, e *entry) bool {
	invalidated, asked := b.refs[ref]
	return asked && !invalidated && (e == nil || e.seq <= b.seq)
}

func (c *Cache) warmBatch(ctx context.Context, br secrets.BatchResolver, need []string) error {
	b := &batch{refs: make(map[string]bool, len(need)), variants: variantIndex{}}
	for _, ref := range need {
		b.refs[ref] = false
		b.variants.add(ref)
	}
	c.mu.Lock()
	b.seq = c.seq
	b.invStart = c.invSeq
	c.batches[b] = struct{}{}
	// One call for each scheme of the batch: beneath, a Mux splits it so.
	counted := map[*meter]bool{}
	for _, ref := range need {
		if m := c.meterLocked(ref); !counted[m] {
			counted[m] = true
			m.calls[kindBatch].Add(1)
		}
	}
	c.backendCalls.Add(1) // under mu with the meter's, for Stats
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.batches, b)
		c.mu.Unlock()
	}()
	res, err := br.ResolveMany(ctx, need)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return asError("", "", err, c.o.FetchTimeout)
	}
	var errs []error
	for i, r := range res {
		ref := r.Ref
		if ref == "" && i < len(need) {
			ref = need[i]
		}
		if _, err, _ := c.store(ref, nil, b, r.Secret, r.Err); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ref := range need[min(len(res), len(need)):] {
		errs = append(errs, &secrets.Error{Op: "warm", Backend: Backend, Ref: ref, Code: secrets.CodeUnavailable,
			Reason: "the batch call returned no result for this ref"})
	}
	return errors.Join(errs...)
}
