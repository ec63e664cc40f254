package fernetstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// review2Key is a new key, and its body (the key without its padding).
func review2Key(t *testing.T) (key, body string) {
	for body == "" {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		key, body = k, strings.TrimRight(k, "=")
	}
	return key, body
}

// TestKeyRefReview2NearMissKeyStillQuoted: defect. looksLikeFernetKey only
// strips quotes, commas and semicolons from the ends and only knows a
// 44-character key or a 43-character body, so a key pasted in other
// common wrappings is accepted as a secret name and then quoted, whole, in
// the not-loaded error and every load error and log line (the ring's Ref):
// Python's repr of Fernet.generate_key() (b'...='), a trailing or leading
// '/', a key under a path, a trailing '.', brackets, a URL-encoded '=', a
// zero-width space copied from a chat. Expected: refused, or never quoted.
func TestKeyRefReview2NearMissKeyStillQuoted(t *testing.T) {
	key, body := review2Key(t)
	for what, ref := range map[string]string{
		"Python's bytes repr":     "awssm:b'" + key + "'",
		"a trailing '/'":          "awssm:" + key + "/",
		"a leading '/'":           "awssm:/" + key,
		"under a path":            "awssm:keyward/" + key,
		"a trailing '.'":          "awssm:" + key + ".",
		"in brackets":             "awssm:[" + key + "]",
		"its '=' URL-encoded":     "awssm:" + body + "%3D",
		"a zero-width space":      "awssm:\u200b" + key,
		"unpadded, trailing '/'":  "awssm:" + body + "/",
		"after ENCRYPTION_KEY=":   "awssm:ENCRYPTION_KEY=" + key,
		"with an extra '=' added": "awssm:" + key + "=",
	} {
		ring, err := KeyRingFromRef(ref, nil)
		if err == nil {
			_, err = ring.Encrypt([]byte("x")) // not loaded: the error names the ref
		}
		if err == nil {
			t.Fatalf("%s: no error at all", what)
		}
		if form := fmt.Sprintf("%v %+v", err, err); strings.Contains(form, body[:40]) {
			t.Errorf("%s: accepted as a secret name and the key quoted back: %.120s", what, err)
		}
	}
}

// TestKeyRefReview2RealNamesRefused: defect. The unpadded-key check takes
// any 43-character name of letters, digits, '-' and '_' that mixes upper
// case, lower case and a digit or '-'/'_' for a key, and the base64 check
// after it is no check at all (base64.URLEncoding is not Strict, so every
// 43 such characters plus '=' decode to 32 bytes). Ordinary Azure Key
// Vault and Secrets Manager names of that length are refused as "what
// looks like a Fernet key", so a service with such a name cannot start.
func TestKeyRefReview2RealNamesRefused(t *testing.T) {
	for _, ref := range []string{
		"azurekv:Keyward-Production-WestEurope-FernetKey-001",
		"awssm:Keyward_Master_Key_Production_US_East_1_v02",
		"azurekv:Keyward-Prod-EastUS2-Fernet-Master-Key-2026",
	} {
		if _, err := KeyRingFromRef(ref, nil); err != nil {
			t.Errorf("KeyRingFromRef(%q) (a %d-character name): %v", ref, len(ref)-strings.Index(ref, ":")-1, err)
		}
	}
}

// TestKeyRefReview2PlainPreviousVersionDropped: defect. ResolveVersions
// now leaves out any previous version #field cannot be picked from, a
// version that is not a JSON document included (pick's CodeInvalidRef, not
// only its CodeNotFound "no field"). A secret whose previous version is a
// plain Fernet key (ENCRYPTION_KEY_REF was sm:master, then a document
// {"key": K2} was put and the ref became sm:master#key) loads as K2 alone,
// without an error or a log line: rows under K1 stop decrypting and
// keyward rotate cannot re-encrypt them. Before c454bd6 the load failed,
// naming the version. Expected: the load fails (or keeps K1).
func TestKeyRefReview2PlainPreviousVersionDropped(t *testing.T) {
	log := captureLog(t)
	k1, k2 := mustKey(t), mustKey(t)
	h := &keyHistory{}
	h.put(k1)
	old, err := KeyRingFromRef("sm:master", &KeyRefOptions{Refresh: -1})
	if err != nil {
		t.Fatal(err)
	}
	mux := &secrets.Mux{}
	mux.Handle("sm", driver.New("fakesm", h, nil))
	if err := old.Load(context.Background(), mux); err != nil {
		t.Fatal(err)
	}
	token, err := old.Encrypt([]byte("sk-ant-under-k1"))
	if err != nil {
		t.Fatal(err)
	}
	h.put(`{"key":"` + k2 + `"}`)

	ring, err := KeyRingFromRef("sm:master#key", &KeyRefOptions{Refresh: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Load(context.Background(), mux); err != nil {
		return // refused, naming the version: fine
	}
	if _, _, err := ring.Decrypt(token); err != nil {
		t.Errorf("the previous version (a plain key, not a document) was dropped without a word: ring %v, a token under it: %v; log: %q",
			ring.Versions(), err, log.String())
	}
}

// TestKeyRefReview2DBErrorRereadsManagerEveryCall: defect (cost,
// throttling). NewFromEnv's cache covers only a failing ring.Load: when the
// ring loads and OpenDB (or buildBase) fails after it, failed is reset and
// the next call builds a new ring and reads the manager again. A bad
// DATABASE_URL (a configuration error that never clears) turns every
// request into a paid GetSecretValue, which is what fix 4 meant to stop.
// Expected: at most one manager read per MissInterval, as for a ring error.
func TestKeyRefReview2DBErrorRereadsManagerEveryCall(t *testing.T) {
	keyRefEnv(t, "sm:keyward/master")
	t.Setenv(EnvDatabaseURL, "sqlite:") // no path: OpenDB fails, every time
	h := &keyHistory{}
	h.put(mustKey(t))
	clock := &fakeClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	st, _ := keyRefStack(t, h, clock, nil)
	const calls = 20
	for i := 0; i < calls; i++ {
		if _, err := st.Resolve(context.Background(), "db:1"); err == nil {
			t.Fatal("a store with no database resolved a row")
		}
	}
	if n := h.reads.Load(); n > 2 {
		t.Fatalf("%d calls in one instant, failing on the database, read the manager %d times", calls, n)
	}
}

// TestKeyRefReview2ClockStepBackWedges: defect (low). The first-load gate
// is clock().Sub(failedAt) < MissInterval: when the store's clock steps
// back (a wall clock without a monotonic reading, such as Options.Now =
// time.Now().UTC(), after an NTP correction), elapsed time is negative and
// the cached error is returned until the clock has caught up, an hour here,
// although the manager recovered and MissInterval has passed since the
// step. Expected: a negative elapsed time counts as due.
func TestKeyRefReview2ClockStepBackWedges(t *testing.T) {
	keyRefEnv(t, "sm:keyward/master")
	h := &keyHistory{}
	h.put(mustKey(t))
	h.setFail(&secrets.Error{Op: "resolve versions", Code: secrets.CodeUnavailable, Reason: "throttled"})
	clock := &fakeClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	st, _ := keyRefStack(t, h, clock, nil)
	if _, err := st.Resolve(context.Background(), "db:1"); err == nil || !strings.Contains(err.Error(), "throttled") {
		t.Fatalf("resolve while the manager fails: %v", err)
	}
	h.setFail(nil)
	clock.Add(-time.Hour)
	clock.Add(DefaultKeyMissInterval)
	if _, err := st.Resolve(context.Background(), "db:1"); err != nil && strings.Contains(err.Error(), "throttled") {
		t.Fatalf("the manager recovered and MissInterval passed since the clock stepped back, but the store still returns the cached error: %v", err)
	}
}
