package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/testenv"
)

// TestKVv2KeyVersions: on the real Vault dev server, PutVersion writes new
// KV v2 versions (a plain value as {"value": ...}, a #field into the
// current document) and ResolveVersions reads the latest ones newest first,
// skipping deleted and destroyed versions; KV v1 is refused both ways.
func TestKVv2KeyVersions(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	enableKVv1(t, root, "kv1")
	client, _ := newClient(t, srv.Addr, srv.RootToken)
	log, logged := quietLogger()
	store := New(client, &Options{Logger: log})
	defer store.Close()
	ctx := context.Background()
	vals := []string{"sk-vault-v1-" + keyHex(), "sk-vault-v2-" + keyHex(), "sk-vault-v3-" + keyHex(), "sk-vault-v4-" + keyHex()}

	for i, v := range vals {
		ver, err := store.PutVersion(ctx, "secret/keyward/master", v)
		if err != nil || ver != string(rune('1'+i)) {
			t.Fatalf("PutVersion %d = %q, %v", i+1, ver, err)
		}
	}
	if s, err := store.Resolve(ctx, "secret/keyward/master"); err != nil || s.Reveal() != vals[3] || s.Version != "4" {
		t.Fatalf("Resolve after the puts: version %q, %v", s.Version, err)
	}
	got := func(ref string, max int) string {
		t.Helper()
		ss, err := store.ResolveVersions(ctx, ref, max)
		if err != nil {
			t.Fatalf("ResolveVersions(%q, %d): %v", ref, max, err)
		}
		var out []string
		for _, s := range ss {
			n := -1
			for i, v := range vals {
				if s.Reveal() == v {
					n = i + 1
				}
			}
			out = append(out, s.Version+"="+string(rune('0'+n)))
		}
		return strings.Join(out, " ")
	}
	if g := got("secret/keyward/master", 5); g != "4=4 3=3 2=2 1=1" {
		t.Errorf("all versions: %s", g)
	}
	if g := got("secret/keyward/master", 2); g != "4=4 3=3" {
		t.Errorf("max 2: %s", g)
	}
	// Delete version 3, destroy version 2: both are skipped.
	if _, err := root.Logical().Write("secret/delete/keyward/master", map[string]any{"versions": []int{3}}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("secret/destroy/keyward/master", map[string]any{"versions": []int{2}}); err != nil {
		t.Fatal(err)
	}
	if g := got("secret/keyward/master", 3); g != "4=4 1=1" {
		t.Errorf("with 3 deleted and 2 destroyed: %s", g)
	}

	// A #field: written into the current document, the rest kept.
	if _, err := root.KVv2("secret").Put(ctx, "keyward/doc", map[string]any{"key": vals[0], "note": "kept"}); err != nil {
		t.Fatal(err)
	}
	if ver, err := store.PutVersion(ctx, "secret/keyward/doc#key", vals[1]); err != nil || ver != "2" {
		t.Fatalf("PutVersion(#key) = %q, %v", ver, err)
	}
	if g := got("secret/keyward/doc#key", 5); g != "2=2 1=1" {
		t.Errorf("doc#key: %s", g)
	}
	if s, err := store.Resolve(ctx, "secret/keyward/doc#note"); err != nil || s.Reveal() != "kept" {
		t.Errorf("doc#note after the put: %v", err)
	}
	// A new secret with a #field.
	if _, err := store.PutVersion(ctx, "secret/keyward/fresh#key", vals[2]); err != nil {
		t.Fatal(err)
	}
	if g := got("secret/keyward/fresh#key", 5); g != "1=3" {
		t.Errorf("fresh#key: %s", g)
	}

	if _, err := root.Logical().Write("kv1/master", map[string]any{"value": vals[0]}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ref, say string
	}{
		{"kv1/master", "keeps no previous versions"},
		{"secret/keyward/master?version=1", "leave out ?version="},
		{"secret/../sys/health", ""},
	} {
		_, err := store.ResolveVersions(ctx, c.ref, 3)
		_, perr := store.PutVersion(ctx, c.ref, vals[0])
		for _, e := range []error{err, perr} {
			if !errors.Is(e, secrets.ErrInvalidRef) || !strings.Contains(e.Error(), c.say) {
				t.Errorf("%s: %v, want ErrInvalidRef saying %q", c.ref, e, c.say)
			}
			if e != nil {
				for _, v := range vals {
					if strings.Contains(e.Error(), v) {
						t.Errorf("%s: the error holds a value", c.ref)
					}
				}
			}
		}
	}
	// The current version deleted: the call fails, as Resolve does.
	if err := root.KVv2("secret").Delete(ctx, "keyward/master"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ResolveVersions(ctx, "secret/keyward/master", 3); !errors.Is(err, secrets.ErrNotFound) || !strings.Contains(err.Error(), "version 4 was deleted") {
		t.Errorf("current version deleted: %v", err)
	}
	for _, v := range vals {
		if strings.Contains(logged.String(), v) {
			t.Error("the log holds a value")
		}
	}
}

// keyHex is a random suffix a leak search finds unambiguously.
func keyHex() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
