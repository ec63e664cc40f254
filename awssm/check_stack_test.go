package awssm_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/awssm"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/internal/testenv"
)

// TestStackCheckNoticesNewVersion (issue 13): a stack whose cache keeps
// values for an hour, with check=, notices a new AWSCURRENT version on
// moto_server through DescribeSecret and fetches the value again only
// then: two GetSecretValue calls in all, however many checks.
func TestStackCheckNoticesNewVersion(t *testing.T) {
	endpoint := testenv.MotoServer(t)
	calls := newCounter(nil)
	client := newClient(endpoint, 3, calls)
	m := &moto{endpoint: endpoint, calls: calls, client: client, store: awssm.New(client, nil)}
	ctx := context.Background()
	name := "kw/check-" + token()
	v1, v2 := secretValue(), secretValue()
	m.create(t, name, v1)

	cfg, err := secrets.ParseConfig("cache = ttl=1h&check=100ms")
	if err != nil {
		t.Fatal(err)
	}
	st, err := secrets.OpenConfig(ctx, cfg, &secrets.StackOptions{Backends: map[string]secrets.KeyResolver{"awssm": m.store}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	calls.reset()
	ref := "awssm:" + name
	s, err := st.Resolve(ctx, ref)
	if err != nil || s.Reveal() != v1 {
		t.Fatalf("first resolve: %v", err)
	}
	if _, err := m.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(v2)}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s, err := st.Resolve(ctx, ref)
		if err == nil && s.Reveal() == v2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the one-hour cache never served the new version (err %v)", err)
		}
	}
	if g, d := calls.count("GetSecretValue"), calls.count("DescribeSecret"); g != 2 || d < 1 {
		t.Errorf("GetSecretValue %d times (want 2: the first fetch and the new version), DescribeSecret %d (want at least 1)", g, d)
	}
	c, _ := secrets.Find[*cache.Cache](st)
	if b := c.Stats().Backends["awssm"]; b.Calls["version"] < 1 || b.Calls["resolve"] != 2 || b.Cost <= 0 {
		t.Errorf("the meter says %+v", b)
	}
}
