package secrets_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
)

// versioned is a fake backend that tells versions and counts what it is
// asked.
type versioned struct {
	mu       sync.Mutex
	versions map[string]string
	resolves int
	asked    []string
}

func (v *versioned) Resolve(context.Context, string) (secrets.Secret, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.resolves++
	return secrets.NewSecret("sk-ant-versioned"), nil
}

func (v *versioned) CurrentVersion(ctx context.Context, ref string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.asked = append(v.asked, ref)
	if err := ctx.Err(); err != nil {
		return "", secrets.ContextError("version", "fake", ref, err)
	}
	ver, ok := v.versions[ref]
	if !ok {
		return "", &secrets.Error{Op: "version", Backend: "fake", Ref: ref, Code: secrets.CodeNotFound, Reason: "no such entry"}
	}
	return ver, nil
}

// plain is a fake backend without the ability.
type plain struct{}

func (plain) Resolve(context.Context, string) (secrets.Secret, error) {
	return secrets.NewSecret("sk-ant-plain"), nil
}

func TestMuxCurrentVersion(t *testing.T) {
	v := &versioned{versions: map[string]string{"bots/a": "v3", "arn:aws:x:1": "v9"}}
	var m secrets.Mux
	m.Handle("aws", v)
	// Behind a decorator: Find reaches the backend through Unwrap.
	m.Handle("wrapped", secrets.WithTimeout(v, time.Minute))
	m.Handle("env", plain{})
	ctx := context.Background()

	for ref, want := range map[string]string{
		"aws:bots/a":      "v3",
		"aws:arn:aws:x:1": "v9", // everything after the first colon is the backend's
		"wrapped:bots/a":  "v3",
	} {
		if got, err := m.CurrentVersion(ctx, ref); err != nil || got != want {
			t.Errorf("CurrentVersion(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	// The backend-local ref is passed on as is, #field and ?options
	// included: the backend parses it.
	v.asked = nil
	m.CurrentVersion(ctx, "aws:bots/a?stage=XY#api_key")
	if len(v.asked) != 1 || v.asked[0] != "bots/a?stage=XY#api_key" {
		t.Errorf("the backend was asked %q, want [bots/a?stage=XY#api_key]", v.asked)
	}
	if v.resolves != 0 {
		t.Errorf("%d resolves: CurrentVersion must not resolve", v.resolves)
	}

	// The backend's own errors come back as they are.
	_, err := m.CurrentVersion(ctx, "aws:missing")
	var e *secrets.Error
	if !errors.As(err, &e) || e.Code != secrets.CodeNotFound || e.Backend != "fake" || e.Ref != "missing" {
		t.Errorf("backend error: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.CurrentVersion(cctx, "aws:bots/a"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}

	// A backend without the ability: ErrUnsupported, and no resolve.
	_, err = m.CurrentVersion(ctx, "env:ANTHROPIC_API_KEY")
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("unsupported: %v does not match errors.ErrUnsupported", err)
	}
	if !errors.As(err, &e) || e.Op != "version" || e.Ref != "env:ANTHROPIC_API_KEY" || !strings.Contains(e.Reason, `"env"`) {
		t.Errorf("unsupported: %#v", e)
	}
}

func TestMuxCurrentVersionRouting(t *testing.T) {
	var m secrets.Mux
	m.Handle("aws", &versioned{})
	ctx := context.Background()
	for _, c := range []struct {
		ref  string
		code secrets.Code
	}{
		{"no-scheme", secrets.CodeInvalidRef},
		{"Bad:x", secrets.CodeInvalidRef},
		{"vault:secret/x", secrets.CodeUnknownScheme},
	} {
		_, err := m.CurrentVersion(ctx, c.ref)
		var e *secrets.Error
		if !errors.As(err, &e) || e.Code != c.code || e.Op != "version" || e.Ref != c.ref {
			t.Errorf("%q: %v, want code %v under Op version", c.ref, err, c.code)
		}
		if errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%q: a routing error matches ErrUnsupported", c.ref)
		}
		// Resolve's own errors are untouched by the copy.
		_, rerr := m.Resolve(ctx, c.ref)
		if !errors.As(rerr, &e) || e.Op != "resolve" {
			t.Errorf("%q: Resolve's error now has Op %q", c.ref, e.Op)
		}
	}
	if _, err := m.CurrentVersion(ctx, "vault:secret/x"); err == nil || !strings.Contains(err.Error(), "handled: aws") {
		t.Errorf("unknown scheme does not name the handled ones: %v", err)
	}
	m.Close()
	_, err := m.CurrentVersion(ctx, "aws:bots/a")
	if !errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("closed mux: %v", err)
	}
}
