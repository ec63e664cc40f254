package secretstest_test

import (
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/secretstest"
)

func TestConformance(t *testing.T) {
	secretstest.RunConformance(t, secretstest.Harness{
		New: func(t *testing.T) secretstest.Subject {
			f := new(secretstest.Fake)
			f.SetClock(time.Now)
			return secretstest.Subject{Resolver: f, Put: func(t *testing.T, name, value string, expiresAt time.Time) (string, error) {
				s := secrets.NewSecret(value)
				s.ExpiresAt = expiresAt
				return f.SetSecret(name, s), nil
			}}
		},
		Backend:     "fake",
		MissingRef:  "no-such-secret",
		InvalidRefs: []string{"name#", "name?x=1", "%zz"},
		Documents:   true,
		Expiry:      true,
	})
}
