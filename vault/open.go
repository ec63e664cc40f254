package vault

import (
	"context"
	"net/url"

	secrets "github.com/keyward/secrets"
)

func init() { secrets.Register("vault", OpenURL) }

// OpenURL opens a Store from a URL that names what to read, never how to
// log in: vault://?mount=secret&auth=approle. The Vault client comes from
// the environment (VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_CACERT,
// ...) on first use; see the package documentation for the parameters.
func OpenURL(_ context.Context, u *url.URL) (secrets.KeyResolver, error) {
	if err := secrets.CheckParams(u, "mount", "auth", "role", "auth_mount"); err != nil {
		return nil, err
	}
	fail := func(reason string) (secrets.KeyResolver, error) {
		return nil, &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef, Reason: reason}
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return fail("the vault URL takes no host or path: set the address in VAULT_ADDR and the mount with ?mount=")
	}
	q := u.Query()
	mount, err := cleanMount(q.Get("mount"))
	if err != nil {
		return fail(err.Error())
	}
	opts := &Options{Mount: mount}
	role, authMount := q.Get("role"), q.Get("auth_mount")
	switch q.Get("auth") {
	case "", "token":
		if role != "" || authMount != "" {
			return fail("role and auth_mount are for auth=approle or auth=kubernetes")
		}
	case "approle":
		if role != "" {
			return fail("auth=approle takes its role id from VAULT_ROLE_ID or VAULT_ROLE_ID_FILE, not ?role=")
		}
		opts.Auth = appRoleAuth(authMount)
	case "kubernetes":
		if role == "" {
			return fail("auth=kubernetes needs ?role=<the Vault role bound to this service account>")
		}
		opts.Auth = kubernetesAuth(role, authMount)
	default:
		return fail("unknown auth method: use auth=token (VAULT_TOKEN), auth=approle or auth=kubernetes")
	}
	return New(nil, opts), nil
}
