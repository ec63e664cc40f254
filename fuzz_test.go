package secrets_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/refs"
	"github.com/keyward/secrets/secretstest"
)

// FuzzRef drives the whole ref grammar: the Mux's scheme split (ARN colons
// kept), then the backend-local path, ?options, #field and %-escapes. It
// checks that nothing panics, that every failure is ErrInvalidRef, and that a
// parsed ref escapes back to one that parses the same.
func FuzzRef(f *testing.F) {
	for _, s := range []string{
		"db:42", "env:ANTHROPIC_API_KEY", "awssm:prod/anthropic#api_key",
		"awssm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/x-AbCdEf#api_key",
		"awssm:prod/key?stage=AWSPREVIOUS", "vault:secret/bots/anthropic?version=3#api_key",
		"azurekv:anthropic-prod/0123abcd", "db:a%23b%3Fc%25d#f%23ield", "x:", ":x", "x:#", "x:a?b", "x:%zz",
		"x:a?stage=1&stage=2", "Upper:x", "x:\x00", "x:\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		scheme, rest, err := secrets.SplitRef(ref)
		if err != nil {
			if !errors.Is(err, secrets.ErrInvalidRef) {
				t.Fatalf("SplitRef(%q) error %v is not ErrInvalidRef", ref, err)
			}
			return
		}
		if scheme+":"+rest != ref || strings.Contains(scheme, ":") {
			t.Fatalf("SplitRef(%q) = %q, %q", ref, scheme, rest)
		}
		r, err := refs.Parse(rest, "stage", "version")
		if err != nil {
			return
		}
		if r.Path == "" || strings.ContainsRune(r.Path, 0) {
			t.Fatalf("Parse(%q) accepted path %q", rest, r.Path)
		}
		again := escape(r.Path)
		if len(r.Query) > 0 {
			again += "?" + r.Query.Encode()
		}
		if r.Field != "" {
			again += "#" + escape(r.Field)
		}
		r2, err := refs.Parse(again, "stage", "version")
		if err != nil || r2.Path != r.Path || r2.Field != r.Field || r2.Query.Encode() != r.Query.Encode() {
			t.Fatalf("round trip of %q via %q: %+v, %v; first parse %+v", rest, again, r2, err, r)
		}
	})
}

func escape(s string) string {
	return strings.NewReplacer("%", "%25", "#", "%23", "?", "%3F").Replace(s)
}

// FuzzMuxResolve checks that no ref makes a Mux panic or return an
// unclassified error.
func FuzzMuxResolve(f *testing.F) {
	fake := new(secretstest.Fake)
	fake.Set("k", `{"api_key":"v"}`)
	var m secrets.Mux
	m.Handle("fake", fake)
	for _, s := range []string{"fake:k", "fake:k#api_key", "fake:k#x", "other:k", "fake:", "k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		_, err := m.Resolve(context.Background(), ref)
		if err != nil && secrets.CodeOf(err) == secrets.CodeUnknown {
			t.Fatalf("Resolve(%q): unclassified error %v", ref, err)
		}
	})
}

// FuzzParseConfig checks that no configuration text panics the parser and
// that a credential in a URL never comes back in an error.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"db = fernet://?table=api_keys\nenv = env://", "cache = size=1&ttl=1s; audit = on", "timeout = 5s",
		"db = fernet://u:pw@h", "# only a comment", "=", "a=b=c", "db = %zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := secrets.ParseConfig(text)
		if err != nil {
			if !errors.Is(err, secrets.ErrInvalidRef) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		for scheme, raw := range c.Backends {
			u, err := url.Parse(raw)
			if err != nil || u.User != nil || scheme == "" {
				t.Fatalf("accepted backend %q = %q", scheme, raw)
			}
		}
	})
}
