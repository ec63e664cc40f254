package fernetstore

// Kind is what the structural classifier makes of a stored value.
type Kind uint8

// The kinds of stored value.
const (
	// KindPlaintext: legacy plaintext, which migration mode serves and
	// Migrate encrypts. Only a value that cannot be a token, nor a token one
	// damage (an edit, a truncation, a wrapper) away, is plaintext.
	KindPlaintext Kind = iota
	// KindToken: a Fernet token, read as Python's url-safe decoder reads it
	// (standard or url-safe alphabet, padded or not, characters outside the
	// alphabet skipped). Its HMAC is not checked here.
	KindToken
	// KindMalformedToken: a damaged or wrapped token, or a value that may
	// be one. It is never plaintext: reads fail as undecryptable, Migrate
	// and Rotate leave it untouched and report its row id.
	KindMalformedToken
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindToken:
		return "token"
	case KindMalformedToken:
		return "malformed-token"
	}
	return "plaintext"
}

// malformedReason is why a KindMalformedToken value does not resolve.
const malformedReason = "the value is, or may be, a damaged or wrapped Fernet token (it is within one edit, truncation or wrapper of one; see fernetstore.Classify), so it is never served as plaintext: inspect the row and restore the token, or store the key again"

// Classify tells a Fernet token from legacy plaintext by structure alone,
// never by trying to decrypt: a value that fails decryption is undecryptable,
// not plaintext. The rule, in terms of P, the value's characters in the
// base64 alphabets (A-Z a-z 0-9 - _ + /) with everything else skipped,
// '=' included:
//
//   - KindToken: P (or, when a '=' closes a quad before more of P follows,
//     the part of P before it) starts with "gAAAAA" and decodes to 57+16k
//     bytes. That is how Python's Fernet.decrypt reads a value: its
//     url-safe decoder accepts both alphabets and skips every other byte, so
//     Python decrypts a token with a quote, NUL, BOM or space in it, and so
//     does this package, in strict mode too. Python 3.11 stops at a '='
//     that closes a quad; skipping it instead also reads a token with a
//     stray '=' inside; both readings are tried.
//   - KindMalformedToken, the values one damage away from a token: P starts
//     within one edit (substitution, deletion, insertion) of the first seven
//     characters of a token; or P is a non-empty start of "gAAAAA" (a
//     truncation); or P holds those seven characters anywhere (a wrapped
//     token: quotes, b'...', JSON, "Bearer "); or P is as long as a token
//     and starts with one of its first five bytes damaged.
//   - KindPlaintext: everything else.
//
// The first seven characters of a token are "gAAAAA" and one of B, C, D:
// the version byte 0x80 and a big-endian seconds timestamp between 2^30 and
// 2^32 (January 2004 to February 2106), whose top 32 bits are zero. Every
// token a real clock makes has them. (A token from another time, like the
// spec's 1985 test vectors, is still never plaintext while it starts with
// "gAAAAA"; only the damage rules are limited to that range.) Provider keys
// do not have them: they start with
// "sk-", "AIza", "gsk_" and so on, or are random and miss seven fixed
// characters; even keys that open with a run of 'A's (X bearer tokens) lack
// the 'g' and the timestamp's B, C or D.
func Classify(v string) Kind {
	s := scanValue(v)
	return s.kind()
}

// tokenStart is the version byte and the top 28 timestamp bits, zero, of
// every token made before the year 4147.
const tokenStart = "gAAAAA"

// b64val maps a byte to its value in the url-safe or standard base64
// alphabet, or to 0xff; '=' is not in it.
var b64val = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(url) {
		t[url[i]] = byte(i)
	}
	t['+'], t['/'] = 62, 63
	return t
}()

// scan is what one pass over a value learns about P, its characters in the
// base64 alphabets.
type scan struct {
	n      int     // len(P)
	head   [8]byte // P[:8]
	cut    int     // len(P) at the first '=' that closes a quad, if more of P follows; else -1
	clean  bool    // the value is P followed by nothing but '=': no byte skipped
	std    bool    // P holds '+' or '/'
	inside bool    // P holds the first seven characters of a token somewhere
}

func scanValue(v string) scan {
	if s, ok := scanToken(v); ok {
		return s
	}
	s := scan{cut: -1, clean: true}
	quad, pads, match := 0, 0, 0 // quad: len(P)%4; pads: '=' since the last P byte; match: len of tokenStart matched
	closed, padded := false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '=' {
			padded = true
			// Python 3.11's a2b_base64: a '=' counts as padding only once a
			// quad holds two characters, and padding that completes the
			// quad ends the data.
			if quad >= 2 {
				pads++
				if quad+pads >= 4 && !closed {
					closed, s.cut = true, s.n
				}
			}
			continue
		}
		if b64val[c] == 0xff {
			s.clean = false
			continue
		}
		if padded {
			s.clean = false // P goes on after a '='
		}
		if c == '+' || c == '/' {
			s.std = true
		}
		if s.n < len(s.head) {
			s.head[s.n] = c
		}
		s.n++
		quad, pads = s.n%4, 0
		switch {
		case match == 6 && 'B' <= c && c <= 'D':
			s.inside = true
			match = 0
		case c == 'g':
			match = 1
		case c == 'A' && 1 <= match && match <= 5:
			match++
		default:
			match = 0
		}
	}
	if s.cut == s.n {
		s.cut = -1 // nothing of P after the closing '=': one reading
	}
	return s
}

// scanToken is scanValue for the common case, a token as written: it
// starts with tokenStart and holds url-safe characters, then at most two
// '='. (Then nothing is skipped and no '=' closes a quad before the end;
// inside is not needed, as rule 3 only matters for values that do not
// start with tokenStart.)
func scanToken(v string) (scan, bool) {
	m := len(v)
	for m > 0 && len(v)-m < 2 && v[m-1] == '=' {
		m--
	}
	if m < 8 || v[:len(tokenStart)] != tokenStart {
		return scan{}, false
	}
	for i := 0; i < m; i++ {
		if c := v[i]; b64val[c] == 0xff || c == '+' || c == '/' {
			return scan{}, false
		}
	}
	s := scan{n: m, cut: -1, clean: true}
	copy(s.head[:], v[:8])
	return s, true
}

// decodedLen is the length of the bytes that m base64 characters decode
// to, or -1 when no encoding has that many characters.
func decodedLen(m int) int {
	if m%4 == 1 {
		return -1
	}
	return m/4*3 + [4]int{0, 0, 1, 2}[m%4]
}

// tokenLen reports whether m characters decode to the length of a token:
// version, timestamp, IV and HMAC (57 bytes) plus whole AES blocks.
func tokenLen(m int) bool {
	n := decodedLen(m)
	return n >= 57 && (n-57)%16 == 0
}

// startsToken reports whether s starts with tokenStart.
func (s *scan) startsToken() bool {
	return s.n >= len(tokenStart) && string(s.head[:len(tokenStart)]) == tokenStart
}

// mayBeToken is the rule that keeps migration mode from encrypting a damaged
// token as if it were the key (the row would then resolve to ciphertext). A
// token T starts with S = "gAAAAA" + B|C|D (see Classify). One damage to T
// leaves a value whose P satisfies one of these, which is why each is here:
//
//  1. An edit at position 7 or later leaves S in place. A substitution
//     before it leaves P[:7] one character off S; a deletion (or a
//     substitution by a character outside the alphabet, which P skips)
//     leaves P[:6] equal to S less one character; an insertion leaves P[:8]
//     equal to S plus one. A truncation to 6 or more characters leaves S,
//     or S less its last character.
//  2. A truncation to 1-5 characters leaves a start of "gAAAAA".
//  3. A wrapper (quotes, b'...', JSON, a BOM, "Bearer ", "api_key=") only
//     adds characters around T, so P holds S.
//  4. A damaged byte (storage, a bad copy) keeps the length and, if it is
//     one of the first five, changes the two characters that byte spans.
//     Rule 4 is the one that uses the length, since it is the only damage
//     that keeps it; the others hold for values of any length.
//
// The converse is what lets keys migrate: each rule needs six or seven fixed
// characters, which provider keys (prefixes like "sk-", "AIza", "gsk_",
// random bodies) do not have.
func (s *scan) mayBeToken() bool {
	h := s.head[:min(s.n, len(s.head))]
	if startWithin1(h) { // rule 1
		return true
	}
	if len(h) >= 1 && len(h) <= len(tokenStart) && s.n == len(h) && string(h) == tokenStart[:len(h)] { // rule 2
		return true
	}
	if s.inside { // rule 3
		return true
	}
	return tokenLen(s.n) && len(h) == 8 && oneByteOff(h) // rule 4
}

// startAt reports whether c may stand at position i of S, the first seven
// characters of a token: "gAAAAA" then B, C or D.
func startAt(i int, c byte) bool {
	if i < len(tokenStart) {
		return c == tokenStart[i]
	}
	return 'B' <= c && c <= 'D'
}

// startWithin1 reports whether h, the first eight characters of P (or all
// of a shorter P), starts with S after one substitution, deletion or
// insertion (rule 1 of mayBeToken).
func startWithin1(h []byte) bool {
	const n = 7      // len(S)
	if len(h) >= n { // S itself, or one substitution
		off := 0
		for i := range n {
			if !startAt(i, h[i]) {
				off++
			}
		}
		if off <= 1 {
			return true
		}
	}
	if len(h) >= n-1 { // S with its character d deleted
		for d := range n {
			ok := true
			for i, j := 0, 0; i < n-1; i, j = i+1, j+1 {
				if j == d {
					j++
				}
				if !startAt(j, h[i]) {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
	}
	if len(h) >= n+1 { // S with a character inserted at x
		for x := range n + 1 {
			ok := true
			for i, j := 0, 0; i < n+1; i++ {
				if i == x {
					continue
				}
				if !startAt(j, h[i]) {
					ok = false
					break
				}
				j++
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// oneByteOff reports whether the first eight characters of P decode to a
// token's version and timestamp with at most one of the first five bytes
// changed (rule 4 of mayBeToken): bytes 0-4 are 0x80 0 0 0 0, and byte 5,
// which the damage does not reach, is 0x40 or more (2004 and later).
func oneByteOff(h []byte) bool {
	var x uint64
	for _, c := range h[:8] {
		x = x<<6 | uint64(b64val[c])
	}
	b := [6]byte{byte(x >> 40), byte(x >> 32), byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}
	off := 0
	for i, want := range [5]byte{0x80, 0, 0, 0, 0} {
		if b[i] != want {
			off++
		}
	}
	return off <= 1 && b[5] >= 0x40
}

// kind applies Classify's rule to what the scan learnt.
func (s *scan) kind() Kind {
	switch {
	case !s.startsToken() && s.mayBeToken():
		return KindMalformedToken
	case !s.startsToken():
		return KindPlaintext
	case tokenLen(s.n) || s.cut >= 0 && tokenLen(s.cut):
		return KindToken
	}
	return KindMalformedToken // starts like a token: rule 1 of mayBeToken holds
}

// tokenForms returns the kind of v and, for a token, the padded url-safe
// tokens it holds: P, and P up to the '=' that closes a quad when P goes on
// after it (either is nil unless it makes a token). Decrypt tries both.
func tokenForms(v string) ([2][]byte, Kind) {
	var forms [2][]byte
	s := scanValue(v)
	k := s.kind()
	if k != KindToken {
		return forms, k
	}
	if tokenLen(s.n) {
		forms[0] = canonical(v, &s, s.n)
	}
	if s.cut >= 0 && tokenLen(s.cut) {
		forms[1] = canonical(v, &s, s.cut)
	}
	return forms, k
}

// canonical returns the first m characters of P, url-safe and padded.
func canonical(v string, s *scan, m int) []byte {
	out := make([]byte, 0, m+3)
	if s.clean && !s.std {
		out = append(out, v[:m]...) // the common case: a token as written
	} else {
		for i := 0; i < len(v) && len(out) < m; i++ {
			switch c := v[i]; {
			case b64val[c] == 0xff:
			case c == '+':
				out = append(out, '-')
			case c == '/':
				out = append(out, '_')
			default:
				out = append(out, c)
			}
		}
	}
	for len(out)%4 != 0 {
		out = append(out, '=')
	}
	return out
}

// normalize returns the first padded url-safe token v holds and its kind.
func normalize(v string) ([]byte, Kind) {
	forms, k := tokenForms(v)
	if forms[0] != nil {
		return forms[0], k
	}
	return forms[1], k
}
