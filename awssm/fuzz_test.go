package awssm

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/refs"
)

// recorder is an API that records the GetSecretValue input it is given and
// answers that the secret does not exist.
type recorder struct {
	API
	in *secretsmanager.GetSecretValueInput
}

func (r *recorder) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	r.in = in
	return nil, &types.ResourceNotFoundException{}
}

// FuzzParseRef checks the awssm layer over the shared grammar, through the
// Store: stage and version exclude each other, neither is empty when given,
// the id is never empty, what is asked of AWS is what refs.Parse read, and
// every refused ref is an ErrInvalidRef naming the backend and the ref,
// without a panic.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"prod/anthropic", "prod/anthropic#api_key", "name?stage=AWSPREVIOUS", "name?version=abc#f",
		"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/x-AbCdEf?stage=AWSCURRENT#k",
		"name?stage=a&version=b", "name?stage=", "a%23b%3Fc", "?stage=x", "#", "name?version=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		api := &recorder{}
		_, err := New(api, nil).Resolve(context.Background(), s)
		if api.in == nil {
			if !errors.Is(err, secrets.ErrInvalidRef) {
				t.Fatalf("Resolve(%q) asked nothing of AWS and failed with %v, not ErrInvalidRef", s, err)
			}
			var e *secrets.Error
			if !errors.As(err, &e) || e.Backend != Backend || e.Ref != s {
				t.Fatalf("Resolve(%q): %#v", s, err)
			}
			return
		}
		if !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("Resolve(%q): %v, want the recorder's ErrNotFound", s, err)
		}
		id, stage, version := aws.ToString(api.in.SecretId), aws.ToString(api.in.VersionStage), aws.ToString(api.in.VersionId)
		if id == "" {
			t.Fatalf("Resolve(%q): empty id", s)
		}
		if stage != "" && version != "" {
			t.Fatalf("Resolve(%q): both stage and version", s)
		}
		// Nothing of the shared grammar's answer is lost or changed.
		p, err := refs.Parse(s, "stage", "version")
		if err != nil {
			t.Fatalf("Resolve(%q) accepted what refs.Parse rejects: %v", s, err)
		}
		if id != p.Path || stage != p.Query.Get("stage") || version != p.Query.Get("version") {
			t.Fatalf("Resolve(%q) asked for %q stage %q version %q, refs.Parse = %+v", s, id, stage, version, p)
		}
		r := ref{id: id, stage: stage, version: version}
		if r.current() != (version == "" && (stage == "" || stage == "AWSCURRENT")) {
			t.Fatalf("Resolve(%q): current() disagrees", s)
		}
	})
}
