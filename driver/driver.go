package driver

import (
	"context"
	"fmt"
	"net/url"
	"time"

	secrets "github.com/keyward/secrets"
)

// Ref is a backend-local ref as the core parsed it for a Driver.
type Ref struct {
	// Raw is the ref as the caller wrote it; errors name it.
	Raw string
	// Name is the unescaped name or path; never empty.
	Name string
	// Query holds the ?options, only those the driver declared in
	// Options.Params, each given once; nil when the ref has none.
	Query url.Values
	// Field is the unescaped #field, or "". Drivers fetch the whole document
	// and the core picks the field; a driver only looks at Field to fetch
	// less (it never has to).
	Field string
}

// Value is what a Driver found for a Ref.
type Value struct {
	// Data is the secret, or the JSON document a #field is picked from.
	Data string
	// Document, when not nil, is the already decoded document a #field is
	// picked from instead of Data (Vault's data map). A string field is
	// returned as is, any other value as its JSON text.
	Document map[string]any
	// Version is the backend's version of the secret ("" when it has none).
	Version string
	// ExpiresAt is when the secret stops being valid; zero means never. The
	// core refuses a value past it with ErrExpired.
	ExpiresAt time.Time
	// Plaintext marks a value served from legacy plaintext storage
	// (fernetstore's migration mode), for the audit trail.
	Plaintext bool
	// Ref, when set, says the entry does not hold the value but names where
	// it lives: a whole "scheme:name" ref, possibly with ?options
	// ("env:ANTHROPIC_KEY_1", "awssm:prod/anthropic"). Data and Document
	// are then unused, and the core resolves Ref through the resolver given
	// to Resolver.FollowThrough (the stack, so the followed ref meets its
	// allow list, cache and audit) and answers with that value. ExpiresAt
	// still applies (the entry's expiry is the key's), Version is the
	// followed secret's; the package documentation ("Following a ref") has
	// the rules. A name is not a secret, so errors quote Ref: a driver sets
	// it only from a column or field that holds a name.
	Ref string
}

// Driver is what a backend implements: fetch one parsed ref. Every error it
// returns is either an *secrets.Error it built (with Errorf or Wrap: the
// core sets Op, Backend and Ref on a copy) or the context's own error; any
// other error is reported as CodeUnknown with its text cut, since the core
// cannot know that the text holds no value.
//
// A Driver is used concurrently. It may also implement Batcher, Pinger and
// io.Closer; the core finds them by type assertion.
type Driver interface {
	Get(ctx context.Context, ref Ref) (Value, error)
}

// Batcher is the optional batch ability of a Driver: fetch many refs in fewer
// backend calls. GetMany returns one Value and one error per ref, in order
// (errs[i] != nil means vals[i] is unused), or a non-nil err for a failure
// of the whole call. The core has already parsed every ref, removed the
// invalid ones and the duplicates (refs differing only by #field are one).
type Batcher interface {
	GetMany(ctx context.Context, refs []Ref) (vals []Value, errs []error, err error)
}

// Pinger is the optional health check of a Driver.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Errorf returns an error of code for a Driver to return: its Reason is the
// formatted text, which must say what is wrong and how to fix it, and must
// never hold a secret value. The core fills in Op, Backend and Ref.
func Errorf(code secrets.Code, format string, args ...any) error {
	return &secrets.Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// Wrap is Errorf with a cause that errors.As can reach (a cleaned SDK error).
// The cause's text is part of the error's text: only pass causes whose text
// cannot hold a secret value.
func Wrap(code secrets.Code, cause error, format string, args ...any) error {
	return &secrets.Error{Code: code, Reason: fmt.Sprintf(format, args...), Err: cause}
}
