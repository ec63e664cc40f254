package secrets

import "context"

// MaxVersions is the most versions ResolveVersions may be asked for. A key
// ring needs a few; a bound keeps one call from reading a secret's whole
// history (Vault keeps up to 10 versions by default, Key Vault keeps every
// one).
const MaxVersions = 25

// VersionResolver is an optional ability of a backend that keeps the
// history of a secret (AWS Secrets Manager's AWSCURRENT and AWSPREVIOUS,
// Vault KV v2 versions, Key Vault versions): reading its current version and
// the previous ones still readable, in one call. It is what lets a key ring
// live in a secret manager (fernetstore's ENCRYPTION_KEY_REF): the current
// version is the key that encrypts, the previous ones still decrypt.
//
// ResolveVersions returns between 1 and max secrets (max from 1 to
// MaxVersions), newest first: [0] is what Resolve would return for ref, and
// each one's Version names its version in the backend's form. A previous
// version the backend no longer serves (deleted, destroyed, disabled,
// expired) is left out; a current version that cannot be read fails the
// call, with the error Resolve would give. ref is backend-local, as for
// Resolve, and its #field is picked from every version: a current version
// without the field fails the call (ErrNotFound), a previous document
// without it is left out (the field was added after it), and a previous
// version that is not a document fails the call (ErrInvalidRef, naming the
// version) rather than quietly dropping a key. A ref that names one version itself (awssm ?version=, vault
// ?version=, azurekv name/version) is ErrInvalidRef. Errors never hold a
// value.
//
// A Mux has the ability, for the schemes whose backend has it; so has every
// backend served by the driver layer (driver.Resolver), failing with
// ErrInvalidRef for a backend that keeps no versions.
type VersionResolver interface {
	ResolveVersions(ctx context.Context, ref string, max int) ([]Secret, error)
}

// VersionWriter is an optional ability of a backend that keeps versions:
// storing value as the new current version of the secret ref names (AWS
// PutSecretValue, which moves AWSCURRENT to it and AWSPREVIOUS to the
// version it replaces; a Vault KV v2 write; Key Vault SetSecret), and
// returning the new version's id, in the form Secret.Version has. A secret
// that does not exist yet is created where the backend allows it. With a
// #field, the field of the current JSON document is set and its other
// fields are kept (a secret that does not exist becomes {"field": value}).
// It is what `keyward genkey --store REF` writes a new master key with.
// Errors never hold the value.
type VersionWriter interface {
	PutVersion(ctx context.Context, ref, value string) (version string, err error)
}
