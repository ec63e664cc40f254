package fernetstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
)

// reviewVersions is a host's own VersionResolver (one a host passes to
// KeyRing.Load, or serves in StackOptions.Backends) answering with what
// answer returns.
type reviewVersions struct {
	answer func() ([]secrets.Secret, error)
}

func (r *reviewVersions) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	vs, err := r.answer()
	if err != nil || len(vs) == 0 {
		return secrets.Secret{}, &secrets.Error{Op: "resolve", Ref: ref, Code: secrets.CodeNotFound}
	}
	return vs[0], nil
}

func (r *reviewVersions) ResolveVersions(ctx context.Context, ref string, max int) ([]secrets.Secret, error) {
	return r.answer()
}

// TestKeyRefReviewZeroVersions: defect. A VersionResolver that answers
// with no version and no error (a host's backend breaking the "1 to max"
// contract, or a manager whose every version was just disabled) makes
// read() build a ring of zero keys, and fetch() stores it: Load returns
// nil, Len is 0, and the next Encrypt indexes keys[0] and panics (and a
// later reload panics in its goroutine on old.versions[0], killing the
// process). Expected: Load fails with an error ("the secret has no
// version") and keeps the ring unloaded; nothing panics.
func TestKeyRefReviewZeroVersions(t *testing.T) {
	ring, err := KeyRingFromRef("awssm:keyward/master", &KeyRefOptions{Refresh: -1})
	if err != nil {
		t.Fatal(err)
	}
	vr := &reviewVersions{answer: func() ([]secrets.Secret, error) { return []secrets.Secret{}, nil }}
	loadErr := ring.Load(context.Background(), vr)
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		_, _ = ring.Encrypt([]byte("x"))
	}()
	if loadErr == nil || panicked != nil {
		t.Fatalf("a manager answering with no version: Load returned %v (Len %d), Encrypt panicked: %v; want a Load error and no panic",
			loadErr, ring.Len(), panicked)
	}
}

// TestKeyRefReviewNearMissKeyQuotedBack: defect. checkKeyRef refuses a
// Fernet key pasted into ENCRYPTION_KEY_REF only when the name decodes as
// an exact key (44 characters, valid base64). A near miss (the key without
// its trailing '=', a quoted key, a key with a stray trailing character) is
// accepted as a secret name, and from then on is the ring's Ref: quoted in
// every error (the not-loaded error, every load error) and every log line.
// keyring.go's own rule is "never ... a prefix: a half-pasted key is still
// most of a key". Expected: such a ref is refused without quoting it, or
// at least never quoted back.
func TestKeyRefReviewNearMissKeyQuotedBack(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimRight(key, "=")
	for what, ref := range map[string]string{
		"the key without its padding": "awssm:" + body,
		"the key in quotes":           `awssm:"` + key + `"`,
		"the key and a stray comma":   "awssm:" + key + ",",
	} {
		ring, err := KeyRingFromRef(ref, nil)
		if err == nil {
			_, err = ring.Encrypt([]byte("x")) // not loaded: the error names the ref
		}
		if err == nil {
			t.Fatalf("%s: no error at all", what)
		}
		for _, form := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(form, body[:40]) {
				t.Errorf("%s: ENCRYPTION_KEY_REF accepted and its key quoted back in an error: %s", what, form)
				break
			}
		}
	}
}

// TestKeyRefReviewFirstLoadFailureHammersManager: defect (cost/throttling).
// While the manager fails (an outage, a throttle, a missing permission), a
// store whose ring has never loaded reads the manager again on every call:
// NewFromEnv's connect is retried by each use, builds a new ring and runs
// a full Load, with no MissInterval or backoff, so a busy service turns
// each request into a GetSecretValue (two on AWS) and deepens a throttle.
// A loaded ring, by contrast, reads at most once per Refresh or
// MissInterval. Expected: first-load retries bounded as well (at most one
// per MissInterval on the store's clock, the failure returned meanwhile).
func TestKeyRefReviewFirstLoadFailureHammersManager(t *testing.T) {
	keyRefEnv(t, "sm:keyward/master")
	h := &keyHistory{}
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	h.put(key)
	h.setFail(&secrets.Error{Op: "resolve versions", Code: secrets.CodeUnavailable, Reason: "throttled"})
	clock := &fakeClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	st, store := keyRefStack(t, h, clock, nil)
	const calls = 20
	for i := 0; i < calls; i++ {
		if _, err := st.Resolve(context.Background(), "db:1"); err == nil || !strings.Contains(err.Error(), "throttled") {
			t.Fatalf("resolve while the manager fails: %v, want the manager's error", err)
		}
	}
	if n := h.reads.Load(); n > 2 {
		t.Fatalf("%d calls in one instant on the store's clock read the failing manager %d times", calls, n)
	}
	// The manager recovers: once MissInterval has passed on the store's
	// clock, the next call reads it again and the store works.
	h.setFail(nil)
	clock.Add(DefaultKeyMissInterval)
	if _, err := store.Init(context.Background()); err != nil {
		t.Fatalf("after the manager recovered and MissInterval passed: %v", err)
	}
	if _, err := store.Put(context.Background(), "a", "anthropic", "sk-ant-after-throttle", time.Time{}); err != nil {
		t.Fatalf("after the manager recovered and MissInterval passed: %v", err)
	}
}

// TestKeyRefNamesNotMistakenForKeys: the near-miss check refuses no
// ordinary secret name, those of a pasted key's length included.
func TestKeyRefNamesNotMistakenForKeys(t *testing.T) {
	for _, ref := range []string{
		"awssm:keyward/master",
		"vault:secret/keyward#key",
		"azurekv:keyward-master",
		"awssm:keyward-master-production-us-east-1-primary",   // 43 characters, lower case, digits and '-'
		"azurekv:KeywardMasterProductionUsEastPrimaryKeyRing", // 43 characters, letters only
		"vault:secret/data/Production/Keyward/masterKey001",   // 43 characters, every class, with '/'
	} {
		if _, err := KeyRingFromRef(ref, nil); err != nil {
			t.Errorf("KeyRingFromRef(%q): %v", ref, err)
		}
	}
}
