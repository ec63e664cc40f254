package vault

import (
	"context"
	"fmt"
	"strings"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

var _ driver.VersionPutter = (*conn)(nil)

// PutVersion writes v as a new version of a KV v2 secret (a write to
// mount/data/path, which Vault numbers one above the latest) and returns
// its number. A plain value is stored as {"value": ...}, the form `vault kv
// put path value=...` makes and Resolve reads back as the value itself; a
// document (a #field set by the core) is stored as its fields. A KV v1
// mount is refused: a write there replaces the value and keeps no previous
// version, so rows under the old key could no longer be read.
func (d *conn) PutVersion(ctx context.Context, ref driver.Ref, v driver.Value) (string, error) {
	full, version, err := target(d.prefix, ref)
	if err != nil {
		return "", err
	}
	if version > 0 {
		return "", driver.Errorf(secrets.CodeInvalidRef, "a new version is written after the latest: leave out ?version=")
	}
	m, err := d.mountFor(ctx, full)
	if err != nil {
		return "", err
	}
	if m.kind != kvV2 {
		return "", driver.Errorf(secrets.CodeInvalidRef,
			"%s is %s, which keeps no previous versions: a new key written there would replace the old one; keep it in a KV version 2 mount", m.path, m.describe())
	}
	data := v.Document
	if data == nil {
		data = map[string]any{"value": v.Data}
	}
	path := m.path + "data/" + strings.TrimPrefix(full, m.path)
	sec, err := d.client.Logical().WriteWithContext(ctx, path, map[string]any{"data": data})
	if err != nil {
		err = classify("writing "+path, err)
		if se, ok := err.(*secrets.Error); ok && se.Code == secrets.CodePermission {
			c := *se
			c.Reason = "writing " + path + ": Vault denied access: the token's policies do not allow create and update on this path, or the token expired or was revoked"
			return "", &c
		}
		return "", err
	}
	if sec == nil || sec.Data["version"] == nil {
		return "", driver.Errorf(secrets.CodeUnavailable, "writing %s: Vault's answer names no version", path)
	}
	return fmt.Sprint(sec.Data["version"]), nil
}
