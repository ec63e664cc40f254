// Package cache is keyward's caching decorator: a bounded LRU
// (github.com/hashicorp/golang-lru/v2) in front of any KeyResolver, so that a
// service resolving a bot's key on every request pays for one backend call per
// ref per TTL, and keeps serving through a backend outage.
//
//   - Bounded: Size entries at most (there is no unbounded mode); golang-lru
//     decides what to evict.
//   - TTL with jitter, and never past a secret's ExpiresAt: an entry lives
//     min(TTL less a random jitter, ExpiresAt), and is not served stale past ExpiresAt.
//   - One backend call per ref however many callers miss it at once. The call
//     runs detached from the callers' cancellation (context.WithoutCancel) with
//     its own FetchTimeout; each caller returns on its own ctx.Done().
//   - Refresh-ahead: a hit past RefreshAhead of the entry's lifetime answers at
//     once and starts one background refresh, so hot refs never wait. A sweep
//     also refreshes, at that point, every entry hit since its fetch (at most
//     16 refreshes at once), so refs used less often than the refresh window
//     do not wait either; entries not hit during a lifetime are left to expire.
//     (Options.MaxRefreshes bounds the sweep; Options.LazyRefresh turns it off.)
//   - Stale-if-error: when the backend fails with ErrUnavailable, the last good
//     value is served for StaleGrace past its TTL, with retries spaced by a
//     doubling backoff (MinBackoff to MaxBackoff). A backend that hangs
//     instead of failing (a network that drops packets) is treated alike:
//     a caller waits on a fetch at most StaleWait (500 ms) from its start, or
//     until shortly before its own context's deadline, then gets the stale
//     value while the fetch goes on and stores its result.
//   - Negative caching of ErrNotFound for NegativeTTL.
//   - Invalidate (of an entry's ref, every #field and ?option variant of it
//     too), InvalidatePrefix (every ref of a scheme), Purge: none waits for
//     the backend. Warm (one ResolveMany when the backend has
//     secrets.BatchResolver), Close.
//   - Version checks (Options.CheckInterval, off by default): an entry in use
//     is checked every CheckInterval with the backend's CurrentVersion
//     (secrets.VersionChecker: a cheap metadata call), and refreshed when its
//     version changed, so a long TTL still notices a rotation.
//   - Stats, with a cost meter: the backend calls by ref scheme and kind
//     (resolve, batch, version), the answers given without one, and an
//     estimate in US dollars from list prices (Options.Prices,
//     DefaultPrices).
//
// A hit takes no lock, makes no allocation and (on the real clock) does not
// call time.Now: the index is an
// immutable map snapshot behind an atomic pointer, the time comes from a
// coarse clock that a goroutine ticks every ClockResolution (1 ms), the hit
// counter is striped, and the LRU's recency is updated at most once a
// millisecond per ref. So TTL and refresh points are honoured to within about
// a millisecond; a secret's ExpiresAt exactly (within a second of it the
// precise clock decides).
//
// Every deadline (TTL, refresh point, stale grace, negative TTL, backoff) is
// a wall-clock time, like a secret's ExpiresAt, which is wall-clock by nature
// and must be compared with the wall clock. So a step of the system clock
// moves them: a step back by d lengthens the remaining life of every cached
// value by d (a step forward only makes values expire early). The monotonic clock
// would avoid that, but it stops while the machine is suspended, and a value
// could then be served past its ExpiresAt; the cache does not use it. After
// stepping a server's clock back, call Purge.
//
// The audit decorator (secrets.NewAudit) placed outside the cache sees cache
// hits: every Secret the cache returns from memory has Source.Cached set (and
// Source.Stale when served stale), on top of the backend's own Source (its
// name, legacy plaintext), which is kept with the value.
//
// Close stops the cache's goroutines but does not close the resolver it wraps;
// reach that with secrets.Find[io.Closer](c.Unwrap()). It waits at most
// FetchTimeout plus a second: a backend call that ignores its context's
// cancellation is left running past Close (its result is dropped).
//
// # URLs
//
// The package registers the decorator "cache" (import it for its init), used
// in a configuration as "cache = size=1000&ttl=5m". Parameters:
//
//   - size: the most refs cached, 1 to MaxSize (default 1000).
//   - ttl: a Go duration, 1ms to 8760h (default 5m).
//   - jitter: a Go duration, at most ttl/2, cut at random from each entry's
//     TTL (default ttl/10; 0 for none).
//   - refresh_ahead: the fraction of the lifetime after which a hit refreshes
//     in the background, above 0 and at most 1 (default 0.8; 1 for none).
//   - stale_grace: a Go duration, 0 to 8760h, a value may be served past its
//     TTL while the backend is unavailable (default 10m; 0 for none).
//   - stale_wait: a Go duration, 1ms to 10s (the fetch timeout), a caller
//     waits on a slow or hanging backend call before it gets the stale
//     value, if one is within stale_grace (default 500ms).
//   - negative_ttl: a Go duration, 0 to 8760h, an ErrNotFound is remembered
//     (default 5s; 0 for none).
//   - check: a Go duration, 0 to 8760h, after which an entry used since it
//     was fetched or last checked has its version checked in the
//     background, when the backend can tell it cheaply
//     (Options.CheckInterval; default 0, none).
//   - prices: the cost meter's list prices (Stats.Backends), a
//     comma-separated list of scheme:price in US dollars per 10,000 calls,
//     over DefaultPrices (default awssm:0.05,azurekv:0.03; a scheme named
//     gets its price, 0 for free; the others keep theirs).
//
// An unknown or repeated parameter is an ErrInvalidRef error that names the
// known parameters; a value out of its range (an overflowing one included) is
// one that names the parameter, its range and an example. In Options, where
// no parser stands guard, the longest durations mean "for ever": deadlines
// saturate rather than wrap.
//
// # Errors
//
// The cache returns the backend's own *secrets.Error (so its Backend and Code
// are the backend's), with these exceptions:
//
//   - The caller's context ended: secrets.ContextError with Backend "cache"
//     (errors.Is(err, context.Canceled) or context.DeadlineExceeded holds),
//     while the shared fetch goes on for the others.
//   - ErrUnavailable inside the grace window with a value cached, or a backend
//     call slower than StaleWait (or than the caller's deadline allows): no
//     error, the stale value (Stats.StaleServed, Source.Stale).
//     The caller's deadline striking while it waits counts as slow: it gets
//     the stale value, not context.DeadlineExceeded.
//   - ErrUnavailable with Backend "cache": the cache is closed.
//   - ErrUnavailable: the backend did not answer within FetchTimeout (the
//     error wraps context.DeadlineExceeded; Backend is the backend's name if
//     it recorded one, else "cache").
//   - ErrExpired: the backend returned a secret already past its ExpiresAt.
//   - A backend error that is not a *secrets.Error is wrapped in one, with
//     the code secrets.CodeOf gives it, and stays reachable with errors.As.
//
// ErrNotFound, ErrPermission, ErrExpired and ErrUndecryptable are never masked
// by a stale value: they drop what was cached for the ref. (A caller that got
// the stale value because the backend was slow got it before the answer was
// known, as a refresh-ahead hit does; the next caller sees the error.)
package cache
