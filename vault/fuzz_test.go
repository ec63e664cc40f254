package vault

import (
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/keyward/secrets/internal/refs"
)

// FuzzRefPath checks that no ref, however spelled, yields a Vault path that
// leaves its mount: whatever joinRef accepts is already clean, relative,
// under the prefix, and free of dot segments even after more decoding.
func FuzzRefPath(f *testing.F) {
	for _, s := range []string{
		"bots/anthropic#api_key", "../sys/policy/root", "a/%2e%2e/b", "a/%252e%252e/b", "/abs",
		"a//b", "a/./b", "dir/", `a\b`, "x?version=2#f", "%2F..%2Fsys", "sys/x", "a/%2E./b", "a/.%2e",
	} {
		f.Add(s, "")
		f.Add(s, "secret")
	}
	f.Fuzz(func(t *testing.T, ref, prefix string) {
		prefix, err := cleanMount(prefix)
		if err != nil {
			return
		}
		r, err := refs.Parse(ref, "version")
		if err != nil {
			return
		}
		full, err := joinRef(prefix, r.Path)
		if err != nil {
			return
		}
		if prefix != "" && !strings.HasPrefix(full, prefix+"/") {
			t.Fatalf("%q under %q gave %q, outside the prefix", ref, prefix, full)
		}
		if strings.HasPrefix(full, "/") || path.Clean(full) != full {
			t.Fatalf("%q gave %q, which is not a clean relative path", ref, full)
		}
		for _, seg := range strings.Split(full, "/") {
			for s := seg; ; {
				if s == "." || s == ".." {
					t.Fatalf("%q gave %q with a dot segment %q", ref, full, seg)
				}
				u, err := url.PathUnescape(s)
				if err != nil || u == s {
					break
				}
				s = u
			}
		}
		if prefix == "" && reservedMounts[strings.SplitN(full, "/", 2)[0]] {
			t.Fatalf("%q reaches Vault's own %q", ref, full)
		}
	})
}
