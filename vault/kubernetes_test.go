package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/api"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/testenv"
)

// TestKubernetesLogin logs in to the real Vault with auth=kubernetes. Vault
// checks the service-account JWT with the Kubernetes TokenReview API; that
// one endpoint is played by a loopback test server (Vault itself is real).
func TestKubernetesLogin(t *testing.T) {
	srv := testenv.Vault(t)
	root, _ := newClient(t, srv.Addr, srv.RootToken)
	ctx := context.Background()

	var reviews atomic.Int64
	kube := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
			http.NotFound(w, r)
			return
		}
		reviews.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
			"status": map[string]any{"authenticated": true, "user": map[string]any{
				"username": "system:serviceaccount:default:chat", "uid": "uid-chat-1",
			}},
		})
	}))
	defer kube.Close()

	if err := root.Sys().EnableAuthWithOptions("kubernetes", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/kubernetes/config", map[string]any{
		"kubernetes_host": kube.URL, "disable_local_ca_jwt": true, "disable_iss_validation": true,
	}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("reader", `path "secret/data/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/kubernetes/role/chat", map[string]any{
		"bound_service_account_names": "chat", "bound_service_account_namespaces": "default",
		"token_policies": "reader", "token_ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2("secret").Put(ctx, "bots/anthropic", map[string]any{"api_key": "sk-ant-test-kube"}); err != nil {
		t.Fatal(err)
	}

	seg := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	jwt := seg(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." + seg(map[string]string{
		"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:default:chat",
		"kubernetes.io/serviceaccount/namespace":            "default",
		"kubernetes.io/serviceaccount/service-account.name": "chat",
		"kubernetes.io/serviceaccount/service-account.uid":  "uid-chat-1",
	}) + "." + base64.RawURLEncoding.EncodeToString([]byte("not-checked-by-this-test"))
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(jwt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_KUBERNETES_TOKEN_FILE", file)

	store := openFromEnv(t, srv, "vault://?mount=secret&auth=kubernetes&role=chat")
	defer store.Close()
	s, err := store.Resolve(ctx, "bots/anthropic#api_key")
	if err != nil || s.Reveal() != "sk-ant-test-kube" {
		t.Fatalf("resolve after a Kubernetes login: %v", err)
	}
	if reviews.Load() != 1 {
		t.Errorf("%d token reviews, want 1 (one login)", reviews.Load())
	}
	if exp := store.TokenExpiry(); exp.IsZero() {
		t.Error("TokenExpiry is zero after a login with a 1h TTL")
	}

	// A role Vault does not know is a permission error, and no JWT in it.
	bad := openFromEnv(t, srv, "vault://?mount=secret&auth=kubernetes&role=nosuchrole")
	defer bad.Close()
	_, err = bad.Resolve(ctx, "bots/anthropic#api_key")
	if !errors.Is(err, secrets.ErrPermission) || strings.Contains(err.Error(), jwt[:20]) {
		t.Fatalf("unknown role: got %v", err)
	}
	t.Log(err)
}
