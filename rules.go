package secrets

import (
	"context"
	"errors"
	"time"
)

// The rules below are written once and used by every layer that needs them:
// the driver core under the backends, the expiry decorator and the cache.
// Each returns an *Error, so every layer reports the same thing the same way.

// ExpiredError returns the error for a secret whose ExpiresAt is not after
// now: ErrExpired, naming when it expired and what to do.
func ExpiredError(op, backend, ref string, expiresAt time.Time) *Error {
	return &Error{Op: op, Backend: backend, Ref: ref, Code: CodeExpired,
		Reason: "the secret expired at " + expiresAt.UTC().Format(time.RFC3339) + "; rotate it in its backend"}
}

// ContextError is the one rule for a call whose caller's context ended: an
// *Error that errors.Is both ctxErr (context.Canceled or
// context.DeadlineExceeded) and its Code, which is CodeOf(ctxErr):
// ErrUnavailable for a deadline, CodeUnknown for a cancel (the backend did
// nothing wrong). ctxErr must be ctx.Err() of an ended context.
func ContextError(op, backend, ref string, ctxErr error) *Error {
	reason := "the caller canceled the call"
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		reason = "the caller's deadline passed before the backend answered"
	}
	return &Error{Op: op, Backend: backend, Ref: ref, Code: CodeOf(ctxErr), Reason: reason, Err: ctxErr}
}
