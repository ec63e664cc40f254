package awssm

import (
	"context"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

var _ driver.VersionsGetter = (*sm)(nil)

// GetVersions reads the version labelled AWSCURRENT and, when max allows,
// the one labelled AWSPREVIOUS: the versions Secrets Manager keeps a label
// on, and the ones PutSecretValue moves (the new value becomes AWSCURRENT,
// the one it replaces AWSPREVIOUS). Older versions lose their labels and
// are not read. A secret without AWSPREVIOUS (never put twice) answers with
// its current version alone. The ref names the secret only: ?stage= and
// ?version= pick one version, which is not what a list of versions is.
func (d *sm) GetVersions(ctx context.Context, p driver.Ref, max int) ([]driver.Value, error) {
	r := toRef(p)
	if r.stage != "" || r.version != "" {
		return nil, driver.Errorf(secrets.CodeInvalidRef,
			"reading a secret's versions takes the secret alone (its AWSCURRENT and AWSPREVIOUS are read): leave out ?stage= and ?version=")
	}
	cur, err := d.get(ctx, ref{id: r.id})
	if err != nil {
		return nil, err
	}
	out := []driver.Value{cur}
	if max < 2 {
		return out, nil
	}
	prev, err := d.get(ctx, ref{id: r.id, stage: "AWSPREVIOUS"})
	switch {
	case err == nil && prev.Version != cur.Version:
		out = append(out, prev)
	case err == nil, secrets.CodeOf(err) == secrets.CodeNotFound:
		// No AWSPREVIOUS yet, or the label moved between the two calls.
	default:
		return nil, err
	}
	return out, nil
}
