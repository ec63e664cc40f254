package awssm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/awssm"
	"github.com/keyward/secrets/internal/testenv"
)

// TestMotoKeyVersions: on moto, PutVersion makes the value AWSCURRENT and
// the one it replaces AWSPREVIOUS, and ResolveVersions reads those two,
// newest first; a secret PutVersion did not find is created.
func TestMotoKeyVersions(t *testing.T) {
	endpoint := testenv.MotoServer(t)
	client := newClient(endpoint, 3, nil)
	store := awssm.New(client, nil)
	defer store.Close()
	ctx := context.Background()
	name := "keyward/master-" + token()
	v1, v2, v3 := secretValue(), secretValue(), secretValue()

	// A new secret: created, one version.
	id1, err := store.PutVersion(ctx, name, v1)
	if err != nil || id1 == "" {
		t.Fatalf("PutVersion of a new secret = %q, %v", id1, err)
	}
	got := func(max int) []secrets.Secret {
		t.Helper()
		ss, err := store.ResolveVersions(ctx, name, max)
		if err != nil {
			t.Fatalf("ResolveVersions(%d): %v", max, err)
		}
		return ss
	}
	if ss := got(5); len(ss) != 1 || ss[0].Reveal() != v1 || ss[0].Version != id1 {
		t.Fatalf("one version: got %d", len(ss))
	}
	id2, err := store.PutVersion(ctx, name, v2)
	if err != nil || id2 == "" || id2 == id1 {
		t.Fatalf("second PutVersion = %q, %v", id2, err)
	}
	id3, err := store.PutVersion(ctx, name, v3)
	if err != nil {
		t.Fatal(err)
	}
	// AWSCURRENT is v3 and AWSPREVIOUS v2; v1 lost its label.
	ss := got(5)
	if len(ss) != 2 || ss[0].Reveal() != v3 || ss[0].Version != id3 || ss[1].Reveal() != v2 || ss[1].Version != id2 {
		t.Fatalf("after three puts: %d versions (%v)", len(ss), versionsOf(ss))
	}
	if ss := got(1); len(ss) != 1 || ss[0].Version != id3 {
		t.Fatalf("max 1: %v", versionsOf(ss))
	}
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(out.VersionId) != id2 {
		t.Fatalf("moto's AWSPREVIOUS is not the replaced version: %v", err)
	}

	// A #field: set in the current JSON document, the rest kept.
	doc := "keyward/doc-" + token()
	if _, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(doc), SecretString: aws.String(`{"note":"kept","key":"` + v1 + `"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutVersion(ctx, doc+"#key", v2); err != nil {
		t.Fatal(err)
	}
	ss, err = store.ResolveVersions(ctx, doc+"#key", 5)
	if err != nil || len(ss) != 2 || ss[0].Reveal() != v2 || ss[1].Reveal() != v1 {
		t.Fatalf("doc#key: %d versions, %v", len(ss), err)
	}
	if s, err := store.Resolve(ctx, doc+"#note"); err != nil || s.Reveal() != "kept" {
		t.Fatalf("doc#note after the put: %v", err)
	}

	for _, c := range []struct {
		ref string
		say string
	}{
		{name + "?stage=AWSPREVIOUS", "leave out ?stage="},
		{name + "?version=" + id1, "leave out ?stage="},
	} {
		_, err := store.ResolveVersions(ctx, c.ref, 2)
		_, perr := store.PutVersion(ctx, c.ref, v1)
		for _, e := range []error{err, perr} {
			if !errors.Is(e, secrets.ErrInvalidRef) || !strings.Contains(e.Error(), c.say) {
				t.Errorf("%s: %v, want ErrInvalidRef saying %q", c.ref, e, c.say)
			}
		}
	}
	if _, err := store.ResolveVersions(ctx, "keyward/missing-"+token(), 2); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("a missing secret: %v", err)
	}
	// A host's API without PutSecretValue.
	narrow := awssm.New(readOnly{client}, nil)
	if _, err = narrow.PutVersion(ctx, name, v1); !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "no PutSecretValue") {
		t.Errorf("an API without PutSecretValue: %v", err)
	}
	for _, v := range []string{v1, v2, v3} {
		if strings.Contains(err.Error(), v) {
			t.Error("an error holds a value")
		}
	}
}

// readOnly is a host's narrower client: the three calls of awssm.API.
type readOnly struct{ c *secretsmanager.Client }

func (r readOnly) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return r.c.GetSecretValue(ctx, in, o...)
}

func (r readOnly) BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	return r.c.BatchGetSecretValue(ctx, in, o...)
}

func (r readOnly) ListSecrets(ctx context.Context, in *secretsmanager.ListSecretsInput, o ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretsOutput, error) {
	return r.c.ListSecrets(ctx, in, o...)
}

func versionsOf(ss []secrets.Secret) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Version)
	}
	return out
}
