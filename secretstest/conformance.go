package secretstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

// Harness connects RunConformance to a backend.
type Harness struct {
	// Resolver is the resolver under test.
	Resolver secrets.KeyResolver
	// Put stores value so that Resolver can resolve it, and returns its ref.
	// name is a fresh name made of [a-z0-9_], which the backend may use or
	// ignore (a database assigns its own id). A zero expiresAt means none;
	// Put may ignore expiresAt when Expiry is false.
	Put func(t *testing.T, name, value string, expiresAt time.Time) (ref string, err error)
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
// subtest each, asserting error codes with errors.Is. Run it under -race.
func RunConformance(t *testing.T, h Harness) {
	t.Helper()
	if h.Resolver == nil || h.Put == nil {
		t.Fatal("secretstest: Harness.Resolver and Harness.Put are required")
	}
	c := &conformance{h: h}
	t.Run("Found", c.found)
	t.Run("NotFound", c.notFound)
	t.Run("InvalidRef", c.invalidRef)
	t.Run("Field", c.field)
	t.Run("Expiry", c.expiry)
	t.Run("EmptyValue", c.value(""))
	t.Run("LargeValue", c.value(strings.Repeat("sk-large-", 64<<10/9+1)[:64<<10]))
	t.Run("Unicode", c.value("ключ-🔑-鍵-é-"+token()))
	t.Run("CanceledContext", c.canceled)
	t.Run("Concurrent", c.concurrent)
	t.Run("NoValueInErrorsOrLogs", c.noLeak)
}

type conformance struct {
	h    Harness
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
	ref, err := c.h.Put(t, name, value, expiresAt)
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
	return c.h.Resolver.Resolve(ctx, ref)
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

func wantCode(t *testing.T, what string, err, code error) {
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
	wantCode(t, fmt.Sprintf("Resolve(%q)", c.h.MissingRef), err, secrets.ErrNotFound)
}

func (c *conformance) invalidRef(t *testing.T) {
	for _, ref := range append([]string{""}, c.h.InvalidRefs...) {
		_, err := c.resolve(t, ref)
		wantCode(t, fmt.Sprintf("Resolve(%q)", ref), err, secrets.ErrInvalidRef)
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
	_, err = secrets.EnforceExpiry(c.h.Resolver, nil).Resolve(context.Background(), ref)
	wantCode(t, "an expired secret through EnforceExpiry", err, secrets.ErrExpired)
}

func (c *conformance) value(v string) func(t *testing.T) {
	return func(t *testing.T) {
		ref := c.put(t, v, time.Time{})
		c.mustResolve(t, ref, v)
	}
}

func (c *conformance) canceled(t *testing.T) {
	v := "sk-cancel-" + token()
	ref := c.put(t, v, time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := c.h.Resolver.Resolve(ctx, ref)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve with a canceled context: got (%d bytes, %v), want an error matching context.Canceled", s.Len(), err)
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
				s, err := c.h.Resolver.Resolve(context.Background(), ids[i])
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
	audited := secrets.NewAudit(c.h.Resolver, secrets.SlogAuditor(logger), nil)

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
