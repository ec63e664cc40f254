package main

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	vaultapi "github.com/hashicorp/vault/api"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// TestKeyRefReviewGenkeyStoreFieldInExistingDocument: defect. `keyward
// genkey --store awssm:NAME#key` on an existing JSON secret that has other
// fields but no "key" yet is accepted (genkey's pre-check reads only the
// current version, where the missing field is ErrNotFound, "a new field:
// nothing to check"), and PutVersion writes a new version {..., "key": K}.
// The ring then reads AWSCURRENT and AWSPREVIOUS with #key picked from
// both; AWSPREVIOUS has no "key", and ResolveVersions fails the whole call
// (ErrNotFound), so ENCRYPTION_KEY_REF=awssm:NAME#key can never be loaded:
// every service fails on first use and a running one keeps its old ring
// forever. Expected: either genkey refuses (the secret exists without the
// field), or the ring it just wrote is readable.
func TestKeyRefReviewGenkeyStoreFieldInExistingDocument(t *testing.T) {
	endpoint := testenv.MotoServer(t)
	ctx := context.Background()
	sm := secretsmanager.New(secretsmanager.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	name := "keyward/app-" + randomValue(t, "")[:8]
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name),
		SecretString: aws.String(`{"db_password":"hunter2"}`)}); err != nil {
		t.Fatal(err)
	}
	genkeyFieldThenLoad(t, "awssm:"+name+"#key", map[string]string{"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
		"AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}, "awssm = awssm://")
}

// TestKeyRefReviewGenkeyStoreFieldInExistingVaultDocument: the same defect
// on the real Vault dev server: `vault kv put secret/app db_password=...`,
// then genkey --store vault:secret/app#key writes version 2 {db_password,
// key}; version 1 has no "key", so the ring's ResolveVersions fails.
func TestKeyRefReviewGenkeyStoreFieldInExistingVaultDocument(t *testing.T) {
	v := testenv.Vault(t)
	cfg := vaultapi.DefaultConfig()
	cfg.Address = v.Addr
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(v.RootToken)
	if _, err := c.KVv2("secret").Put(context.Background(), "app", map[string]any{"db_password": "hunter2"}); err != nil {
		t.Fatal(err)
	}
	genkeyFieldThenLoad(t, "vault:secret/app#key", map[string]string{"VAULT_ADDR": v.Addr, "VAULT_TOKEN": v.RootToken}, "vault = vault://")
}

// genkeyFieldThenLoad runs genkey --store ref and, if it succeeds, loads
// the ring ref names through the configured stack.
func genkeyFieldThenLoad(t *testing.T, ref string, env map[string]string, config string) {
	ctx := context.Background()

	h := newHarness(t)
	h.env = map[string]string{secrets.ConfigEnv: config}
	for k, v := range env {
		h.env[k] = v
	}
	r := h.run(nil, "", "genkey", "--store", ref)
	if r.code != 0 {
		t.Logf("genkey --store refused (acceptable): %s", r)
		return
	}

	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := secrets.ParseConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	st, err := secrets.OpenConfig(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ring, err := fernetstore.KeyRingFromRef(ref, &fernetstore.KeyRefOptions{Refresh: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Load(ctx, st.Mux); err != nil {
		t.Fatalf("genkey --store %s succeeded (%q), but the ring it wrote cannot be read: %v", ref, r.stdout, err)
	}
	// The version without the field holds no key: the ring is the new key
	// alone.
	if v := ring.Versions(); len(v) != 1 || !strings.Contains(r.stdout, v[0]) {
		t.Errorf("the ring holds versions %q, want only the one genkey printed (%q)", v, r.stdout)
	}
}
