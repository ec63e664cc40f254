package secrets

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// Code classifies an error. The set is fixed and only ever appended to. Each
// code is itself an error, so errors.Is(err, ErrNotFound) works on every
// backend's errors.
type Code uint8

// The codes. CodeUnknown is for errors no backend classified.
const (
	CodeUnknown Code = iota
	CodeNotFound
	CodeExpired
	CodePermission
	CodeInvalidRef
	CodeUndecryptable
	CodeUnavailable
	CodeUnknownScheme
)

// The sentinels that errors.Is matches on every backend's errors.
var (
	// ErrNotFound: no secret under that ref (or no such field in it).
	ErrNotFound error = CodeNotFound
	// ErrExpired: the secret exists but is past its expiry.
	ErrExpired error = CodeExpired
	// ErrPermission: the backend refused the caller's credentials.
	ErrPermission error = CodePermission
	// ErrInvalidRef: the ref is malformed or not allowed; retrying will not help.
	ErrInvalidRef error = CodeInvalidRef
	// ErrUndecryptable: the stored value cannot be decrypted (wrong key, tampered).
	ErrUndecryptable error = CodeUndecryptable
	// ErrUnavailable: the backend is down, throttled or timed out after retries.
	ErrUnavailable error = CodeUnavailable
	// ErrUnknownScheme: no backend is registered for the ref's scheme.
	ErrUnknownScheme error = CodeUnknownScheme
)

var codeNames = [...]string{
	CodeUnknown:       "unknown error",
	CodeNotFound:      "not found",
	CodeExpired:       "expired",
	CodePermission:    "permission denied",
	CodeInvalidRef:    "invalid ref",
	CodeUndecryptable: "undecryptable",
	CodeUnavailable:   "unavailable",
	CodeUnknownScheme: "unknown scheme",
}

// Error returns the code's name.
func (c Code) Error() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "code " + strconv.Itoa(int(c))
}

// Name returns a short identifier for the code, fit for a metric label:
// "not_found", "unavailable", ...
func (c Code) Name() string { return strings.ReplaceAll(c.Error(), " ", "_") }

// Error is the error every keyward backend returns. It names the operation,
// the backend and the ref, never the value. It unwraps to its Code and to its
// cause, so errors.Is(err, ErrNotFound) and errors.As(err, &sdkErr) both work.
type Error struct {
	Op      string // "resolve", "put", "rotate", ...
	Backend string // "env", "fernet", "awssm", ...
	Ref     string // the backend-local ref; never a value
	Code    Code
	// Reason says what went wrong and how to fix it, in words safe to log.
	Reason string
	// Err is the underlying cause. Backends put here only errors whose text
	// cannot carry a secret value; others are cut with %v into Reason or dropped.
	Err error
}

// Error formats as "keyward: <backend>: <op> <ref>: <code>: <reason>: <cause>".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("keyward: ")
	if e.Backend != "" {
		b.WriteString(e.Backend)
		b.WriteString(": ")
	}
	if e.Op != "" {
		b.WriteString(e.Op)
	}
	if e.Ref != "" {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(e.Ref))
	}
	b.WriteString(": ")
	b.WriteString(e.Code.Error())
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the code and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Code}
	}
	return []error{e.Code, e.Err}
}

// NewError returns an *Error. It is a shorthand for backends.
func NewError(op, backend, ref string, code Code, reason string, cause error) *Error {
	return &Error{Op: op, Backend: backend, Ref: ref, Code: code, Reason: reason, Err: cause}
}

// CodeOf returns the Code of err: the code of the first *Error or Code in its
// chain, CodeUnavailable for a context deadline, and CodeUnknown otherwise
// (including nil and context.Canceled).
func CodeOf(err error) Code {
	if err == nil {
		return CodeUnknown
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var c Code
	if errors.As(err, &c) {
		return c
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeUnavailable
	}
	return CodeUnknown
}

// Outcome names the result of a resolve for logs and metrics: "ok" for nil,
// "canceled" for a canceled context, and the code's Name otherwise.
func Outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return CodeOf(err).Name()
}
