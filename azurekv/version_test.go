package azurekv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/azurekvtest"
)

// TestCurrentVersion checks CurrentVersion against the in-process Key Vault
// through the real SDK client: a ref naming the current version is
// errors.ErrUnsupported (Key Vault has no cheaper read than the GetSecret a
// refresh makes anyway), a pinned version is itself and equals Resolve's
// Version, and neither costs a request.
func TestCurrentVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cur := "sk-ant-" + token()
	first := e.srv.Set("bot-key", "sk-ant-old-"+token(), azurekvtest.Attributes{})
	second := e.srv.Set("bot-key", cur, azurekvtest.Attributes{})
	requests := len(e.srv.Log())

	for _, ref := range []string{"bot-key", "bot-key#api_key", "missing-key"} {
		_, err := e.store.CurrentVersion(ctx, ref)
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("CurrentVersion(%q) = %v, want errors.ErrUnsupported", ref, err)
		}
		se := wantErr(t, err, secrets.CodeUnknown, "cheaper than getting the secret", cur)
		if se.Op != "version" || se.Ref != ref {
			t.Errorf("Op %q Ref %q, want version and %q", se.Op, se.Ref, ref)
		}
	}
	for _, ver := range []string{first, second} {
		got, err := e.store.CurrentVersion(ctx, "bot-key/"+ver+"#api_key")
		if err != nil || got != ver {
			t.Errorf("pinned %s: %q, %v", ver, got, err)
		}
	}
	if n := len(e.srv.Log()) - requests; n != 0 {
		t.Errorf("CurrentVersion made %d requests, want 0", n)
	}
	// The pinned answer is the Version Resolve gives.
	s, err := e.resolve(t, "bot-key/"+first)
	if err != nil || s.Version != first {
		t.Errorf("Resolve pinned: Version %q, %v; want %q", s.Version, err, first)
	}
	s, err = e.resolve(t, "bot-key")
	if err != nil || s.Version != second {
		t.Errorf("Resolve current: Version %q, %v; want %q", s.Version, err, second)
	}

	// Invalid refs are refused first, as for Resolve.
	for _, ref := range []string{"bad_name", "bot-key/not-hex!", "bot-key?x=1", ""} {
		_, err := e.store.CurrentVersion(ctx, ref)
		se := wantErr(t, err, secrets.CodeInvalidRef, "", cur)
		if se.Op != "version" || errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%q: %v", ref, err)
		}
	}

	// Through a Mux, as a stack asks.
	var mux secrets.Mux
	mux.Handle("azurekv", e.store)
	if _, err := mux.CurrentVersion(ctx, "azurekv:bot-key"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("through the Mux: %v", err)
	}
	if v, err := mux.CurrentVersion(ctx, "azurekv:bot-key/"+second); err != nil || v != second {
		t.Errorf("pinned through the Mux: %q, %v", v, err)
	}
}

// TestCurrentVersionSDKFake: the same through the SDK's own fake server.
func TestCurrentVersionSDKFake(t *testing.T) {
	store, calls := newFakeStore(t, map[string]map[string]fakeSecret{
		"bot-key": {"": {value: "sk-ant-" + token()}},
	}, time.Now())
	ctx := context.Background()
	if _, err := store.CurrentVersion(ctx, "bot-key"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("current: %v", err)
	}
	pinned := "0123456789abcdef0123456789abcdef"
	if v, err := store.CurrentVersion(ctx, "bot-key/"+pinned); err != nil || v != pinned {
		t.Errorf("pinned: %q, %v", v, err)
	}
	if len(*calls) != 0 {
		t.Errorf("the fake server saw %q", *calls)
	}
}
