// Package driver is the layer under every keyward backend, like go-cloud's
// secrets/driver under its portable Keeper. A backend implements Driver (get
// one parsed ref; optionally Batcher, Pinger, io.Closer) and serves it
// through a Resolver, which owns every rule that would otherwise drift
// between backends. Backends keep only what is theirs: talking to their
// service, naming rules for their refs, and classifying their own errors.
//
// # The rules, one per concern
//
//   - Ref parsing: refs.Parse with the driver's declared ?options
//     (Options.Params): unknown, repeated or malformed options, empty refs,
//     control characters and over-long refs are ErrInvalidRef before the
//     driver is called, and so is a ref refused by the backend's own rules
//     (Options.Check), before the driver is even opened. The driver
//     receives a parsed Ref.
//   - #field: the driver returns the whole document; the core picks the
//     field. A missing field is ErrNotFound; a value that is not a JSON
//     object is ErrInvalidRef. A string field is returned as is, any other
//     JSON value as its JSON text. Neither error quotes the value.
//   - Expiry: a Value whose ExpiresAt is not after Options.Now() is
//     ErrExpired (secrets.ExpiredError, the same error the expiry decorator
//     and the cache give).
//   - Context: a call whose caller's ctx has ended, before or during the
//     driver's work, fails with secrets.ContextError: an *secrets.Error that
//     errors.Is both ctx.Err() and its Code (ErrUnavailable for a deadline,
//     CodeUnknown for a cancel). A deadline of the driver's own (a client
//     timeout) while the caller's ctx is live is ErrUnavailable.
//   - Errors: every error is an *secrets.Error with Op (the caller's
//     operation: "resolve", "ping", "close"), Backend and Ref set by the core,
//     always, on a copy of what the driver returned. A driver returns errors
//     made with Errorf or Wrap; a bare secrets.Code keeps its chain; any
//     other error is CodeUnknown with its text cut, since it could hold a
//     value.
//   - Lazy opening: Open's func runs on first use, on the caller's ctx,
//     shared by every caller that arrives meanwhile, each waiting on its own
//     ctx; a failure is returned to those callers and tried again by the next
//     call; an open that failed only because its caller's ctx ended is not
//     the others' failure.
//   - Closed state: after Close every call fails with ErrUnavailable ("the
//     backend is closed"); a driver whose open finishes after Close is closed
//     at once; Close twice is safe.
//   - ResolveMany: always one Result per ref, in order. Invalid refs fail
//     alone; refs that differ only by #field are fetched once; with a
//     Batcher, one GetMany call, otherwise one Get per distinct secret. A
//     failure of the whole call (ctx ended, closed, open failed, the batch
//     call failed) is set on every Result it touched and also returned.
//   - Provenance: every Secret carries Source{Backend, Plaintext}, set by the
//     core, for the audit decorator (secrets.Source).
//
// # Following a ref
//
// An entry may name where its value lives instead of holding it: the driver
// returns Value{Ref: "env:ANTHROPIC_KEY_1"} (a fernetstore row whose
// key_env_var is set). The core resolves that ref through the resolver
// given to FollowThrough (secrets.OpenConfig gives each backend its stack,
// so the followed ref meets the same allow list, cache and audit: two audit
// events, one per ref) and answers with its value. The rules, for Resolve
// and ResolveMany alike (a batch follows its entries' refs as one batch,
// each distinct ref once, and still returns one Result per ref):
//
//   - The entry's expiry applies to the key it names: an expired entry is
//     ErrExpired before anything is resolved; the answer's ExpiresAt is the
//     earlier of the entry's and the followed secret's.
//   - The caller's #field is picked from the followed value by the #field
//     rule above; Version is the followed secret's.
//   - Source: Backend is this backend, Followed the followed ref,
//     Plaintext set if the entry or the followed value was plaintext.
//   - Errors of the followed ref keep their code and cause, under this
//     backend's Op, Backend and Ref, with a Reason "its key is at <ref>:
//     <its reason>". A caller's ended ctx is secrets.ContextError.
//   - One level only, all ErrInvalidRef, each refused before it resolves
//     anything: a followed ref whose entry names another ref (the follow
//     marks its ctx, which a cache's detached fetch keeps; and a followed
//     answer that was itself followed, from a cache, is refused too), and
//     an entry that names itself (known when the follower says which Mux
//     scheme this backend serves, as OpenConfig's does). No loop recurses.
//   - Without a follower, an entry naming a ref is ErrInvalidRef, naming
//     the ref and saying to open the store through a Stack
//     (secrets.OpenConfig) or call FollowThrough.
package driver
