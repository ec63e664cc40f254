package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/keyward/secrets/internal/testenv"
)

// TestResolveCloudBackends: with no configuration, `keyward resolve` reaches
// awssm: through the AWS SDK's chain (AWS_ENDPOINT_URL pointing at moto) and
// vault: through VAULT_ADDR/VAULT_TOKEN (a real dev server), each opened only
// because a ref needs it.
func TestResolveCloudBackends(t *testing.T) {
	h := newHarness(t)

	t.Run("awssm", func(t *testing.T) {
		endpoint := testenv.MotoServer(t)
		value := randomValue(t, "sk-ant-aws-")
		h.secret(value)
		c := secretsmanager.New(secretsmanager.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
			Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
		doc, _ := json.Marshal(map[string]string{"api_key": value})
		if _, err := c.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
			Name: aws.String("bots/support"), SecretString: aws.String(string(doc))}); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
			"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
		r := h.must(0, env, "", "resolve", "--reveal", "awssm:bots/support#api_key")
		if r.stdout != value+"\n" {
			t.Errorf("resolve --reveal awssm: got %d bytes, want the value", len(r.stdout))
		}
		r = h.must(0, env, "", "resolve", "awssm:bots/support#api_key")
		if !strings.HasPrefix(r.stdout, "sk-ant-…") || !strings.HasSuffix(r.stdout, value[len(value)-3:]+"\n") {
			t.Errorf("resolve awssm masked: %q", r.stdout)
		}
		h.must(exitFindings, env, "", "resolve", "awssm:bots/missing")
	})

	t.Run("vault", func(t *testing.T) {
		v := testenv.Vault(t)
		value := randomValue(t, "sk-ant-vault-")
		h.secret(value, v.RootToken)
		cfg := vaultapi.DefaultConfig()
		cfg.Address = v.Addr
		c, err := vaultapi.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(v.RootToken)
		if _, err := c.KVv2("secret").Put(context.Background(), "bots/support", map[string]any{"api_key": value}); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"VAULT_ADDR": v.Addr, "VAULT_TOKEN": v.RootToken}
		r := h.must(0, env, "", "resolve", "--reveal", "vault:secret/bots/support#api_key")
		if r.stdout != value+"\n" {
			t.Errorf("resolve --reveal vault: got %d bytes, want the value", len(r.stdout))
		}
		h.must(exitFindings, env, "", "resolve", "vault:secret/bots/missing#api_key")
		h.must(exitUsage, env, "", "resolve", "vault:secret/../sys/health")
	})
}
