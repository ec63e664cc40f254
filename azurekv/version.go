package azurekv

import (
	"context"
	"strings"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

var (
	_ secrets.VersionChecker = (*Store)(nil)
	_ driver.Versioner       = (*kv)(nil)
)

// Version answers only for a ref that pins a version ("name/version"),
// which is that version, with no request. Key Vault has no read of a
// secret's current version id cheaper than GetSecret, which returns the
// value too and costs the same one operation: the other reads that carry
// versions without values are listings (secrets/list), paged, one operation
// a page, which do not say which version is current. A check would then
// cost as much as the refresh it is meant to spare (and a changed secret
// two operations instead of one), so the current version of an unpinned
// ref is errors.ErrUnsupported, and a cache notices a change by reading the
// secret again.
func (d *kv) Version(_ context.Context, ref driver.Ref) (string, error) {
	if _, version, ok := strings.Cut(ref.Name, "/"); ok {
		return version, nil
	}
	return "", driver.Unsupported("Key Vault has no read of a secret's current version cheaper than getting the secret (one operation either way): resolve the ref again to notice a change")
}
