package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestMask(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"sk-ant-api03-abcdefghijklmnopXy9", "sk-ant-…Xy9"},
		{"sk-proj-abcdefghijklmnopqrstuv123", "sk-proj-…123"},
		{"AKIAABCDEFGHIJKLMNOP", "…NOP"}, // no provider prefix: only the tail
		{"short", fullMask},
		{"a-sixteen-char-pw", fullMask},                                 // under 20 runes: nothing
		{"nineteen-chars-pass", fullMask},                               // 19
		{"sk-ant-0123456789abc", "sk-…abc"},                             // 20: the prefix shrinks to keep a third
		{"a-b-cdefghijklmnopqrst", "a-b-…rst"},                          // through the second '-'
		{"abcdefghi-j-klmnopqrstuvw", "…uvw"},                           // the second '-' too far: no prefix
		{"sk-ant-abcdefghijklmnopqrstuvwxyz0123x\x00\n", "sk-ant-…x??"}, // control characters never shown
		{"ключ-секрет-значение-и-ещё", "…ещё"},
	} {
		if got := mask(c.in); got != c.want {
			t.Errorf("mask(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzMask: whatever the value, the mask shows at most a third of it (and
// nothing of a short one), and is valid UTF-8 on one line.
func FuzzMask(f *testing.F) {
	for _, s := range []string{"sk-ant-api03-abcdefghijklmnopXy9", "", "x", "--------------", "\xff\xfe-abc-defghijklmnop", "ключ-секрет-значение"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		m := mask(v)
		n := utf8.RuneCountInString(v)
		if n < minMasked {
			if m != fullMask {
				t.Fatalf("mask of %d runes shows something: %q", n, m)
			}
			return
		}
		shown := utf8.RuneCountInString(m) - utf8.RuneCountInString(maskEllips)
		if shown > n/3 {
			t.Fatalf("mask shows %d of %d runes: %q", shown, n, m)
		}
		if !utf8.ValidString(m) || strings.ContainsAny(m, "\n\r\x00") {
			t.Fatalf("mask is not printable on one line: %q", m)
		}
		if !strings.Contains(m, maskEllips) {
			t.Fatalf("mask without an ellipsis: %q", m)
		}
	})
}

func TestParseExpires(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2027-01-31":                 time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC),
		"2027-01-31T12:30:00Z":       time.Date(2027, 1, 31, 12, 30, 0, 0, time.UTC),
		" 2027-01-31T12:30:00+02:00": time.Date(2027, 1, 31, 10, 30, 0, 0, time.UTC),
	} {
		got, err := parseExpires(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseExpires(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "tomorrow", "2027-13-01", "31/01/2027", "2027-01-31 12:00"} {
		if _, err := parseExpires(in); err == nil {
			t.Errorf("parseExpires(%q) accepted", in)
		}
	}
}

// FuzzParseExpires: --expires never panics, and what it accepts
// round-trips through RFC 3339.
func FuzzParseExpires(f *testing.F) {
	for _, s := range []string{"2027-01-31", "2027-01-31T12:30:00Z", "2027-01-31T12:30:00.5+02:00", "", "9999-12-31"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseExpires(s)
		if err != nil {
			// One fixed message: it can never echo what was typed.
			if _, want := parseExpires("x"); err.Error() != want.Error() {
				t.Fatalf("the error depends on the input: %v", err)
			}
			return
		}
		back, err := time.Parse(time.RFC3339Nano, tm.Format(time.RFC3339Nano))
		if err != nil || !back.Equal(tm) {
			t.Fatalf("%q parsed to %v, which does not round-trip: %v", s, tm, err)
		}
	})
}

// runInProcess calls run as main does, with an environment of its own.
func runInProcess(env map[string]string, stdin string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr, func(k string) string { return env[k] })
	return code, stdout.String(), stderr.String()
}

func TestRunInProcess(t *testing.T) {
	code, out, _ := runInProcess(nil, "", "genkey")
	if code != 0 || !keyLine.MatchString(out) {
		t.Errorf("genkey: %d %q", code, out)
	}
	// Every command's help documents the exit codes.
	for _, c := range []string{"genkey", "init", "put", "list", "resolve", "migrate", "rotate", "check"} {
		code, out, _ := runInProcess(nil, "", c, "--help")
		if code != 0 || !strings.Contains(out, "Exit codes: 0 ok; 1 findings") {
			t.Errorf("%s --help: exit %d, no exit codes in\n%s", c, code, out)
		}
	}
	// The injected environment is the one read: no ENCRYPTION_KEY here,
	// whatever the test process has.
	code, _, errOut := runInProcess(map[string]string{}, "", "list", "--db", "sqlite::memory:")
	if code != exitConfig || !strings.Contains(errOut, "run keyward genkey") {
		t.Errorf("list without a key: %d %q", code, errOut)
	}
	// put reads stdin, strips one newline only, and the stored value is exact.
	_, keyOut, _ := runInProcess(nil, "", "genkey")
	key := strings.TrimSpace(strings.TrimPrefix(keyOut, "ENCRYPTION_KEY="))
	db := "sqlite:" + t.TempDir() + "/k.db"
	env := map[string]string{"ENCRYPTION_KEY": key, "DATABASE_URL": db}
	if code, _, e := runInProcess(env, "", "init"); code != 0 {
		t.Fatalf("init: %d %s", code, e)
	}
	value := "sk-ant-test-inprocess-value\n\n"
	code, out, errOut = runInProcess(env, value, "put", "--name", "n", "--provider", "p")
	if code != 0 {
		t.Fatalf("put: %d %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	code, out, _ = runInProcess(env, "", "resolve", "--reveal", "db:"+id)
	if code != 0 || out != "sk-ant-test-inprocess-value\n\n" {
		t.Errorf("resolve --reveal: %d %q (want the value with one of its two newlines)", code, out)
	}
	code, _, errOut = runInProcess(env, "\r\n", "put", "--name", "n", "--provider", "p")
	if code != exitUsage || !strings.Contains(errOut, "empty") {
		t.Errorf("put of a lone CRLF: %d %q", code, errOut)
	}
	code, _, errOut = runInProcess(env, strings.Repeat("x", maxSecret+1), "put", "--name", "n", "--provider", "p")
	if code != exitUsage || !strings.Contains(errOut, "longer than") {
		t.Errorf("put of an oversized value: %d %q", code, errOut)
	}
}

func Example_mask() {
	fmt.Println(mask("sk-ant-api03-R2D2C3POabcdefghijklmnopXy9"))
	fmt.Println(mask("sk-proj-0123456789abcdefghijklmnopqrhij"))
	fmt.Println(mask("hunter2"))
	// Output:
	// sk-ant-…Xy9
	// sk-proj-…hij
	// ********
}

func TestDSNHasPassword(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u:sekret@127.0.0.1/db":           true,
		"mysql://root:pw@tcp(127.0.0.1:3306)/test":   true,
		"postgres://postgres@127.0.0.1:5432/test":    false,
		"mysql://root@tcp(127.0.0.1:3306)/test":      false,
		"sqlite:keyward.db":                          false,
		"postgres://h:5432/db?options=a:b@c":         false,
		"postgresql://u:p%40ss@h/db?sslmode=disable": true,
	} {
		if got := dsnHasPassword(dsn); got != want {
			t.Errorf("dsnHasPassword(%q) = %v, want %v", dsn, got, want)
		}
	}
}
