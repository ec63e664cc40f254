package secrets

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// KeyResolver resolves a backend-local reference to a secret.
//
// The ref is whatever the backend names a secret by: a row id, an environment
// variable name, "prod/anthropic#api_key". Implementations must be safe for
// concurrent use, must honour ctx, and must never put a secret value in an
// error.
type KeyResolver interface {
	Resolve(ctx context.Context, ref string) (Secret, error)
}

// Redacted is what every printed form of a Secret shows instead of its value.
const Redacted = "[redacted]"

// Secret is a resolved secret value with its metadata. The value is kept
// unexported and is only returned by Reveal; every other way of printing or
// encoding a Secret shows Redacted.
//
// The value sits behind a pointer: fmt cannot call Format on a Secret held in
// an unexported field of another struct, and prints that field's fields
// instead, so a pointer is what keeps %v of such a struct to an address.
type Secret struct {
	value *string

	// Version is the backend's version of the secret ("" when it has none).
	Version string
	// ExpiresAt is when the secret stops being valid; the zero time means never.
	ExpiresAt time.Time
	// Source says where the value came from, for the audit trail and metrics.
	Source Source
}

// Source is the provenance of a resolved Secret, carried by the result
// itself: the backend sets Backend (and Plaintext), a cache sets Cached (and
// Stale) on what it returns, and an outer layer such as the audit decorator
// reads it. Carried by the result, it is exact for every ref of a batch and
// needs no state shared between layers; an error carries its Backend in
// *Error.
type Source struct {
	Backend   string // the backend that produced the value: "env", "fernet", ...
	Cached    bool   // a cache answered without calling the backend
	Stale     bool   // a cache answered with a stale value because the backend failed or hung
	Plaintext bool   // the value was stored as legacy plaintext (fernetstore migration mode)
	// Followed is set when the backend's entry named another ref instead of
	// holding the value (a fernetstore row whose key_env_var is set): the
	// ref the stack resolved in its place ("env:ANTHROPIC_KEY_1"). See
	// Follower.
	Followed string
}

// NewSecret returns a Secret holding value.
func NewSecret(value string) Secret { return Secret{value: &value} }

// Reveal returns the secret value. Call it at the last moment, where the value
// is used, and never log what it returns.
func (s Secret) Reveal() string {
	if s.value == nil {
		return ""
	}
	return *s.value
}

// Len returns the length in bytes of the value, without revealing it.
func (s Secret) Len() int { return len(s.Reveal()) }

// ExpiredAt reports whether the secret has an expiry and it is not after now.
func (s Secret) ExpiredAt(now time.Time) bool {
	return !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt)
}

// String returns Redacted.
func (s Secret) String() string { return Redacted }

// GoString returns a Go-syntax form with the value redacted.
func (s Secret) GoString() string {
	return fmt.Sprintf("secrets.Secret{value:%q, Version:%q, ExpiresAt:%#v}", Redacted, s.Version, s.ExpiresAt)
}

// Format implements fmt.Formatter so that every verb (%v %+v %#v %s %q %x ...)
// prints a redaction, never the value.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", Redacted)
	default:
		fmt.Fprint(f, Redacted)
	}
}

// MarshalJSON encodes the secret as the JSON string Redacted.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText encodes the secret as Redacted.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer: logs show Redacted.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// Result is one answer of a batch resolve: the secret for Ref, or why not.
type Result struct {
	Ref    string
	Secret Secret
	Err    error
}

// BatchResolver is an optional ability of a KeyResolver: resolving many refs
// in fewer backend calls (AWS BatchGetSecretValue takes 20 ids a call).
// ResolveMany returns exactly one Result per ref, in the order of refs, even
// when it fails; the error is for a failure of the whole call, which is also
// set on every Result it touched. A decorator that is a BatchResolver judges
// every ref of a batch as its Resolve would (an allow list refuses, expiry
// fails expired secrets, audit reports each ref) and passes the rest on with
// the package's ResolveMany.
type BatchResolver interface {
	ResolveMany(ctx context.Context, refs []string) ([]Result, error)
}

// Pinger is an optional ability of a KeyResolver: checking that the backend
// can be reached, without resolving anything.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ResolveMany resolves refs with r's batch ability if it has one, and one by
// one otherwise. It asks r itself, never a resolver r wraps, so the batch
// goes through every layer of r; do not look for a batch ability beneath r
// with Find, which would skip them.
func ResolveMany(ctx context.Context, r KeyResolver, refs []string) ([]Result, error) {
	if b, ok := r.(BatchResolver); ok {
		return b.ResolveMany(ctx, refs)
	}
	out := make([]Result, len(refs))
	for i, ref := range refs {
		if err := ctx.Err(); err != nil {
			// The same shape as every batch: one Result per ref, the
			// whole-call failure on each one it touched.
			for j := i; j < len(refs); j++ {
				out[j] = Result{Ref: refs[j], Err: ContextError("resolve", "", refs[j], err)}
			}
			return out, ContextError("resolve", "", "", err)
		}
		s, err := r.Resolve(ctx, ref)
		out[i] = Result{Ref: ref, Secret: s, Err: err}
	}
	return out, nil
}
