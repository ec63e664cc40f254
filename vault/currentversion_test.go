package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/testenv"
)

// TestCurrentVersion checks CurrentVersion on the real Vault dev server: on
// KV v2 it equals the Version a Resolve of the same ref gives, before and
// after a new version, with one metadata read and no data read; deleted and
// destroyed versions are ErrNotFound as for Resolve; KV v1 and other engines
// are ErrUnsupported.
func TestCurrentVersion(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	client, cnt := newClient(t, srv.Addr, srv.RootToken)
	logger, logs := quietLogger()
	store := New(client, &Options{Mount: "secret", Logger: logger})
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	kv := root.KVv2("secret")

	put := func(t *testing.T, path string, data map[string]any) int {
		t.Helper()
		s, err := kv.Put(ctx, path, data)
		if err != nil {
			t.Fatalf("put %s: %v", path, err)
		}
		return s.VersionMetadata.Version
	}
	// same checks that CurrentVersion equals a fresh Resolve's Version and
	// costs one metadata read, and returns it.
	same := func(t *testing.T, ref, value string) string {
		t.Helper()
		before := len(cnt.Paths())
		v, err := store.CurrentVersion(ctx, ref)
		if err != nil {
			t.Fatalf("CurrentVersion(%q): %v", ref, err)
		}
		paths := cnt.Paths()[before:]
		if len(paths) != 1 || !strings.HasPrefix(paths[0], "/v1/secret/metadata/") {
			t.Errorf("CurrentVersion(%q) made the requests %q, want one metadata read", ref, paths)
		}
		s, err := store.Resolve(ctx, ref)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", ref, err)
		}
		if s.Reveal() != value {
			t.Fatalf("Resolve(%q) returned %d bytes that differ from the %d expected", ref, s.Len(), len(value))
		}
		if s.Version != v {
			t.Errorf("CurrentVersion(%q) = %q, but Resolve gives Version %q", ref, v, s.Version)
		}
		return v
	}

	t.Run("KVv2", func(t *testing.T) {
		v1, v2 := "sk-ant-v1-"+token(t), "sk-ant-v2-"+token(t)
		// The first resolve learns the mount; every later check is one read.
		if _, err := store.Resolve(ctx, "warm/up"); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("warm-up: %v", err)
		}
		n1 := put(t, "bots/rotating", map[string]any{"api_key": v1})
		first := same(t, "bots/rotating#api_key", v1)
		if first != fmt.Sprint(n1) {
			t.Errorf("CurrentVersion = %q, want the written version %d", first, n1)
		}
		n2 := put(t, "bots/rotating", map[string]any{"api_key": v2})
		second := same(t, "bots/rotating#api_key", v2)
		if second == first || second != fmt.Sprint(n2) {
			t.Errorf("after a new version: %q (was %q), want %d", second, first, n2)
		}
		// The whole document, and a ref naming its mount, give the same.
		if v, err := store.CurrentVersion(ctx, "bots/rotating"); err != nil || v != second {
			t.Errorf("without #field: %q, %v", v, err)
		}
		noMount := New(client, &Options{Logger: logger})
		t.Cleanup(func() { noMount.Close() })
		if v, err := noMount.CurrentVersion(ctx, "secret/bots/rotating"); err != nil || v != second {
			t.Errorf("secret/bots/rotating without a default mount: %q, %v", v, err)
		}

		// A pinned version is itself, with no request.
		before := len(cnt.Paths())
		if v, err := store.CurrentVersion(ctx, "bots/rotating?version=1#api_key"); err != nil || v != "1" {
			t.Errorf("pinned: %q, %v", v, err)
		}
		if paths := cnt.Paths()[before:]; len(paths) != 0 {
			t.Errorf("a pinned ref made the requests %q", paths)
		}
		s, err := store.Resolve(ctx, "bots/rotating?version=1#api_key")
		if err != nil || s.Version != "1" || s.Reveal() != v1 {
			t.Errorf("Resolve pinned: %q, %v", s.Version, err)
		}
		if strings.Contains(logs.String(), v1) || strings.Contains(logs.String(), v2) {
			t.Error("the log holds a secret value")
		}
	})

	t.Run("DeletedAndDestroyed", func(t *testing.T) {
		put(t, "bots/deleted", map[string]any{"api_key": "sk-ant-" + token(t)})
		put(t, "bots/deleted", map[string]any{"api_key": "sk-ant-" + token(t)})
		if err := kv.Delete(ctx, "bots/deleted"); err != nil { // soft-deletes the latest, version 2
			t.Fatal(err)
		}
		_, rerr := store.Resolve(ctx, "bots/deleted#api_key")
		_, err := store.CurrentVersion(ctx, "bots/deleted#api_key")
		for _, e := range []error{rerr, err} {
			if !errors.Is(e, secrets.ErrNotFound) || !strings.Contains(fmt.Sprint(e), "version 2 was deleted") {
				t.Errorf("a deleted current version: %v, want ErrNotFound saying version 2 was deleted", e)
			}
		}
		put(t, "bots/destroyed", map[string]any{"api_key": "sk-ant-" + token(t)})
		if err := kv.Destroy(ctx, "bots/destroyed", []int{1}); err != nil {
			t.Fatal(err)
		}
		_, rerr = store.Resolve(ctx, "bots/destroyed")
		_, err = store.CurrentVersion(ctx, "bots/destroyed")
		for _, e := range []error{rerr, err} {
			if !errors.Is(e, secrets.ErrNotFound) || !strings.Contains(fmt.Sprint(e), "version 1 was destroyed") {
				t.Errorf("a destroyed current version: %v", e)
			}
		}
		var se *secrets.Error
		if errors.As(err, &se); se == nil || se.Op != "version" || se.Backend != Backend || se.Ref != "bots/destroyed" {
			t.Errorf("error fields: %#v", se)
		}
	})

	t.Run("DeleteVersionAfter", func(t *testing.T) {
		// A version that delete_version_after will delete has a
		// deletion_time in the future, and is still served.
		if err := kv.PutMetadata(ctx, "bots/expiring", api.KVMetadataPutInput{DeleteVersionAfter: time.Hour}); err != nil {
			t.Fatal(err)
		}
		v := "sk-ant-" + token(t)
		put(t, "bots/expiring", map[string]any{"api_key": v})
		if got := same(t, "bots/expiring#api_key", v); got != "1" {
			t.Errorf("got %q, want 1", got)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		_, err := store.CurrentVersion(ctx, "bots/never-written")
		if !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("missing: %v", err)
		}
		// Metadata without data: current_version is 0.
		if err := kv.PutMetadata(ctx, "bots/metadata-only", api.KVMetadataPutInput{MaxVersions: 3}); err != nil {
			t.Fatal(err)
		}
		_, rerr := store.Resolve(ctx, "bots/metadata-only")
		_, err = store.CurrentVersion(ctx, "bots/metadata-only")
		if !errors.Is(err, secrets.ErrNotFound) || !errors.Is(rerr, secrets.ErrNotFound) {
			t.Errorf("metadata only: CurrentVersion %v, Resolve %v; want ErrNotFound for both", err, rerr)
		}
	})

	t.Run("Permission", func(t *testing.T) {
		// A policy that reaches the data but not the metadata: Resolve
		// works, the check is refused and says what to grant.
		if err := root.Sys().PutPolicy("data-only", `path "secret/data/bots/*" { capabilities = ["read"] }`); err != nil {
			t.Fatal(err)
		}
		tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"data-only"}, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := newClient(t, srv.Addr, tok.Auth.ClientToken)
		// The mount is given, so no mount lookup (which this policy also
		// lacks) is needed: the token reaches only data/.
		limited := New(c, &Options{Mount: "secret", Logger: logger})
		t.Cleanup(func() { limited.Close() })
		v := "sk-ant-" + token(t)
		put(t, "bots/limited", map[string]any{"api_key": v})
		if _, err := limited.Resolve(ctx, "bots/limited#api_key"); err != nil {
			// sys/internal/ui/mounts answers any token for a mount it can
			// reach; if this Vault does not, the rest says nothing.
			t.Skipf("the data-only token cannot resolve: %v", err)
		}
		_, err = limited.CurrentVersion(ctx, "bots/limited#api_key")
		var se *secrets.Error
		if !errors.As(err, &se) || se.Code != secrets.CodePermission || se.Op != "version" {
			t.Fatalf("got %v, want ErrPermission under Op version", err)
		}
		if !strings.Contains(se.Reason, "secret/metadata/bots/limited") || !strings.Contains(se.Reason, `"read"`) {
			t.Errorf("the reason does not say what to grant: %q", se.Reason)
		}
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 403 {
			t.Errorf("the api's ResponseError is not reachable: %v", err)
		}
		if strings.Contains(fmt.Sprintf("%v %+v", err, err), v) {
			t.Error("the error holds the value")
		}
	})

	t.Run("KVv1", func(t *testing.T) {
		enableKVv1(t, root, "kv1")
		if _, err := root.Logical().Write("kv1/bots/a", map[string]any{"api_key": "sk-ant-" + token(t)}); err != nil {
			t.Fatal(err)
		}
		s := New(client, &Options{Logger: logger})
		t.Cleanup(func() { s.Close() })
		_, err := s.CurrentVersion(ctx, "kv1/bots/a#api_key")
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("KV v1: %v, want ErrUnsupported", err)
		}
		var se *secrets.Error
		if !errors.As(err, &se) || se.Op != "version" || !strings.Contains(se.Reason, "KV version 1") {
			t.Errorf("KV v1 error: %v", err)
		}
		// ?version on KV v1 is refused as Resolve refuses it.
		_, rerr := s.Resolve(ctx, "kv1/bots/a?version=1")
		_, err = s.CurrentVersion(ctx, "kv1/bots/a?version=1")
		if !errors.Is(err, secrets.ErrInvalidRef) || !errors.Is(rerr, secrets.ErrInvalidRef) {
			t.Errorf("?version on KV v1: CurrentVersion %v, Resolve %v; want ErrInvalidRef", err, rerr)
		}
	})

	t.Run("OtherEngine", func(t *testing.T) {
		if err := root.Sys().Mount("transit", &api.MountInput{Type: "transit"}); err != nil {
			t.Fatal(err)
		}
		s := New(client, &Options{Logger: logger})
		t.Cleanup(func() { s.Close() })
		_, err := s.CurrentVersion(ctx, "transit/keys/x")
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(fmt.Sprint(err), "transit") {
			t.Errorf("another engine: %v, want ErrUnsupported naming it", err)
		}
	})

	t.Run("InvalidRef", func(t *testing.T) {
		before := len(cnt.Paths())
		for _, ref := range invalidRefs {
			_, err := store.CurrentVersion(ctx, ref)
			var se *secrets.Error
			if !errors.Is(err, secrets.ErrInvalidRef) || !errors.As(err, &se) || se.Op != "version" || se.Ref != ref {
				t.Errorf("%q: %v, want ErrInvalidRef under Op version", ref, err)
			}
		}
		if paths := cnt.Paths()[before:]; len(paths) != 0 {
			t.Errorf("invalid refs made the requests %q", paths)
		}
	})
}

// token returns a random hex string for distinct values.
func token(t *testing.T) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
