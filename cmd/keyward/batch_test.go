package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keyward/secrets/fernetstore"
)

// TestBatchFlagBounds: --batch takes 1 to fernetstore.MaxBatchSize; any
// other value is a usage error (exit 2) naming the flag, the range and an
// example, and nothing is opened or walked. --batch 9223372036854775807
// used to panic in makeslice, and --batch 1000000000 to run out of memory.
func TestBatchFlagBounds(t *testing.T) {
	key, err := fernetstore.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	db := "sqlite:" + filepath.Join(t.TempDir(), "keys.db")
	env := map[string]string{"ENCRYPTION_KEY": key, "DATABASE_URL": db}
	if code, out, errOut := runInProcess(env, "", "init"); code != exitOK {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	max := strconv.Itoa(fernetstore.MaxBatchSize)
	for _, v := range []string{"9223372036854775807", "1000000000", "-1", "0", strconv.Itoa(fernetstore.MaxBatchSize + 1),
		"-9223372036854775808", "99999999999999999999", "1e3", "ten", ""} {
		for _, op := range []string{"migrate", "rotate"} {
			code, out, errOut := runInProcess(env, "", op, "--batch", v)
			if code != exitUsage {
				t.Errorf("%s --batch %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", op, v, code, exitUsage, out, errOut)
				continue
			}
			for _, w := range []string{"--batch", "1 to " + max, "such as --batch 500"} {
				if !strings.Contains(errOut, w) {
					t.Errorf("%s --batch %q: stderr does not say %q:\n%s", op, v, w, errOut)
				}
			}
			if out != "" {
				t.Errorf("%s --batch %q: the walk ran: %s", op, v, out)
			}
		}
	}
	for _, v := range []string{"1", "500", max} {
		if code, out, errOut := runInProcess(env, "", "migrate", "--batch", v); code != exitOK {
			t.Errorf("migrate --batch %s: exit %d\nstdout:\n%s\nstderr:\n%s", v, code, out, errOut)
		}
	}
}
