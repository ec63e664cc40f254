package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/once"
	"github.com/keyward/secrets/internal/refs"
)

// Options configures a Resolver. A nil *Options means no ?options and the
// system clock.
type Options struct {
	// Params lists the ?options the driver accepts (awssm: stage, version).
	// Any other option makes the ref invalid, so a typo never selects a
	// different secret.
	Params []string
	// Now returns the current time for the expiry check; nil means time.Now.
	Now func() time.Time
	// Check, when set, applies the backend's own ref rules (name syntax,
	// path safety) as part of parsing: before the driver is opened, so a ref
	// the backend refuses costs no I/O (vault: no token check or login), and
	// it fails alone in a batch. Its errors follow a Driver's rules.
	Check func(Ref) error
}

// Resolver is the portable type every backend is served through: a
// secrets.KeyResolver, secrets.BatchResolver, secrets.Pinger and
// secrets.Follower, and an io.Closer, over a Driver. Backends embed it in
// their Store.
type Resolver struct {
	backend string
	params  []string
	now     func() time.Time
	check   func(Ref) error
	d       once.Value[Driver]
	follow  atomic.Pointer[through] // set by FollowThrough
}

var (
	_ secrets.KeyResolver   = (*Resolver)(nil)
	_ secrets.BatchResolver = (*Resolver)(nil)
	_ secrets.Pinger        = (*Resolver)(nil)
	_ io.Closer             = (*Resolver)(nil)
)

// New returns a Resolver over d, named backend in errors and audit events.
func New(backend string, d Driver, opts *Options) *Resolver {
	return Open(backend, func(context.Context) (Driver, error) { return d, nil }, opts)
}

// Open returns a Resolver whose Driver is made by open on first use: on the
// first caller's ctx, shared by the callers that arrive meanwhile (each
// waiting on its own ctx), and tried again after a failure. open's errors
// follow the same rules as a Driver's. Open itself does no I/O.
func Open(backend string, open func(ctx context.Context) (Driver, error), opts *Options) *Resolver {
	r := &Resolver{backend: backend, now: time.Now}
	if opts != nil {
		r.params = append([]string(nil), opts.Params...)
		if opts.Now != nil {
			r.now = opts.Now
		}
		r.check = opts.Check
	}
	r.d.Open = open
	r.d.CloseFunc = func(d Driver) error {
		if c, ok := d.(io.Closer); ok {
			return c.Close()
		}
		return nil
	}
	return r
}

// Backend returns the backend's name.
func (r *Resolver) Backend() string { return r.backend }

// Driver returns the Driver, opening it if need be, for a backend's own
// operations (fernetstore's Put, Rotate, ...). Its error follows the rules.
func (r *Resolver) Driver(ctx context.Context, op string) (Driver, error) {
	d, err := r.d.Get(ctx)
	if err != nil {
		return nil, r.fail(ctx, op, "", r.openError(err))
	}
	return d, nil
}

// Loaded returns the Driver if it has been opened.
func (r *Resolver) Loaded() (Driver, bool) { return r.d.Loaded() }

func (r *Resolver) openError(err error) error {
	if errors.Is(err, once.ErrClosed) {
		return Errorf(secrets.CodeUnavailable, "the %s backend is closed", r.backend)
	}
	return err
}

// ParseRef parses a backend-local ref the way Resolve does, without I/O.
func (r *Resolver) ParseRef(raw string) (Ref, error) {
	p, err := refs.Parse(raw, r.params...)
	if err != nil {
		return Ref{}, &secrets.Error{Op: "resolve", Backend: r.backend, Ref: raw, Code: secrets.CodeInvalidRef, Reason: err.Error()}
	}
	ref := Ref{Raw: raw, Name: p.Path, Query: p.Query, Field: p.Field}
	if r.check != nil {
		if err := r.check(ref); err != nil {
			return Ref{}, r.fail(context.Background(), "resolve", raw, err)
		}
	}
	return ref, nil
}

// Resolve resolves one ref: parse, open the driver, Get, then #field, the
// expiry check and the error rules.
func (r *Resolver) Resolve(ctx context.Context, raw string) (secrets.Secret, error) {
	if err := ctx.Err(); err != nil {
		return secrets.Secret{}, secrets.ContextError("resolve", r.backend, raw, err)
	}
	ref, err := r.ParseRef(raw)
	if err != nil {
		return secrets.Secret{}, err
	}
	d, err := r.d.Get(ctx)
	if err != nil {
		return secrets.Secret{}, r.fail(ctx, "resolve", raw, r.openError(err))
	}
	v, err := d.Get(ctx, ref)
	if err != nil {
		return secrets.Secret{}, r.fail(ctx, "resolve", raw, err)
	}
	if v.Ref != "" {
		t := r.follow.Load()
		if err := r.startFollow(ctx, t, ref, v); err != nil {
			return secrets.Secret{}, r.fail(ctx, "resolve", raw, err)
		}
		s, err := t.r.Resolve(followCtx(ctx), v.Ref)
		return r.followed(ctx, ref, v, s, err)
	}
	return r.finish(ctx, ref, v)
}

// fail applies the error rules: a call whose ctx ended fails with
// secrets.ContextError; an *secrets.Error is copied with Op, Backend and Ref
// set; a bare Code keeps its chain; anything else is CodeUnknown with its
// text cut.
func (r *Resolver) fail(ctx context.Context, op, raw string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return secrets.ContextError(op, r.backend, raw, cerr)
		}
		if c := secrets.CodeOf(err); c == secrets.CodeUnavailable || c == secrets.CodeUnknown {
			return secrets.ContextError(op, r.backend, raw, cerr)
		}
	}
	var se *secrets.Error
	if errors.As(err, &se) {
		e := *se
		e.Op, e.Backend, e.Ref = op, r.backend, raw
		return &e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// A deadline of the driver's own (a client timeout), not the caller's.
		return &secrets.Error{Op: op, Backend: r.backend, Ref: raw, Code: secrets.CodeUnavailable,
			Reason: "the backend did not answer in time", Err: context.DeadlineExceeded}
	}
	var c secrets.Code
	if errors.As(err, &c) {
		return &secrets.Error{Op: op, Backend: r.backend, Ref: raw, Code: c, Err: err}
	}
	return &secrets.Error{Op: op, Backend: r.backend, Ref: raw, Code: secrets.CodeUnknown,
		Reason: fmt.Sprintf("unclassified %T from the backend; its text is not shown, since it could hold a value", err)}
}

// finish picks the #field, checks expiry and builds the Secret.
func (r *Resolver) finish(ctx context.Context, ref Ref, v Value) (secrets.Secret, error) {
	value := v.Data
	if ref.Field != "" {
		var err error
		if value, err = pick(v, ref.Field); err != nil {
			return secrets.Secret{}, r.fail(ctx, "resolve", ref.Raw, err)
		}
	}
	if !v.ExpiresAt.IsZero() && !r.now().Before(v.ExpiresAt) {
		return secrets.Secret{}, secrets.ExpiredError("resolve", r.backend, ref.Raw, v.ExpiresAt)
	}
	s := secrets.NewSecret(value)
	s.Version, s.ExpiresAt = v.Version, v.ExpiresAt
	s.Source = secrets.Source{Backend: r.backend, Plaintext: v.Plaintext}
	return s, nil
}

// pick is the one #field rule: a missing field is ErrNotFound, a value that
// is no JSON object is ErrInvalidRef. Neither error quotes the value.
func pick(v Value, field string) (string, error) {
	if v.Document != nil {
		f, ok := v.Document[field]
		if !ok {
			return "", Errorf(secrets.CodeNotFound, "the secret has no field %q", field)
		}
		if s, ok := f.(string); ok {
			return s, nil
		}
		b, err := json.Marshal(f)
		if err != nil {
			return "", Errorf(secrets.CodeInvalidRef, "field %q is not a string and cannot be encoded as JSON", field)
		}
		return string(b), nil
	}
	s, err := refs.Field([]byte(v.Data), field)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, refs.ErrNoField):
		return "", Errorf(secrets.CodeNotFound, "the secret has no field %q", field)
	default:
		return "", Errorf(secrets.CodeInvalidRef, "the secret is not a JSON object, so #%s cannot pick from it: leave out the #field", field)
	}
}

// ResolveMany resolves refs, in one Batcher call when the driver has the
// ability and one Get per distinct secret otherwise: refs that differ only by
// #field cost one fetch. It always returns exactly one Result per ref, in
// order; a failure of the whole call (closed, ctx ended, the backend could
// not be opened) is set on every Result it touched and also returned.
func (r *Resolver) ResolveMany(ctx context.Context, raws []string) ([]secrets.Result, error) {
	out := make([]secrets.Result, len(raws))
	for i, raw := range raws {
		out[i].Ref = raw
	}
	if err := ctx.Err(); err != nil {
		for i := range out {
			out[i].Err = secrets.ContextError("resolve", r.backend, raws[i], err)
		}
		return out, secrets.ContextError("resolve", r.backend, "", err)
	}
	// Parse every ref; group the valid ones by the secret they name.
	parsed := make([]Ref, len(raws))
	index := map[string]int{} // key -> position in uniq
	var uniq []Ref
	slot := make([]int, len(raws)) // position in uniq, -1 for invalid refs
	for i, raw := range raws {
		ref, err := r.ParseRef(raw)
		if err != nil {
			out[i].Err, slot[i] = err, -1
			continue
		}
		parsed[i] = ref
		k := key(ref)
		j, ok := index[k]
		if !ok {
			j = len(uniq)
			index[k] = j
			u := ref
			u.Field = ""
			uniq = append(uniq, u)
		}
		slot[i] = j
	}
	if len(uniq) == 0 {
		return out, nil
	}
	d, err := r.d.Get(ctx)
	if err != nil {
		return out, r.failSlots(ctx, out, slot, r.openError(err))
	}
	vals := make([]Value, len(uniq))
	errs := make([]error, len(uniq))
	if b, ok := d.(Batcher); ok {
		bv, be, err := b.GetMany(ctx, uniq)
		if err == nil && (len(bv) != len(uniq) || len(be) != len(uniq)) {
			err = Errorf(secrets.CodeUnknown, "the %s driver returned %d values and %d errors for %d refs", r.backend, len(bv), len(be), len(uniq))
		}
		if err != nil {
			return out, r.failSlots(ctx, out, slot, err)
		}
		copy(vals, bv)
		copy(errs, be)
	} else {
		for j, ref := range uniq {
			if err := ctx.Err(); err != nil {
				for k := j; k < len(uniq); k++ {
					errs[k] = err
				}
				break
			}
			vals[j], errs[j] = d.Get(ctx, ref)
		}
	}
	follows := r.followMany(ctx, uniq, vals, errs)
	var whole error
	for i, j := range slot {
		if j < 0 {
			continue
		}
		if errs[j] != nil {
			out[i].Err = r.fail(ctx, "resolve", raws[i], errs[j])
			if whole == nil && ctx.Err() != nil {
				whole = secrets.ContextError("resolve", r.backend, "", ctx.Err())
			}
			continue
		}
		if vals[j].Ref != "" {
			if f := follows[j]; f.refused != nil {
				out[i].Err = r.fail(ctx, "resolve", raws[i], f.refused)
			} else {
				out[i].Secret, out[i].Err = r.followed(ctx, parsed[i], vals[j], f.Secret, f.Err)
			}
			if out[i].Err != nil && whole == nil && ctx.Err() != nil {
				whole = secrets.ContextError("resolve", r.backend, "", ctx.Err())
			}
			continue
		}
		out[i].Secret, out[i].Err = r.finish(ctx, parsed[i], vals[j])
	}
	return out, whole
}

// followMany follows, as one batch through the follower, every entry of
// uniq whose value names another ref (each distinct ref once), and returns
// the answer for each such entry, by position in uniq.
func (r *Resolver) followMany(ctx context.Context, uniq []Ref, vals []Value, errs []error) map[int]follow {
	var out map[int]follow
	t := r.follow.Load()
	var targets []string
	at := map[string]int{} // target -> position in targets
	for j := range uniq {
		if errs[j] != nil || vals[j].Ref == "" {
			continue
		}
		if out == nil {
			out = map[int]follow{}
		}
		if err := r.startFollow(ctx, t, uniq[j], vals[j]); err != nil {
			out[j] = follow{refused: err}
			continue
		}
		k, ok := at[vals[j].Ref]
		if !ok {
			k = len(targets)
			at[vals[j].Ref] = k
			targets = append(targets, vals[j].Ref)
		}
		out[j] = follow{at: k}
	}
	if len(targets) == 0 {
		return out
	}
	res, err := secrets.ResolveMany(followCtx(ctx), t.r, targets)
	for j, f := range out {
		switch {
		case f.refused != nil:
		case f.at < len(res):
			f.Secret, f.Err = res[f.at].Secret, res[f.at].Err
		case err != nil:
			f.Err = err
		default:
			f.Err = Errorf(secrets.CodeUnavailable, "the batch call returned no result for %s", targets[f.at])
		}
		out[j] = f
	}
	return out
}

// follow is followMany's answer for one entry: refused before any resolve,
// or what resolving the ref it names gave.
type follow struct {
	refused error
	at      int // position in the batch of followed refs
	secrets.Result
}

// failSlots sets err on every parsed ref's Result and returns the whole-call
// error.
func (r *Resolver) failSlots(ctx context.Context, out []secrets.Result, slot []int, err error) error {
	for i, j := range slot {
		if j >= 0 {
			out[i].Err = r.fail(ctx, "resolve", out[i].Ref, err)
		}
	}
	return r.fail(ctx, "resolve", "", err)
}

// key names the secret a ref fetches: its name and options, not its field.
func key(ref Ref) string {
	if len(ref.Query) == 0 {
		return ref.Name
	}
	names := make([]string, 0, len(ref.Query))
	for n := range ref.Query {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(ref.Name)
	for _, n := range names {
		b.WriteString("?" + url.QueryEscape(n) + "=" + url.QueryEscape(ref.Query.Get(n)))
	}
	return b.String()
}

// Ping opens the driver and pings it if it has the ability.
func (r *Resolver) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return secrets.ContextError("ping", r.backend, "", err)
	}
	d, err := r.d.Get(ctx)
	if err != nil {
		return r.fail(ctx, "ping", "", r.openError(err))
	}
	if p, ok := d.(Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return r.fail(ctx, "ping", "", err)
		}
	}
	return nil
}

// Close closes the driver if it was opened (or when an open under way
// finishes) and makes every later call fail with ErrUnavailable. Closing
// twice is safe; only the first closes.
func (r *Resolver) Close() error {
	if err := r.d.Close(); err != nil {
		return r.fail(context.Background(), "close", "", err)
	}
	return nil
}
