package secrets

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

var _ VersionChecker = (*Mux)(nil)

// CurrentVersion returns the current version of "scheme:ref", asked of the
// scheme's backend (found with Find, through its decorators) without
// fetching the value. A backend without the ability fails with an *Error
// that errors.Is matches with errors.ErrUnsupported, so a caller knows to
// resolve the ref again instead. Refs are routed as Resolve routes them:
// the errors for a ref without a scheme, an unknown scheme and a closed Mux
// are Resolve's, under Op "version".
//
// The check goes to the backend directly: it reads no value, but it also
// does not pass through decorators between the Mux and the backend.
func (m *Mux) CurrentVersion(ctx context.Context, ref string) (string, error) {
	r, rest, err := m.route(ref)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			c := *e
			c.Op = "version"
			return "", &c
		}
		return "", err
	}
	vc, ok := Find[VersionChecker](r)
	if !ok {
		scheme, _, _ := strings.Cut(ref, ":")
		return "", &Error{Op: "version", Ref: ref, Code: CodeUnknown, Err: errors.ErrUnsupported,
			Reason: fmt.Sprintf("the backend of scheme %q cannot tell a secret's version without reading it: resolve the ref again to notice a change", scheme)}
	}
	return vc.CurrentVersion(ctx, rest)
}
