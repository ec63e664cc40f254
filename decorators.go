package secrets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyward/secrets/internal/once"
	"github.com/keyward/secrets/internal/refs"
)

// ExpiryOptions configures EnforceExpiry. A nil *ExpiryOptions means defaults.
type ExpiryOptions struct {
	// Now returns the current time; nil means time.Now. Tests inject a clock.
	Now func() time.Time
}

type expiry struct {
	next KeyResolver
	now  func() time.Time
}

// EnforceExpiry returns a KeyResolver that fails with ErrExpired when next
// returns a secret whose ExpiresAt is not after now, whatever the backend
// itself enforces.
func EnforceExpiry(next KeyResolver, opts *ExpiryOptions) KeyResolver {
	e := &expiry{next: next, now: time.Now}
	if opts != nil && opts.Now != nil {
		e.now = opts.Now
	}
	return e
}

func (e *expiry) Resolve(ctx context.Context, ref string) (Secret, error) {
	s, err := e.next.Resolve(ctx, ref)
	if err != nil {
		return Secret{}, err
	}
	if s.ExpiredAt(e.now()) {
		return Secret{}, expiredError(ctx, ref, s)
	}
	return s, nil
}

// ResolveMany passes refs to next as one batch and fails each expired
// secret of the answer with ErrExpired, as Resolve does.
func (e *expiry) ResolveMany(ctx context.Context, refs []string) ([]Result, error) {
	out, err := batchAll(ctx, e.next, refs)
	now := e.now()
	for i, r := range out {
		if r.Err == nil && r.Secret.ExpiredAt(now) {
			out[i] = Result{Ref: r.Ref, Err: expiredError(ctx, r.Ref, r.Secret)}
		}
	}
	return out, err
}

func expiredError(_ context.Context, ref string, s Secret) error {
	return ExpiredError("resolve", s.Source.Backend, ref, s.ExpiresAt)
}

// Unwrap returns the wrapped resolver, so optional abilities can be found.
func (e *expiry) Unwrap() KeyResolver { return e.next }

// AuditEvent describes one resolve. It never holds the value.
type AuditEvent struct {
	Time      time.Time
	Ref       string
	Backend   string // the Secret's Source.Backend, or the error's Backend
	Outcome   string // "ok", "canceled", or a Code's Name: "not_found", "unavailable", ...
	Err       error  // nil on success; an error's text never holds a value
	Latency   time.Duration
	CacheHit  bool // answered by a cache without a backend call
	Stale     bool // answered by a cache with a stale value during a backend failure
	Plaintext bool // the value was read from legacy plaintext
	// Requester says who asked, as the host put it in the resolve's
	// context with WithRequester ("" when it did not): a user, a bot, a
	// client token's name. It is the host's text, never a value.
	Requester string
}

type requesterKey struct{}

// WithRequester returns a copy of ctx that names who is asking (a user id,
// a bot, an API client), for the audit trail: the audit decorator puts it
// in AuditEvent.Requester. Set it where the host knows the caller, such as
// an HTTP handler's authentication; it must not hold a secret.
func WithRequester(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, requesterKey{}, who)
}

// RequesterFrom returns what WithRequester put in ctx, or "".
func RequesterFrom(ctx context.Context) string {
	who, _ := ctx.Value(requesterKey{}).(string)
	return who
}

// Auditor receives audit events. Implementations must be safe for concurrent
// use and should not block: they run on the resolve path.
type Auditor interface {
	Audit(ctx context.Context, ev AuditEvent)
}

// AuditFunc adapts a function to an Auditor.
type AuditFunc func(ctx context.Context, ev AuditEvent)

// Audit calls f.
func (f AuditFunc) Audit(ctx context.Context, ev AuditEvent) { f(ctx, ev) }

// SlogAuditor returns an Auditor that logs each event to l: at Info for
// success, Warn for plaintext reads and failures other than not found.
func SlogAuditor(l *slog.Logger) Auditor {
	return AuditFunc(func(ctx context.Context, ev AuditEvent) {
		level := slog.LevelInfo
		if ev.Plaintext || (ev.Err != nil && !errors.Is(ev.Err, ErrNotFound) && !errors.Is(ev.Err, context.Canceled)) {
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{
			slog.String("ref", ev.Ref),
			slog.String("backend", ev.Backend),
			slog.String("outcome", ev.Outcome),
			slog.Duration("latency", ev.Latency),
			slog.Bool("cache_hit", ev.CacheHit),
		}
		if ev.Requester != "" {
			attrs = append(attrs, slog.String("requester", ev.Requester))
		}
		if ev.Stale {
			attrs = append(attrs, slog.Bool("stale", true))
		}
		if ev.Plaintext {
			attrs = append(attrs, slog.Bool("plaintext", true))
		}
		if ev.Err != nil {
			attrs = append(attrs, slog.String("error", ev.Err.Error()))
		}
		l.LogAttrs(ctx, level, "keyward resolve", attrs...)
	})
}

// AuditOptions configures NewAudit. A nil *AuditOptions means defaults.
type AuditOptions struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

type audit struct {
	next KeyResolver
	to   Auditor
	now  func() time.Time
}

// NewAudit returns a KeyResolver that reports every resolve through next to
// to: ref, backend, outcome, latency, whether a cache answered, and who
// asked (WithRequester on the resolve's context). Put it
// outermost, so it sees cache hits as well as backend calls.
//
// A batch (ResolveMany) is passed to next as one batch and reported as one
// event per ref, in order, each with the batch's latency and its own
// provenance (each Result's Secret.Source, or its error's Backend).
func NewAudit(next KeyResolver, to Auditor, opts *AuditOptions) KeyResolver {
	a := &audit{next: next, to: to, now: time.Now}
	if opts != nil && opts.Now != nil {
		a.now = opts.Now
	}
	return a
}

func (a *audit) Resolve(ctx context.Context, ref string) (Secret, error) {
	start := a.now()
	s, err := a.next.Resolve(ctx, ref)
	ev := auditEvent(start, a.now().Sub(start), ref, s, err)
	ev.Requester = RequesterFrom(ctx)
	a.to.Audit(ctx, ev)
	return s, err
}

// auditEvent builds the event for one answer from its own provenance.
func auditEvent(start time.Time, latency time.Duration, ref string, s Secret, err error) AuditEvent {
	src := s.Source
	if err != nil {
		src = Source{}
		var e *Error
		if errors.As(err, &e) {
			src.Backend = e.Backend
		}
	}
	return AuditEvent{
		Time: start, Ref: ref, Backend: src.Backend, Outcome: Outcome(err), Err: err,
		Latency: latency, CacheHit: src.Cached, Stale: src.Stale, Plaintext: src.Plaintext,
	}
}

// ResolveMany passes refs to next as one batch and reports one event per ref.
func (a *audit) ResolveMany(ctx context.Context, refs []string) ([]Result, error) {
	start := a.now()
	out, err := batchAll(ctx, a.next, refs)
	latency := a.now().Sub(start)
	who := RequesterFrom(ctx)
	for _, r := range out {
		ev := auditEvent(start, latency, r.Ref, r.Secret, r.Err)
		ev.Requester = who
		a.to.Audit(ctx, ev)
	}
	return out, err
}

// Unwrap returns the wrapped resolver.
func (a *audit) Unwrap() KeyResolver { return a.next }

// batchAll resolves refs as one batch with next (secrets.ResolveMany: its
// batch ability, or one by one) and returns one Result per ref, in order.
func batchAll(ctx context.Context, next KeyResolver, refs []string) ([]Result, error) {
	out := make([]Result, len(refs))
	idx := make([]int, len(refs))
	for i, ref := range refs {
		out[i].Ref = ref
		idx[i] = i
	}
	err := batchInto(ctx, next, out, idx, refs)
	return out, err
}

// batchInto resolves refs as one batch with next and writes the answer for
// refs[j] into out[idx[j]], keeping out's Ref. A ref the batch left
// unanswered gets the batch call's error, or ErrUnavailable if the call
// claimed success: a missing answer is never a zero Secret with a nil error.
func batchInto(ctx context.Context, next KeyResolver, out []Result, idx []int, refs []string) error {
	if len(refs) == 0 {
		return nil
	}
	res, err := ResolveMany(ctx, next, refs)
	for j, i := range idx {
		switch {
		case j < len(res):
			out[i].Secret, out[i].Err = res[j].Secret, res[j].Err
		case err != nil:
			out[i].Err = err
		default:
			out[i].Err = &Error{Op: "resolve", Ref: out[i].Ref, Code: CodeUnavailable,
				Reason: "the batch call returned no result for this ref"}
		}
		if out[i].Err != nil {
			out[i].Secret = Secret{}
		}
	}
	return err
}

// Unwrapper is implemented by decorators; Find follows it.
type Unwrapper interface{ Unwrap() KeyResolver }

// Find walks r and the resolvers it wraps and returns the first that is a T.
//
// Find is for reaching abilities: Close, Ping, a *cache.Cache for its Stats
// or Warm. It is not for resolving: a resolver found beneath r is beneath
// r's policy layers (allow list, expiry, audit, timeout), and resolving with
// it walks around them. To resolve in a batch, call ResolveMany(ctx, r, refs)
// on r itself: every decorator here is a BatchResolver that applies its
// policy to each ref, so Find[BatchResolver] on a stack of them returns the
// outermost.
func Find[T any](r KeyResolver) (T, bool) {
	for r != nil {
		if t, ok := r.(T); ok {
			return t, true
		}
		u, ok := r.(Unwrapper)
		if !ok {
			break
		}
		r = u.Unwrap()
	}
	var zero T
	return zero, false
}

// AllowRefs returns a KeyResolver that passes to next only the refs matching
// one of patterns (path.Match syntax over the whole "scheme:ref": "db:*",
// "env:ANTHROPIC_*", "awssm:bots/*"), and fails the others with ErrPermission
// before any backend sees them. Use it where refs come from rows a tenant can
// edit, so a row cannot name another backend's secrets. It returns an error
// naming the first malformed pattern.
//
// A pattern is matched against the ref as the backend will read it, not
// against its raw text: the name is %-decoded ("awssm:bots/a%2Fb" names
// bots/a/b, which a one-level "awssm:bots/*" refuses), then written back
// with only '?', '#' and '%' escaped; a ?query follows in sorted, encoded
// form and a #field decoded, with '%' and '/' escaped. So '*' never matches
// a '/' of the name but does match any ?query and #field: "db:*" allows
// "db:7#org", "awssm:bots/*" allows "awssm:bots/a?version=v1#api_key". A ref
// that does not parse (a bad %-escape, a control character, no scheme) fails
// with ErrInvalidRef; one whose decoded name is ambiguous fails with
// ErrPermission: a '%' (double encoding), a '\', or an empty, "." or ".."
// segment (a leading, trailing or doubled '/'), which some server could
// normalise into a name the pattern did not allow.
//
// Batches (ResolveMany) are judged ref by ref: refused refs fail in their
// place in the answer and only the others are passed to next, as one batch.
func AllowRefs(next KeyResolver, patterns []string) (KeyResolver, error) {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, &Error{Op: "config", Code: CodeInvalidRef,
				Reason: fmt.Sprintf("malformed allow pattern %q: use path.Match syntax such as env:ANTHROPIC_*", p)}
		}
	}
	return &allowRefs{next: next, patterns: append([]string(nil), patterns...)}, nil
}

type allowRefs struct {
	next     KeyResolver
	patterns []string
}

// check returns nil if ref may pass, else why not.
func (a *allowRefs) check(ref string) error {
	canon, err := canonicalRef(ref)
	if err != nil {
		return err
	}
	for _, p := range a.patterns {
		if ok, _ := path.Match(p, canon); ok {
			return nil
		}
	}
	read := ""
	if canon != ref {
		read = " (read as " + canon + ")"
	}
	return &Error{Op: "resolve", Ref: ref, Code: CodePermission,
		Reason: "the ref" + read + " is not in this stack's allow list (" + strings.Join(a.patterns, ", ") + ")"}
}

// canonicalRef returns "scheme:ref" as the backend behind a Mux reads it,
// in the form AllowRefs documents, or why it cannot be matched. The grammar
// is the one every keyward backend parses (internal/refs).
func canonicalRef(ref string) (string, error) {
	scheme, rest, err := SplitRef(ref)
	if err != nil {
		return "", err
	}
	// Options are the backend's to check: accept whichever the ref names.
	var options []string
	head, _, _ := strings.Cut(rest, "#")
	if _, query, ok := strings.Cut(head, "?"); ok {
		q, err := url.ParseQuery(query)
		if err != nil {
			return "", &Error{Op: "resolve", Ref: ref, Code: CodeInvalidRef, Reason: "bad ?query: write ?name=value with %-escapes"}
		}
		options = slices.Collect(maps.Keys(q))
	}
	r, err := refs.Parse(rest, options...)
	if err != nil {
		return "", &Error{Op: "resolve", Ref: ref, Code: CodeInvalidRef, Reason: err.Error()}
	}
	refuse := func(why string) error {
		return &Error{Op: "resolve", Ref: ref, Code: CodePermission,
			Reason: "the allow list refuses a ref whose decoded name " + why + "; write the name plainly, such as awssm:bots/anthropic"}
	}
	if strings.Contains(r.Path, "%") {
		return "", refuse("holds a '%' (a %-escape encoded twice?)")
	}
	if strings.Contains(r.Path, `\`) {
		return "", refuse(`holds a '\'`)
	}
	for _, seg := range strings.Split(r.Path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", refuse("has an empty, '.' or '..' segment (" + r.Path + ")")
		}
	}
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteByte(':')
	b.WriteString(nameEscaper.Replace(r.Path))
	if r.Query != nil {
		b.WriteByte('?')
		b.WriteString(r.Query.Encode())
	}
	if r.Field != "" {
		b.WriteByte('#')
		b.WriteString(fieldEscaper.Replace(r.Field))
	}
	return b.String(), nil
}

var (
	nameEscaper  = strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")
	fieldEscaper = strings.NewReplacer("%", "%25", "/", "%2F")
)

func (a *allowRefs) Resolve(ctx context.Context, ref string) (Secret, error) {
	if err := a.check(ref); err != nil {
		return Secret{}, err
	}
	return a.next.Resolve(ctx, ref)
}

// ResolveMany fails each refused ref in its place and passes the others to
// next as one batch.
func (a *allowRefs) ResolveMany(ctx context.Context, refs []string) ([]Result, error) {
	out := make([]Result, len(refs))
	var pass []string
	var idx []int
	for i, ref := range refs {
		out[i].Ref = ref
		if err := a.check(ref); err != nil {
			out[i].Err = err
			continue
		}
		pass = append(pass, ref)
		idx = append(idx, i)
	}
	err := batchInto(ctx, a.next, out, idx, pass)
	return out, err
}

// Unwrap returns the wrapped resolver.
func (a *allowRefs) Unwrap() KeyResolver { return a.next }

// Lazy returns a KeyResolver that opens its backend with open on first use.
// Callers that arrive while an open is under way share it, each waiting on
// its own ctx; a failed open is returned to them and tried again by the next
// call. Ping opens the backend and pings it if it can be pinged; Close
// closes it if it was opened (even if its open finishes after Close), and
// every later call fails with ErrUnavailable.
//
// Backends open lazily themselves (their constructors do no I/O); Lazy is
// for a resolver a host can only make with I/O, such as one that reads a
// file or dials a database when made.
//
// The resolver Lazy returns is a Follower: the resolver given to its
// FollowThrough, before or after the open, is handed to the opened
// resolver if it is (or wraps) a Follower, before it answers anything.
func Lazy(open func(ctx context.Context) (KeyResolver, error)) KeyResolver {
	l := new(lazy)
	l.v.Open = func(ctx context.Context) (KeyResolver, error) {
		r, err := open(ctx)
		if err == nil && r == nil {
			return nil, &Error{Op: "open", Code: CodeUnknown, Reason: "the func given to secrets.Lazy returned neither a resolver nor an error"}
		}
		if err == nil {
			l.mu.Lock()
			l.opened = r
			to := l.follow
			l.mu.Unlock()
			handFollow(r, to)
		}
		return r, err
	}
	l.v.CloseFunc = func(r KeyResolver) error {
		if c, ok := r.(io.Closer); ok {
			return c.Close()
		}
		return nil
	}
	return l
}

// lazy is Lazy's resolver; internal/once holds the rules of a shared,
// retried open, written once for this and the driver layer.
type lazy struct {
	v once.Value[KeyResolver]

	// Under mu, so that FollowThrough and an open finishing at once cannot
	// both miss the other: one of them sees both and hands follow over.
	mu     sync.Mutex
	follow KeyResolver // given to FollowThrough
	opened KeyResolver // what open made
}

// FollowThrough keeps r and hands it to the opened resolver (now, if it is
// open) when that is or wraps a Follower.
func (l *lazy) FollowThrough(r KeyResolver) {
	l.mu.Lock()
	l.follow = r
	opened := l.opened
	l.mu.Unlock()
	handFollow(opened, r)
}

// handFollow gives to to r's Follower, if r is set and has one.
func handFollow(r, to KeyResolver) {
	if r == nil || to == nil {
		return
	}
	if f, ok := Find[Follower](r); ok {
		f.FollowThrough(to)
	}
}

var errLazyClosed = &Error{Op: "open", Code: CodeUnavailable, Reason: "the stack is closed"}

func (l *lazy) get(ctx context.Context) (KeyResolver, error) {
	r, err := l.v.Get(ctx)
	if errors.Is(err, once.ErrClosed) {
		return nil, errLazyClosed
	}
	return r, err
}

func closeResolver(r KeyResolver) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

func (l *lazy) Resolve(ctx context.Context, ref string) (Secret, error) {
	r, err := l.get(ctx)
	if err != nil {
		return Secret{}, err
	}
	return r.Resolve(ctx, ref)
}

func (l *lazy) ResolveMany(ctx context.Context, refs []string) ([]Result, error) {
	r, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return ResolveMany(ctx, r, refs)
}

func (l *lazy) Ping(ctx context.Context) error {
	r, err := l.get(ctx)
	if err != nil {
		return err
	}
	if p, ok := r.(Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (l *lazy) Close() error { return l.v.Close() }

// Unwrap returns the opened resolver, or nil before the first use.
func (l *lazy) Unwrap() KeyResolver {
	r, _ := l.v.Loaded()
	return r
}

// WithTimeout returns a KeyResolver that bounds each call to next by d.
// A d of zero or less returns next itself.
func WithTimeout(next KeyResolver, d time.Duration) KeyResolver {
	if d <= 0 {
		return next
	}
	return &timeout{next: next, d: d}
}

type timeout struct {
	next KeyResolver
	d    time.Duration
}

func (t *timeout) Resolve(ctx context.Context, ref string) (Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.next.Resolve(ctx, ref)
}

func (t *timeout) ResolveMany(ctx context.Context, refs []string) ([]Result, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return ResolveMany(ctx, t.next, refs)
}

func (t *timeout) Unwrap() KeyResolver { return t.next }
