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
// decorator of its own still answers. A scheme whose backend has not the
// ability fails with ErrInvalidRef, naming the scheme.
func (m *Mux) ResolveVersions(ctx context.Context, ref string, max int) ([]Secret, error) {
	const op = "resolve versions"
	r, rest, err := m.route(ref)
	if err != nil {
		return nil, asOp(err, op)
	}
	vr, ok := Find[VersionResolver](r)
	if !ok {
		return nil, &Error{Op: op, Ref: ref, Code: CodeInvalidRef, Reason: fmt.Sprintf(
			"the backend of scheme %q cannot read a secret's versions: name a secret in a manager that keeps them (awssm, vault KV v2, azurekv)", schemeOf(ref))}
	}
	return vr.ResolveVersions(ctx, rest, max)
}

// PutVersion stores value as the new current version of "scheme:ref" with
// the scheme's backend (see VersionWriter), found with Find. A scheme whose
// backend has not the ability fails with ErrInvalidRef, naming the scheme.
func (m *Mux) PutVersion(ctx context.Context, ref, value string) (string, error) {
	const op = "put version"
	r, rest, err := m.route(ref)
	if err != nil {
		return "", asOp(err, op)
	}
	w, ok := Find[VersionWriter](r)
	if !ok {
		return "", &Error{Op: op, Ref: ref, Code: CodeInvalidRef, Reason: fmt.Sprintf(
			"the backend of scheme %q cannot store a new version of a secret: name a secret in a manager that keeps versions (awssm, vault KV v2, azurekv)", schemeOf(ref))}
	}
	return w.PutVersion(ctx, rest, value)
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
