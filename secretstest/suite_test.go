package secretstest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/secretstest"
)

// broken wraps a Fake and breaks one rule of the contract.
type broken struct {
	f    *secretstest.Fake
	kind string
}

func (b *broken) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	switch b.kind {
	case "ignores-cancel":
		return b.f.Resolve(context.Background(), ref)
	}
	s, err := b.f.Resolve(ctx, ref)
	switch b.kind {
	case "leaks-value-in-error":
		// Like a backend that quotes the stored document when a #field is missing.
		if base, _, hasField := strings.Cut(ref, "#"); err != nil && hasField {
			if doc, e := b.f.Resolve(ctx, base); e == nil {
				return secrets.Secret{}, &secrets.Error{Code: secrets.CodeOf(err), Reason: "no such field in " + doc.Reveal()}
			}
		}
	case "plain-errors":
		if err != nil {
			return s, errors.New("something went wrong")
		}
	case "truncates-large":
		if err == nil && s.Len() > 1000 {
			return secrets.NewSecret(s.Reveal()[:1000]), nil
		}
	}
	return s, err
}

func harness(kind string) secretstest.Harness {
	return secretstest.Harness{
		New: func(t *testing.T) secretstest.Subject {
			f := new(secretstest.Fake)
			return secretstest.Subject{Resolver: &broken{f: f, kind: kind}, Put: func(t *testing.T, name, value string, exp time.Time) (string, error) {
				s := secrets.NewSecret(value)
				s.ExpiresAt = exp
				return f.SetSecret(name, s), nil
			}}
		},
		Backend: "fake", MissingRef: "missing", Documents: true, Expiry: true,
	}
}

// TestBrokenBackend runs the suite against one broken resolver; it is meant
// to fail, and only runs when TestSuiteCatchesBrokenBackends asks for it.
func TestBrokenBackend(t *testing.T) {
	kind := os.Getenv("KEYWARD_SECRETSTEST_BROKEN")
	if kind == "" {
		t.Skip("run by TestSuiteCatchesBrokenBackends")
	}
	secretstest.RunConformance(t, harness(kind))
}

// TestSuiteCatchesBrokenBackends checks that RunConformance can fail: each
// broken resolver must fail the subtest that guards its rule.
func TestSuiteCatchesBrokenBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("re-runs the test binary")
	}
	for kind, subtest := range map[string]string{
		"ignores-cancel":       "CanceledContext",
		"leaks-value-in-error": "NoValueInErrorsOrLogs",
		"plain-errors":         "NotFound",
		"truncates-large":      "LargeValue",
	} {
		t.Run(kind, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestBrokenBackend$", "-test.v")
			cmd.Env = append(os.Environ(), "KEYWARD_SECRETSTEST_BROKEN="+kind)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a resolver that %s:\n%s", kind, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestBrokenBackend/"+subtest) {
				t.Fatalf("the suite did not fail subtest %s for a resolver that %s:\n%s", subtest, kind, out)
			}
		})
	}
}
