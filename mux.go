package secrets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Mux routes "scheme:ref" to the KeyResolver registered for the scheme, so one
// service can mix backends: "db:42" from the encrypted column,
// "env:ANTHROPIC_API_KEY" from the environment. Everything after the first
// colon is the backend's ref, so "awssm:arn:aws:secretsmanager:..." keeps its
// colons. The zero value is ready to use; a Mux is safe for concurrent use.
type Mux struct {
	mu     sync.RWMutex
	m      map[string]KeyResolver
	closed atomic.Bool
}

var _ KeyResolver = (*Mux)(nil)

// validScheme reports whether s is a scheme name: a lower-case letter, then
// lower-case letters, digits, '+', '-' or '.'.
func validScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Handle registers r for scheme. It panics if scheme is not a valid scheme
// name, r is nil, or the scheme is already handled: all programming errors.
func (m *Mux) Handle(scheme string, r KeyResolver) {
	if !validScheme(scheme) {
		panic(fmt.Sprintf("secrets: Mux.Handle: invalid scheme %q (want lower-case letters, digits, '+', '-', '.')", scheme))
	}
	if r == nil {
		panic("secrets: Mux.Handle: nil resolver for scheme " + scheme)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]KeyResolver{}
	}
	if _, dup := m.m[scheme]; dup {
		panic("secrets: Mux.Handle: scheme " + scheme + " handled twice")
	}
	m.m[scheme] = r
}

// Schemes returns the handled schemes, sorted.
func (m *Mux) Schemes() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Sorted(maps.Keys(m.m))
}

// Resolver returns the resolver handling scheme.
func (m *Mux) Resolver(scheme string) (KeyResolver, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.m[scheme]
	return r, ok
}

// SplitRef splits "scheme:rest" at the first colon. It fails with
// ErrInvalidRef when there is no colon or the scheme is not a valid name.
func SplitRef(ref string) (scheme, rest string, err error) {
	scheme, rest, ok := strings.Cut(ref, ":")
	if !ok {
		return "", "", &Error{Op: "resolve", Ref: ref, Code: CodeInvalidRef,
			Reason: "the ref has no scheme: write scheme:ref, such as db:42 or env:ANTHROPIC_API_KEY"}
	}
	if !validScheme(scheme) {
		return "", "", &Error{Op: "resolve", Ref: ref, Code: CodeInvalidRef,
			Reason: "the ref's scheme must be lower-case letters, digits, '+', '-' or '.', starting with a letter"}
	}
	return scheme, rest, nil
}

func (m *Mux) route(ref string) (KeyResolver, string, error) {
	if m.closed.Load() {
		return nil, "", &Error{Op: "resolve", Ref: ref, Code: CodeUnavailable, Reason: "the mux is closed"}
	}
	scheme, rest, err := SplitRef(ref)
	if err != nil {
		return nil, "", err
	}
	r, ok := m.Resolver(scheme)
	if !ok {
		known := strings.Join(m.Schemes(), ", ")
		if known == "" {
			known = "none"
		}
		return nil, "", &Error{Op: "resolve", Ref: ref, Code: CodeUnknownScheme,
			Reason: fmt.Sprintf("no backend handles scheme %q (handled: %s)", scheme, known)}
	}
	return r, rest, nil
}

// Resolve resolves "scheme:ref" with the scheme's resolver.
func (m *Mux) Resolve(ctx context.Context, ref string) (Secret, error) {
	r, rest, err := m.route(ref)
	if err != nil {
		return Secret{}, err
	}
	return r.Resolve(ctx, rest)
}

// ResolveMany resolves refs, grouping them by scheme so that each backend
// with a batch ability answers its refs in as few calls as it can. It
// returns one Result per ref, in order; if a backend's batch call fails, its
// refs and those of the backends not yet asked carry that error too.
func (m *Mux) ResolveMany(ctx context.Context, refs []string) ([]Result, error) {
	out := make([]Result, len(refs))
	type group struct {
		r    KeyResolver
		idx  []int
		refs []string
	}
	groups := map[string]*group{}
	var order []string
	for i, ref := range refs {
		out[i].Ref = ref
		r, rest, err := m.route(ref)
		if err != nil {
			out[i].Err = err
			continue
		}
		scheme, _, _ := strings.Cut(ref, ":")
		g := groups[scheme]
		if g == nil {
			g = &group{r: r}
			groups[scheme] = g
			order = append(order, scheme)
		}
		g.idx = append(g.idx, i)
		g.refs = append(g.refs, rest)
	}
	for n, scheme := range order {
		g := groups[scheme]
		if err := batchInto(ctx, g.r, out, g.idx, g.refs); err != nil {
			for _, later := range order[n+1:] {
				for _, i := range groups[later].idx {
					out[i].Err = err
				}
			}
			return out, err
		}
	}
	return out, nil
}

// Ping pings every handled backend that can be pinged, and joins the errors.
func (m *Mux) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return ContextError("ping", "", "", err)
	}
	var errs []error
	for _, s := range m.Schemes() {
		r, _ := m.Resolver(s)
		if p, ok := r.(Pinger); ok {
			if err := p.Ping(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Close closes every handled resolver that is an io.Closer, and joins the
// errors. Every later resolve fails with ErrUnavailable; only the first Close
// closes.
func (m *Mux) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, s := range m.Schemes() {
		r, _ := m.Resolver(s)
		if c, ok := r.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s, err))
			}
		}
	}
	return errors.Join(errs...)
}
