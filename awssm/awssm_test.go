package awssm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/awssm"
	"github.com/keyward/secrets/internal/testenv"
	"github.com/keyward/secrets/secretstest"
)

// moto holds what the moto subtests share: one moto_server, a client that
// counts calls, and the store under test.
type moto struct {
	endpoint string
	calls    *counter
	client   *secretsmanager.Client
	store    *awssm.Store
}

func (m *moto) create(t *testing.T, name, value string) *secretsmanager.CreateSecretOutput {
	t.Helper()
	out, err := m.client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String(value)})
	if err != nil {
		t.Fatalf("CreateSecret(%q): %v", name, err)
	}
	return out
}

func (m *moto) resolve(t *testing.T, ref string) (secrets.Secret, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return m.store.Resolve(ctx, ref)
}

func (m *moto) mustResolve(t *testing.T, ref, want string) secrets.Secret {
	t.Helper()
	s, err := m.resolve(t, ref)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", ref, err)
	}
	if s.Reveal() != want {
		t.Fatalf("Resolve(%q) returned %d bytes that differ from the %d bytes expected", ref, s.Len(), len(want))
	}
	return s
}

// TestMoto runs the conformance suite and the Secrets Manager behaviours
// against moto_server, through the real SDK client. One server serves all
// subtests; each uses fresh secret names.
func TestMoto(t *testing.T) {
	endpoint := testenv.MotoServer(t)
	calls := newCounter(nil)
	client := newClient(endpoint, 3, calls)
	m := &moto{endpoint: endpoint, calls: calls, client: client, store: awssm.New(client, nil)}

	t.Run("Conformance", func(t *testing.T) {
		put := func(t *testing.T, name, value string, _ time.Time) (string, error) {
			if value == "" {
				// An empty SecretString creates a secret without a
				// version (moto does the same): there is nothing to get.
				return "", fmt.Errorf("%w: an empty SecretString stores no version", secretstest.ErrUnsupported)
			}
			_, err := client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
				Name: aws.String(name), SecretString: aws.String(value)})
			return name, err
		}
		secretstest.RunConformance(t, secretstest.Harness{
			New: func(t *testing.T) secretstest.Subject {
				s := awssm.New(client, nil)
				t.Cleanup(func() { s.Close() })
				return secretstest.Subject{Resolver: s, Put: put}
			},
			Backend:    awssm.Backend,
			MissingRef: "kw-missing-" + token(),
			InvalidRefs: []string{
				"name?stage=AWSCURRENT&version=abc",
				"name?bogus=1",
				"name?stage=",
				"name?version=",
				"#field",
				"name?stage=A&stage=B",
			},
			Documents: true,
		})
	})
	t.Run("Stages", m.stages)
	t.Run("Binary", m.binary)
	t.Run("ARN", m.arn)
	t.Run("DeletionScheduled", m.deletionScheduled)
	t.Run("Batch", m.batch)
	t.Run("Ping", func(t *testing.T) {
		if err := m.store.Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("Opener", m.opener)
}

// stages covers AWSCURRENT, AWSPREVIOUS, a custom label and ?version=.
func (m *moto) stages(t *testing.T) {
	ctx := context.Background()
	name := "kw/stages-" + token()
	v1, v2, v3 := secretValue(), secretValue(), secretValue()
	first := m.create(t, name, v1)
	second, err := m.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(name), SecretString: aws.String(v2)})
	if err != nil {
		t.Fatal(err)
	}
	// A third version that only carries a custom label: AWSCURRENT stays on v2.
	third, err := m.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(name), SecretString: aws.String(v3), VersionStages: []string{"blue"}})
	if err != nil {
		t.Fatal(err)
	}

	s := m.mustResolve(t, name, v2)
	if s.Version != aws.ToString(second.VersionId) {
		t.Errorf("Version = %q, want the current VersionId %q", s.Version, aws.ToString(second.VersionId))
	}
	m.mustResolve(t, name+"?stage=AWSCURRENT", v2)
	s = m.mustResolve(t, name+"?stage=AWSPREVIOUS", v1)
	if s.Version != aws.ToString(first.VersionId) {
		t.Errorf("AWSPREVIOUS Version = %q, want %q", s.Version, aws.ToString(first.VersionId))
	}
	m.mustResolve(t, name+"?stage=blue", v3)
	s = m.mustResolve(t, name+"?version="+aws.ToString(first.VersionId), v1)
	if s.Version != aws.ToString(first.VersionId) {
		t.Errorf("?version= Version = %q, want %q", s.Version, aws.ToString(first.VersionId))
	}
	m.mustResolve(t, name+"?version="+aws.ToString(third.VersionId), v3)

	for _, ref := range []string{name + "?stage=green", name + "?version=00000000-0000-0000-0000-000000000000"} {
		_, err := m.resolve(t, ref)
		if !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("Resolve(%q) = %v, want ErrNotFound", ref, err)
		}
	}
}

func (m *moto) binary(t *testing.T) {
	name := "kw-binary-" + token()
	raw := append([]byte(secretValue()), 0, 0xff, 0x10)
	out, err := m.client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretBinary: raw})
	if err != nil {
		t.Fatal(err)
	}
	s := m.mustResolve(t, name, string(raw))
	if s.Version != aws.ToString(out.VersionId) {
		t.Errorf("Version = %q, want %q", s.Version, aws.ToString(out.VersionId))
	}
	res, err := m.store.ResolveMany(context.Background(), []string{name})
	if err != nil || res[0].Err != nil || res[0].Secret.Reveal() != string(raw) {
		t.Errorf("SecretBinary through BatchGetSecretValue: %v, %v", err, res[0].Err)
	}
	// A JSON document stored as bytes still has fields.
	key := secretValue()
	doc, _ := json.Marshal(map[string]string{"api_key": key})
	docName := "kw-binary-doc-" + token()
	if _, err := m.client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(docName), SecretBinary: doc}); err != nil {
		t.Fatal(err)
	}
	m.mustResolve(t, docName+"#api_key", key)
}

func (m *moto) arn(t *testing.T) {
	name := "kw/arn-" + token()
	key := secretValue()
	doc, _ := json.Marshal(map[string]string{"api_key": key})
	out := m.create(t, name, string(doc))
	arn := aws.ToString(out.ARN)
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:") {
		t.Fatalf("moto returned ARN %q", arn)
	}
	s := m.mustResolve(t, arn, string(doc))
	if s.Version != aws.ToString(out.VersionId) {
		t.Errorf("Version = %q, want %q", s.Version, aws.ToString(out.VersionId))
	}
	m.mustResolve(t, arn+"#api_key", key)
	m.mustResolve(t, arn+"?stage=AWSCURRENT#api_key", key)

	// An ARN of a secret that does not exist is not found, not invalid.
	_, err := m.resolve(t, strings.Replace(arn, name, "kw/arn-missing-"+token(), 1))
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("a missing ARN: %v, want ErrNotFound", err)
	}
}

func (m *moto) deletionScheduled(t *testing.T) {
	name := "kw-deleted-" + token()
	v := secretValue()
	m.create(t, name, v)
	if _, err := m.client.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{
		SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Fatal(err)
	}
	_, err := m.resolve(t, name)
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("a secret scheduled for deletion: %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "scheduled for deletion") {
		t.Errorf("error %q does not say the secret is scheduled for deletion", err)
	}
	var ire *types.InvalidRequestException
	if !errors.As(err, &ire) {
		t.Errorf("errors.As(*types.InvalidRequestException) failed on %v", err)
	}
	// The same through a batch.
	res, err := m.store.ResolveMany(context.Background(), []string{name})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, secrets.ErrNotFound) || !strings.Contains(res[0].Err.Error(), "scheduled for deletion") {
		t.Errorf("batch: a secret scheduled for deletion: %v, want ErrNotFound saying so", res[0].Err)
	}
	if strings.Contains(fmt.Sprint(err, res[0].Err), v) {
		t.Error("an error holds the secret value")
	}
}

// batch resolves 45 secrets, three #fields of one JSON secret, a stage ref,
// a missing secret and an invalid ref, and counts the calls on the wire.
func (m *moto) batch(t *testing.T) {
	const n = 45
	prefix := "kw-batch-" + token()[:6] + "-"
	var refList, want []string
	for i := range n {
		v := secretValue()
		m.create(t, fmt.Sprintf("%s%02d", prefix, i), v)
		refList = append(refList, fmt.Sprintf("%s%02d", prefix, i))
		want = append(want, v)
	}
	key, org := secretValue(), "org-"+token()
	doc, _ := json.Marshal(map[string]string{"api_key": key, "org": org})
	docName := prefix + "doc"
	docOut := m.create(t, docName, string(doc))
	refList = append(refList, docName+"#api_key", docName+"#org", aws.ToString(docOut.ARN)+"#api_key", docName+"?stage=AWSCURRENT#org")
	want = append(want, key, org, key, org)
	prevName := prefix + "prev"
	prev := secretValue()
	m.create(t, prevName, prev)
	if _, err := m.client.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(prevName), SecretString: aws.String(secretValue())}); err != nil {
		t.Fatal(err)
	}
	refList = append(refList, prevName+"?stage=AWSPREVIOUS", prevName+"?stage=AWSPREVIOUS")
	want = append(want, prev, prev)
	missing := prefix + "missing"
	refList = append(refList, missing, docName+"#nope", "bad?opt=1")

	m.calls.reset()
	res, err := m.store.ResolveMany(context.Background(), refList)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(refList) {
		t.Fatalf("%d results for %d refs", len(res), len(refList))
	}
	for i, w := range want {
		if res[i].Ref != refList[i] {
			t.Errorf("result %d is for %q, want %q", i, res[i].Ref, refList[i])
		}
		if res[i].Err != nil {
			t.Errorf("%q: %v", refList[i], res[i].Err)
		} else if res[i].Secret.Reveal() != w {
			t.Errorf("%q resolved to a different value", refList[i])
		}
	}
	tail := res[len(want):]
	if !errors.Is(tail[0].Err, secrets.ErrNotFound) {
		t.Errorf("missing secret: %v, want ErrNotFound", tail[0].Err)
	}
	if !errors.Is(tail[1].Err, secrets.ErrNotFound) {
		t.Errorf("missing field: %v, want ErrNotFound", tail[1].Err)
	}
	if !errors.Is(tail[2].Err, secrets.ErrInvalidRef) {
		t.Errorf("invalid ref: %v, want ErrInvalidRef", tail[2].Err)
	}
	// 45 secrets + the document by name + the document by ARN + the missing
	// one = 48 ids: 3 batch calls. The AWSPREVIOUS ref needs GetSecretValue.
	if got := m.calls.count("BatchGetSecretValue"); got != 3 {
		t.Errorf("%d BatchGetSecretValue calls, want 3 (48 distinct ids, 20 a call)", got)
	}
	if got := m.calls.count("GetSecretValue"); got != 1 {
		t.Errorf("%d GetSecretValue calls, want 1 (the two AWSPREVIOUS refs share it)", got)
	}

	// Several #fields of one secret cost one fetch.
	m.calls.reset()
	res, err = m.store.ResolveMany(context.Background(), []string{docName + "#api_key", docName + "#org", docName})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%q: %v", r.Ref, r.Err)
		}
	}
	if b, g := m.calls.count("BatchGetSecretValue"), m.calls.count("GetSecretValue"); b != 1 || g != 0 {
		t.Errorf("three refs of one secret cost %d batch and %d single calls, want 1 and 0", b, g)
	}

	// NoBatch: GetSecretValue, still one call per secret, not per ref.
	m.calls.reset()
	noBatch := awssm.New(m.client, &awssm.Options{NoBatch: true})
	res, err = noBatch.ResolveMany(context.Background(), []string{docName + "#api_key", docName + "#org", refList[0]})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Secret.Reveal() != key || res[2].Secret.Reveal() != want[0] {
		t.Errorf("NoBatch results wrong: %v %v %v", res[0].Err, res[1].Err, res[2].Err)
	}
	if b, g := m.calls.count("BatchGetSecretValue"), m.calls.count("GetSecretValue"); b != 0 || g != 2 {
		t.Errorf("NoBatch made %d batch and %d single calls, want 0 and 2 (two secrets)", b, g)
	}
}

// opener opens the store by URL, with the SDK's default chain pointed at
// moto through the environment, and checks the client is made lazily.
func (m *moto) opener(t *testing.T) {
	setAWSEnv(t, m.endpoint)
	name := "kw-opener-" + token()
	v := secretValue()
	m.create(t, name, v)

	r, err := secrets.Open(context.Background(), "awssm://?region=us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Resolve(context.Background(), name)
	if err != nil {
		t.Fatalf("Resolve through the opener: %v", err)
	}
	if s.Reveal() != v {
		t.Fatal("the opener's store resolved a different value")
	}
}

// setAWSEnv points the SDK's default chain at endpoint with fake static
// credentials, and keeps it off the machine's own AWS files and IMDS.
func setAWSEnv(t *testing.T, endpoint string) {
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDKEYWARDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "keyward-test-secret-key")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_MAX_ATTEMPTS", "2")
}
