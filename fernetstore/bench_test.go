package fernetstore

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fernet/fernet-go"
)

var sink []byte

const benchKey1 = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
const benchKey2 = "aGVsbG8td29ybGQtaGVsbG8td29ybGQtaGVsbG8td28="
const benchKey3 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func value100() []byte { return []byte(strings.Repeat("sk-ant-api03-", 8)[:100]) }

// --- Resolve on SQLite vs its two parts -----------------------------------

func benchSQLite(b *testing.B) (*Store, *sql.DB, string) {
	db := openTestDB(b, SQLite)
	s := newTestStore(b, db, mustRing(b, benchKey1), nil)
	var id string
	for i := range 1000 { // a table with some rows, the one resolved in the middle
		v := "sk-ant-bench-" + strconv.Itoa(i)
		got, err := s.Put(context.Background(), "bench", "p", v, time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		if i == 500 {
			id = got
		}
	}
	return s, db, id
}

func BenchmarkResolveSQLite(b *testing.B) {
	s, _, id := benchSQLite(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		sec, err := s.Resolve(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		sink = []byte(sec.Reveal()[:1])
	}
}

// BenchmarkBaselineSelectDecrypt is what Resolve is made of: a prepared
// SELECT by primary key plus one fernet-go VerifyAndDecrypt.
func BenchmarkBaselineSelectDecrypt(b *testing.B) {
	s, db, id := benchSQLite(b)
	st, err := db.Prepare("SELECT api_key FROM " + s.opts.Table + " WHERE id = ?")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	keys := []*fernet.Key{fernet.MustDecodeKeys(benchKey1)[0]}
	n, _ := strconv.ParseInt(id, 10, 64)
	b.ReportAllocs()
	for b.Loop() {
		var tok string
		if err := st.QueryRow(n).Scan(&tok); err != nil {
			b.Fatal(err)
		}
		if sink = fernet.VerifyAndDecrypt([]byte(tok), 0, keys); sink == nil {
			b.Fatal("no decrypt")
		}
	}
}

// BenchmarkBaselineSelect2Decrypt is the baseline reading the same two
// columns Resolve reads (the value and expires_at), to show what the second
// column costs.
func BenchmarkBaselineSelect2Decrypt(b *testing.B) {
	s, db, id := benchSQLite(b)
	st, err := db.Prepare("SELECT api_key, expires_at FROM " + s.opts.Table + " WHERE id = ?")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	keys := []*fernet.Key{fernet.MustDecodeKeys(benchKey1)[0]}
	n, _ := strconv.ParseInt(id, 10, 64)
	b.ReportAllocs()
	for b.Loop() {
		var tok string
		var exp any
		if err := st.QueryRow(n).Scan(&tok, &exp); err != nil {
			b.Fatal(err)
		}
		if sink = fernet.VerifyAndDecrypt([]byte(tok), 0, keys); sink == nil {
			b.Fatal("no decrypt")
		}
	}
}

// --- Decrypt of a 100-byte value -----------------------------------------

func BenchmarkDecrypt100(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			ring := mustRing(b, benchKey1, []string{benchKey2, benchKey3}[:n-1]...)
			tok := mustEncrypt(b, ring, string(value100()))
			b.ReportAllocs()
			for b.Loop() {
				msg, _, err := ring.Decrypt(tok)
				if err != nil {
					b.Fatal(err)
				}
				sink = msg
			}
		})
	}
}

func BenchmarkFernetGoVerifyAndDecrypt100(b *testing.B) {
	ring := mustRing(b, benchKey1)
	tok := []byte(mustEncrypt(b, ring, string(value100())))
	keys := fernet.MustDecodeKeys(benchKey1)
	b.ReportAllocs()
	for b.Loop() {
		sink = fernet.VerifyAndDecrypt(tok, 0, keys)
	}
}

// BenchmarkLowerBound100 is one HMAC-SHA256 over a 100-byte value's token
// body and one AES-128-CBC decrypt of its ciphertext: what any Fernet
// decrypt must do, with no base64, no allocation of the result, no checks.
func BenchmarkLowerBound100(b *testing.B) {
	ring := mustRing(b, benchKey1)
	raw, _ := base64.URLEncoding.DecodeString(mustEncrypt(b, ring, string(value100())))
	k := fernet.MustDecodeKeys(benchKey1)[0]
	body := raw[:len(raw)-32]
	ct := append([]byte(nil), raw[25:len(raw)-32]...)
	out := make([]byte, len(ct))
	var sum [32]byte
	b.ReportAllocs()
	for b.Loop() {
		h := hmac.New(sha256.New, k[:16])
		h.Write(body)
		h.Sum(sum[:0])
		bc, _ := aes.NewCipher(k[16:])
		cipher.NewCBCDecrypter(bc, raw[9:25]).CryptBlocks(out, ct)
	}
	sink = out
}

// BenchmarkPythonFernetDecrypt100 times Python cryptography's
// Fernet.decrypt of the same kind of token with timeit in a subprocess, and
// reports its time per decrypt as ns/op.
func BenchmarkPythonFernetDecrypt100(b *testing.B) {
	py := needPython(b)
	ring := mustRing(b, benchKey1)
	tok := mustEncrypt(b, ring, string(value100()))
	script := `
import os, sys, timeit
from cryptography.fernet import Fernet
f = Fernet(os.environ["K"])
tok = sys.stdin.read().strip().encode()
assert len(f.decrypt(tok)) == 100
t = timeit.Timer(lambda: f.decrypt(tok))
n, _ = t.autorange()
best = min(t.repeat(repeat=3, number=n))
print(best / n * 1e9)
`
	for b.Loop() {
		cmd := exec.Command(py, "-c", script)
		cmd.Env = append(os.Environ(), "K="+benchKey1)
		cmd.Stdin = strings.NewReader(tok)
		out, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		ns, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(ns, "py-ns/decrypt")
	}
}

// --- Rotation of 10,000 rows ----------------------------------------------

const rotateRows = 10000

// rotateTemplate builds (once per benchmark) a SQLite file of 10,000 rows
// under key 2, to be copied before each timed rotation.
func rotateTemplate(b *testing.B) string {
	dir := b.TempDir()
	path := filepath.Join(dir, "template.db")
	db, err := OpenDB("sqlite:" + path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := New(db, mustRing(b, benchKey2), nil)
	if err := s.CreateSchema(context.Background()); err != nil {
		b.Fatal(err)
	}
	fillRows(b, db, SQLite, "api_keys", mustRing(b, benchKey2), makeValues(rotateRows, "rot"))
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
	return path
}

func copyFile(b *testing.B, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	out.Close()
}

func BenchmarkRotate10kSQLite(b *testing.B) {
	tmpl := rotateTemplate(b)
	ring := mustRing(b, benchKey1, benchKey2)
	i := 0
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), strconv.Itoa(i)+".db")
		i++
		copyFile(b, tmpl, path)
		db, err := OpenDB("sqlite:" + path)
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Ping(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := New(db, ring, nil).Rotate(context.Background(), &WalkOptions{BatchSize: 500})
		if err != nil || rep.Done != rotateRows {
			b.Fatalf("%+v %v", rep, err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(rotateRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkPythonRotate10kSQLite rotates a copy of the same rows with
// Python's sqlite3 and MultiFernet.rotate in batches of 500 (keyset by id,
// one commit per batch), timing only the rotation, reported as ns/op.
func BenchmarkPythonRotate10kSQLite(b *testing.B) {
	py := needPython(b)
	tmpl := rotateTemplate(b)
	script := `
import os, sqlite3, time
from cryptography.fernet import Fernet, MultiFernet
mf = MultiFernet([Fernet(os.environ["K1"]), Fernet(os.environ["K2"])])
db = sqlite3.connect(os.environ["DB"])
start = time.perf_counter()
last, done = 0, 0
while True:
    rows = db.execute("SELECT id, api_key FROM api_keys WHERE id > ? ORDER BY id LIMIT 500", (last,)).fetchall()
    if not rows:
        break
    db.executemany("UPDATE api_keys SET api_key = ? WHERE id = ? AND api_key = ?",
                   [(mf.rotate(v.encode()).decode(), i, v) for i, v in rows])
    db.commit()
    done += len(rows)
    last = rows[-1][0]
assert done == 10000
print((time.perf_counter() - start) * 1e9)
`
	var total float64
	i := 0
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "py"+strconv.Itoa(i)+".db")
		i++
		copyFile(b, tmpl, path)
		cmd := exec.Command(py, "-c", script)
		cmd.Env = append(os.Environ(), "DB="+path, "K1="+benchKey1, "K2="+benchKey2)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("%v: %s", err, stderr.String())
		}
		ns, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		total += ns
	}
	b.ReportMetric(total/float64(b.N), "py-ns/rotation")
	b.ReportMetric(float64(rotateRows)*float64(b.N)/(total/1e9), "py-rows/s")
}

// BenchmarkRotate10kServer rotates 10,000 rows on PostgreSQL and MariaDB,
// back and forth between two keys (each iteration rotates every row).
func BenchmarkRotate10kServer(b *testing.B) {
	for _, d := range []Dialect{Postgres, MySQL} {
		b.Run(string(d), func(b *testing.B) {
			db := openTestDB(b, d)
			s := newTestStore(b, db, mustRing(b, benchKey2), nil)
			fillRows(b, db, d, s.opts.Table, mustRing(b, benchKey2), makeValues(rotateRows, "srv"))
			rings := []*KeyRing{mustRing(b, benchKey1, benchKey2), mustRing(b, benchKey2, benchKey1)}
			i := 0
			for b.Loop() {
				rep, err := New(db, rings[i%2], &Options{Table: s.opts.Table}).Rotate(context.Background(), nil)
				i++
				if err != nil || rep.Done != rotateRows {
					b.Fatalf("%+v %v", rep, err)
				}
			}
			b.ReportMetric(float64(rotateRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
