package fernetstore

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	secrets "github.com/keyward/secrets"
)

// referenceKind is a slow, obvious classifier to check Classify against,
// written from the rule in Classify's documentation, not from its code: P is
// the value's characters in the base64 alphabets; a value is a token if P,
// or what Python 3.11 decodes, is a token's bytes; else it may be one
// (malformed) if P starts within edit distance 1 of a token's first seven
// characters, is a start of "gAAAAA", holds those seven characters, or is as
// long as a token with one of its first five bytes off.
func referenceKind(v string) Kind {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/"
	var p []byte
	for i := 0; i < len(v); i++ {
		if strings.IndexByte(alphabet, v[i]) >= 0 {
			p = append(p, v[i])
		}
	}
	url := strings.NewReplacer("+", "-", "/", "_")
	if b, err := base64.RawURLEncoding.DecodeString(url.Replace(string(p))); err == nil && tokenBytes(b) {
		return KindToken
	}
	if b, ok := python311Decode(v); ok && tokenBytes(b) {
		return KindToken
	}
	for _, start := range []string{"gAAAAAB", "gAAAAAC", "gAAAAAD"} {
		for n := 6; n <= 8 && n <= len(p); n++ {
			if levenshtein(string(p[:n]), start) <= 1 {
				return KindMalformedToken
			}
		}
		if strings.Contains(string(p), start) {
			return KindMalformedToken
		}
	}
	if len(p) > 0 && strings.HasPrefix("gAAAAA", string(p)) {
		return KindMalformedToken
	}
	if n := base64.RawURLEncoding.DecodedLen(len(p)); len(p)%4 != 1 && n >= 57 && (n-57)%16 == 0 {
		b, _ := base64.RawURLEncoding.DecodeString(url.Replace(string(p[:8])))
		off := 0
		for i, want := range []byte{0x80, 0, 0, 0, 0} {
			if b[i] != want {
				off++
			}
		}
		if off <= 1 && b[5] >= 0x40 {
			return KindMalformedToken
		}
	}
	return KindPlaintext
}

// tokenBytes reports whether b has a token's version, zero top timestamp
// bits and length.
func tokenBytes(b []byte) bool {
	return len(b) >= 57 && (len(b)-57)%16 == 0 && b[0] == 0x80 && b[1] == 0 && b[2] == 0 && b[3] == 0 && b[4] < 16
}

// python311Decode is CPython 3.11's base64.urlsafe_b64decode of bytes
// (Modules/binascii.c, a2b_base64 with strict_mode off), line by line.
func python311Decode(v string) ([]byte, bool) {
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	s := strings.NewReplacer("-", "+", "_", "/").Replace(v)
	var out []byte
	quadPos, pads := 0, 0
	var left byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			if quadPos >= 2 {
				pads++
				if quadPos+pads >= 4 {
					return out, true
				}
			}
			continue
		}
		x := strings.IndexByte(std, c)
		if x < 0 {
			continue
		}
		pads = 0
		switch quadPos {
		case 0:
			quadPos, left = 1, byte(x)
		case 1:
			quadPos = 2
			out = append(out, left<<2|byte(x)>>4)
			left = byte(x) & 0x0f
		case 2:
			quadPos = 3
			out = append(out, left<<4|byte(x)>>2)
			left = byte(x) & 0x03
		default:
			quadPos = 0
			out = append(out, left<<6|byte(x))
		}
	}
	return out, quadPos == 0
}

// levenshtein is the textbook edit distance.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func fuzzSeeds(f *testing.F, ring *KeyRing) {
	tok, _ := ring.Encrypt([]byte("sk-fuzz-seed"))
	for _, s := range []string{"", "sk-ant-api03-abc", tok, tok[:len(tok)-2], tok + "\n", strings.TrimRight(tok, "="),
		"gAAAAA", "gAAAAAAAAAAAAA==", tok[:60], "%%%%", strings.Repeat("g", 76),
		// Plaintext keys that start with 'g' and A-P, a token one character
		// off, tokens in standard base64.
		"gHx9aB3kLmN0pQrStUvWxYz1234567AB", "gPzz-_aa0011", "gAAAAB" + tok[6:],
		stdBase64(tok), stdBase64(tok)[:40], "gAAAAA" + strings.Repeat("/", 70) + "==",
		// Wrapped and damaged tokens, X bearer-like keys, Python's readings.
		`"` + tok + `"`, "b'" + tok + "'", "\ufeff" + tok, "x" + tok[1:], tok[:3], "AAAAAA" + tok[6:],
		strings.Repeat("A", 21) + "MLheAAAAAAA0", tok + "xyz", tok[:50] + "=" + tok[50:], "\x00" + tok} {
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

// FuzzOneEdit: a value derived from a token by one edit (a substitution, a
// deletion or an insertion of one character, a truncation) or by wrapping it
// in any text is never plaintext, so migration mode never re-encrypts it as
// if it were the key; and if it decrypts, it decrypts to the token's value.
// The token's time is anywhere from 2004 to 2106, the range Classify's rule
// covers.
func FuzzOneEdit(f *testing.F) {
	ring, _ := ParseKeyRing("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
	for op := range uint8(5) {
		for _, pos := range []uint16{0, 1, 5, 6, 7, 8, 40, 99, 500} {
			f.Add("sk-ant-api03-fuzz", uint32(1_700_000_000), op, pos, "\"", "'")
			f.Add("", uint32(0), op, pos, "\x00", "")
			f.Add(strings.Repeat("k", 40), uint32(3<<30-1), op, pos, "A", "}")
		}
	}
	f.Add("x", uint32(5), uint8(4), uint16(0), `{"api_key": "`, `"}`)
	f.Add("x", uint32(5), uint8(2), uint16(3), "\ufeff", "")
	f.Fuzz(func(t *testing.T, value string, at uint32, op uint8, pos uint16, c, suffix string) {
		ts := time.Unix(1<<30+int64(at)%(3<<30), 0) // [2^30, 2^32)
		tok, err := ring.encryptAt([]byte(value), ts)
		if err != nil {
			t.Fatal(err)
		}
		// One character: c's first rune, or its first byte if that is not
		// UTF-8 (a byte the database may still hold).
		_, size := utf8.DecodeRuneInString(c)
		ch := "\x00"
		if size > 0 {
			ch = c[:size]
		}
		p := int(pos) % len(tok)
		var v string
		switch op % 5 {
		case 0:
			if ch == tok[p:p+1] {
				return // not an edit
			}
			v = tok[:p] + ch + tok[p+1:]
		case 1:
			v = tok[:p] + tok[p+1:]
		case 2:
			p = int(pos) % (len(tok) + 1)
			v = tok[:p] + ch + tok[p:]
		case 3:
			if p == 0 {
				p = 1 // the empty string holds nothing of the token
			}
			v = tok[:p]
		default:
			v = c + tok + suffix
		}
		if k := Classify(v); k == KindPlaintext {
			t.Fatalf("op %d at %d: a damaged token (%d bytes) is classified as plaintext", op%5, p, len(v))
		}
		msg, _, err := ring.Decrypt(v)
		if err == nil && string(msg) != value {
			t.Fatalf("op %d at %d: decrypted to another value", op%5, p)
		}
		if err != nil && !errors.Is(err, secrets.ErrUndecryptable) {
			t.Fatalf("op %d at %d: %v", op%5, p, err)
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
