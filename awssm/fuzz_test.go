package awssm

import (
	"errors"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/refs"
)

// FuzzParseRef checks the awssm layer over the shared grammar: stage and
// version exclude each other, neither is empty when given, the id is never
// empty, and every failure is an ErrInvalidRef that does not panic.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"prod/anthropic", "prod/anthropic#api_key", "name?stage=AWSPREVIOUS", "name?version=abc#f",
		"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/x-AbCdEf?stage=AWSCURRENT#k",
		"name?stage=a&version=b", "name?stage=", "a%23b%3Fc", "?stage=x", "#", "name?version=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRef(s)
		if err != nil {
			if !errors.Is(err, secrets.ErrInvalidRef) {
				t.Fatalf("parseRef(%q): %v is not ErrInvalidRef", s, err)
			}
			var e *secrets.Error
			if !errors.As(err, &e) || e.Backend != Backend || e.Ref != s {
				t.Fatalf("parseRef(%q): %#v", s, err)
			}
			return
		}
		if r.id == "" {
			t.Fatalf("parseRef(%q): empty id", s)
		}
		if r.stage != "" && r.version != "" {
			t.Fatalf("parseRef(%q): both stage and version", s)
		}
		// Nothing of the shared grammar's answer is lost or changed.
		p, err := refs.Parse(s, "stage", "version")
		if err != nil {
			t.Fatalf("parseRef(%q) accepted what refs.Parse rejects: %v", s, err)
		}
		if r.id != p.Path || r.field != p.Field || r.stage != p.Query.Get("stage") || r.version != p.Query.Get("version") {
			t.Fatalf("parseRef(%q) = %+v, refs.Parse = %+v", s, r, p)
		}
		if r.current() != (r.version == "" && (r.stage == "" || r.stage == "AWSCURRENT")) {
			t.Fatalf("parseRef(%q): current() disagrees", s)
		}
	})
}
