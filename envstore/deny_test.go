package envstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/envstore"
)

// TestDefaultDenySDKCredentials checks that every variable the bundled SDKs
// and drivers read a credential from (or the file or endpoint that yields
// one) is refused by the default policy, whatever its case. The names were
// taken from the sources of the linked modules (see DefaultDeny).
func TestDefaultDenySDKCredentials(t *testing.T) {
	denied := []string{
		// aws-sdk-go-v2/config
		"AWS_SECRET_ACCESS_KEY",
		"AWS_SECRET_KEY",
		"AWS_SESSION_TOKEN",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_SHARED_CREDENTIALS_FILE",
		"AWS_CONFIG_FILE",
		"AWS_LOGIN_CACHE_DIRECTORY",
		// azidentity and MSAL
		"AZURE_CLIENT_SECRET",
		"AZURE_CLIENT_CERTIFICATE_PASSWORD",
		"AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_PASSWORD",
		"AZURE_FEDERATED_TOKEN_FILE",
		"IDENTITY_HEADER",
		"MSI_SECRET",
		// vault/api and the vault backend's auth methods
		"VAULT_TOKEN",
		"VAULT_HEADERS",
		"VAULT_CLIENT_KEY",
		"VAULT_UNWRAP_TOKEN",
		"VAULT_MFA",
		"VAULT_HTTP_PROXY",
		"VAULT_PROXY_ADDR",
		"VAULT_ROLE_ID",
		"VAULT_ROLE_ID_FILE",
		"VAULT_SECRET_ID",
		"VAULT_SECRET_ID_FILE",
		"VAULT_KUBERNETES_TOKEN_FILE",
		// pgx (libpq's variables)
		"PGPASSWORD",
		"PGPASSFILE",
		"PGSSLPASSWORD",
		"PGSSLKEY",
		"PGSERVICEFILE",
		// MySQL clients, net/http's proxy, this stack
		"MYSQL_PWD",
		"HTTP_PROXY",
		"HTTPS_PROXY",
		"DATABASE_URL",
		"ENCRYPTION_KEY",
		"ENCRYPTION_KEY_PREVIOUS",
		"ENCRYPTION_KEY_REF",
		"KEYWARD_CONFIG",
	}
	env := map[string]string{}
	for i, name := range denied {
		env[name] = fmt.Sprintf("kw-canary-%02d-%s", i, name)
		env[strings.ToLower(name)] = fmt.Sprintf("kw-canary-lower-%02d-%s", i, name)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	store := envstore.New(&envstore.Options{Lookup: lookup, Allow: []string{"*"}})
	for _, name := range denied {
		for _, ref := range []string{name, strings.ToLower(name)} {
			s, err := store.Resolve(context.Background(), ref)
			if !errors.Is(err, secrets.ErrPermission) {
				t.Errorf("Resolve(%q) = (%d bytes, %v), want ErrPermission by default", ref, s.Len(), err)
				continue
			}
			if text := fmt.Sprintf("%v %+v", err, err); strings.Contains(text, env[ref]) {
				t.Errorf("Resolve(%q): the error holds the variable's value", ref)
			}
		}
	}

	// Variables that name no credential stay readable: identifiers, public
	// certificates and the local token endpoints, which answer only with
	// the secret header (IDENTITY_HEADER, MSI_SECRET) denied above.
	readable := []string{"AWS_ACCESS_KEY_ID", "AWS_REGION", "AWS_ROLE_ARN", "AWS_CA_BUNDLE",
		"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT",
		"VAULT_ADDR", "VAULT_CACERT", "VAULT_CLIENT_CERT", "PGUSER", "PGSSLROOTCERT"}
	for _, name := range readable {
		env[name] = "public-" + name
		s, err := store.Resolve(context.Background(), name)
		if err != nil || s.Reveal() != env[name] {
			t.Errorf("Resolve(%q) = (%d bytes, %v), want the value", name, s.Len(), err)
		}
	}
}
