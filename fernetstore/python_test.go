package fernetstore

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keyward/secrets/internal/testenv"
)

// needPython returns the python3 path, or skips (fails under
// KEYWARD_REQUIRE_SERVERS=1) when python3 or its cryptography package is missing.
func needPython(t testing.TB) string {
	t.Helper()
	py := testenv.LookPath(t, "python3", "install Python 3 (apt-get install python3)")
	if err := exec.Command(py, "-c", "import cryptography.fernet").Run(); err != nil {
		testenv.Missing(t, "the Python cryptography package", "pip install cryptography (or apt-get install python3-cryptography)")
	}
	return py
}

// runPython runs script with input as JSON on stdin and env added to the
// environment; keys and tokens travel only that way, never on the command
// line. It decodes the script's JSON stdout into out.
func runPython(t testing.TB, script string, env []string, input, out any) {
	t.Helper()
	py := needPython(t)
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// The last line names the exception; tracebacks never hold values
		// here because scripts compare values instead of printing them.
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		t.Fatalf("python: %v: %s", err, lines[len(lines)-1])
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("python output is not JSON (%d bytes): %v", stdout.Len(), err)
	}
}

const pyMakeTokens = `
import json, os, sys
from cryptography.fernet import Fernet, MultiFernet
values = json.load(sys.stdin)
f = Fernet(os.environ["K1"])
mf = MultiFernet([Fernet(os.environ["K2"]), Fernet(os.environ["K1"])])
json.dump({"fernet": [f.encrypt(v.encode()).decode() for v in values],
           "multi": [mf.encrypt(v.encode()).decode() for v in values],
           "generated": Fernet.generate_key().decode()}, sys.stdout)
`

func TestPythonTokensDecryptHere(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	values := []string{"sk-ant-test-py-1", "", "ключ-🔑", strings.Repeat("x", 1000)}
	var got struct {
		Fernet, Multi []string
		Generated     string
	}
	runPython(t, pyMakeTokens, []string{"K1=" + k1, "K2=" + k2}, values, &got)
	ring := mustRing(t, k2, k1)
	for i, v := range values {
		for name, tok := range map[string]string{"Fernet": got.Fernet[i], "MultiFernet": got.Multi[i]} {
			if Classify(tok) != KindToken {
				t.Fatalf("%s token %d not classified as a token", name, i)
			}
			msg, key, err := ring.Decrypt(tok)
			if err != nil || string(msg) != v {
				t.Fatalf("%s token %d: %v", name, i, err)
			}
			wantKey := 1 // Fernet(K1); K1 is the ring's previous key
			if name == "MultiFernet" {
				wantKey = 0 // MultiFernet encrypts with its first key, K2
			}
			if key != wantKey {
				t.Fatalf("%s token %d opened by key %d, want %d", name, i, key, wantKey)
			}
		}
	}
	if _, err := ParseKeyRing(got.Generated); err != nil {
		t.Fatalf("a key from Python's Fernet.generate_key() is refused: %v", err)
	}
}

const pyCheckTokens = `
import json, os, sys
from cryptography.fernet import Fernet, MultiFernet, InvalidToken
data = json.load(sys.stdin)
f = Fernet(os.environ["K1"])
mf = MultiFernet([Fernet(os.environ["K2"]), Fernet(os.environ["K1"])])
def ok(fn, tok, want):
    try:
        return fn(tok.encode()).decode() == want
    except InvalidToken:
        return False
json.dump({"fernet": [ok(f.decrypt, t, v) for t, v in zip(data["tokens"], data["values"])],
           "multi": [ok(mf.decrypt, t, v) for t, v in zip(data["tokens"], data["values"])],
           "tampered": [ok(f.decrypt, t, "") for t in data["tampered"]]}, sys.stdout)
`

func TestGoTokensDecryptInPython(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	values := []string{"sk-ant-test-go-1", "", "ключ-🔑", strings.Repeat("y", 1000)}
	ring := mustRing(t, k1)
	var tokens []string
	for _, v := range values {
		tokens = append(tokens, mustEncrypt(t, ring, v))
	}
	tampered := []string{tokens[1][:len(tokens[1])-4] + "AAA=", strings.Replace(tokens[1], tokens[1][20:21], "Z", 1)}
	var got struct{ Fernet, Multi, Tampered []bool }
	runPython(t, pyCheckTokens, []string{"K1=" + k1, "K2=" + k2},
		map[string][]string{"tokens": tokens, "values": values, "tampered": tampered}, &got)
	for i := range values {
		if !got.Fernet[i] || !got.Multi[i] {
			t.Fatalf("token %d: Python Fernet %v, MultiFernet %v", i, got.Fernet[i], got.Multi[i])
		}
	}
	for i, ok := range got.Tampered {
		if ok {
			t.Fatalf("Python accepted tampered token %d", i)
		}
	}
}

// The table a Python (FastAPI/SQLAlchemy-style) service writes: tokens from
// Fernet(ENCRYPTION_KEY), older rows in plain text, naive UTC datetimes.
const pyWriteTable = `
import json, os, sqlite3, sys, datetime
from cryptography.fernet import Fernet
rows = json.load(sys.stdin)
f = Fernet(os.environ["K_OLD"])
db = sqlite3.connect(os.environ["DB"])
db.execute("""CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(100) NOT NULL, provider VARCHAR(50) NOT NULL,
    api_key TEXT NOT NULL, expires_at DATETIME, created_at DATETIME NOT NULL)""")
now = datetime.datetime.utcnow()
for r in rows:
    v = f.encrypt(r["value"].encode()).decode() if r["encrypted"] else r["value"]
    db.execute("INSERT INTO api_keys (name, provider, api_key, expires_at, created_at) VALUES (?, ?, ?, ?, ?)",
               (r["name"], "anthropic", v, str(now + datetime.timedelta(days=30)), str(now)))
db.commit()
json.dump({"rows": db.execute("SELECT count(*) FROM api_keys").fetchone()[0]}, sys.stdout)
`

// pyReadTable decrypts every row with the keys in KEYS (first = primary)
// and compares with the expected values, in id order.
const pyReadTable = `
import json, os, sqlite3, sys
from cryptography.fernet import Fernet, MultiFernet, InvalidToken
want = json.load(sys.stdin)
keys = os.environ["KEYS"].split(",")
mf = MultiFernet([Fernet(k) for k in keys])
only = Fernet(keys[0])
db = sqlite3.connect(os.environ["DB"])
res = []
for (v,) in db.execute("SELECT api_key FROM api_keys ORDER BY id"):
    try:
        res.append([mf.decrypt(v.encode()).decode() == want[len(res)], only.decrypt(v.encode()).decode() == want[len(res)]])
    except InvalidToken:
        res.append([False, False])
json.dump(res, sys.stdout)
`

func TestPythonTableMigratesAndRotates(t *testing.T) {
	needPython(t)
	ctx := context.Background()
	kOld, kNew := mustKey(t), mustKey(t)
	path := filepath.Join(t.TempDir(), "python.db")
	type row struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		Encrypted bool   `json:"encrypted"`
	}
	var rows []row
	var want []string
	for i := range 300 {
		v := "sk-ant-test-pytable-" + randHex(8)
		if i%7 == 0 {
			v = "ключ-" + v
		}
		rows = append(rows, row{Name: "bot", Value: v, Encrypted: i%3 != 0})
		want = append(want, v)
	}
	var n struct{ Rows int }
	runPython(t, pyWriteTable, []string{"DB=" + path, "K_OLD=" + kOld}, rows, &n)
	if n.Rows != len(rows) {
		t.Fatalf("python wrote %d rows", n.Rows)
	}

	db, err := OpenDB("sqlite:" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(db, mustRing(t, kOld), &Options{AllowPlaintext: true})
	sec, err := s.Resolve(ctx, "1") // row 1 (i=0) is plaintext
	if err != nil || sec.Reveal() != want[0] || sec.Version != "plaintext" || sec.ExpiresAt.IsZero() {
		t.Fatalf("plaintext row written by Python: %v %q %v", err, sec.Version, sec.ExpiresAt)
	}
	sec, err = s.Resolve(ctx, "2")
	if err != nil || sec.Reveal() != want[1] || sec.Version != "primary" {
		t.Fatalf("token row written by Python: %v", err)
	}
	rep, err := s.Migrate(ctx, nil)
	if err != nil || rep.Done != 100 || rep.AlreadyCurrent != 200 {
		t.Fatalf("migrate %+v %v", rep, err)
	}
	var res [][2]bool
	runPython(t, pyReadTable, []string{"DB=" + path, "KEYS=" + kOld}, want, &res)
	for i, r := range res {
		if !r[0] || !r[1] {
			t.Fatalf("after migrate, Python cannot read row %d back", i+1)
		}
	}

	// Rotate to a new key: Python with MultiFernet([new, old]) and with the
	// new key alone reads every row.
	s2 := New(db, mustRing(t, kNew, kOld), nil)
	rep, err = s2.Rotate(ctx, &WalkOptions{BatchSize: 64})
	if err != nil || rep.Done != 300 {
		t.Fatalf("rotate %+v %v", rep, err)
	}
	runPython(t, pyReadTable, []string{"DB=" + path, "KEYS=" + kNew + "," + kOld}, want, &res)
	if len(res) != len(want) {
		t.Fatalf("python read %d rows", len(res))
	}
	for i, r := range res {
		if !r[0] || !r[1] {
			t.Fatalf("after rotate, Python cannot read row %d (MultiFernet %v, new key alone %v)", i+1, r[0], r[1])
		}
	}
	checkAll(t, New(db, mustRing(t, kNew), nil), idsFrom(1, len(want)), want)
}

func idsFrom(first, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(first + i)
	}
	return ids
}

// TestStandardBase64TokenDecryptsInPython is why Classify calls a
// standard-base64 token a token: Python's Fernet decrypts it, so were it
// classified plaintext, a service would read the ciphertext as the key.
func TestStandardBase64TokenDecryptsInPython(t *testing.T) {
	k := mustKey(t)
	ring := mustRing(t, k)
	std := stdBase64(tokenWithURLChars(t, ring, "sk-ant-test-std-py"))
	var ok bool
	runPython(t, `
import json, os, sys
from cryptography.fernet import Fernet
tok = json.load(sys.stdin)
json.dump(Fernet(os.environ["K1"]).decrypt(tok.encode()) == b"sk-ant-test-std-py", sys.stdout)
`, []string{"K1=" + k}, std, &ok)
	if !ok {
		t.Fatal("Python did not decrypt the standard-base64 token to its value")
	}
	if Classify(std) != KindToken {
		t.Fatalf("Classify = %v, want token", Classify(std))
	}
}
