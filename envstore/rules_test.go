package envstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/envstore"
)

// The rules the driver layer owns, checked on envstore: each of these
// drifted between backends before (issue 11).

func wantError(t *testing.T, what string, err error, is error, op, ref string) {
	t.Helper()
	if !errors.Is(err, is) {
		t.Fatalf("%s: got %v, want an error matching %v", what, err, is)
	}
	var e *secrets.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: %T is not a *secrets.Error: %v", what, err, err)
	}
	if e.Op != op || e.Backend != envstore.Backend || e.Ref != ref {
		t.Fatalf("%s: Op %q Backend %q Ref %q, want %q %q %q", what, e.Op, e.Backend, e.Ref, op, envstore.Backend, ref)
	}
}

// TestCanceledContextRule: a canceled ctx is an *Error naming the backend
// and the ref that errors.Is context.Canceled, for Resolve, ResolveMany (one
// Result per ref) and Ping; envstore returned the bare ctx.Err().
func TestCanceledContextRule(t *testing.T) {
	lookup := func(string) (string, bool) { return "sk-ctx-value", true }
	s := envstore.New(&envstore.Options{Lookup: lookup})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Resolve(ctx, "BOT_KEY")
	wantError(t, "Resolve", err, context.Canceled, "resolve", "BOT_KEY")

	res, err := secrets.ResolveMany(ctx, s, []string{"BOT_KEY", "OTHER_KEY"})
	if !errors.Is(err, context.Canceled) || len(res) != 2 {
		t.Fatalf("ResolveMany: %d results, %v; want 2 and context.Canceled", len(res), err)
	}
	for _, r := range res {
		wantError(t, "ResolveMany", r.Err, context.Canceled, "resolve", r.Ref)
	}
	wantError(t, "Ping", s.Ping(ctx), context.Canceled, "ping", "")
}

// TestDotEnvFailureRetried: a .env file that cannot be read fails the call,
// and the next call reads it again; envstore kept the first failure for the
// life of the Store.
func TestDotEnvFailureRetried(t *testing.T) {
	file := filepath.Join(t.TempDir(), "late.env")
	s := envstore.New(&envstore.Options{Lookup: func(string) (string, bool) { return "", false }, DotEnv: []string{file}})
	_, err := s.Resolve(context.Background(), "LATE_KEY")
	wantError(t, "a .env file not there yet", err, secrets.ErrUnavailable, "resolve", "LATE_KEY")
	if err := os.WriteFile(file, []byte("LATE_KEY=sk-late-7c1e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Resolve(context.Background(), "LATE_KEY")
	if err != nil || got.Reveal() != "sk-late-7c1e" {
		t.Fatalf("after the file appeared: (%d bytes, %v), want its value", got.Len(), err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after the file appeared: %v", err)
	}
}

// TestFieldsShareOneLookup: refs that differ only by #field read the
// variable once in a batch; the core, not envstore, picks the fields.
func TestFieldsShareOneLookup(t *testing.T) {
	var lookups atomic.Int32
	lookup := func(name string) (string, bool) {
		lookups.Add(1)
		if name == "BOT_CONFIG" {
			return `{"api_key":"sk-field-91","org":"org-3"}`, true
		}
		return "", false
	}
	s := envstore.New(&envstore.Options{Lookup: lookup})
	refs := []string{"BOT_CONFIG#api_key", "BOT_CONFIG#org", "BOT_CONFIG#missing", "BOT_CONFIG"}
	res, err := secrets.ResolveMany(context.Background(), s, refs)
	if err != nil || len(res) != len(refs) {
		t.Fatalf("ResolveMany: %d results, %v", len(res), err)
	}
	for i, want := range []string{"sk-field-91", "org-3", "", `{"api_key":"sk-field-91","org":"org-3"}`} {
		if want == "" {
			wantError(t, "a missing #field", res[i].Err, secrets.ErrNotFound, "resolve", refs[i])
			continue
		}
		if res[i].Err != nil || res[i].Secret.Reveal() != want {
			t.Errorf("%q: (%d bytes, %v), want %d bytes", refs[i], res[i].Secret.Len(), res[i].Err, len(want))
		}
	}
	if n := lookups.Load(); n != 1 {
		t.Errorf("%d lookups for four refs of one variable, want 1", n)
	}
}
