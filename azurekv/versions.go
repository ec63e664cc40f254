package azurekv

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

var _ driver.VersionsGetter = (*kv)(nil)

// maxVersionPages bounds how many pages of a secret's version list
// GetVersions reads (Key Vault keeps every version, 25 a page): the newest
// previous versions are looked for among the first 250 listed.
const maxVersionPages = 10

// GetVersions reads the secret's current version (GetSecret without a
// version), then lists its versions (the list needs the "list" permission,
// or the Key Vault Secrets User role) and reads the newest enabled ones
// before it, by creation time, until it has max. A version that is
// disabled, not yet valid (nbf) or gone when read is skipped; the core
// skips an expired one. The ref names the secret only: name/version picks
// one version, which is not what a list of versions is.
func (d *kv) GetVersions(ctx context.Context, ref driver.Ref, max int) ([]driver.Value, error) {
	name, version, _ := strings.Cut(ref.Name, "/")
	if version != "" {
		return nil, driver.Errorf(secrets.CodeInvalidRef, "reading a secret's versions starts at its current one: name the secret without /version")
	}
	get := func(ver string) (driver.Value, error) {
		var raw *http.Response
		resp, err := d.client.GetSecret(policy.WithCaptureResponse(ctx, &raw), name, ver, nil)
		if err != nil {
			return driver.Value{}, classify(raw, err)
		}
		return d.value(resp.Secret)
	}
	cur, err := get("")
	if err != nil {
		return nil, err
	}
	out := []driver.Value{cur}
	if max < 2 {
		return out, nil
	}
	type listed struct {
		version string
		created time.Time
	}
	var older []listed
	pager := d.client.NewListSecretPropertiesVersionsPager(name, nil)
	for page := 0; pager.More() && page < maxVersionPages; page++ {
		var raw *http.Response
		resp, err := pager.NextPage(policy.WithCaptureResponse(ctx, &raw))
		if err != nil {
			return nil, classify(raw, err)
		}
		for _, p := range resp.Value {
			if p == nil || p.ID == nil || p.ID.Version() == "" || p.ID.Version() == cur.Version {
				continue
			}
			var created time.Time
			if a := p.Attributes; a != nil {
				if (a.Enabled != nil && !*a.Enabled) || (a.NotBefore != nil && d.now().Before(*a.NotBefore)) {
					continue
				}
				if a.Created != nil {
					created = *a.Created
				}
			}
			older = append(older, listed{p.ID.Version(), created})
		}
	}
	slices.SortStableFunc(older, func(a, b listed) int { return cmp.Compare(b.created.UnixNano(), a.created.UnixNano()) })
	for _, o := range older {
		if len(out) >= max {
			break
		}
		v, err := get(o.version)
		switch code := secrets.CodeOf(err); {
		case err == nil:
			out = append(out, v)
		case code == secrets.CodeNotFound, code == secrets.CodePermission && strings.Contains(err.Error(), "disabled"):
			// Deleted, disabled or not yet valid since it was listed.
		default:
			return nil, err
		}
	}
	return out, nil
}

// secretVersion is the version id of a secret Key Vault answered with.
func secretVersion(s azsecrets.Secret) string {
	if s.ID == nil {
		return ""
	}
	return s.ID.Version()
}
