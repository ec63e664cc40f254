package fernetstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fernet/fernet-go"
	secrets "github.com/keyward/secrets"
)

func mustKey(t testing.TB) string {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRing(t testing.TB, primary string, previous ...string) *KeyRing {
	t.Helper()
	r, err := ParseKeyRing(primary, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestGenerateKeyShape(t *testing.T) {
	k := mustKey(t)
	if len(k) != 44 || !strings.HasSuffix(k, "=") || strings.ContainsAny(k, "+/") {
		t.Fatalf("GenerateKey returned a %d-character key, want 44 url-safe base64 characters ending in '='", len(k))
	}
	b, err := base64.URLEncoding.DecodeString(k)
	if err != nil || len(b) != 32 {
		t.Fatalf("GenerateKey: decodes to %d bytes (err %v), want 32", len(b), err)
	}
	if k2 := mustKey(t); k2 == k {
		t.Fatal("two generated keys are equal")
	}
}

func TestParseKeyRingErrorsNeverEchoTheValue(t *testing.T) {
	good := mustKey(t)
	cases := []struct {
		name, primary string
		prev          []string
		want          string
	}{
		{"empty", "", nil, "the primary key is empty"},
		{"short", good[:40], nil, "is 40 characters long"},
		{"long", good + "AAAA", nil, "is 48 characters long"},
		{"not base64", strings.Repeat("!", 44), nil, "not valid base64"},
		{"bad previous", good, []string{mustKey(t), good[:43] + "!"}, "previous key 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseKeyRing(c.primary, c.prev...)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, "44-character url-safe base64") {
				t.Fatalf("error %q does not say %q and the expected shape", msg, c.want)
			}
			for _, v := range append([]string{c.primary}, c.prev...) {
				if len(v) >= 6 && strings.Contains(msg, v[:6]) {
					t.Fatalf("error echoes a prefix of the key: %q", msg)
				}
			}
		})
	}
}

func TestKeyRingFromEnv(t *testing.T) {
	k1, k2, k3 := mustKey(t), mustKey(t), mustKey(t)
	t.Setenv(EnvKey, "")
	t.Setenv(EnvPreviousKeys, "")
	_, err := KeyRingFromEnv()
	if err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEY is not set") {
		t.Fatalf("unset key: %v", err)
	}
	t.Setenv(EnvKey, k1[:30])
	_, err = KeyRingFromEnv()
	if err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEY is 30 characters") || strings.Contains(err.Error(), k1[:8]) {
		t.Fatalf("short key: %v", err)
	}
	t.Setenv(EnvKey, " "+k1+"\n")
	t.Setenv(EnvPreviousKeys, k2+", ,"+k3[:20])
	_, err = KeyRingFromEnv()
	if err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEY_PREVIOUS entry 2") || strings.Contains(err.Error(), k3[:8]) {
		t.Fatalf("bad previous entry: %v", err)
	}
	t.Setenv(EnvPreviousKeys, k2+", "+k3+",")
	r, err := KeyRingFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 3 {
		t.Fatalf("ring has %d keys, want 3", r.Len())
	}
	old := mustRing(t, k3)
	tok, _ := old.Encrypt([]byte("sk-env-value"))
	if i, err := r.KeyOf(tok); err != nil || i != 2 {
		t.Fatalf("KeyOf a token under the second previous key = %d, %v; want 2", i, err)
	}
}

func TestStandardBase64KeyAccepted(t *testing.T) {
	var k fernet.Key
	for i := range k {
		k[i] = 0xfb // encodes with '+' and '/' in standard base64
	}
	std := base64.StdEncoding.EncodeToString(k[:])
	if !strings.ContainsAny(std, "+/") {
		t.Fatal("test key has no standard-only characters")
	}
	r := mustRing(t, std)
	tok, _ := r.Encrypt([]byte("x"))
	if msg := fernet.VerifyAndDecrypt([]byte(tok), 0, []*fernet.Key{&k}); string(msg) != "x" {
		t.Fatal("a standard-base64 key decoded to a different key")
	}
}

func TestDecryptAndKeyOf(t *testing.T) {
	k1, k2, k3 := mustKey(t), mustKey(t), mustKey(t)
	ring := mustRing(t, k1, k2, k3)
	for i, k := range []string{k1, k2, k3} {
		tok, err := mustRing(t, k).Encrypt([]byte("sk-ant-test-decrypt"))
		if err != nil {
			t.Fatal(err)
		}
		msg, idx, err := ring.Decrypt(tok)
		if err != nil || string(msg) != "sk-ant-test-decrypt" || idx != i {
			t.Fatalf("Decrypt of a token under key %d: idx %d err %v", i, idx, err)
		}
		if j, err := ring.KeyOf(tok); err != nil || j != i {
			t.Fatalf("KeyOf: %d %v, want %d", j, err, i)
		}
	}
	other, _ := mustRing(t, mustKey(t)).Encrypt([]byte("sk-other"))
	if _, _, err := ring.Decrypt(other); !errors.Is(err, secrets.ErrUndecryptable) {
		t.Fatalf("token under an unknown key: %v", err)
	}
	if _, err := ring.KeyOf(other); !errors.Is(err, secrets.ErrUndecryptable) {
		t.Fatalf("KeyOf under an unknown key: %v", err)
	}
	// Unpadded and whitespace-wrapped forms of a token are still that token.
	tok, _ := ring.Encrypt([]byte("sk-pad"))
	for _, form := range []string{strings.TrimRight(tok, "="), tok + "\n", "  " + tok, tok[:40] + "\n" + tok[40:]} {
		if msg, _, err := ring.Decrypt(form); err != nil || string(msg) != "sk-pad" {
			t.Fatalf("Decrypt of a reformatted token: %v", err)
		}
	}
}

func TestReencryptKeepsTimestamp(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	old := mustRing(t, k2)
	ts := time.Unix(1_600_000_000, 0)
	tok, err := old.encryptAt([]byte("sk-rotate"), ts)
	if err != nil {
		t.Fatal(err)
	}
	ring := mustRing(t, k1, k2)
	out, i, err := ring.reencrypt(tok)
	if err != nil || i != 1 {
		t.Fatalf("reencrypt: %d %v", i, err)
	}
	norm, _ := normalize(out)
	if got := tokenTime(norm); !got.Equal(ts) {
		t.Fatalf("rotated token time %v, want %v", got, ts)
	}
	if j, _ := ring.KeyOf(out); j != 0 {
		t.Fatalf("rotated token is under key %d", j)
	}
}

func TestClassify(t *testing.T) {
	ring := mustRing(t, mustKey(t))
	tok, _ := ring.Encrypt([]byte("hello"))
	long, _ := ring.Encrypt([]byte(strings.Repeat("x", 100)))
	cases := []struct {
		v    string
		want Kind
	}{
		{tok, KindToken},
		{long, KindToken},
		{strings.TrimRight(tok, "="), KindToken},
		{tok + "\n", KindToken},
		{"sk-ant-api03-" + strings.Repeat("A", 80), KindPlaintext},
		{"", KindPlaintext},
		{"gAAAAA", KindMalformedToken},                          // a truncated token
		{"gAA", KindMalformedToken},                             // a truncated token
		{tok[:len(tok)-8], KindMalformedToken},                  // truncated: block rule broken
		{tok[:20], KindMalformedToken},                          // version and timestamp, nothing else
		{"hAAAAA" + tok[6:], KindMalformedToken},                // one substitution in the version
		{strings.Replace(tok, "A", "+", 1), KindMalformedToken}, // "g+": one substitution
		{tok[1:], KindMalformedToken},                           // one deletion
		{tok + "===", KindToken},                                // extra padding: Python decrypts it
		{`"` + tok + `"`, KindToken},                            // quoted: Python skips the quotes
		{"b'" + tok + "'", KindMalformedToken},                  // a bytes literal: the 'b' shifts it
		{tok[:30] + "%" + tok[31:], KindMalformedToken},         // a substitution outside both alphabets
		{strings.Repeat("g", 100), KindPlaintext},               // 'g' 'g': not 0x80
		// Plaintext keys that start with 'g' and A-P: they are not within
		// one edit of a token's first seven characters.
		{"gHx9aB3kLmN0pQrStUvWxYz1234567AB", KindPlaintext},
		{"gPzz-_aa0011", KindPlaintext},
		{"gAx9" + strings.Repeat("k", 40), KindPlaintext},
		{strings.Repeat("A", 21) + "MLheAAAAAAA0xyz", KindPlaintext}, // X bearer-like: no 'g'
		// One character off a token's start, whatever follows.
		{"gAAAAB" + tok[6:], KindMalformedToken},
		{"gAAAAA" + strings.Repeat("x", 5), KindMalformedToken},
	}
	for _, c := range cases {
		if got := Classify(c.v); got != c.want {
			t.Errorf("Classify(%d-byte value starting %.6q) = %v, want %v", len(c.v), c.v, got, c.want)
		}
	}
}

// tokenWithURLChars returns a token holding at least one '-' or '_', so
// that its standard-base64 form differs from it.
func tokenWithURLChars(t *testing.T, ring *KeyRing, v string) string {
	t.Helper()
	for range 1000 {
		if tok := mustEncrypt(t, ring, v); strings.ContainsAny(tok, "-_") {
			return tok
		}
	}
	t.Fatal("no token with '-' or '_' in 1000 tries")
	return ""
}

// TestClassifyStandardBase64Token: Python's urlsafe_b64decode reads '+' and
// '/' as '-' and '_', so a token written in standard base64 still decrypts
// there; here it is a token (and decrypts) or a malformed token, never
// plaintext.
func TestClassifyStandardBase64Token(t *testing.T) {
	ring := mustRing(t, mustKey(t))
	tok := tokenWithURLChars(t, ring, "sk-ant-test-std64")
	std := stdBase64(tok)
	if got := Classify(std); got != KindToken {
		t.Fatalf("standard-base64 token classified as %v", got)
	}
	if msg, _, err := ring.Decrypt(std); err != nil || string(msg) != "sk-ant-test-std64" {
		t.Fatalf("Decrypt of the standard-base64 form: %v", err)
	}
	if i, err := ring.KeyOf(std); err != nil || i != 0 {
		t.Fatalf("KeyOf = %d, %v", i, err)
	}
	if got := Classify(std[:len(std)-7]); got != KindMalformedToken {
		t.Fatalf("truncated standard-base64 token classified as %v", got)
	}
}

// TestPlaintextStartingLikeVersionByte: a legacy plaintext key that starts
// with 'g' and a letter A-P resolves in migration mode and is migrated, not
// refused as a damaged token. (One that starts within one edit of a token,
// like "gAAAAB...", is refused: see TestTamperSweep.)
func TestPlaintextStartingLikeVersionByte(t *testing.T) {
	db := openTestDB(t, SQLite)
	s := newTestStore(t, db, mustRing(t, mustKey(t)), &Options{AllowPlaintext: true})
	keys := []string{"gHx9aB3kLmN0pQrStUvWxYz1234567AB", "gPzz-_aa0011" + randHex(4), "gAAx" + randHex(30)}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = insertRaw(t, db, SQLite, s.opts.Table, k)
		sec, err := s.Resolve(context.Background(), ids[i])
		if err != nil || sec.Reveal() != k || sec.Version != "plaintext" {
			t.Fatalf("plaintext key %d in migration mode: %v", i, err)
		}
	}
	rep, err := s.Migrate(context.Background(), nil)
	if err != nil || rep.Done != len(keys) || rep.Undecryptable != 0 {
		t.Fatalf("migrate: %+v %v", rep, err)
	}
	checkAll(t, s, ids, keys)
}

type vector struct {
	Desc   string `json:"desc"`
	Token  string `json:"token"`
	Now    string `json:"now"`
	TTL    int    `json:"ttl_sec"`
	Src    string `json:"src"`
	Secret string `json:"secret"`
}

func loadVectors(t *testing.T, name string) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatalf("%s has no vectors", name)
	}
	return vs
}

func TestSpecVectors(t *testing.T) {
	for _, file := range []string{"generate.json", "verify.json"} {
		for _, v := range loadVectors(t, file) {
			ring := mustRing(t, v.Secret)
			if Classify(v.Token) != KindToken {
				t.Errorf("%s: token not classified as a token", file)
			}
			msg, i, err := ring.Decrypt(v.Token)
			if err != nil || string(msg) != v.Src || i != 0 {
				t.Errorf("%s: Decrypt = %q, %d, %v; want %q", file, msg, i, err, v.Src)
			}
			if j, err := ring.KeyOf(v.Token); err != nil || j != 0 {
				t.Errorf("%s: KeyOf = %d, %v", file, j, err)
			}
		}
	}
	for _, v := range loadVectors(t, "invalid.json") {
		ring := mustRing(t, v.Secret)
		msg, _, err := ring.Decrypt(v.Token)
		// The store does not check a Fernet ttl (Python's Fernet.decrypt
		// without ttl= does not either; expiry is the expires_at column),
		// so the two vectors that are invalid only by their timestamp
		// decrypt; every other one must fail.
		if strings.Contains(v.Desc, "TTL") || strings.Contains(v.Desc, "far-future") {
			if err != nil {
				t.Errorf("invalid.json %q: a valid HMAC and padding should decrypt without a ttl: %v", v.Desc, err)
			}
			continue
		}
		if err == nil || msg != nil || !errors.Is(err, secrets.ErrUndecryptable) {
			t.Errorf("invalid.json %q: Decrypt = %d bytes, %v; want ErrUndecryptable", v.Desc, len(msg), err)
		}
	}
}

// TestEveryByteTampered flips every bit pattern of every byte, truncates and
// extends a token: each is undecryptable, never plaintext, never a panic.
func TestEveryByteTampered(t *testing.T) {
	ring := mustRing(t, mustKey(t), mustKey(t))
	tok, _ := ring.Encrypt([]byte("sk-ant-test-tamper-0123456789"))
	raw, _ := base64.URLEncoding.DecodeString(tok)
	check := func(what, v string) {
		t.Helper()
		if v == tok {
			return
		}
		if Classify(v) == KindPlaintext {
			t.Fatalf("%s: classified as plaintext", what)
		}
		if msg, _, err := ring.Decrypt(v); err == nil || !errors.Is(err, secrets.ErrUndecryptable) {
			t.Fatalf("%s: Decrypt = %d bytes, %v; want ErrUndecryptable", what, len(msg), err)
		}
	}
	for i := range raw {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := append([]byte(nil), raw...)
			b[i] ^= mask
			// A changed version byte or top timestamp byte too: it
			// changes two characters of the token's start, but not its
			// length, which is what keeps it from plaintext.
			check("byte flip", base64.URLEncoding.EncodeToString(b))
		}
	}
	for n := 9; n < len(raw); n++ {
		check("truncated", base64.URLEncoding.EncodeToString(raw[:n]))
	}
	for _, extra := range [][]byte{{0}, make([]byte, 16), make([]byte, 32), {1, 2, 3}} {
		check("extended", base64.URLEncoding.EncodeToString(append(append([]byte(nil), raw...), extra...)))
	}
}
