package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

var (
	_ secrets.VersionChecker = (*Store)(nil)
	_ driver.Versioner       = (*conn)(nil)
)

// Version returns the KV v2 version a ref names, in the form Get puts in
// Value.Version ("3"): a pinned ?version=N is N, with no request; otherwise
// one read of the secret's metadata (GET <mount>/metadata/<path>), whose
// current_version is the version a read of the latest gives. A current
// version that is deleted or destroyed is ErrNotFound, as Get says. KV v1
// keeps no versions and other engines have leases, so both are
// errors.ErrUnsupported.
func (d *conn) Version(ctx context.Context, ref driver.Ref) (string, error) {
	full, version, err := target(d.prefix, ref)
	if err != nil {
		return "", err
	}
	m, err := d.mountFor(ctx, full)
	if err != nil {
		return "", err
	}
	if version > 0 && m.kind != kvV2 {
		return "", driver.Errorf(secrets.CodeInvalidRef, "?version is only for KV version 2 mounts; %s is %s", m.path, m.describe())
	}
	switch m.kind {
	case kvV2:
	case kvV1:
		return "", driver.Unsupported("%s is KV version 1, which keeps no versions: resolve the ref again to notice a change", m.path)
	default:
		return "", driver.Unsupported("%s is %s, whose secrets have leases, not versions: the lease's expiry tells when to read again", m.path, m.describe())
	}
	if version > 0 {
		return strconv.Itoa(version), nil
	}
	path := m.path + "metadata/" + strings.TrimPrefix(full, m.path)
	sec, err := d.read(ctx, path, nil)
	if err != nil {
		return "", metadataError(path, err)
	}
	if sec == nil || sec.Data == nil {
		return "", driver.Errorf(secrets.CodeNotFound, "no secret at this path in %s", m.path)
	}
	current, ok := wholeNumber(sec.Data["current_version"])
	if !ok {
		return "", driver.Errorf(secrets.CodeUnavailable, "Vault's metadata of %s has no current_version", path)
	}
	if current == 0 {
		// Metadata written before any data (vault kv metadata put).
		return "", driver.Errorf(secrets.CodeNotFound, "no secret at this path in %s", m.path)
	}
	v := strconv.FormatInt(current, 10)
	versions, _ := sec.Data["versions"].(map[string]any)
	meta, _ := versions[v].(map[string]any)
	switch {
	case meta == nil:
		// The version is still readable: Vault lists every version it
		// keeps, but an answer without the list is no reason to fail.
	case meta["destroyed"] == true:
		return "", driver.Errorf(secrets.CodeNotFound, "version %s was destroyed", v)
	case d.deleted(meta["deletion_time"]):
		return "", driver.Errorf(secrets.CodeNotFound, "version %s was deleted", v)
	}
	return v, nil
}

// deleted reports whether a version's deletion_time has come. It is ""
// until the version is deleted, and a time in the future for a version
// that delete_version_after will delete, which Vault still serves.
func (d *conn) deleted(at any) bool {
	s, _ := at.(string)
	if s == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return true // set, though not as Vault writes it: as Get would, call it deleted
	}
	return !d.opts.Now().Before(t)
}

// wholeNumber reads a non-negative integer of Vault's JSON, which the api
// decodes as json.Number.
func wholeNumber(v any) (int64, bool) {
	var s string
	switch n := v.(type) {
	case json.Number:
		s = n.String()
	case float64:
		s = fmt.Sprint(n)
	case string:
		s = n
	default:
		return 0, false
	}
	i, err := strconv.ParseInt(s, 10, 64)
	return i, err == nil && i >= 0
}

// metadataError classifies a failed metadata read as a Get's, and says in a
// denial that a version check reads the metadata path, which a policy
// grants apart from the data path.
func metadataError(path string, err error) error {
	e := classify("reading "+path, err)
	var se *secrets.Error
	if errors.As(e, &se) && se.Code == secrets.CodePermission {
		se.Reason += "; a version check reads " + path + ", so the token's policy needs \"read\" on it as well as on the data/ path"
	}
	return e
}
