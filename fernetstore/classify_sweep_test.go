package fernetstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
)

// The migration-mode classifier against real tokens and real key shapes.
// TestTamperSweep: every one-character edit, every truncation and every
// usual wrapper of tokens made here and by Python is never plaintext (so
// `keyward migrate` never encrypts a damaged token as if it were the key),
// and whatever decrypts decrypts to the token's own value, wherever Python
// decrypts it. TestPlaintextKeyShapes: generated keys of every shape
// providers issue are plaintext, so they still migrate. Both log the figures
// BENCHMARKS.md quotes ("Migration-mode classifier"):
//
//	go test ./fernetstore -run 'TestTamperSweep|TestPlaintextKeyShapes' -v

// sweepRunes are the multi-byte characters the sweep substitutes and inserts
// besides every single byte value: spaces and marks an editor or a
// copy-paste leaves (NBSP, BOM, zero-width space, line separator, the
// ideographic space), letters outside ASCII, a fullwidth 'A'.
var sweepRunes = []string{"\u00a0", "\ufeff", "\u200b", "\u2028", "\u3000", "é", "€", "Ａ", "🔑"}

// sweepWrappers are the ways a token ends up stored around itself: quoted,
// as a Python bytes or str literal (str(b"...") in a migration script), in
// JSON, behind a BOM or a non-breaking space, in a header or an env line.
var sweepWrappers = [][2]string{
	{`"`, `"`}, {`'`, `'`}, {"`", "`"}, {`""`, `""`}, {`\"`, `\"`},
	{`b'`, `'`}, {`b"`, `"`}, {`u'`, `'`}, {`"b'`, `'"`},
	{"\ufeff", ""}, {"\u00a0", ""}, {"", "\u00a0"}, {"\u00a0", "\u00a0"}, {"\ufeff", "\n"},
	{`{"api_key": "`, `"}`}, {`{"api_key":"`, `"}`}, {`["`, `"]`}, {`"api_key": "`, `",`},
	{"<", ">"}, {"(", ")"}, {"[", "]"}, {"<api_key>", "</api_key>"},
	{"api_key=", ""}, {"ENCRYPTED_KEY=", "\n"}, {"Bearer ", ""}, {"%22", "%22"},
	{"\x00", ""}, {"", "\x00"}, {" ", " "}, {"\t", "\r\n"}, {"", `\n`}, {"", ","}, {"", ";"},
}

// sweepSubs are the characters substituted and inserted: every byte, then
// sweepRunes.
func sweepSubs() []string {
	subs := make([]string, 0, 256+len(sweepRunes))
	for b := range 256 {
		subs = append(subs, string([]byte{byte(b)}))
	}
	return append(subs, sweepRunes...)
}

// sweepToken is a real token, the key that made it and its value.
type sweepToken struct {
	name, tok, value string
	ring             *KeyRing
}

// eachVariant calls f with every value one damage away from tok: each
// substitution (by every byte and every sweepRunes character) and deletion
// at every position, each insertion at every position, each truncation (to
// 1..len-1 characters), each wrapper, and the token with its padding
// URL-encoded.
// pyDecryptVariants builds the same variants in the same order.
func eachVariant(tok string, f func(kind, v string)) {
	subs := sweepSubs()
	for p := 0; p <= len(tok); p++ {
		for _, c := range subs {
			f("insertion", tok[:p]+c+tok[p:])
		}
		if p == len(tok) {
			break
		}
		f("deletion", tok[:p]+tok[p+1:])
		for _, c := range subs {
			if c != tok[p:p+1] {
				f("substitution", tok[:p]+c+tok[p+1:])
			}
		}
		if p > 0 {
			f("truncation", tok[:p])
		}
	}
	for _, w := range sweepWrappers {
		f("wrapper", w[0]+tok+w[1])
	}
	f("wrapper", strings.ReplaceAll(tok, "=", "%3D"))
	f("wrapper", strings.ReplaceAll(stdBase64(tok), "/", `\/`)) // JSON-escaped standard base64
}

// sweepTokens makes the tokens of the sweep under this package's Fernet,
// one per padding ("==", "=", none) and one per seventh character (B, C, D:
// times in 2004-2038, 2038-2072, 2072-2106), the last at the very end of
// that range.
func sweepTokens(t *testing.T) []sweepToken {
	ring := mustRing(t, mustKey(t))
	var out []sweepToken
	for _, c := range []struct {
		value string
		at    time.Time
	}{
		{"", time.Now()}, // 73 bytes: 100 characters, "=="
		{"sk-0123456789abcd", time.Unix(1<<31+777, 0)},                       // 89 bytes: 120, "="
		{"sk-ant-api03-" + strings.Repeat("Zq9_", 5), time.Unix(1<<32-1, 0)}, // 105 bytes: 140, none
	} {
		tok, err := ring.encryptAt([]byte(c.value), c.at)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sweepToken{fmt.Sprintf("go-%d-%c", len(tok), tok[6]), tok, c.value, ring})
	}
	return out
}

// pyMakeSweepTokens makes one Python token per value, under K1.
const pyMakeSweepTokens = `
import json, os, sys
from cryptography.fernet import Fernet
f = Fernet(os.environ["K1"])
json.dump([f.encrypt(v.encode()).decode() for v in json.load(sys.stdin)], sys.stdout)
`

// pyDecryptVariants builds the variants of each token exactly as
// eachVariant does (from the same characters and wrappers, sent as base64)
// and reports the indexes Python's Fernet.decrypt opens to the expected
// value, with a SHA-256 over the variants (each behind its 4-byte length)
// that proves the two sequences are the same. A variant goes to decrypt as
// bytes, as a service passes value.encode().
const pyDecryptVariants = `
import base64, hashlib, json, os, sys
from cryptography.fernet import Fernet, InvalidToken
data = json.load(sys.stdin)
f = Fernet(os.environ["K1"])
b64 = base64.b64decode
subs = [b64(c) for c in data["subs"]]
wrappers = [(b64(a), b64(b)) for a, b in data["wrappers"]]
def variants(tok):
    n = len(tok)
    for p in range(n + 1):
        for c in subs:
            yield tok[:p] + c + tok[p:]
        if p == n:
            break
        yield tok[:p] + tok[p+1:]
        for c in subs:
            if c != tok[p:p+1]:
                yield tok[:p] + c + tok[p+1:]
        if p > 0:
            yield tok[:p]
    for a, b in wrappers:
        yield a + tok + b
    yield tok.replace(b"=", b"%3D")
    yield tok.translate(bytes.maketrans(b"-_", b"+/")).replace(b"/", b"\\/")
out = []
for tok, want in zip(data["tokens"], data["values"]):
    want = want.encode()
    h, ok = hashlib.sha256(), []
    for i, v in enumerate(variants(tok.encode())):
        h.update(len(v).to_bytes(4, "big") + v)
        try:
            if f.decrypt(v) == want:
                ok.append(i)
        except InvalidToken:
            pass
    out.append({"ok": ok, "sha256": h.hexdigest()})
json.dump(out, sys.stdout)
`

// pyVerdict is what pyDecryptVariants says of one token's variants.
type pyVerdict struct {
	OK     []int  `json:"ok"`
	SHA256 string `json:"sha256"`
}

// sweepResult counts what the classifier and Decrypt made of the variants.
type sweepResult struct {
	total, plaintext, decrypted, pyDecrypted, pyOnly, hereOnly int
	plaintextByKind                                            map[string]int
	examples                                                   []string // kinds and lengths of the first plaintext variants
}

// sweep classifies and decrypts every variant of tok. Decrypt must refuse
// with ErrUndecryptable or return the token's own value; Classify must never
// say plaintext. py, if set, is what Python made of the same variants: each
// one Python decrypts must decrypt here too.
//
// Decrypt depends on a value only through tokenForms (the canonical tokens
// it holds; Classify is tokenForms' kind), so it runs once per distinct
// pair of forms: the ~200 variants that insert some byte outside the
// alphabet at one position share one HMAC. That keeps the full sweep within
// a few seconds under -race.
func sweep(t *testing.T, st sweepToken, py *pyVerdict) sweepResult {
	res := sweepResult{plaintextByKind: map[string]int{}}
	pyOK := map[int]bool{}
	h := sha256.New()
	if py != nil {
		for _, j := range py.OK {
			pyOK[j] = true
		}
	}
	type outcome struct {
		msg string
		err error
	}
	memo := map[[2]string]outcome{}
	i, failed := -1, false
	eachVariant(st.tok, func(kind, v string) {
		i++
		if failed {
			return
		}
		res.total++
		if py != nil {
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(v))))
			h.Write([]byte(v))
		}
		forms, k := tokenForms(v)
		if k == KindPlaintext {
			res.plaintext++
			res.plaintextByKind[kind]++
			if len(res.examples) < 5 {
				res.examples = append(res.examples, fmt.Sprintf("%s (%d bytes)", kind, len(v)))
			}
		}
		key := [2]string{string(forms[0]), string(forms[1])}
		d, ok := memo[key]
		if !ok {
			msg, _, err := st.ring.Decrypt(v)
			d = outcome{string(msg), err}
			memo[key] = d
		}
		switch {
		case d.err == nil && d.msg != st.value:
			t.Errorf("%s: a %s variant decrypted to another value", st.name, kind)
			failed = true
		case d.err == nil:
			res.decrypted++
			if py != nil && !pyOK[i] {
				res.hereOnly++ // unpadded, or read as Python 3.13 reads it
			}
		case !errors.Is(d.err, secrets.ErrUndecryptable):
			t.Errorf("%s: a %s variant: Decrypt error without ErrUndecryptable: %v", st.name, kind, d.err)
			failed = true
		}
		if pyOK[i] {
			res.pyDecrypted++
			if d.err != nil {
				res.pyOnly++
			}
		}
	})
	if py != nil && hex.EncodeToString(h.Sum(nil)) != py.SHA256 {
		t.Errorf("%s: Python built other variants than eachVariant (SHA-256 differs)", st.name)
	}
	return res
}

// pythonJSON is runPython for another goroutine: it returns its error
// (the exception's last line, never a value) instead of failing the test.
func pythonJSON(py, script string, env []string, input, out any) error {
	in, err := json.Marshal(input)
	if err != nil {
		return err
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		return fmt.Errorf("%v: %s", err, lines[len(lines)-1])
	}
	return json.Unmarshal(stdout.Bytes(), out)
}

func TestTamperSweep(t *testing.T) {
	tokens := sweepTokens(t)
	nGo := len(tokens)
	k1 := mustKey(t)
	pyRing := mustRing(t, k1)
	pyValues := []string{"", "sk-ant-api03-" + strings.Repeat("Pq7-", 6) + "_yAA"}
	var pyTokens []string
	runPython(t, pyMakeSweepTokens, []string{"K1=" + k1}, pyValues, &pyTokens)
	pyIn := struct {
		Tokens   []string    `json:"tokens"`
		Values   []string    `json:"values"`
		Subs     []string    `json:"subs"`
		Wrappers [][2]string `json:"wrappers"`
	}{Tokens: pyTokens, Values: pyValues}
	for _, c := range sweepSubs() {
		pyIn.Subs = append(pyIn.Subs, base64.StdEncoding.EncodeToString([]byte(c)))
	}
	for _, w := range sweepWrappers {
		pyIn.Wrappers = append(pyIn.Wrappers, [2]string{base64.StdEncoding.EncodeToString([]byte(w[0])), base64.StdEncoding.EncodeToString([]byte(w[1]))})
	}
	for i, tok := range pyTokens {
		if Classify(tok) != KindToken {
			t.Fatalf("Python token %d is not a token", i)
		}
		tokens = append(tokens, sweepToken{fmt.Sprintf("py-%d-%c", len(tok), tok[6]), tok, pyValues[i], pyRing})
	}
	// Python decrypts the variants of its tokens (about 12 µs each) while
	// Go sweeps its own; the two meet for the Python tokens.
	var pyOut []pyVerdict
	pyDone := make(chan []pyVerdict, 1)
	py := needPython(t)
	go func() {
		var out []pyVerdict
		defer func() { pyDone <- out }()
		if err := pythonJSON(py, pyDecryptVariants, []string{"K1=" + k1}, pyIn, &out); err != nil {
			t.Errorf("python: %v", err)
			out = nil
		}
	}()

	// Go sweeps its own tokens while Python works (one core each), then
	// the Python tokens once Python has answered.
	results := make([]sweepResult, len(tokens))
	for i, st := range tokens {
		var py *pyVerdict
		if i >= nGo {
			if i == nGo {
				pyOut = <-pyDone
			}
			if len(pyOut) != len(pyTokens) {
				t.FailNow() // pythonJSON has said why
			}
			py = &pyOut[i-nGo]
		}
		results[i] = sweep(t, st, py)
	}
	all := sweepResult{plaintextByKind: map[string]int{}}
	for i, res := range results {
		line := fmt.Sprintf("%-9s %6d variants: %d plaintext, %5d decrypt to the token's value", tokens[i].name, res.total, res.plaintext, res.decrypted)
		if i >= nGo {
			line += fmt.Sprintf("; Python 3.11 decrypts %d (%d of them not here; %d others decrypt only here)", res.pyDecrypted, res.pyOnly, res.hereOnly)
		}
		t.Log(line)
		all.total += res.total
		all.plaintext += res.plaintext
		all.decrypted += res.decrypted
		all.pyDecrypted += res.pyDecrypted
		all.pyOnly += res.pyOnly
		all.hereOnly += res.hereOnly
		for k, n := range res.plaintextByKind {
			all.plaintextByKind[k] += n
		}
		all.examples = append(all.examples, res.examples...)
	}
	t.Logf("tampered tokens accepted as plaintext: %d of %d variants of %d tokens (%d made here, %d by Python)",
		all.plaintext, all.total, len(tokens), nGo, len(pyTokens))
	t.Logf("variants of Python's tokens that Python decrypts: %d; of those, refused here: %d; decrypted here but not by Python: %d",
		all.pyDecrypted, all.pyOnly, all.hereOnly)
	if all.plaintext != 0 {
		kinds := make([]string, 0, len(all.plaintextByKind))
		for k, n := range all.plaintextByKind {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(kinds)
		t.Errorf("%d tampered variants classified as plaintext (%s), e.g. %s", all.plaintext, strings.Join(kinds, ", "), strings.Join(all.examples[:min(5, len(all.examples))], "; "))
	}
	if all.pyOnly != 0 {
		t.Errorf("%d variants Python decrypts are refused here", all.pyOnly)
	}
}

// Alphabets of generated keys.
const (
	alnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b64url = alnum + "-_"
	hexlow = "0123456789abcdef"
)

// keyShapes generate keys shaped like those providers issue (prefixes,
// lengths and alphabets as published or as seen in their dashboards).
func keyShapes(rng *rand.Rand) []struct {
	name string
	gen  func() string
} {
	pick := func(alphabet string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	return []struct {
		name string
		gen  func() string
	}{
		{"anthropic sk-ant-api03-", func() string { return "sk-ant-api03-" + pick(b64url, 93) + "AA" }},
		{"anthropic sk-ant-admin01-", func() string { return "sk-ant-admin01-" + pick(b64url, 93) + "AA" }},
		{"openai sk- (legacy)", func() string { return "sk-" + pick(alnum, 20) + "T3BlbkFJ" + pick(alnum, 20) }},
		{"openai sk-proj-", func() string { return "sk-proj-" + pick(b64url, 74) + "T3BlbkFJ" + pick(b64url, 74) }},
		{"openai sk-svcacct-", func() string { return "sk-svcacct-" + pick(b64url, 74) + "T3BlbkFJ" + pick(b64url, 74) }},
		{"google AIza", func() string { return "AIza" + pick(b64url, 35) }},
		{"mistral", func() string { return pick(alnum, 32) }},
		{"cohere", func() string { return pick(alnum, 40) }},
		{"groq gsk_", func() string { return "gsk_" + pick(alnum, 52) }},
		{"xai xai-", func() string { return "xai-" + pick(alnum, 80) }},
		{"huggingface hf_", func() string { return "hf_" + pick(alnum, 34) }},
		{"deepseek sk- hex", func() string { return "sk-" + pick(hexlow, 32) }},
		{"together hex", func() string { return pick(hexlow, 64) }},
		// X/Twitter app bearer tokens open with a run of 'A's: the reason
		// the classifier's token start needs a 'g' and a timestamp after 2004.
		{"x bearer AAAA...", func() string {
			return strings.Repeat("A", 21) + pick(alnum, 4) + strings.Repeat("A", 7) + pick(alnum, 20) + "%2B" + pick(alnum, 30) + "%3D" + pick(alnum, 50)
		}},
		{"random base64url 16-200", func() string { return pick(b64url, 16+rng.IntN(185)) }},
	}
}

// keysPerShape keys of each shape are classified; deterministic (a fixed
// seed), so the figure is the same on every run.
const keysPerShape = 6000

func TestPlaintextKeyShapes(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{'k', 'e', 'y', 'w', 'a', 'r', 'd'}))
	total, refused := 0, 0
	for _, sh := range keyShapes(rng) {
		n := 0
		for range keysPerShape {
			if Classify(sh.gen()) != KindPlaintext {
				n++
			}
		}
		total += keysPerShape
		refused += n
		if n != 0 {
			t.Errorf("%s: %d of %d generated keys are not plaintext (they would not migrate)", sh.name, n, keysPerShape)
		}
	}
	t.Logf("plaintext keys refused: %d of %d generated keys of %d shapes", refused, total, len(keyShapes(rng)))
}
