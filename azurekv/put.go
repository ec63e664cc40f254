package azurekv

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

var _ driver.VersionPutter = (*kv)(nil)

// PutVersion stores v as a new version of the secret with SetSecret (which
// creates the secret if need be; Key Vault keeps every earlier version) and
// returns the new version id. It needs the "set" permission (the Key Vault
// Secrets Officer role). The ref names the secret only.
func (d *kv) PutVersion(ctx context.Context, ref driver.Ref, v driver.Value) (string, error) {
	name, version, _ := strings.Cut(ref.Name, "/")
	if version != "" {
		return "", driver.Errorf(secrets.CodeInvalidRef, "a new version gets a new id: name the secret without /version")
	}
	value := v.Data
	if v.Document != nil {
		b, err := json.Marshal(v.Document)
		if err != nil {
			return "", driver.Errorf(secrets.CodeInvalidRef, "the secret's document cannot be encoded as JSON")
		}
		value = string(b)
	}
	var raw *http.Response
	resp, err := d.client.SetSecret(policy.WithCaptureResponse(ctx, &raw), name, azsecrets.SetSecretParameters{Value: &value}, nil)
	if err != nil {
		err = classify(raw, err)
		if se, ok := err.(*secrets.Error); ok && se.Code == secrets.CodePermission && raw != nil && raw.StatusCode == http.StatusForbidden {
			c := *se
			c.Reason = "the identity may not set this secret (grant the \"Key Vault Secrets Officer\" role or a set access policy), or a firewall rule refused it"
			return "", &c
		}
		return "", err
	}
	ver := secretVersion(resp.Secret)
	if ver == "" {
		return "", driver.Errorf(secrets.CodeUnavailable, "Key Vault's answer to SetSecret names no version")
	}
	return ver, nil
}
