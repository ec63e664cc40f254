package driver

import (
	"context"
	"errors"
	"fmt"

	secrets "github.com/keyward/secrets"
)

// Versioner is the optional ability of a Driver to tell the current version
// of an entry without its value, in a call cheaper than Get (AWS
// DescribeSecret, Vault KV v2 metadata), so that a cache can check a
// long-lived entry instead of fetching it again. The answer has the form Get
// puts in Value.Version for the same ref: an entry whose Version differs has
// changed.
//
// A Driver that can only answer for some refs (a KV v1 mount has no
// versions) returns Unsupported for the others, never an empty version. An
// entry whose Value names another ref (Value.Ref) gets the followed secret's
// Version from Resolve, which a Versioner does not know: it returns
// Unsupported for such entries too.
type Versioner interface {
	Version(ctx context.Context, ref Ref) (string, error)
}

var _ secrets.VersionChecker = (*Resolver)(nil)

// Unsupported returns the error for an optional ability a Driver has but
// cannot use for this ref: an *secrets.Error that errors.Is matches with
// errors.ErrUnsupported. Its Reason is the formatted text, which should say
// why and what the caller can do instead.
func Unsupported(format string, args ...any) error {
	return &secrets.Error{Code: secrets.CodeUnknown, Reason: fmt.Sprintf(format, args...), Err: errors.ErrUnsupported}
}

// CurrentVersion returns the current version of the entry raw names, in the
// form Resolve puts in Secret.Version, without fetching its value. raw is
// parsed as Resolve parses it (its #field is accepted and does not change
// the answer) and the driver is opened as for Resolve; then the driver's
// Versioner answers. A driver without the ability, or one that cannot answer
// for this ref, fails with an error that errors.Is matches with
// errors.ErrUnsupported: the caller then has to Resolve to notice a change.
// Every error is an *secrets.Error with Op "version", Backend and Ref set,
// under the same rules as Resolve's.
func (r *Resolver) CurrentVersion(ctx context.Context, raw string) (string, error) {
	const op = "version"
	if err := ctx.Err(); err != nil {
		return "", secrets.ContextError(op, r.backend, raw, err)
	}
	ref, err := r.ParseRef(raw)
	if err != nil {
		return "", withOp(err, op)
	}
	d, err := r.d.Get(ctx)
	if err != nil {
		return "", r.fail(ctx, op, raw, r.openError(err))
	}
	v, ok := d.(Versioner)
	if !ok {
		return "", r.fail(ctx, op, raw, Unsupported(
			"the %s backend cannot tell a secret's version without reading it: resolve the ref again to notice a change", r.backend))
	}
	version, err := v.Version(ctx, ref)
	if err != nil {
		return "", r.fail(ctx, op, raw, err)
	}
	if version == "" {
		// An empty version would match every entry that has none, and a
		// check would never notice a change.
		return "", r.fail(ctx, op, raw, Unsupported(
			"the %s backend has no version for this entry: resolve the ref again to notice a change", r.backend))
	}
	return version, nil
}

// withOp returns err, an error of ParseRef (always an *secrets.Error, made
// for Op "resolve"), as a copy under op.
func withOp(err error, op string) error {
	var se *secrets.Error
	if errors.As(err, &se) {
		e := *se
		e.Op = op
		return &e
	}
	return err
}
