package secretstest_test

import (
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/secretstest"
)

func TestConformance(t *testing.T) {
	f := new(secretstest.Fake)
	secretstest.RunConformance(t, secretstest.Harness{
		Resolver: f,
		Put: func(t *testing.T, name, value string, expiresAt time.Time) (string, error) {
			s := secrets.NewSecret(value)
			s.ExpiresAt = expiresAt
			return f.SetSecret(name, s), nil
		},
		MissingRef:  "no-such-secret",
		InvalidRefs: []string{"name#", "name?x=1", "%zz"},
		Documents:   true,
		Expiry:      true,
	})
}
