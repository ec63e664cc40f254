package fernetstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fernet/fernet-go"
	secrets "github.com/keyward/secrets"
)

// The environment variables KeyRingFromEnv reads.
const (
	// EnvKey holds the primary key: new values are encrypted under it.
	EnvKey = "ENCRYPTION_KEY"
	// EnvPreviousKeys holds older keys, comma-separated, used to decrypt only.
	EnvPreviousKeys = "ENCRYPTION_KEY_PREVIOUS"
)

// keyShape is what every key error says a key must look like. It never
// quotes the offending value, not even a prefix: a half-pasted key is still
// most of a key.
const keyShape = "want the 44-character url-safe base64 encoding of 32 bytes, as Python's Fernet.generate_key() prints (make one with `keyward genkey`)"

// PrimaryKeyName is the Version of secrets decrypted with the primary key;
// older keys are named by PreviousKeyName.
const PrimaryKeyName = "primary"

// KeyName names key i of a ring for Secret.Version and listings: "primary"
// for 0, "previous-1" for the first previous key, and so on.
func KeyName(i int) string {
	if i == 0 {
		return PrimaryKeyName
	}
	return "previous-" + strconv.Itoa(i)
}

// KeyRing holds the primary Fernet key, which encrypts, and any previous keys,
// which only decrypt. Decryption tries the primary first, so a token under
// the primary costs the same however many previous keys the ring holds.
// A KeyRing is safe for concurrent use. A ring of fixed keys
// (ParseKeyRing, ENCRYPTION_KEY) never changes; a ring read from a secret
// manager (KeyRingFromRef, ENCRYPTION_KEY_REF) replaces its keys in place
// when it is reloaded, so every holder of the *KeyRing sees the new
// primary at once. Each call uses one set of keys from start to end.
type KeyRing struct {
	state atomic.Pointer[ringKeys] // nil until a ring from a ref is loaded
	src   *keySource               // nil for fixed keys
}

// ringKeys is one set of keys of a ring.
type ringKeys struct {
	keys     []*fernet.Key
	single   [][]*fernet.Key // single[i] = {keys[i]}, for fernet.VerifyAndDecrypt
	macs     []sync.Pool     // per key: reusable HMAC-SHA256 states for KeyOf
	versions []string        // for a ring from a ref: the manager's version of each key
}

// ParseKeyRing builds a ring from a primary key and previous keys, each in the
// form Python's Fernet.generate_key() prints (url-safe base64 of 32 bytes;
// standard base64 is accepted too, as Python accepts it). Surrounding
// whitespace is ignored and empty previous entries are skipped. Errors name
// the key by position ("primary", "previous key 2") and the expected shape,
// never its value.
func ParseKeyRing(primary string, previous ...string) (*KeyRing, error) {
	return parseRing(primary, previous, "the primary key", func(n int) string {
		return "previous key " + strconv.Itoa(n)
	})
}

// KeyRingFromEnv builds a ring from ENCRYPTION_KEY (required) and
// ENCRYPTION_KEY_PREVIOUS (optional, comma-separated), or, when
// ENCRYPTION_KEY_REF is set instead, from the secret manager it names (see
// KeyRingFromLookup). Errors name the variable and the expected shape,
// never the value.
func KeyRingFromEnv() (*KeyRing, error) { return KeyRingFromLookup(os.Getenv) }

func keyError(reason string) error {
	return &secrets.Error{Op: "load keys", Backend: Backend, Code: secrets.CodeUnknown, Reason: reason}
}

func parseRing(primary string, previous []string, primaryName string, prevName func(int) string) (*KeyRing, error) {
	k, err := decodeKey(primary, primaryName)
	if err != nil {
		return nil, err
	}
	keys := []*fernet.Key{k}
	n := 0
	for _, p := range previous {
		if strings.TrimSpace(p) == "" {
			continue
		}
		n++
		k, err := decodeKey(p, prevName(n))
		if err != nil {
			return nil, err
		}
		dup := false
		for _, have := range keys {
			if *have == *k {
				dup = true // a key listed twice would only cost a second HMAC
			}
		}
		if !dup {
			keys = append(keys, k)
		}
	}
	return newRing(keys), nil
}

func newRing(keys []*fernet.Key) *KeyRing {
	r := &KeyRing{}
	r.state.Store(newRingKeys(keys, nil))
	return r
}

func newRingKeys(keys []*fernet.Key, versions []string) *ringKeys {
	k := &ringKeys{keys: keys, single: make([][]*fernet.Key, len(keys)), macs: make([]sync.Pool, len(keys)), versions: versions}
	for i, key := range keys {
		k.single[i] = []*fernet.Key{key}
		sign := append([]byte(nil), key[:16]...)
		k.macs[i].New = func() any { return hmac.New(sha256.New, sign) }
	}
	return k
}

// decodeKey checks the shape of a key and decodes it. Its errors say what is
// wrong in terms that reveal nothing of the value beyond its length.
func decodeKey(s, name string) (*fernet.Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, keyError(name + " is empty; " + keyShape)
	}
	if len(s) != 44 {
		return nil, keyError(fmt.Sprintf("%s is %d characters long; %s", name, len(s), keyShape))
	}
	enc := base64.URLEncoding
	if strings.ContainsAny(s, "+/") {
		enc = base64.StdEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, keyError(name + " is not valid base64 of 32 bytes; " + keyShape)
	}
	k := new(fernet.Key)
	copy(k[:], b)
	return k, nil
}

// GenerateKey returns a new random key in the form Python's
// Fernet.generate_key() prints, which Python's Fernet(key) accepts.
func GenerateKey() (string, error) {
	var k fernet.Key
	if err := k.Generate(); err != nil {
		return "", fmt.Errorf("fernetstore: reading random bytes for a key: %w", err)
	}
	return k.Encode(), nil
}

// Len returns the number of keys in the ring, the primary included: 0 for
// a ring from a ref that has not been loaded yet.
func (r *KeyRing) Len() int {
	if k := r.state.Load(); k != nil {
		return len(k.keys)
	}
	return 0
}

// keys returns the ring's current keys, for one call, and starts a reload
// in the background when a ring from a ref is due for one. A ring from a
// ref that has not been loaded yet is an error saying how to load it.
func (r *KeyRing) keys() (*ringKeys, error) {
	k := r.state.Load()
	if r.src == nil {
		return k, nil
	}
	if k == nil {
		return nil, r.src.notLoaded()
	}
	r.refreshIfDue()
	return k, nil
}

// Encrypt returns a Fernet token of plaintext under the primary key, which
// Python's Fernet(key).decrypt accepts.
func (r *KeyRing) Encrypt(plaintext []byte) (string, error) {
	return r.encryptAt(plaintext, time.Now())
}

func (r *KeyRing) encryptAt(plaintext []byte, ts time.Time) (string, error) {
	k, err := r.keys()
	if err != nil {
		return "", err
	}
	return k.encryptAt(plaintext, ts)
}

func (k *ringKeys) encryptAt(plaintext []byte, ts time.Time) (string, error) {
	tok, err := fernet.EncryptAndSignAtTime(plaintext, k.keys[0], ts)
	if err != nil {
		return "", fmt.Errorf("fernetstore: encrypt: %w", err)
	}
	return string(tok), nil
}

// Decrypt returns the plaintext of a Fernet token and the index of the key
// that opened it (0 for the primary; see KeyName). Tokens carry no expiry
// here: Fernet's timestamp is not checked, as Python's Fernet.decrypt without
// a ttl does not. A token is read as Python reads it (see Classify): a token
// Python's Fernet decrypts with a stray quote, space or other character
// outside the base64 alphabet in it decrypts here too. A value that holds no
// well-formed token, or whose HMAC fails under every key, is an error
// matching secrets.ErrUndecryptable. A ring from a ref reads its keys again
// before it gives up on a well-formed token no key opens (at most once per
// KeyRefOptions.MissInterval, waiting at most KeyRefOptions.Timeout): it
// may have been made under a primary another replica already has.
func (r *KeyRing) Decrypt(token string) ([]byte, int, error) {
	msg, i, _, _, err := r.open(token)
	return msg, i, err
}

// open decrypts token and also returns the canonical token that opened and
// the keys it was opened with.
func (r *KeyRing) open(token string) ([]byte, int, []byte, *ringKeys, error) {
	forms, kind := tokenForms(token)
	switch kind {
	case KindMalformedToken:
		return nil, -1, nil, nil, undecryptable("", malformedReason)
	case KindPlaintext:
		return nil, -1, nil, nil, undecryptable("", notTokenReason)
	}
	k, err := r.keys()
	if err != nil {
		return nil, -1, nil, nil, err
	}
	if msg, i, tok := k.open(forms); msg != nil {
		return msg, i, tok, k, nil
	}
	if r.src != nil && r.reloadForMiss() {
		if k2 := r.state.Load(); k2 != k {
			if msg, i, tok := k2.open(forms); msg != nil {
				return msg, i, tok, k2, nil
			}
		}
	}
	return nil, -1, nil, nil, undecryptable("", r.noKeyReason())
}

func (k *ringKeys) open(forms [2][]byte) ([]byte, int, []byte) {
	for _, tok := range forms {
		if tok == nil {
			continue
		}
		for i, one := range k.single {
			if msg := fernet.VerifyAndDecrypt(tok, 0, one); msg != nil {
				return msg, i, tok
			}
		}
	}
	return nil, -1, nil
}

const notTokenReason = "the value is not a well-formed Fernet token"

const noKeyReason = "the value is shaped like a Fernet token but its HMAC fails under every key in the ring (wrong ENCRYPTION_KEY, a missing ENCRYPTION_KEY_PREVIOUS entry, or a tampered value)"

const noRefKeyReason = "the value is shaped like a Fernet token but its HMAC fails under every key read from ENCRYPTION_KEY_REF (a key version no longer read, a wrong ENCRYPTION_KEY_REF, or a tampered value)"

func (r *KeyRing) noKeyReason() string {
	if r.src != nil {
		return noRefKeyReason
	}
	return noKeyReason
}

func undecryptable(ref, reason string) error {
	return &secrets.Error{Op: "decrypt", Backend: Backend, Ref: ref, Code: secrets.CodeUndecryptable, Reason: reason}
}

// KeyOf returns the index of the key a token was made under by checking its
// HMAC only: no decryption, so no plaintext is ever produced. It is what
// listings and rotation use to tell current rows from old ones. It returns
// -1 and an error matching secrets.ErrUndecryptable when no key matches or
// the value is not a well-formed token. A ring from a ref that no key
// matches starts a reload in the background (at most once per
// KeyRefOptions.MissInterval) and does not wait for it.
func (r *KeyRing) KeyOf(token string) (int, error) {
	forms, kind := tokenForms(token)
	if kind != KindToken {
		return -1, undecryptable("", notTokenReason)
	}
	k, err := r.keys()
	if err != nil {
		return -1, err
	}
	if i := k.keyOf(forms); i >= 0 {
		return i, nil
	}
	if r.src != nil {
		r.reloadForMissLater()
	}
	return -1, undecryptable("", r.noKeyReason())
}

func (k *ringKeys) keyOf(forms [2][]byte) int {
	var stack [512]byte
	var mac [sha256.Size]byte
	for _, tok := range forms {
		if tok == nil {
			continue
		}
		buf := stack[:0]
		if n := base64.URLEncoding.DecodedLen(len(tok)); n > len(stack) {
			buf = make([]byte, 0, n)
		}
		b := buf[:base64.URLEncoding.DecodedLen(len(tok))]
		n, err := base64.URLEncoding.Decode(b, tok)
		if err != nil {
			continue
		}
		b = b[:n]
		body, sum := b[:n-sha256.Size], b[n-sha256.Size:]
		for i := range k.keys {
			h := k.macs[i].Get().(hash.Hash)
			h.Reset()
			h.Write(body)
			got := h.Sum(mac[:0])
			k.macs[i].Put(h)
			if subtle.ConstantTimeCompare(got, sum) == 1 {
				return i
			}
		}
	}
	return -1
}

// reencrypt decrypts token and encrypts its plaintext under the primary,
// keeping the token's timestamp as Python's MultiFernet.rotate does (so a
// reader that checks a ttl sees the original age). It returns the key index
// the token was under. Both steps use the same keys, also while the ring
// is reloaded.
func (r *KeyRing) reencrypt(token string) (string, int, error) {
	msg, i, tok, k, err := r.open(token)
	if err != nil {
		return "", -1, err
	}
	if i == 0 {
		return token, 0, nil
	}
	ts := tokenTime(tok)
	out, err := k.encryptAt(msg, ts)
	clear(msg)
	return out, i, err
}

// tokenTime reads the timestamp of a well-formed, padded token.
func tokenTime(tok []byte) time.Time {
	var b [12]byte // first 16 chars decode to 12 bytes: version + 8-byte time + 3
	base64.URLEncoding.Decode(b[:], tok[:16])
	return time.Unix(int64(binary.BigEndian.Uint64(b[1:9])), 0)
}
