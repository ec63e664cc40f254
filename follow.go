package secrets

import "context"

// Follower is an optional ability of a backend whose entries can name
// another ref instead of holding the value: a fernetstore row whose api_key
// is NULL and whose key_env_var says ANTHROPIC_KEY_1 answers for
// "env:ANTHROPIC_KEY_1". FollowThrough gives the backend the resolver of
// whole "scheme:name" refs to resolve such a ref through; every backend
// served by the driver layer (driver.Resolver) has it, and so has Lazy,
// which hands it on to the resolver it opens.
//
// OpenConfig calls it on every backend of its Mux that is a Follower or
// wraps one (found with Find), the host's StackOptions.Backends included,
// with the stack itself: the followed ref then goes through audit, expiry,
// the cache, the timeout and the allow list like any other, so an entry
// cannot name a ref the stack would refuse. The entry's answer:
//
//   - its expiry still applies: an expired entry is ErrExpired before
//     anything is resolved for it, and the answer expires at the earlier of
//     the entry's and the followed secret's ExpiresAt;
//   - the caller's #field is picked from the followed value, by the same
//     rule as any #field;
//   - Version is the followed secret's; Source.Backend is the entry's
//     backend (so the audit event for "db:7" says fernet), Source.Followed
//     names the followed ref, Plaintext is set if either was plaintext, and
//     Cached and Stale describe the entry's own answer (the followed ref's
//     audit event says whether a cache answered it);
//   - a failure of the followed ref keeps its code (ErrNotFound, ErrPermission
//     from the allow list, ...) and cause, under the entry's Op, Backend and
//     Ref, its Reason starting "its key is at env:ANTHROPIC_KEY_1: "; a
//     caller's ended ctx is ContextError, as always;
//   - one level only: a followed ref whose entry names yet another ref, or
//     an entry that names itself, fails with ErrInvalidRef ("chains of refs
//     are not followed"), so no loop recurses;
//   - without a follower, an entry naming a ref fails with ErrInvalidRef,
//     saying to open the store through a Stack or call FollowThrough.
//
// The resolver OpenConfig hands over also tells the backend which Mux
// scheme it serves, so an entry that names itself is refused at once. A
// host that calls FollowThrough itself should pass a resolver of whole
// refs (its Stack or Mux); such an entry is then caught one level down,
// but through a cache it waits first for its own fetch, up to the cache's
// fetch timeout. Build the stack with OpenConfig (the host's own
// resolvers in StackOptions.Backends) to have it done right.
type Follower interface {
	FollowThrough(r KeyResolver)
}

// followVia is the resolver OpenConfig hands a Follower: its stack, plus
// the Mux scheme the follower serves, which the driver core reads (through
// FollowScheme) to refuse an entry naming itself before resolving it: its
// resolve would join the cache's fetch of that very ref, which is waiting
// for it.
type followVia struct {
	st     *Stack
	scheme string
}

func (f *followVia) Resolve(ctx context.Context, ref string) (Secret, error) {
	return f.st.Resolve(ctx, ref)
}

func (f *followVia) ResolveMany(ctx context.Context, refs []string) ([]Result, error) {
	return f.st.ResolveMany(ctx, refs)
}

// Unwrap returns the stack.
func (f *followVia) Unwrap() KeyResolver { return f.st }

// FollowScheme names the Mux scheme of the backend this was handed to.
func (f *followVia) FollowScheme() string { return f.scheme }

// followThroughStack hands st to every Follower among its Mux's backends.
func followThroughStack(st *Stack) {
	for _, scheme := range st.Mux.Schemes() {
		r, _ := st.Mux.Resolver(scheme)
		if f, ok := Find[Follower](r); ok {
			f.FollowThrough(&followVia{st: st, scheme: scheme})
		}
	}
}
