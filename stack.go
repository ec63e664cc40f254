package secrets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
)

// StackOptions configures OpenConfig and OpenFromEnv. A nil *StackOptions
// means defaults.
type StackOptions struct {
	// Auditor receives audit events when the configuration enables audit;
	// nil means SlogAuditor(slog.Default()). With "audit = db" the events
	// go to the table, and to Auditor as well when it is set.
	Auditor Auditor
	// Backends are resolvers the host built itself, by Mux scheme. They take
	// the place of the configuration's URL for that scheme (which is still
	// checked), or add a scheme. Stack.Close closes those that are
	// io.Closers, as it does its own. Those that are or wrap a Follower
	// are given the stack, as the configured ones are.
	Backends map[string]KeyResolver
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Getenv is how OpenFromEnv reads KEYWARD_CONFIG and
	// KEYWARD_CONFIG_FILE (see ConfigFromLookup); nil means os.Getenv.
	// Backends read their own variables (DATABASE_URL, VAULT_ADDR, ...)
	// from the process environment.
	Getenv func(string) string
}

// Stack is a configured Mux behind its decorators: audit, then expiry
// enforcement, then the cache, then the timeout, then the allow list. It is
// itself a KeyResolver and a BatchResolver; a batch goes through every layer.
// The allow list sits beneath the cache so that what fills the cache without
// a Resolve (the cache's Warm) meets it too.
type Stack struct {
	// Mux routes each scheme to its backend.
	Mux *Mux
	top KeyResolver
	// closers are the decorators to close, outermost first; the Mux is closed last.
	closers []io.Closer
}

var _ KeyResolver = (*Stack)(nil)

// Resolve resolves "scheme:ref" through the stack.
func (s *Stack) Resolve(ctx context.Context, ref string) (Secret, error) {
	return s.top.Resolve(ctx, ref)
}

// ResolveMany resolves refs through the stack as one batch: every layer
// judges each ref, and the backends' batch abilities answer what passes.
func (s *Stack) ResolveMany(ctx context.Context, refs []string) ([]Result, error) {
	return ResolveMany(ctx, s.top, refs)
}

// Unwrap returns the outermost decorator, so Find reaches every layer.
func (s *Stack) Unwrap() KeyResolver { return s.top }

// Ping pings every backend that has been or can be opened.
func (s *Stack) Ping(ctx context.Context) error { return s.Mux.Ping(ctx) }

// Close stops the decorators' background work and closes the backends.
func (s *Stack) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	errs = append(errs, s.Mux.Close())
	return errors.Join(errs...)
}

// OpenConfig builds the stack that c describes. It calls every backend's
// opener now, so a URL with an unknown parameter or a bad value, or whose
// scheme no linked package registered, fails here, naming the configuration
// line, and not at the first resolve. A scheme in StackOptions.Backends is
// checked the same way, then served by the host's resolver.
//
// Openers do no I/O (clients and connections are made on first use), so
// neither does OpenConfig. A bare URL ("azurekv://", as DefaultConfig
// writes them) holds nothing to mistype: if its opener fails, it needs a
// variable that is not set here, and the scheme's refs fail with that error
// instead, the opener being tried again on each until it succeeds.
//
// Every backend that is (or wraps) a Follower is given the stack, to follow
// through it the refs its entries name (see Follower).
func OpenConfig(ctx context.Context, c *Config, opts *StackOptions) (_ *Stack, err error) {
	var o StackOptions
	if opts != nil {
		o = *opts
	}
	mux := new(Mux)
	var opened []KeyResolver
	var table Auditor
	defer func() {
		if err != nil {
			// What the openers made, before any I/O; the host's own
			// resolvers stay the host's.
			for _, r := range opened {
				closeResolver(r)
			}
			if c, ok := table.(io.Closer); ok {
				c.Close()
			}
		}
	}()
	if c.AuditTable != "" {
		// First, so that a missing import fails before anything is opened.
		if table, err = openAuditTable(ctx, c.AuditTable); err != nil {
			return nil, err
		}
	}
	for _, scheme := range slices.Sorted(maps.Keys(c.Backends)) {
		r, err := openBackend(ctx, scheme, c.Backends[scheme])
		if err != nil {
			return nil, err
		}
		if _, own := o.Backends[scheme]; own {
			closeResolver(r) // checked only: the host serves this scheme
			continue
		}
		opened = append(opened, r)
		mux.Handle(scheme, r)
	}
	for scheme, r := range o.Backends {
		mux.Handle(scheme, r)
	}

	st := &Stack{Mux: mux}
	var top KeyResolver = mux
	var inv cacheInvalidator
	if len(c.Allow) > 0 {
		// Beneath the cache, so the cache's Warm cannot fill it with a
		// refused ref; inside audit, so a refused ref is audited too.
		allowed, err := AllowRefs(top, c.Allow)
		if err != nil {
			return nil, err
		}
		top = allowed
	}
	top = WithTimeout(top, c.Timeout)
	if c.Cache != "" {
		d, ok := decorators.lookup("cache")
		if !ok {
			return nil, &Error{Op: "config", Backend: "cache", Code: CodeUnknownScheme,
				Reason: `the cache decorator is not linked in: import _ "github.com/keyward/secrets/cache"`}
		}
		params := c.Cache
		if params == "on" {
			params = ""
		}
		q, err := url.ParseQuery(params)
		if err != nil {
			return nil, &Error{Op: "config", Backend: "cache", Code: CodeInvalidRef,
				Reason: "cache parameters must be in query form, such as size=1000&ttl=5m"}
		}
		listPrices(q, c.Backends)
		if top, err = d(top, q); err != nil {
			return nil, err
		}
		if cl, ok := top.(io.Closer); ok {
			st.closers = append(st.closers, cl)
		}
		inv, _ = top.(cacheInvalidator) // what the backends' watches invalidate
	}
	top = EnforceExpiry(top, &ExpiryOptions{Now: o.Now})
	if c.Audit || table != nil {
		a := o.Auditor
		switch {
		case table != nil && a != nil:
			a = bothAuditors{table, a}
		case table != nil:
			a = table
		case a == nil:
			a = SlogAuditor(slog.Default())
		}
		top = NewAudit(top, a, &AuditOptions{Now: o.Now})
		if cl, ok := table.(io.Closer); ok {
			// Outermost: closed first, so it flushes while the rest stands.
			st.closers = append([]io.Closer{cl}, st.closers...)
		}
	}
	st.top = top
	// Last, so that what an entry names is resolved through every layer.
	followThroughStack(st)
	if inv != nil {
		// First in closers: the watches stop before the cache.
		st.closers = append([]io.Closer{startWatches(mux, inv)}, st.closers...)
	}
	return st, nil
}

// backendPrices are the list prices, in US dollars per 10,000 calls, of the
// backends whose calls cost money, by their URL scheme (the cache's
// DefaultPrices has them under the default configuration's scheme names).
var backendPrices = map[string]string{"awssm": "0.05", "azurekv": "0.03"}

// listPrices adds to the cache parameters q the list price of every
// configured scheme served by a priced backend under another name ("aws =
// awssm://..."), unless the operator's prices= names that scheme.
func listPrices(q url.Values, backends map[string]string) {
	named := map[string]bool{}
	for _, item := range strings.Split(q.Get("prices"), ",") {
		if scheme, _, ok := strings.Cut(strings.TrimSpace(item), ":"); ok {
			named[strings.TrimSpace(scheme)] = true
		}
	}
	var add []string
	for _, scheme := range slices.Sorted(maps.Keys(backends)) {
		u, _, _ := strings.Cut(strings.TrimSpace(backends[scheme]), ":")
		price, ok := backendPrices[strings.ToLower(u)]
		if !ok || named[scheme] || scheme == strings.ToLower(u) {
			continue // unpriced, the operator's, or the cache's default
		}
		add = append(add, scheme+":"+price)
	}
	if len(add) == 0 {
		return
	}
	if cur := q.Get("prices"); cur != "" {
		add = append(add, cur)
	}
	q.Set("prices", strings.Join(add, ","))
}

// openAuditTable opens the Auditor of "audit = db" through the opener
// package audittable registered.
func openAuditTable(ctx context.Context, table string) (Auditor, error) {
	open, ok := auditTables.lookup("db")
	if !ok {
		return nil, &Error{Op: "config", Backend: "audit", Code: CodeUnknownScheme,
			Reason: `audit = db needs the audit table writer linked in: import _ "github.com/keyward/secrets/audittable" (or github.com/keyward/secrets/all), with the package of the database (fernetstore/sqlite, fernetstore/postgres or fernetstore/mysql)`}
	}
	a, err := open(ctx, table)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			c := *e
			c.Op, c.Backend = "config", "audit"
			c.Reason = "audit = db (table " + table + "): " + c.Reason
			return nil, &c
		}
		return nil, &Error{Op: "config", Backend: "audit", Code: CodeOf(err),
			Reason: "audit = db (table " + table + ") cannot be opened", Err: err}
	}
	if a == nil {
		return nil, &Error{Op: "config", Backend: "audit", Code: CodeUnknown,
			Reason: "the audit table opener returned neither an Auditor nor an error"}
	}
	return a, nil
}

// bothAuditors sends each event to the table and to the host's Auditor.
type bothAuditors [2]Auditor

func (b bothAuditors) Audit(ctx context.Context, ev AuditEvent) {
	b[0].Audit(ctx, ev)
	b[1].Audit(ctx, ev)
}

// openBackend opens the backend of one configuration line, scheme = raw.
func openBackend(ctx context.Context, scheme, raw string) (KeyResolver, error) {
	if !validScheme(scheme) {
		return nil, &Error{Op: "config", Code: CodeInvalidRef,
			Reason: fmt.Sprintf("%q is not a scheme name (lower-case letters, digits, '+', '-', '.')", scheme)}
	}
	u, perr := parseBackendURL(raw)
	if perr != nil {
		return nil, configError(scheme, perr)
	}
	open, ok := openers.lookup(u.Scheme)
	if !ok {
		return nil, configError(scheme, unknownURLScheme("config", u.Scheme))
	}
	r, err := open(ctx, u)
	if err == nil {
		return r, nil
	}
	if u.Host == "" && u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.Opaque == "" {
		return Lazy(func(ctx context.Context) (KeyResolver, error) {
			again := *u
			return open(ctx, &again)
		}), nil
	}
	return nil, configError(scheme, err)
}

// configError names the configuration line in an opener's error.
func configError(scheme string, err error) error {
	prefix := fmt.Sprintf("the backend for %q", scheme)
	if e, ok := err.(*Error); ok {
		c := *e
		c.Op = "config"
		if c.Reason == "" {
			c.Reason = prefix + " cannot be opened"
		} else {
			c.Reason = prefix + ": " + c.Reason
		}
		return &c
	}
	return &Error{Op: "config", Code: CodeOf(err), Reason: prefix + " cannot be opened", Err: err}
}

// OpenFromEnv builds the stack from the configuration in KEYWARD_CONFIG or
// KEYWARD_CONFIG_FILE, read through opts.Getenv (ConfigFromLookup), or
// DefaultConfig when neither is set.
func OpenFromEnv(ctx context.Context, opts *StackOptions) (*Stack, error) {
	var getenv func(string) string
	if opts != nil {
		getenv = opts.Getenv
	}
	c, err := ConfigFromLookup(getenv)
	if err != nil {
		return nil, err
	}
	return OpenConfig(ctx, c, opts)
}
