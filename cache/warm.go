package cache

import (
	"context"
	"errors"

	secrets "github.com/keyward/secrets"
)

// warmParallel bounds the backend calls Warm runs at once without a batch ability.
const warmParallel = 8

// Warm fetches the refs that are not cached, or are due for a refresh, so
// that the first requests do not wait on the backend. When next, or a
// resolver it wraps (secrets.Find), is a secrets.BatchResolver, Warm makes
// one ResolveMany call for them all (the backend splits it as it must: AWS
// takes 20 ids a call); otherwise it resolves them a few at a time. It
// returns the per-ref failures joined (errors.Join), or the batch call's
// error. Note that a batch call reaches the BatchResolver directly, past any
// decorators between it and the cache.
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
	if b, ok := secrets.Find[secrets.BatchResolver](c.next); ok {
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

func (c *Cache) warmBatch(ctx context.Context, b secrets.BatchResolver, need []string) error {
	bctx, info := secrets.WithInfo(ctx)
	c.backendCalls.Add(1)
	res, err := b.ResolveMany(bctx, need)
	snap := info.Snapshot()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return asError("", snap, err, c.o.FetchTimeout)
	}
	var errs []error
	for i, r := range res {
		ref := r.Ref
		if ref == "" && i < len(need) {
			ref = need[i]
		}
		if _, err, _ := c.store(ref, nil, r.Secret, r.Err, snap); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
