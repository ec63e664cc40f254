package secrets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/secrets/internal/bounds"
)

// maxTimeout is the longest timeout the configuration accepts.
const maxTimeout = time.Hour

// Config describes a whole stack: which backend serves each Mux scheme, and
// which decorators sit in front. Parse one with ParseConfig; its text form is
// one "name = value" per line (or separated by ';'), '#' starts a comment:
//
//	db      = fernet://?table=api_keys      # encrypted column, DATABASE_URL + ENCRYPTION_KEY
//	env     = env://?allow=ANTHROPIC_*,OPENAI_*
//	cache   = size=10000&ttl=5m             # the cache decorator ("on" for its defaults)
//	audit   = on                            # log every resolve, never the value
//	timeout = 5s                            # bound each backend call
//	allow   = db:*, env:ANTHROPIC_*         # only refs matching these (AllowRefs)
//
// Any name other than cache, audit, timeout and allow is a Mux scheme, and its value
// the URL of the backend serving it. Moving a service's keys from the
// encrypted column to AWS Secrets Manager is then a change of one line.
type Config struct {
	// Backends maps a Mux scheme to the URL of the backend serving it.
	Backends map[string]string
	// Cache holds the cache decorator's parameters in query form ("size=1000&ttl=5m");
	// "" means no cache, "on" means the cache's defaults.
	Cache string
	// Audit enables the audit decorator.
	Audit bool
	// Timeout bounds each backend call; zero means no bound beyond the caller's.
	// The timeout key accepts 0 to 1h: a secret that takes longer is not coming.
	Timeout time.Duration
	// Allow, when not empty, lists the only refs the stack resolves
	// (path.Match patterns over "scheme:ref"); see AllowRefs.
	Allow []string
}

// The environment variables OpenFromEnv reads.
const (
	ConfigEnv     = "KEYWARD_CONFIG"      // the configuration text itself
	ConfigFileEnv = "KEYWARD_CONFIG_FILE" // the path of a file holding it
)

// ParseConfig parses the text form of a Config. Errors name the line.
func ParseConfig(text string) (*Config, error) {
	c := &Config{Backends: map[string]string{}}
	seen := map[string]bool{}
	lines := strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ';' })
	for n, line := range lines {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) error {
			return &Error{Op: "config", Code: CodeInvalidRef,
				Reason: fmt.Sprintf("line %d: ", n+1) + fmt.Sprintf(format, args...)}
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, bad("want name = value")
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if seen[name] {
			return nil, bad("%q is set twice", name)
		}
		seen[name] = true
		switch name {
		case "cache":
			c.Cache = value
		case "audit":
			switch strings.ToLower(value) {
			case "on", "true", "1", "yes":
				c.Audit = true
			case "off", "false", "0", "no":
				c.Audit = false
			default:
				return nil, bad("audit must be on or off")
			}
		case "allow":
			for _, p := range strings.Split(value, ",") {
				if p = strings.TrimSpace(p); p != "" {
					if _, err := path.Match(p, ""); err != nil {
						return nil, bad("malformed allow pattern %q: use path.Match syntax such as env:ANTHROPIC_*", p)
					}
					c.Allow = append(c.Allow, p)
				}
			}
			if len(c.Allow) == 0 {
				return nil, bad("allow needs at least one pattern, such as db:*")
			}
		case "timeout":
			d, err := bounds.Duration("timeout", value, 0, maxTimeout, "5s (0 for none beyond the caller's)")
			if err != nil {
				return nil, bad("%s", err)
			}
			c.Timeout = d
		default:
			if !validScheme(name) {
				return nil, bad("%q is neither cache, audit, timeout, allow nor a scheme name (lower-case letters, digits, '+', '-', '.')", name)
			}
			u, err := url.Parse(value)
			if err != nil || u.Scheme == "" {
				return nil, bad("the backend for %q must be a URL such as env:// or fernet://?table=api_keys", name)
			}
			if u.User != nil {
				return nil, bad("the backend URL for %q holds user information; credentials come from the environment, never the URL", name)
			}
			c.Backends[name] = value
		}
	}
	return c, nil
}

// defaultBackends are the backends under their defaults, by Mux scheme.
var defaultBackends = map[string]string{
	"db":      "fernet://",
	"env":     "env://",
	"awssm":   "awssm://",
	"azurekv": "azurekv://",
	"vault":   "vault://",
}

// DefaultConfig returns the configuration used when none is given: every
// default backend whose package is linked in (db: the encrypted column on
// DATABASE_URL, env:, awssm:, azurekv:, vault:), each opened on first use,
// behind the cache with its defaults and the audit decorator.
func DefaultConfig() *Config {
	c := &Config{Backends: map[string]string{}, Cache: "", Audit: true}
	if _, ok := decorators.lookup("cache"); ok {
		c.Cache = "on"
	}
	for scheme, u := range defaultBackends {
		if _, ok := openers.lookup(strings.TrimSuffix(u, "://")); ok {
			c.Backends[scheme] = u
		}
	}
	return c
}

// StackOptions configures OpenConfig. A nil *StackOptions means defaults.
type StackOptions struct {
	// Auditor receives audit events when the configuration enables audit;
	// nil means SlogAuditor(slog.Default()).
	Auditor Auditor
	// Backends are resolvers the host built itself, by Mux scheme. They take
	// the place of the configuration's URL for that scheme, or add a scheme.
	// Stack.Close closes those that are io.Closers, as it does its own.
	Backends map[string]KeyResolver
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
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

// OpenConfig builds the stack that c describes. It does no I/O: each backend
// is opened on the first resolve that needs it. URL schemes that no linked
// package registered are reported now, not at the first resolve.
func OpenConfig(ctx context.Context, c *Config, opts *StackOptions) (*Stack, error) {
	var o StackOptions
	if opts != nil {
		o = *opts
	}
	mux := new(Mux)
	for _, scheme := range slices.Sorted(maps.Keys(c.Backends)) {
		if _, own := o.Backends[scheme]; own {
			continue
		}
		raw := c.Backends[scheme]
		u, err := url.Parse(raw)
		if err != nil {
			return nil, &Error{Op: "config", Backend: scheme, Code: CodeInvalidRef, Reason: "cannot parse the backend URL"}
		}
		if _, ok := openers.lookup(u.Scheme); !ok {
			return nil, &Error{Op: "config", Backend: scheme, Code: CodeUnknownScheme,
				Reason: fmt.Sprintf("no backend registered for URL scheme %q (registered: %s); forgotten import? (github.com/keyward/secrets/all links every backend)",
					u.Scheme, strings.Join(Schemes(), ", "))}
		}
		mux.Handle(scheme, Lazy(func(ctx context.Context) (KeyResolver, error) { return Open(ctx, raw) }))
	}
	for scheme, r := range o.Backends {
		mux.Handle(scheme, r)
	}

	st := &Stack{Mux: mux}
	var top KeyResolver = mux
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
		if top, err = d(top, q); err != nil {
			return nil, err
		}
		if cl, ok := top.(io.Closer); ok {
			st.closers = append(st.closers, cl)
		}
	}
	top = EnforceExpiry(top, &ExpiryOptions{Now: o.Now})
	if c.Audit {
		a := o.Auditor
		if a == nil {
			a = SlogAuditor(slog.Default())
		}
		top = NewAudit(top, a, &AuditOptions{Now: o.Now})
	}
	st.top = top
	return st, nil
}

// ConfigFromEnv returns the configuration in KEYWARD_CONFIG, or in the file
// named by KEYWARD_CONFIG_FILE, or DefaultConfig when neither is set.
func ConfigFromEnv() (*Config, error) {
	text, file := os.Getenv(ConfigEnv), os.Getenv(ConfigFileEnv)
	switch {
	case text != "" && file != "":
		return nil, &Error{Op: "config", Code: CodeInvalidRef,
			Reason: ConfigEnv + " and " + ConfigFileEnv + " are both set: set one"}
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, &Error{Op: "config", Code: CodeUnavailable,
				Reason: "cannot read " + ConfigFileEnv + " " + file, Err: err}
		}
		return ParseConfig(string(b))
	case text != "":
		return ParseConfig(text)
	}
	return DefaultConfig(), nil
}

// OpenFromEnv builds the stack from ConfigFromEnv.
func OpenFromEnv(ctx context.Context, opts *StackOptions) (*Stack, error) {
	c, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return OpenConfig(ctx, c, opts)
}

// Lazy returns a KeyResolver that opens its backend with open on first use.
// Callers that arrive while an open is under way share it, each waiting on
// its own ctx; a failed open is returned to them and tried again by the next
// call. Ping opens the backend and pings it if it can be pinged; Close
// closes it if it was opened (even if its open finishes after Close), and
// every later call fails with ErrUnavailable.
func Lazy(open func(ctx context.Context) (KeyResolver, error)) KeyResolver {
	return &lazy{open: open}
}

type lazy struct {
	open func(ctx context.Context) (KeyResolver, error)
	r    atomic.Value // KeyResolver, once opened

	mu      sync.Mutex
	attempt *openAttempt // the open under way, if any
	closed  bool
}

type openAttempt struct {
	done chan struct{} // closed when r and err are set
	r    KeyResolver
	err  error
}

var errLazyClosed = &Error{Op: "open", Code: CodeUnavailable, Reason: "the stack is closed"}

func (l *lazy) get(ctx context.Context) (KeyResolver, error) {
	for {
		if r, ok := l.r.Load().(KeyResolver); ok {
			return r, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, errLazyClosed
		}
		if r, ok := l.r.Load().(KeyResolver); ok {
			l.mu.Unlock()
			return r, nil
		}
		if a := l.attempt; a != nil {
			l.mu.Unlock()
			select {
			case <-a.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			// The opener's own cancellation is not this caller's failure.
			if a.err != nil && (errors.Is(a.err, context.Canceled) || errors.Is(a.err, context.DeadlineExceeded)) {
				continue
			}
			return a.r, a.err
		}
		a := &openAttempt{done: make(chan struct{})}
		l.attempt = a
		l.mu.Unlock()

		a.r, a.err = l.open(ctx)

		l.mu.Lock()
		l.attempt = nil
		if a.err == nil {
			if l.closed {
				// Closed while opening: close what was opened, outside the lock.
				defer closeResolver(a.r)
				a.r, a.err = nil, errLazyClosed
			} else {
				l.r.Store(a.r)
			}
		}
		close(a.done)
		l.mu.Unlock()
		return a.r, a.err
	}
}

func closeResolver(r KeyResolver) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

func (l *lazy) Resolve(ctx context.Context, ref string) (Secret, error) {
	r, err := l.get(ctx)
	if err != nil {
		return Secret{}, err
	}
	return r.Resolve(ctx, ref)
}

func (l *lazy) ResolveMany(ctx context.Context, refs []string) ([]Result, error) {
	r, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return ResolveMany(ctx, r, refs)
}

func (l *lazy) Ping(ctx context.Context) error {
	r, err := l.get(ctx)
	if err != nil {
		return err
	}
	if p, ok := r.(Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (l *lazy) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	if c, ok := l.r.Load().(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Unwrap returns the opened resolver, or nil before the first use.
func (l *lazy) Unwrap() KeyResolver {
	r, _ := l.r.Load().(KeyResolver)
	return r
}

// WithTimeout returns a KeyResolver that bounds each call to next by d.
// A d of zero or less returns next itself.
func WithTimeout(next KeyResolver, d time.Duration) KeyResolver {
	if d <= 0 {
		return next
	}
	return &timeout{next: next, d: d}
}

type timeout struct {
	next KeyResolver
	d    time.Duration
}

func (t *timeout) Resolve(ctx context.Context, ref string) (Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.next.Resolve(ctx, ref)
}

func (t *timeout) ResolveMany(ctx context.Context, refs []string) ([]Result, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return ResolveMany(ctx, t.next, refs)
}

func (t *timeout) Unwrap() KeyResolver { return t.next }
