// Package azurekv resolves keyward refs to secrets in Azure Key Vault, through
// the official SDK (github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets).
//
// A ref is a secret name, optionally with a version and a JSON field:
//
//	anthropic-prod                                   the current version
//	anthropic-prod/4387e9f3d6e14c459867679a90fd0f79  that version
//	anthropic-prod#api_key                           the api_key field of a JSON secret
//
// Names follow Key Vault's rule, 1-127 letters, digits and dashes; anything
// else is ErrInvalidRef before any request is made.
//
// The secret's exp attribute becomes Secret.ExpiresAt. Key Vault returns
// secrets outside their nbf/exp window on purpose; this package does not: a
// secret past exp is ErrExpired, one before nbf is ErrNotFound ("not valid
// before ..."), because for the caller there is no usable secret yet and
// retrying later can succeed. Secret.Version is the version from the secret's id.
//
// # Version checks
//
// Key Vault has no read of a secret's current version id that is cheaper
// than GetSecret: every secrets operation is billed alike ($0.03 per 10,000
// on the Standard tier at list price), GetSecret returns the value with the
// id, and the reads that carry ids without values are listings
// (secrets/list), paged, one operation a page, that do not say which
// version is current. A check would cost what the refresh it is meant to
// spare costs, and a noticed change two operations, so CurrentVersion
// (secrets.VersionChecker, which a cache with check= uses) answers
// errors.ErrUnsupported for a ref naming the current version, and a cache
// notices a change on Azure by reading the secret again: one operation,
// $0.000003. A ref pinning a version ("name/version") answers that version
// with no request.
//
// # URLs
//
// secrets.Open("azurekv://myvault.vault.azure.net") opens the vault at
// https://myvault.vault.azure.net/. The URL takes no query parameters and
// holds no credentials. A bare "azurekv://" (what secrets.DefaultConfig
// uses) takes the vault URL from AZURE_KEYVAULT_URL. The client and its
// credential are made on the first resolve (and again by the next call if
// that failed), with azidentity.NewDefaultAzureCredential, which reads:
//
//	AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET       a service principal with a secret
//	AZURE_CLIENT_CERTIFICATE_PATH (and _PASSWORD)               ... or with a certificate
//	AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID workload identity (AKS)
//	AZURE_CLIENT_ID                                             which user-assigned managed identity
//	AZURE_AUTHORITY_HOST                                        a sovereign cloud's Entra ID
//	AZURE_TOKEN_CREDENTIALS                                     restrict the chain ("prod", "dev", or one credential)
//
// and otherwise tries a managed identity, then the Azure CLI and Azure
// Developer CLI logins. The identity needs the "get" permission on secrets
// (the "Key Vault Secrets User" role).
//
// A host that already has a client uses New(client, opts); NewVault(vaultURL,
// opts) takes a credential and client options of its own.
//
// # Errors
//
// Every error is a *secrets.Error with Backend "azurekv":
//
//	404 (SecretNotFound), a missing #field, nbf in the future   ErrNotFound
//	exp in the past                                             ErrExpired
//	401, 403, a disabled secret, token or challenge failures    ErrPermission
//	429, 408 and 5xx after the SDK's retries, network failures   ErrUnavailable
//	a 200 whose body is not a secret bundle                      ErrUnavailable
//	a malformed ref, 400 BadParameter, #field of a non-JSON value ErrInvalidRef
//
// A disabled secret is ErrPermission whether Key Vault answers as it does
// (403 Forbidden, inner code SecretDisabled) or a vault emulator answers 200
// with enabled:false; the reason says the secret is disabled.
//
// Key Vault's error messages are never copied into an error: they may echo
// what was sent or stored. The cause of an error from a Key Vault answer is a
// *ResponseError holding the status and error codes only; errors.As also
// finds an *azcore.ResponseError behind it, a copy with the body removed, so
// its own Error text holds no value either. Errors follow the driver
// layer's rules (package driver): a caller's ended context is
// secrets.ContextError, so errors.Is(err, context.Canceled) holds and a
// deadline is also ErrUnavailable; after Close every call is ErrUnavailable.
//
// Ping asks for the secret named PingName, which needs only the "get"
// permission: a 404 means the vault answered and took the credentials.
package azurekv
