package fernetstore

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
)

// referenceKind is a slow, obvious classifier to check Classify against:
// only a value starting with "gAAAAA" (0x80 and zero top timestamp bits)
// and at least 12 characters long is token-shaped, and a token-shaped value
// is never plaintext.
func referenceKind(v string) Kind {
	s := strings.NewReplacer(" ", "", "\t", "", "\r", "", "\n", "").Replace(v)
	if !strings.HasPrefix(s, "gAAAAA") || len(strings.TrimRight(s, "=")) < 12 {
		return KindPlaintext
	}
	s = strings.NewReplacer("+", "-", "/", "_").Replace(s)
	if strings.Contains(strings.TrimRight(s, "="), "=") {
		return KindMalformedToken
	}
	b, err := base64.URLEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawURLEncoding.DecodeString(s)
	}
	if err != nil {
		return KindMalformedToken
	}
	if len(b) < 57 || (len(b)-57)%16 != 0 {
		return KindMalformedToken
	}
	return KindToken
}

func fuzzSeeds(f *testing.F, ring *KeyRing) {
	tok, _ := ring.Encrypt([]byte("sk-fuzz-seed"))
	for _, s := range []string{"", "sk-ant-api03-abc", tok, tok[:len(tok)-2], tok + "\n", strings.TrimRight(tok, "="),
		"gAAAAA", "gAAAAAAAAAAAAA==", tok[:60], "%%%%", strings.Repeat("g", 76),
		// Plaintext keys that start with 'g' and A-P (refused before the
		// gAAAAA prefix rule), and tokens in standard base64.
		"gHx9aB3kLmN0pQrStUvWxYz1234567AB", "gPzz-_aa0011", "gAAAAB" + tok[6:],
		stdBase64(tok), stdBase64(tok)[:40], "gAAAAA" + strings.Repeat("/", 70) + "=="} {
		f.Add(s)
	}
}

// stdBase64 rewrites a url-safe token in the standard alphabet, which
// Python's urlsafe_b64decode still decodes.
func stdBase64(tok string) string {
	return strings.NewReplacer("-", "+", "_", "/").Replace(tok)
}

// FuzzClassify checks the plaintext-versus-token classifier against a
// reference implementation, and that whatever it calls a token is never
// returned as plaintext by the ring.
func FuzzClassify(f *testing.F) {
	ring, _ := ParseKeyRing("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
	fuzzSeeds(f, ring)
	f.Fuzz(func(t *testing.T, v string) {
		got := Classify(v)
		if want := referenceKind(v); got != want {
			t.Fatalf("Classify = %v, reference says %v", got, want)
		}
		if got != KindToken {
			if _, _, err := ring.Decrypt(v); !errors.Is(err, secrets.ErrUndecryptable) {
				t.Fatalf("Decrypt of a %v value: %v", got, err)
			}
		}
	})
}

// FuzzDecrypt feeds arbitrary values to the token parser (Decrypt, KeyOf,
// reencrypt): no panic, and a value the fuzzer made is never opened by a key
// it does not know, while the state KeyOf reports agrees with Decrypt.
func FuzzDecrypt(f *testing.F) {
	ring, _ := ParseKeyRing("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=", "aGVsbG8td29ybGQtaGVsbG8td29ybGQtaGVsbG8td28=")
	fuzzSeeds(f, ring)
	f.Fuzz(func(t *testing.T, v string) {
		msg, i, err := ring.Decrypt(v)
		j, kerr := ring.KeyOf(v)
		if err == nil {
			// Only a token made under a known key opens (the seeds).
			if kerr != nil || i != j {
				t.Fatalf("Decrypt says key %d, KeyOf says %d, %v", i, j, kerr)
			}
			if Classify(v) != KindToken || string(msg) != "sk-fuzz-seed" {
				t.Fatal("decrypted a value that is not a seed token")
			}
		} else if !errors.Is(err, secrets.ErrUndecryptable) {
			t.Fatalf("Decrypt error without ErrUndecryptable: %v", err)
		}
		if out, _, err := ring.reencrypt(v); err == nil {
			if k, _ := ring.KeyOf(out); k != 0 {
				t.Fatal("reencrypt produced a token not under the primary")
			}
		}
	})
}
