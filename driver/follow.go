package driver

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/followmark"
)

var _ secrets.Follower = (*Resolver)(nil)

// through is what Resolver.FollowThrough keeps: the resolver of whole
// "scheme:name" refs to follow an entry's Ref through, and the Mux scheme
// this backend serves there, when the resolver says (OpenConfig's does).
type through struct {
	r      secrets.KeyResolver
	scheme string
}

// FollowThrough sets to as the resolver of whole "scheme:name" refs that an
// entry naming another ref (Value.Ref) is followed through;
// secrets.OpenConfig calls it with its stack (see secrets.Follower). It may
// be called at any time, also while resolves run; the last call wins. A nil
// to turns following off again.
func (r *Resolver) FollowThrough(to secrets.KeyResolver) {
	if to == nil {
		r.follow.Store(nil)
		return
	}
	t := &through{r: to}
	if s, ok := to.(interface{ FollowScheme() string }); ok {
		t.scheme = s.FollowScheme()
	}
	r.follow.Store(t)
}

// following reports whether ctx resolves a ref that an entry named: a Ref
// answer under it is a chain, refused without resolving anything. A
// cache's detached fetch keeps the ctx's values (context.WithoutCancel),
// so the mark reaches the backend however many layers the follow crosses,
// and a marked fetch never joins one in flight (which could be the
// caller's own, waiting for it).
func following(ctx context.Context) bool { return followmark.Marked(ctx) }

// startFollow judges a Ref answer before anything is resolved for it, to
// be followed through t (nil: no follower): the entry's own expiry, a
// chain, a missing follower, an entry naming itself. Its error is a
// Driver's kind: fail applies the rules to it.
func (r *Resolver) startFollow(ctx context.Context, t *through, ref Ref, v Value) error {
	if !v.ExpiresAt.IsZero() && !r.now().Before(v.ExpiresAt) {
		return secrets.ExpiredError("resolve", r.backend, ref.Raw, v.ExpiresAt)
	}
	if following(ctx) {
		return Errorf(secrets.CodeInvalidRef,
			"the entry names another ref (%s), and it was itself reached through an entry naming it: chains of refs are not followed; point the first entry at the key itself", shown(v.Ref))
	}
	if t == nil {
		return Errorf(secrets.CodeInvalidRef,
			"the entry names another ref (%s), and this %s store has nothing to resolve it through: open the store through a Stack (secrets.OpenConfig) or call FollowThrough", shown(v.Ref), r.backend)
	}
	if r.namesItself(t, ref, v.Ref) {
		return Errorf(secrets.CodeInvalidRef, "the entry names itself (%s): point it at the key", shown(v.Ref))
	}
	return nil
}

// namesItself reports whether target is ref under this backend's scheme.
// Through a cache, resolving it would wait on the fetch already running for
// ref (its own), so it is refused before any resolve; the chain rule
// catches every longer loop.
func (r *Resolver) namesItself(t *through, ref Ref, target string) bool {
	scheme, rest, ok := strings.Cut(target, ":")
	if t.scheme == "" || !ok || scheme != t.scheme {
		return false
	}
	p, err := r.ParseRef(rest)
	return err == nil && key(p) == key(ref)
}

// followCtx is ctx marked as a follow.
func followCtx(ctx context.Context) context.Context {
	return followmark.Mark(ctx)
}

// followed builds the answer for ref, whose entry v named v.Ref, from what
// resolving v.Ref gave (s, err).
func (r *Resolver) followed(ctx context.Context, ref Ref, v Value, s secrets.Secret, err error) (secrets.Secret, error) {
	if err != nil {
		return secrets.Secret{}, r.followError(ctx, ref.Raw, v.Ref, err)
	}
	if s.Source.Followed != "" {
		// A cached or shared answer of a ref that was itself followed: the
		// mark never reached its backend, the result says it all the same.
		return secrets.Secret{}, r.fail(ctx, "resolve", ref.Raw, Errorf(secrets.CodeInvalidRef,
			"its key is at %s, whose entry names another ref (%s) in turn: chains of refs are not followed; point the entry at the key itself", shown(v.Ref), shown(s.Source.Followed)))
	}
	value := s.Reveal()
	if ref.Field != "" {
		var perr error
		if value, perr = pick(Value{Data: value}, ref.Field); perr != nil {
			return secrets.Secret{}, r.followError(ctx, ref.Raw, v.Ref, perr)
		}
	}
	exp := earliest(v.ExpiresAt, s.ExpiresAt)
	if !exp.IsZero() && !r.now().Before(exp) {
		return secrets.Secret{}, secrets.ExpiredError("resolve", r.backend, ref.Raw, exp)
	}
	out := secrets.NewSecret(value)
	out.Version, out.ExpiresAt = s.Version, exp
	out.Source = secrets.Source{Backend: r.backend, Followed: v.Ref, Plaintext: v.Plaintext || s.Source.Plaintext}
	return out, nil
}

// followError is the error for ref when following its entry to target
// failed with err: the followed ref's code, reason and cause under ref's
// Op, Backend and Ref, the reason saying where the key is; or the
// ContextError, when the caller's ctx ended.
func (r *Resolver) followError(ctx context.Context, raw, target string, err error) error {
	e := r.fail(ctx, "resolve", raw, err)
	if cerr := ctx.Err(); cerr != nil && errors.Is(e, cerr) {
		return e
	}
	var se *secrets.Error
	if !errors.As(e, &se) {
		return e // fail always returns an *secrets.Error
	}
	c := *se
	c.Reason = "its key is at " + shown(target)
	if se.Reason != "" {
		c.Reason += ": " + se.Reason
	}
	return &c
}

// earliest is the earlier of two expiry times, zero meaning never.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// shown is a ref an entry named, as errors quote it: as is when it is
// short and printable, else quoted and cut, since it comes from a column a
// person typed into and a log line must stay one line.
func shown(ref string) string {
	const max = 256
	if len(ref) <= max && strings.IndexFunc(ref, func(c rune) bool { return c < ' ' || c == 0x7f || c == '\uFFFD' }) < 0 {
		return ref
	}
	if len(ref) > max {
		return strconv.Quote(strings.ToValidUTF8(ref[:max], "")) + "..."
	}
	return strconv.Quote(ref)
}
