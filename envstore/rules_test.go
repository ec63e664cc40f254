package envstore_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/envstore"
	"github.com/keyward/secrets/internal/testenv"
)

// The rules the driver layer owns, checked on envstore: each of these
// drifted between backends before (issue 11).

// TestCanceledContextRule: a canceled ctx is an *Error naming the backend
// and the ref that errors.Is context.Canceled, for Resolve, ResolveMany (one
// Result per ref) and Ping; envstore returned the bare ctx.Err().
func TestCanceledContextRule(t *testing.T) {
	lookup := func(string) (string, bool) { return "sk-ctx-value", true }
	s := envstore.New(&envstore.Options{Lookup: lookup})
	ctx := testenv.Canceled()
	_, err := s.Resolve(ctx, "BOT_KEY")
	testenv.WantContextError(t, "Resolve", err, context.Canceled, "resolve", envstore.Backend, "BOT_KEY")

	refs := []string{"BOT_KEY", "OTHER_KEY"}
	res, err := secrets.ResolveMany(ctx, s, refs)
	testenv.WantBatchFailure(t, "ResolveMany", res, err, refs, secrets.CodeOf(context.Canceled), envstore.Backend)
	for _, r := range res {
		testenv.WantContextError(t, "ResolveMany", r.Err, context.Canceled, "resolve", envstore.Backend, r.Ref)
	}
	testenv.WantContextError(t, "Ping", s.Ping(ctx), context.Canceled, "ping", envstore.Backend, "")
}

// TestDotEnvFailureRetried: a .env file that cannot be read fails the call,
// and the next call reads it again; envstore kept the first failure for the
// life of the Store. The policy is judged first: a denied name is
// ErrPermission whatever the files.
func TestDotEnvFailureRetried(t *testing.T) {
	file := filepath.Join(t.TempDir(), "late.env")
	s := envstore.New(&envstore.Options{Lookup: func(string) (string, bool) { return "", false }, DotEnv: []string{file}})
	_, err := s.Resolve(context.Background(), "ENCRYPTION_KEY")
	testenv.WantError(t, "a denied name", err, secrets.CodePermission, "resolve", envstore.Backend, "ENCRYPTION_KEY")
	_, err = s.Resolve(context.Background(), "LATE_KEY")
	testenv.WantError(t, "a .env file not there yet", err, secrets.CodeUnavailable, "resolve", envstore.Backend, "LATE_KEY")
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
			testenv.WantError(t, "a missing #field", res[i].Err, secrets.CodeNotFound, "resolve", envstore.Backend, refs[i])
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
