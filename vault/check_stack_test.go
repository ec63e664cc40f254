package vault

import (
	"context"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/internal/testenv"
)

// TestStackCheckNoticesNewVersion (issue 13): a stack whose cache keeps
// values for an hour, with check=, notices a new KV v2 version on the real
// Vault dev server through the secret's metadata and fetches the value
// again only then.
func TestStackCheckNoticesNewVersion(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	ctx := context.Background()
	path := "bots/check-" + time.Now().Format("150405.000000")
	if _, err := root.KVv2("secret").Put(ctx, path, map[string]any{"api_key": "sk-ant-test-check-1"}); err != nil {
		t.Fatal(err)
	}
	client, _ := newClient(t, srv.Addr, srv.RootToken)
	log, _ := quietLogger()
	store := New(client, &Options{Mount: "secret", Logger: log})
	defer store.Close()
	cfg, err := secrets.ParseConfig("cache = ttl=1h&check=100ms")
	if err != nil {
		t.Fatal(err)
	}
	st, err := secrets.OpenConfig(ctx, cfg, &secrets.StackOptions{Backends: map[string]secrets.KeyResolver{"vault": store}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ref := "vault:" + path + "#api_key"
	if s, err := st.Resolve(ctx, ref); err != nil || s.Reveal() != "sk-ant-test-check-1" {
		t.Fatalf("first resolve: %v", err)
	}
	if _, err := root.KVv2("secret").Put(ctx, path, map[string]any{"api_key": "sk-ant-test-check-2"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s, err := st.Resolve(ctx, ref)
		if err == nil && s.Reveal() == "sk-ant-test-check-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the one-hour cache never served the new version (err %v)", err)
		}
	}
	c, _ := secrets.Find[*cache.Cache](st)
	if b := c.Stats().Backends["vault"]; b.Calls["version"] < 1 || b.Calls["resolve"] != 2 {
		t.Errorf("want at least one version check and two fetches; the meter says %+v", b)
	}
}
