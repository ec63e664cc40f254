package awssm

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

var _ driver.VersionPutter = (*sm)(nil)

// putAPI is the part of the client PutVersion needs; *secretsmanager.Client
// has it, a host's narrower API may not.
type putAPI interface {
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
}

// createAPI is what PutVersion creates a secret that does not exist with.
type createAPI interface {
	CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
}

// PutVersion stores v as a new version of the secret with PutSecretValue:
// Secrets Manager labels it AWSCURRENT and moves AWSPREVIOUS to the version
// it replaces (the version before that loses its label). A secret that
// does not exist is created with CreateSecret. It returns the new VersionId.
// The SDK fills in the request's idempotency token, so a retried call makes
// one version, not two.
func (d *sm) PutVersion(ctx context.Context, p driver.Ref, v driver.Value) (string, error) {
	r := toRef(p)
	if r.stage != "" || r.version != "" {
		return "", driver.Errorf(secrets.CodeInvalidRef,
			"a new version is written to the secret itself and labelled AWSCURRENT: leave out ?stage= and ?version=")
	}
	value := v.Data
	if v.Document != nil {
		b, err := json.Marshal(v.Document)
		if err != nil {
			return "", driver.Errorf(secrets.CodeInvalidRef, "the secret's document cannot be encoded as JSON")
		}
		value = string(b)
	}
	api, ok := d.api.(putAPI)
	if !ok {
		return "", driver.Errorf(secrets.CodeInvalidRef,
			"the client given to awssm.New has no PutSecretValue: give it a *secretsmanager.Client, or an API that also has PutSecretValue")
	}
	out, err := api.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(r.id), SecretString: aws.String(value)})
	if err == nil {
		return aws.ToString(out.VersionId), nil
	}
	err = putError("PutSecretValue", err)
	create, ok := d.api.(createAPI)
	var se *secrets.Error
	if secrets.CodeOf(err) != secrets.CodeNotFound || !ok || (errors.As(err, &se) && se.Reason == deletionReason) {
		// Not missing, or scheduled for deletion: creating it again would
		// fail, and hide why.
		return "", err
	}
	made, cerr := create.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(r.id), SecretString: aws.String(value)})
	if cerr != nil {
		return "", putError("CreateSecret", cerr)
	}
	return aws.ToString(made.VersionId), nil
}

// putError is classify for a write, whose refusal needs other permissions
// than a read's.
func putError(operation string, err error) error {
	err = classify(operation, err)
	if se, ok := err.(*secrets.Error); ok && se.Code == secrets.CodePermission && se.Reason == reasons[secrets.CodePermission] {
		c := *se
		c.Reason = "the AWS credentials were refused or lack secretsmanager:" + operation + " (and kms:GenerateDataKey for a customer key) on this secret"
		return &c
	}
	return err
}
