package vault

import (
	"context"
	"strconv"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

var _ driver.VersionsGetter = (*conn)(nil)

// GetVersions reads a KV v2 secret's latest version, then the versions
// before it, newest first, until it has max: a deleted or destroyed
// version, or one Vault no longer keeps (past the mount's max_versions), is
// skipped. It looks back at most 2*max version numbers, so a secret with a
// long run of deleted versions costs a bounded number of reads. Each read
// is a data read (GET mount/data/path?version=N): no metadata permission is
// needed. A KV v1 mount keeps no previous versions, so it is refused: a
// ring read from it would lose its old key at the first new one.
func (d *conn) GetVersions(ctx context.Context, ref driver.Ref, max int) ([]driver.Value, error) {
	full, version, err := target(d.prefix, ref)
	if err != nil {
		return nil, err
	}
	if version > 0 {
		return nil, driver.Errorf(secrets.CodeInvalidRef, "reading a secret's versions starts at its latest: leave out ?version=")
	}
	m, err := d.mountFor(ctx, full)
	if err != nil {
		return nil, err
	}
	if m.kind != kvV2 {
		return nil, driver.Errorf(secrets.CodeInvalidRef,
			"%s is %s, which keeps no previous versions of a secret: keep it in a KV version 2 mount", m.path, m.describe())
	}
	read := func(n int) (driver.Value, error) {
		path, params := m.readPath(full, n)
		sec, err := d.read(ctx, path, params)
		if err != nil {
			return driver.Value{}, classify("reading "+path, err)
		}
		return d.value(m, sec, ref.Field)
	}
	cur, err := read(0)
	if err != nil {
		return nil, err
	}
	out := []driver.Value{cur}
	latest, err := strconv.Atoi(cur.Version)
	if err != nil {
		return out, nil // no version number to count down from
	}
	for n := latest - 1; n >= 1 && n >= latest-2*max && len(out) < max; n-- {
		v, err := read(n)
		switch {
		case err == nil:
			out = append(out, v)
		case secrets.CodeOf(err) == secrets.CodeNotFound:
			// Deleted, destroyed or no longer kept.
		default:
			return nil, err
		}
	}
	return out, nil
}
