package secrets

import (
	"context"
	"fmt"
)

var (
	_ VersionResolver = (*Mux)(nil)
	_ VersionWriter   = (*Mux)(nil)
)

// ResolveVersions reads the versions of "scheme:ref" with the scheme's
// backend (see VersionResolver), found with Find, so a backend wrapped in a
// decorator of its own still answers; a Lazy not opened yet is opened
// first (its open failing is the error). A scheme whose backend has not
// the ability fails with ErrInvalidRef, naming the scheme. It goes to the
// backend directly: a stack's cache, allow list and audit are the Stack's,
// not the Mux's (a key ring is the service's own read, never a tenant's).
func (m *Mux) ResolveVersions(ctx context.Context, ref string, max int) ([]Secret, error) {
	const op = "resolve versions"
	r, rest, err := m.route(ref)
	if err != nil {
		return nil, asOp(err, op)
	}
	vr, ok, err := reach[VersionResolver](ctx, r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &Error{Op: op, Ref: ref, Code: CodeInvalidRef, Reason: fmt.Sprintf(
			"the backend of scheme %q cannot read a secret's versions: name a secret in a manager that keeps them (awssm, vault KV v2, azurekv)", schemeOf(ref))}
	}
	return vr.ResolveVersions(ctx, rest, max)
}

// PutVersion stores value as the new current version of "scheme:ref" with
// the scheme's backend (see VersionWriter), found as ResolveVersions finds
// its backend. A scheme whose
// backend has not the ability fails with ErrInvalidRef, naming the scheme.
func (m *Mux) PutVersion(ctx context.Context, ref, value string) (string, error) {
	const op = "put version"
	r, rest, err := m.route(ref)
	if err != nil {
		return "", asOp(err, op)
	}
	w, ok, err := reach[VersionWriter](ctx, r)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", &Error{Op: op, Ref: ref, Code: CodeInvalidRef, Reason: fmt.Sprintf(
			"the backend of scheme %q cannot store a new version of a secret: name a secret in a manager that keeps versions (awssm, vault KV v2, azurekv)", schemeOf(ref))}
	}
	return w.PutVersion(ctx, rest, value)
}

// reach is Find for an ability of a scheme's backend that may sit behind a
// resolver not opened yet (Lazy, as OpenConfig serves a bare URL whose
// opener needs a variable): such a resolver is opened first, with an empty
// batch, which opens it and resolves nothing, so the ability is found, or
// the opener's error returned.
func reach[T any](ctx context.Context, r KeyResolver) (T, bool, error) {
	if t, ok := Find[T](r); ok {
		return t, true, nil
	}
	for cur := r; cur != nil; {
		u, ok := cur.(Unwrapper)
		if !ok {
			break
		}
		next := u.Unwrap()
		if next == nil {
			if _, err := ResolveMany(ctx, cur, nil); err != nil {
				var zero T
				return zero, false, err
			}
			t, ok := Find[T](r)
			return t, ok, nil
		}
		cur = next
	}
	var zero T
	return zero, false, nil
}

// schemeOf is the scheme of a ref route accepted.
func schemeOf(ref string) string {
	s, _, _ := SplitRef(ref)
	return s
}

// asOp returns a copy of route's *Error under op.
func asOp(err error, op string) error {
	if e, ok := err.(*Error); ok {
		c := *e
		c.Op = op
		return &c
	}
	return err
}
