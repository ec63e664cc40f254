package awssm

import (
	"context"
	"errors"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// Describer is the DescribeSecret call of the Secrets Manager client, which
// CurrentVersion uses. *secretsmanager.Client has it; a client given to New
// that is only an API (a wrapper) needs it too for version checks, and
// without it CurrentVersion answers errors.ErrUnsupported.
type Describer interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
}

var (
	_ secrets.VersionChecker = (*Store)(nil)
	_ driver.Versioner       = (*sm)(nil)
	_ Describer              = (*secretsmanager.Client)(nil)
)

// currentStage is the stage a ref without ?stage= or ?version= names.
const currentStage = "AWSCURRENT"

// Version returns the VersionId the ref names, as Get's Value.Version would
// be: a pinned ?version= is itself, with no call; otherwise one
// DescribeSecret call, whose VersionIdsToStages says which version holds the
// ref's stage (AWSCURRENT by default). DescribeSecret returns no value.
func (d *sm) Version(ctx context.Context, p driver.Ref) (string, error) {
	r := toRef(p)
	if r.version != "" {
		return r.version, nil
	}
	desc, ok := d.api.(Describer)
	if !ok {
		return "", driver.Unsupported("the client given to awssm.New has no DescribeSecret method (awssm.Describer): give it one, or resolve the ref again to notice a change")
	}
	out, err := desc.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(r.id)})
	if err != nil {
		return "", describeError(err)
	}
	if out.DeletedDate != nil {
		// GetSecretValue refuses such a secret (InvalidRequestException,
		// ErrNotFound); DescribeSecret still answers, with the date.
		return "", driver.Errorf(secrets.CodeNotFound, "%s", deletionReason)
	}
	stage := r.stage
	if stage == "" {
		stage = currentStage
	}
	// A stage is on one version at most; sorted ids keep the answer
	// deterministic should an answer break that rule.
	ids := make([]string, 0, len(out.VersionIdsToStages))
	for id := range out.VersionIdsToStages {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if slices.Contains(out.VersionIdsToStages[id], stage) {
			return id, nil
		}
	}
	return "", driver.Errorf(secrets.CodeNotFound, "no version of the secret has the stage %s", stage)
}

// describePermission replaces the permission reason, which names
// GetSecretValue, for a refused DescribeSecret.
const describePermission = "the AWS credentials were refused or lack secretsmanager:DescribeSecret on this secret (a version check needs it, as well as GetSecretValue for the value)"

// describeError classifies a DescribeSecret error as Get's are, with a
// permission reason naming the action a version check needs.
func describeError(err error) error {
	e := classify("DescribeSecret", err)
	var se *secrets.Error
	if errors.As(e, &se) && se.Code == secrets.CodePermission && se.Reason == reasons[secrets.CodePermission] {
		se.Reason = describePermission
	}
	return e
}
