package secretstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
)

// ErrUnsupported is returned (possibly wrapped) by Harness.Put for a value
// the backend cannot hold, such as an empty string; the subtest is skipped.
var ErrUnsupported = errors.New("secretstest: the backend cannot store this")

// Subject is one fresh resolver under test and the way to store into it.
type Subject struct {
	// Resolver is the resolver under test.
	Resolver secrets.KeyResolver
	// Put stores value so that Resolver can resolve it, and returns its ref.
	// name is a fresh name made of [a-z0-9_], which the backend may use or
	// ignore (a database assigns its own id). A zero expiresAt means none;
	// Put may ignore expiresAt when Harness.Expiry is false.
	Put func(t *testing.T, name, value string, expiresAt time.Time) (ref string, err error)
}

// Harness connects RunConformance to a backend.
type Harness struct {
	// New returns a fresh Subject for one subtest, as testing/slogtest's
	// newHandler does, so that one subtest (Close, say) cannot change what
	// another sees. Clean up with t.Cleanup.
	New func(t *testing.T) Subject
	// Backend is the name the backend puts in the Backend field of its
	// errors ("env", "fernet", ...).
	Backend string
	// ContextBackend is the Backend of the error for a caller's ended
	// context, when a layer in front answers it (the cache says "cache");
	// "" means Backend.
	ContextBackend string
	// ErrorRef, when set, gives the Backend and Ref that errors for ref carry,
	// for a router such as secrets.Mux whose backends name the ref without
	// its scheme; nil means Backend and ref itself.
	ErrorRef func(ref string) (backend, errRef string)
	// MissingRef is a well-formed ref that resolves to nothing.
	MissingRef string
	// InvalidRefs must each fail with ErrInvalidRef. The empty ref is always tested.
	InvalidRefs []string
	// Documents is true when the backend stores JSON documents and honours "#field".
	Documents bool
	// Expiry is true when Put stores expiresAt and Resolve reports it.
	Expiry bool
}

// RunConformance runs the behaviours every keyward KeyResolver shares, one
// subtest each on a fresh Subject, asserting error codes with errors.Is and
// the fields of *secrets.Error. Run it under -race.
func RunConformance(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil || h.Backend == "" {
		t.Fatal("secretstest: Harness.New and Harness.Backend are required")
	}
	if h.ContextBackend == "" {
		h.ContextBackend = h.Backend
	}
	run := func(name string, f func(*conformance, *testing.T)) {
		t.Run(name, func(t *testing.T) {
			sub := h.New(t)
			if sub.Resolver == nil || sub.Put == nil {
				t.Fatal("secretstest: Harness.New returned no Resolver or Put")
			}
			f(&conformance{h: h, s: sub}, t)
		})
	}
	run("Found", (*conformance).found)
	run("NotFound", (*conformance).notFound)
	run("InvalidRef", (*conformance).invalidRef)
	run("Field", (*conformance).field)
	run("Expiry", (*conformance).expiry)
	run("EmptyValue", func(c *conformance, t *testing.T) { c.value(t, "") })
	run("LargeValue", func(c *conformance, t *testing.T) {
		c.value(t, strings.Repeat("sk-large-", 64<<10/9+1)[:64<<10])
	})
	run("Unicode", func(c *conformance, t *testing.T) { c.value(t, "ключ-🔑-鍵-é-"+token()) })
	run("CanceledContext", (*conformance).canceled)
	run("DeadlineContext", (*conformance).deadline)
	run("Concurrent", (*conformance).concurrent)
	run("ResolveMany", (*conformance).resolveMany)
	run("Ping", (*conformance).ping)
	run("Close", (*conformance).close)
	run("NoValueInErrorsOrLogs", (*conformance).noLeak)
}

type conformance struct {
	h    Harness
	s    Subject
	mu   sync.Mutex
	n    int
	used []string // every value put, to search output for
}

func token() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// put stores value under a fresh name; it skips the subtest on ErrUnsupported.
func (c *conformance) put(t *testing.T, value string, expiresAt time.Time) string {
	t.Helper()
	c.mu.Lock()
	c.n++
	name := fmt.Sprintf("kwconf_%d_%s", c.n, token()[:8])
	if value != "" {
		c.used = append(c.used, value)
	}
	c.mu.Unlock()
	ref, err := c.s.Put(t, name, value, expiresAt)
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("backend cannot store this value: %v", err)
	}
	if err != nil {
		t.Fatalf("Harness.Put: %v", err)
	}
	return ref
}

func (c *conformance) resolve(t *testing.T, ref string) (secrets.Secret, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.s.Resolver.Resolve(ctx, ref)
}

func (c *conformance) mustResolve(t *testing.T, ref, want string) secrets.Secret {
	t.Helper()
	s, err := c.resolve(t, ref)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", ref, err)
	}
	if got := s.Reveal(); got != want {
		t.Fatalf("Resolve(%q) returned a value of %d bytes that differs from the %d bytes stored", ref, len(got), len(want))
	}
	return s
}

func wantCode(t *testing.T, what string, err, code error) *secrets.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want %v", what, code)
	}
	if !errors.Is(err, code) {
		t.Fatalf("%s: got %v (code %v), want errors.Is(err, %v)", what, err, secrets.CodeOf(err), code)
	}
	var e *secrets.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: %T is not a *secrets.Error: %v", what, err, err)
	}
	return e
}

// wantFields checks the *secrets.Error's Op, Backend and Ref.
func (c *conformance) wantFields(t *testing.T, what string, e *secrets.Error, op, backend, ref string) {
	t.Helper()
	if c.h.ErrorRef != nil {
		b, r := c.h.ErrorRef(ref)
		if backend == c.h.Backend {
			backend = b
		}
		ref = r
	}
	if e.Op != op || e.Backend != backend || e.Ref != ref {
		t.Fatalf("%s: error has Op %q Backend %q Ref %q, want %q %q %q (%v)", what, e.Op, e.Backend, e.Ref, op, backend, ref, e)
	}
}

func (c *conformance) found(t *testing.T) {
	v := "sk-found-" + token()
	ref := c.put(t, v, time.Time{})
	c.mustResolve(t, ref, v)
	// A second resolve gives the same value: nothing is consumed.
	c.mustResolve(t, ref, v)
}

func (c *conformance) notFound(t *testing.T) {
	if c.h.MissingRef == "" {
		t.Fatal("Harness.MissingRef is required")
	}
	_, err := c.resolve(t, c.h.MissingRef)
	what := fmt.Sprintf("Resolve(%q)", c.h.MissingRef)
	c.wantFields(t, what, wantCode(t, what, err, secrets.ErrNotFound), "resolve", c.h.Backend, c.h.MissingRef)
}

func (c *conformance) invalidRef(t *testing.T) {
	for _, ref := range append([]string{""}, c.h.InvalidRefs...) {
		_, err := c.resolve(t, ref)
		what := fmt.Sprintf("Resolve(%q)", ref)
		c.wantFields(t, what, wantCode(t, what, err, secrets.ErrInvalidRef), "resolve", c.h.Backend, ref)
	}
}

func (c *conformance) field(t *testing.T) {
	if !c.h.Documents {
		t.Skip("backend does not store JSON documents")
	}
	key := "sk-field-" + token()
	doc, _ := json.Marshal(map[string]any{"api_key": key, "org": "org-1", "limits": map[string]int{"rpm": 60}})
	ref := c.put(t, string(doc), time.Time{})
	c.mustResolve(t, ref+"#api_key", key)
	c.mustResolve(t, ref+"#org", "org-1")
	c.mustResolve(t, ref+"#limits", `{"rpm":60}`)
	c.mustResolve(t, ref, string(doc))
	_, err := c.resolve(t, ref+"#missing")
	wantCode(t, "a #field the document lacks", err, secrets.ErrNotFound)

	plain := c.put(t, "sk-plain-"+token(), time.Time{})
	_, err = c.resolve(t, plain+"#api_key")
	wantCode(t, "a #field of a value that is not JSON", err, secrets.ErrInvalidRef)
}

func (c *conformance) expiry(t *testing.T) {
	if !c.h.Expiry {
		t.Skip("backend does not store expiry")
	}
	now := time.Now()
	future := now.Add(time.Hour).Truncate(time.Second)
	v := "sk-future-" + token()
	s := c.mustResolve(t, c.put(t, v, future), v)
	if d := s.ExpiresAt.Sub(future); d < -time.Second || d > time.Second {
		t.Fatalf("ExpiresAt = %v, want %v", s.ExpiresAt, future)
	}

	past := now.Add(-time.Hour).Truncate(time.Second)
	ref := c.put(t, "sk-past-"+token(), past)
	s, err := c.resolve(t, ref)
	if err == nil && !s.ExpiredAt(now) {
		t.Fatalf("a secret that expired at %v resolved without error and with ExpiresAt %v", past, s.ExpiresAt)
	}
	if err != nil {
		wantCode(t, "an expired secret", err, secrets.ErrExpired)
	}
	_, err = secrets.EnforceExpiry(c.s.Resolver, nil).Resolve(context.Background(), ref)
	wantCode(t, "an expired secret through EnforceExpiry", err, secrets.ErrExpired)
}

func (c *conformance) value(t *testing.T, v string) {
	ref := c.put(t, v, time.Time{})
	c.mustResolve(t, ref, v)
}

// canceled checks the context rule exactly: an *secrets.Error naming the
// backend and the ref that errors.Is context.Canceled.
func (c *conformance) canceled(t *testing.T) {
	v := "sk-cancel-" + token()
	ref := c.put(t, v, time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := c.s.Resolver.Resolve(ctx, ref)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve with a canceled context: got (%d bytes, %v), want an error matching context.Canceled", s.Len(), err)
	}
	var e *secrets.Error
	if !errors.As(err, &e) {
		t.Fatalf("Resolve with a canceled context: %T is not a *secrets.Error: %v", err, err)
	}
	c.wantFields(t, "Resolve with a canceled context", e, "resolve", c.h.ContextBackend, ref)
}

// deadline: a passed deadline is ErrUnavailable and context.DeadlineExceeded.
func (c *conformance) deadline(t *testing.T) {
	ref := c.put(t, "sk-deadline-"+token(), time.Time{})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := c.s.Resolver.Resolve(ctx, ref)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Resolve past the deadline: %v, want an error matching context.DeadlineExceeded", err)
	}
	e := wantCode(t, "Resolve past the deadline", err, secrets.ErrUnavailable)
	c.wantFields(t, "Resolve past the deadline", e, "resolve", c.h.ContextBackend, ref)
}

// resolveMany checks the batch shape: one Result per ref, in order, each
// with its own value or error, through the resolver's batch ability if it has
// one and one by one otherwise.
func (c *conformance) resolveMany(t *testing.T) {
	v1, v2 := "sk-many1-"+token(), "sk-many2-"+token()
	r1, r2 := c.put(t, v1, time.Time{}), c.put(t, v2, time.Time{})
	refs := []string{r1, c.h.MissingRef, "", r2, r1}
	want := []string{v1, "", "", v2, v1}
	if c.h.Documents {
		doc, _ := json.Marshal(map[string]string{"api_key": v1, "org": "org-7"})
		d := c.put(t, string(doc), time.Time{})
		refs = append(refs, d+"#api_key", d+"#org", d+"#missing")
		want = append(want, v1, "org-7", "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := secrets.ResolveMany(ctx, c.s.Resolver, refs)
	if err != nil {
		t.Fatalf("ResolveMany: whole call failed: %v", err)
	}
	if len(out) != len(refs) {
		t.Fatalf("ResolveMany returned %d results for %d refs", len(out), len(refs))
	}
	for i, res := range out {
		if res.Ref != refs[i] {
			t.Fatalf("result %d is for %q, want %q (order must be kept)", i, res.Ref, refs[i])
		}
		switch {
		case want[i] != "":
			if res.Err != nil || res.Secret.Reveal() != want[i] {
				t.Fatalf("result %d (%q): err %v, value of %d bytes, want the %d bytes stored", i, refs[i], res.Err, res.Secret.Len(), len(want[i]))
			}
		case refs[i] == "":
			wantCode(t, "ResolveMany of the empty ref", res.Err, secrets.ErrInvalidRef)
		default:
			e := wantCode(t, fmt.Sprintf("ResolveMany of %q", refs[i]), res.Err, secrets.ErrNotFound)
			c.wantFields(t, fmt.Sprintf("ResolveMany of %q", refs[i]), e, "resolve", c.h.Backend, refs[i])
		}
	}

	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	out, _ = secrets.ResolveMany(canceled, c.s.Resolver, []string{r1, r2})
	if len(out) != 2 {
		t.Fatalf("ResolveMany with a canceled context returned %d results for 2 refs", len(out))
	}
	for _, res := range out {
		if !errors.Is(res.Err, context.Canceled) {
			t.Fatalf("ResolveMany with a canceled context: result %q has %v, want context.Canceled", res.Ref, res.Err)
		}
	}
}

// ping: a resolver with the Pinger ability answers nil when healthy and
// follows the context rule.
func (c *conformance) ping(t *testing.T) {
	p, ok := c.s.Resolver.(secrets.Pinger)
	if !ok {
		t.Skip("the resolver has no Ping")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping of a healthy backend: %v", err)
	}
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := p.Ping(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping with a canceled context: %v, want context.Canceled", err)
	}
}

// close: after Close, Resolve fails cleanly with ErrUnavailable; Close twice
// is safe.
func (c *conformance) close(t *testing.T) {
	cl, ok := c.s.Resolver.(io.Closer)
	if !ok {
		t.Skip("the resolver has no Close")
	}
	v := "sk-close-" + token()
	ref := c.put(t, v, time.Time{})
	c.mustResolve(t, ref, v)
	if err := cl.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := c.resolve(t, ref)
	wantCode(t, "Resolve after Close", err, secrets.ErrUnavailable)
	if err := cl.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

func (c *conformance) concurrent(t *testing.T) {
	const refs, workers, rounds = 4, 8, 25
	vals := make([]string, refs)
	ids := make([]string, refs)
	for i := range vals {
		vals[i] = fmt.Sprintf("sk-conc-%d-%s", i, token())
		ids[i] = c.put(t, vals[i], time.Time{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				i := (w + r) % refs
				s, err := c.s.Resolver.Resolve(context.Background(), ids[i])
				if err != nil {
					errs <- err
				} else if s.Reveal() != vals[i] {
					errs <- fmt.Errorf("ref %q resolved to another value", ids[i])
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func (c *conformance) noLeak(t *testing.T) {
	v := "sk-leak-" + token()
	ref := c.put(t, v, time.Time{})

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	audited := secrets.NewAudit(c.s.Resolver, secrets.SlogAuditor(logger), nil)

	var out bytes.Buffer
	ctx := context.Background()
	s, err := audited.Resolve(ctx, ref)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", ref, err)
	}
	fmt.Fprintf(&out, "%v %+v %#v %s %q %x %X %d\n", s, s, s, s, s, s, s, s)
	fmt.Fprint(&out, s, "\n")
	fmt.Fprintln(&out, s)
	j, _ := json.Marshal(map[string]any{"secret": s, "ptr": &s})
	out.Write(j)
	logger.Info("a secret", "secret", s, "any", any(s))

	bad := []string{c.h.MissingRef, ref + "#api_key", ""}
	if c.h.Documents {
		doc, _ := json.Marshal(map[string]string{"api_key": v, "other": v})
		bad = append(bad, c.put(t, string(doc), time.Time{})+"#missing")
		// Not JSON at all, but containing the value: a parse error must not echo it.
		bad = append(bad, c.put(t, "{"+v, time.Time{})+"#api_key")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	for _, r := range bad {
		_, err := audited.Resolve(ctx, r)
		fmt.Fprintf(&out, "%v | %+v | %#v\n", err, err, err)
	}
	_, err = audited.Resolve(canceled, ref)
	fmt.Fprintf(&out, "%v | %+v\n", err, err)

	c.mu.Lock()
	used := append([]string(nil), c.used...)
	c.mu.Unlock()
	for _, val := range used {
		if len(val) < 8 {
			continue
		}
		for name, text := range map[string]string{"formatted output": out.String(), "log output": logs.String()} {
			if strings.Contains(text, val) {
				t.Errorf("%s contains a secret value (%d bytes); it must be redacted", name, len(val))
			}
		}
	}
	if !strings.Contains(out.String(), secrets.Redacted) {
		t.Error("printing a Secret did not show the redaction marker")
	}
	if !strings.Contains(logs.String(), `"outcome":"ok"`) {
		t.Errorf("the audit log has no successful resolve: %s", logs.String())
	}
}
