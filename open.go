package secrets

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// OpenerFunc opens a backend from a URL that names the resource only.
// Credentials come from the environment or the SDK's chain, never the URL.
// An opener must reject query parameters it does not know (see CheckParams)
// and should do no I/O: clients are made on first use.
type OpenerFunc func(ctx context.Context, u *url.URL) (KeyResolver, error)

// DecoratorFunc wraps next in a decorator configured by params
// (the cache registers "cache": "cache = size=1000&ttl=5m").
type DecoratorFunc func(next KeyResolver, params url.Values) (KeyResolver, error)

// registry maps names to openers. Its zero value is ready to use.
type registry[T any] struct {
	mu sync.RWMutex
	m  map[string]T
}

func (r *registry[T]) register(kind, name string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]T{}
	}
	if _, dup := r.m[name]; dup {
		panic(fmt.Sprintf("secrets: %s %q registered twice", kind, name))
	}
	r.m[name] = v
}

func (r *registry[T]) lookup(name string) (T, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := r.m[name]
	return v, ok
}

func (r *registry[T]) names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.m))
}

// AuditTableFunc opens the Auditor of "audit = db": one that writes a row
// per event to table in the service's own database (DATABASE_URL). It must
// do no I/O, and the Auditor must never block Audit. If the Auditor is an
// io.Closer, the Stack closes it (flushing what it holds) on Close.
type AuditTableFunc func(ctx context.Context, table string) (Auditor, error)

var (
	openers     registry[OpenerFunc]
	decorators  registry[DecoratorFunc]
	auditTables registry[AuditTableFunc]
)

// RegisterAuditTable makes "audit = db" (and "audit = db?table=NAME")
// usable in a configuration: package audittable calls it from init, so
// that the core links no SQL driver and no table writer unless the host
// imports them. It panics if called twice or with a nil open.
func RegisterAuditTable(open AuditTableFunc) {
	if open == nil {
		panic("secrets: RegisterAuditTable of a nil opener")
	}
	auditTables.register("audit table", "db", open)
}

// Register makes a backend openable by Open under the URL scheme. Backend
// packages call it from init. It panics if the scheme is already registered
// or open is nil.
func Register(scheme string, open OpenerFunc) {
	if open == nil {
		panic("secrets: Register of a nil opener for " + scheme)
	}
	openers.register("URL scheme", scheme, open)
}

// RegisterDecorator makes a decorator usable by name in a configuration.
// It panics if the name is already registered or d is nil.
func RegisterDecorator(name string, d DecoratorFunc) {
	if d == nil {
		panic("secrets: RegisterDecorator of a nil decorator for " + name)
	}
	decorators.register("decorator", name, d)
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string { return openers.names() }

// Open opens the backend named by rawURL ("env://?allow=ANTHROPIC_*",
// "fernet://?table=api_keys", "awssm://?region=eu-west-1"). The backend's
// package must be imported (for its init) for its scheme to be known.
func Open(ctx context.Context, rawURL string) (KeyResolver, error) {
	u, err := parseBackendURL(rawURL)
	if err != nil {
		err.Op = "open"
		return nil, err
	}
	return openURL(ctx, u)
}

// parseBackendURL is the one rule for the text of a backend URL, which
// ParseConfig, OpenConfig and Open share. Its errors have no Op (the caller
// sets it) and never quote the URL: it should hold no secret, but a mistaken
// one might, so they say only what kind of thing is wrong.
func parseBackendURL(rawURL string) (*url.URL, *Error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, &Error{Code: CodeInvalidRef, Reason: "cannot parse the backend URL: it must be a URL such as env:// or fernet://?table=api_keys"}
	}
	if u.User != nil {
		return nil, &Error{Backend: u.Scheme, Code: CodeInvalidRef,
			Reason: "the backend URL holds user information; credentials come from the environment (see the README), never from the URL"}
	}
	if u.Scheme == "" {
		return nil, &Error{Code: CodeInvalidRef,
			Reason: "the backend URL has no scheme: it must be a URL such as env:// or fernet://?table=api_keys (registered schemes: " + strings.Join(Schemes(), ", ") + ")"}
	}
	return u, nil
}

// openURL opens a parsed backend URL with the opener registered for its scheme.
func openURL(ctx context.Context, u *url.URL) (KeyResolver, error) {
	open, ok := openers.lookup(u.Scheme)
	if !ok {
		return nil, unknownURLScheme("open", u.Scheme)
	}
	return open(ctx, u)
}

func unknownURLScheme(op, scheme string) *Error {
	return &Error{Op: op, Backend: scheme, Code: CodeUnknownScheme,
		Reason: fmt.Sprintf("no backend registered for URL scheme %q (registered: %s); forgotten import? (github.com/keyward/secrets/all links every backend)",
			scheme, strings.Join(Schemes(), ", "))}
}

// CheckParams returns an error naming the first query parameter of u that is
// not in allowed, and any parameter given twice. A query that does not parse
// (a bad %-escape, a ';') is an error too: url.URL.Query would drop the
// broken pair, and with it an allow list. Openers call it first.
func CheckParams(u *url.URL, allowed ...string) error {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return &Error{Op: "open", Backend: u.Scheme, Code: CodeInvalidRef,
			Reason: "the URL's query is malformed: write ?name=value&name=value, with %XX escapes for reserved characters"}
	}
	return CheckValues(q, u.Scheme, allowed...)
}

// CheckValues is CheckParams for parameters already parsed, such as a
// decorator's; backend names the backend or decorator in the error.
func CheckValues(q url.Values, backend string, allowed ...string) error {
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, k) {
			want := "none"
			if len(allowed) > 0 {
				want = strings.Join(allowed, ", ")
			}
			return &Error{Op: "open", Backend: backend, Code: CodeInvalidRef,
				Reason: fmt.Sprintf("unknown parameter %q (known: %s)", k, want)}
		}
		if len(q[k]) > 1 {
			return &Error{Op: "open", Backend: backend, Code: CodeInvalidRef,
				Reason: fmt.Sprintf("parameter %q given more than once", k)}
		}
	}
	return nil
}
