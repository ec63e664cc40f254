package main

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	vaultapi "github.com/hashicorp/vault/api"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/azurekv"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/azurekvtest"
	"github.com/keyward/secrets/internal/testenv"
)

// backendCase puts a bot's key in one backend and says how the service is
// configured to read it there.
type backendCase struct {
	name   string // the backend's name in audit events and metrics
	config string // the service's KEYWARD_CONFIG; the bot's ref uses scheme "keys"
	// put stores value in the backend, sets the backend's own environment
	// (AWS_*, VAULT_*, ...), and returns the bot's ref and any resolver to
	// hand in where no URL can reach the test server.
	put func(t *testing.T, value string) (ref string, inject map[string]secrets.KeyResolver)
}

// TestSwitchBackendsByConfiguration runs the same chat requests against the
// same service code with the bot's key in each of the five backends. What
// changes between cases is the configuration (KEYWARD_CONFIG and the
// backend's own environment) and where the key is stored; for Azure Key
// Vault the client is handed in, because no Azure AD token endpoint exists
// offline for DefaultAzureCredential to use.
func TestSwitchBackendsByConfiguration(t *testing.T) {
	cases := []backendCase{
		{
			name:   "fernet",
			config: "keys = fernet://; cache = on; audit = on",
			put: func(t *testing.T, value string) (string, map[string]secrets.KeyResolver) {
				dsn := "sqlite:" + filepath.Join(t.TempDir(), "keys.db")
				key, _ := fernetstore.GenerateKey()
				t.Setenv("DATABASE_URL", dsn)
				t.Setenv("ENCRYPTION_KEY", key)
				db, err := fernetstore.OpenDB(dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				ring, _ := fernetstore.ParseKeyRing(key)
				st := fernetstore.New(db, ring, nil)
				if err := st.CreateSchema(context.Background()); err != nil {
					t.Fatal(err)
				}
				id, err := st.Put(context.Background(), "support", "anthropic", value, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				return id, nil
			},
		},
		{
			name:   "env",
			config: "keys = env://?allow=KW_CHAT_*; cache = on; audit = on",
			put: func(t *testing.T, value string) (string, map[string]secrets.KeyResolver) {
				t.Setenv("KW_CHAT_SUPPORT_KEY", value)
				return "KW_CHAT_SUPPORT_KEY", nil
			},
		},
		{
			name:   "awssm",
			config: "keys = awssm://?region=us-east-1; cache = on; audit = on",
			put: func(t *testing.T, value string) (string, map[string]secrets.KeyResolver) {
				endpoint := testenv.MotoServer(t)
				for k, v := range map[string]string{"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
					"AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
					"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"} {
					t.Setenv(k, v)
				}
				c := secretsmanager.New(secretsmanager.Options{
					Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
					Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", ""),
				})
				doc, _ := json.Marshal(map[string]string{"api_key": value, "org": "support"})
				_, err := c.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
					Name: aws.String("bots/support"), SecretString: aws.String(string(doc))})
				if err != nil {
					t.Fatal(err)
				}
				return "bots/support#api_key", nil
			},
		},
		{
			name:   "azurekv",
			config: "keys = azurekv://kw-test.vault.azure.net; cache = on; audit = on",
			put: func(t *testing.T, value string) (string, map[string]secrets.KeyResolver) {
				srv := azurekvtest.NewServer()
				t.Cleanup(srv.Close)
				srv.Set("bot-support", value, azurekvtest.Attributes{})
				client, _, err := srv.NewClient(1)
				if err != nil {
					t.Fatal(err)
				}
				return "bot-support", map[string]secrets.KeyResolver{"keys": azurekv.New(client, nil)}
			},
		},
		{
			name:   "vault",
			config: "keys = vault://?mount=secret; cache = on; audit = on",
			put: func(t *testing.T, value string) (string, map[string]secrets.KeyResolver) {
				v := testenv.Vault(t)
				t.Setenv("VAULT_ADDR", v.Addr)
				t.Setenv("VAULT_TOKEN", v.RootToken)
				cfg := vaultapi.DefaultConfig()
				cfg.Address = v.Addr
				c, err := vaultapi.NewClient(cfg)
				if err != nil {
					t.Fatal(err)
				}
				c.SetToken(v.RootToken)
				_, err = c.KVv2("secret").Put(context.Background(), "bots/support", map[string]any{"api_key": value})
				if err != nil {
					t.Fatal(err)
				}
				return "bots/support#api_key", nil
			},
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			value := "sk-ant-switch-" + tc.name + "-" + randomHex(12)
			ref, backends := tc.put(t, value)

			s := startWith(t, map[string]string{"KEYWARD_CONFIG": tc.config, "CHAT_RATE": "100", "CHAT_BURST": "100"}, backends)
			ctx := context.Background()
			if err := s.bots.setRef(ctx, 1, "keys:"+ref); err != nil {
				t.Fatal(err)
			}
			s.standIn.accept(value)
			series := func(source string) string {
				return `keyward_resolves_total{backend="` + tc.name + `",outcome="ok",source="` + source + `"}`
			}
			_, before := s.get(t, "/metrics")
			for i := range 3 {
				code, body := s.post(t, "/api/chat/1", `{"message":"hello"}`)
				if code != http.StatusOK || body["reply"] != "stand-in reply to: hello" {
					t.Fatalf("request %d through %s: %d %v\nlog: %s", i, tc.name, code, body, s.stderr.String())
				}
			}
			_, after := s.get(t, "/metrics")
			// One backend call, then two cache hits, all reported as this backend.
			for source, want := range map[string]float64{"backend": 1, "cache": 2} {
				if got := metric(after, series(source)) - metric(before, series(source)); got != want {
					t.Errorf("%s went up by %v, want %v", series(source), got, want)
				}
			}
			s.assertNoKeys(t, value)
		})
	}
}

// metric returns the value of the series named exactly by prefix in a
// Prometheus text exposition, or 0 when it is absent.
func metric(exposition, series string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return 0
}
