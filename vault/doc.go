// Package vault resolves refs from HashiCorp Vault: KV version 1 and 2
// secrets engines, and, read as dynamic secrets, any other engine's paths
// (database/creds/app). It is built on github.com/hashicorp/vault/api.
//
// A ref is "mount/path#field", or "path#field" when the Store has a default
// mount: "secret/bots/anthropic#api_key", or "bots/anthropic#api_key" with
// mount "secret". Refs never contain KV v2's "data/": the Store finds out on
// the first resolve in a mount (sys/internal/ui/mounts) whether it is KV v1
// or v2, remembers it, and reads every later ref in that mount with one
// request. "?version=N" reads version N of a KV v2 secret.
//
// The secret's keys are its document: "#field" picks one (strings as they
// are, anything else as JSON), and a ref without "#field" gives the whole
// map as a JSON object. A secret whose only key is "value" (vault kv put
// secret/x value=sk-...) is that value, and "#field" then picks from it when
// it is a JSON object.
//
// Refs are checked before anything is sent: a leading '/', a '.' or '..'
// segment (also %-encoded, also twice), an empty segment, a backslash, or
// (without a default mount) Vault's own sys/, auth/ and identity/ paths are
// ErrInvalidRef, so no ref can step out of its mount.
//
// Authentication is Vault's token (VAULT_TOKEN), checked with lookup-self on
// first use and its expiry reported (TokenExpiry, and a log line), or a login
// method (Options.Auth: AppRole, Kubernetes, any api.AuthMethod) whose token
// the Store renews with api.LifetimeWatcher and re-acquires by logging in
// again when renewal is no longer possible or the token is revoked. Close
// stops the renewal and releases the keep-alive connections of a client the
// Store made from the environment (a client given to New is left alone).
//
// Secret.Version is the KV v2 version number; Secret.ExpiresAt is set from
// a dynamic secret's lease, so a cache in front refreshes it in time.
// ResolveMany reads a path once for all its #fields, so
// database/creds/app#username and #password in one batch come from one lease.
//
// The Store is served through the driver layer (package driver): it is
// opened on first use, on the caller's ctx, by the callers that arrive
// meanwhile together, and opened again by the next call if that failed;
// Ping opens it too, then checks sys/health (initialized and unsealed).
//
// # Version checks
//
// CurrentVersion (secrets.VersionChecker, which a cache with check= uses to
// keep an entry long and still notice a new version) reads a KV v2
// secret's metadata, GET <mount>/metadata/<path>, one request that returns
// no value, and answers its current_version in the form of Secret.Version
// ("3"); a deleted or destroyed current version is ErrNotFound, as for
// Resolve, and a ?version=N ref answers N with no request. A Vault you run
// has no price per request: a check costs one request against the server
// and its rate-limit quotas, and its answer lists the metadata of every
// version kept (max_versions), never a value. The token's policy needs
// "read" on the metadata path as well as on data/. KV v1 keeps no versions
// and other engines have leases: both answer errors.ErrUnsupported, and a
// change is noticed by reading the secret again.
//
// # URLs
//
// Registered as "vault":
//
//	vault://?mount=secret
//	vault://?mount=secret&auth=approle
//	vault://?mount=secret&auth=kubernetes&role=chat-service
//
// Parameters: mount (the default mount, or a path inside one; empty means
// refs name their mount), auth (token, the default; approle; kubernetes),
// role (the Kubernetes auth role), auth_mount (where the auth method is
// mounted, when not at its default path). Unknown parameters are an error,
// and the URL holds no host and nothing secret. Everything else comes from
// the environment, read on first use:
//
//   - VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT, VAULT_CAPATH,
//     VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_SKIP_VERIFY,
//     VAULT_MAX_RETRIES, VAULT_CLIENT_TIMEOUT, ...: Vault's own
//     client settings (api.DefaultConfig).
//   - VAULT_TOKEN: the token for auth=token.
//   - VAULT_ROLE_ID or VAULT_ROLE_ID_FILE, and VAULT_SECRET_ID or
//     VAULT_SECRET_ID_FILE: the AppRole credentials for auth=approle,
//     read again at every login so a rotated secret id file is picked up.
//   - VAULT_KUBERNETES_TOKEN_FILE: the service-account JWT for
//     auth=kubernetes (default DefaultKubernetesTokenFile), read again at
//     every login because Kubernetes rotates it.
//
// # Errors
//
//   - ErrNotFound: no secret at the path, a deleted or destroyed KV v2
//     version, a missing version, or a #field the secret lacks.
//   - ErrPermission: Vault answered 403 (the token's policies do not reach
//     the path, or the mount does not exist: Vault does not say which), the
//     token is missing, invalid or expired, or a login failed.
//   - ErrInvalidRef: the ref is malformed or escapes its mount, ?version is
//     used on a KV v1 mount, or #field is used on a value that is not a JSON
//     object; or the client cannot be made from the environment: a
//     VAULT_ADDR, VAULT_AGENT_ADDR, VAULT_PROXY_ADDR or VAULT_HTTP_PROXY that
//     is not a URL is named, never quoted (its user info may hold a password).
//   - ErrUnavailable: Vault is sealed, answers 5xx or 429, cannot be
//     reached, or timed out; and every call after Close, Ping included.
//
// Vault's error bodies are not repeated: messages give the HTTP status and,
// for a few known phrases ("permission denied", "Vault is sealed"), the
// phrase. The api's *api.ResponseError stays reachable with errors.As. A
// caller's ended context is secrets.ContextError: an *secrets.Error naming
// the backend and the ref that errors.Is the context's error (a deadline is
// also ErrUnavailable).
package vault
