package azurekv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// Backend is the name this package gives itself in errors and audit events.
const Backend = "azurekv"

// Scheme is the URL scheme Open knows this backend by.
const Scheme = "azurekv"

// PingName is the secret name Ping asks for. It need not exist: a 404 proves
// the vault answered and accepted the credentials.
const PingName = "keyward-ping"

func init() {
	secrets.Register(Scheme, openURL)
}

var (
	_ secrets.KeyResolver   = (*Store)(nil)
	_ secrets.BatchResolver = (*Store)(nil)
	_ secrets.Pinger        = (*Store)(nil)
	_ driver.Pinger         = (*kv)(nil)
)

// Options configures a Store. A nil *Options means defaults.
type Options struct {
	// Now returns the current time for the exp and nbf checks; nil means
	// time.Now. Tests inject a clock.
	Now func() time.Time

	// Credential is used by NewVault to authenticate; nil means
	// azidentity.NewDefaultAzureCredential, made on the first resolve.
	// New ignores it: the client passed in has its own.
	Credential azcore.TokenCredential

	// ClientOptions are passed by NewVault to azsecrets.NewClient (transport,
	// retries, DisableChallengeResourceVerification); nil means the SDK's
	// defaults. New ignores them.
	ClientOptions *azsecrets.ClientOptions
}

// Store resolves refs to secrets in one Azure Key Vault. It is safe for
// concurrent use. Resolve, ResolveMany, Ping and Close come from the driver
// layer (driver.Resolver), which makes the client on first use.
type Store struct {
	*driver.Resolver
}

// kv is the Store's driver: one client and the clock for nbf.
type kv struct {
	client *azsecrets.Client
	now    func() time.Time
}

// New returns a Store that reads secrets with client.
func New(client *azsecrets.Client, opts *Options) *Store {
	now := nowOf(opts)
	return newStore(func(context.Context) (driver.Driver, error) {
		if client == nil {
			return nil, driver.Errorf(secrets.CodePermission, "azurekv.New was given a nil *azsecrets.Client")
		}
		return &kv{client: client, now: now}, nil
	}, now)
}

// NewVault returns a Store for the vault at vaultURL
// ("https://myvault.vault.azure.net/"). It only checks the URL: the
// credential and the client are made on the first Resolve or Ping, and made
// again on the next call if that failed.
func NewVault(vaultURL string, opts *Options) (*Store, error) {
	u, err := url.Parse(vaultURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef,
			Reason: "the vault URL must look like https://myvault.vault.azure.net/ (https, a host, no path, query or credentials)"}
	}
	vaultURL = "https://" + u.Host + "/"
	var cred azcore.TokenCredential
	var copts *azsecrets.ClientOptions
	if opts != nil {
		cred = opts.Credential
		if opts.ClientOptions != nil {
			co := *opts.ClientOptions
			copts = &co
		}
	}
	now := nowOf(opts)
	return newStore(func(context.Context) (driver.Driver, error) {
		c, err := newClient(vaultURL, cred, copts)
		if err != nil {
			return nil, err
		}
		return &kv{client: c, now: now}, nil
	}, now), nil
}

func nowOf(opts *Options) func() time.Time {
	if opts != nil && opts.Now != nil {
		return opts.Now
	}
	return time.Now
}

func newStore(open func(context.Context) (driver.Driver, error), now func() time.Time) *Store {
	// Names are checked before the open: a bad name is ErrInvalidRef
	// whatever the credential's state, and costs nothing.
	check := func(ref driver.Ref) error { _, _, err := splitName(ref.Name); return err }
	return &Store{driver.Open(Backend, open, &driver.Options{Now: now, Check: check})}
}

// newClient makes the Key Vault client, with DefaultAzureCredential when
// cred is nil.
func newClient(vaultURL string, cred azcore.TokenCredential, copts *azsecrets.ClientOptions) (*azsecrets.Client, error) {
	if cred == nil {
		c, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			// azidentity's construction errors name missing or
			// contradictory settings, never a secret value.
			return nil, driver.Wrap(secrets.CodePermission, err, "cannot make DefaultAzureCredential (set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or use a managed identity or az login)")
		}
		cred = c
	}
	c, err := azsecrets.NewClient(vaultURL, cred, copts)
	if err != nil {
		return nil, driver.Wrap(secrets.CodePermission, err, "cannot make the Key Vault client")
	}
	return c, nil
}

// VaultURLEnv names the variable a bare azurekv:// URL takes its vault from
// ("https://myvault.vault.azure.net/").
const VaultURLEnv = "AZURE_KEYVAULT_URL"

// openURL opens "azurekv://myvault.vault.azure.net": the host names the
// vault; credentials come from DefaultAzureCredential's environment. A bare
// "azurekv://" takes the vault URL from AZURE_KEYVAULT_URL.
func openURL(_ context.Context, u *url.URL) (secrets.KeyResolver, error) {
	if err := secrets.CheckParams(u); err != nil {
		return nil, err
	}
	if (u.Path != "" && u.Path != "/") || u.Fragment != "" || u.Opaque != "" {
		return nil, &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef,
			Reason: "write the URL as azurekv://<vault-name>.vault.azure.net, with the vault's host and nothing else"}
	}
	if u.Host == "" {
		// The default configuration says only azurekv://: the vault comes
		// from the environment, as in Azure's own samples.
		vaultURL := os.Getenv(VaultURLEnv)
		if vaultURL == "" {
			return nil, &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef,
				Reason: "no vault named: write azurekv://<vault-name>.vault.azure.net or set " + VaultURLEnv}
		}
		return NewVault(vaultURL, nil)
	}
	return NewVault("https://"+u.Host+"/", nil)
}

// Key Vault's object name rule: 1-127 characters of [0-9a-zA-Z-].
var (
	nameRE    = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	versionRE = regexp.MustCompile(`^[0-9a-zA-Z]{1,64}$`)
)

// splitName checks a ref's name, "name" or "name/version", against Key
// Vault's rules. Its errors never quote the ref.
func splitName(path string) (name, version string, err error) {
	name, version, hasVersion := strings.Cut(path, "/")
	if !nameRE.MatchString(name) {
		return "", "", driver.Errorf(secrets.CodeInvalidRef, "a Key Vault secret name is 1-127 letters, digits and dashes: write name, name/version or name#field")
	}
	if hasVersion && !versionRE.MatchString(version) {
		return "", "", driver.Errorf(secrets.CodeInvalidRef, "the version after '/' must be a Key Vault version id (letters and digits, like 4387e9f3d6e14c459867679a90fd0f79)")
	}
	return name, version, nil
}

// Get reads the secret ref names: "name" (the current version) or
// "name/version", already checked; the core picks a #field.
func (d *kv) Get(ctx context.Context, ref driver.Ref) (driver.Value, error) {
	name, version, _ := strings.Cut(ref.Name, "/")
	var raw *http.Response
	resp, err := d.client.GetSecret(policy.WithCaptureResponse(ctx, &raw), name, version, nil)
	if err != nil {
		return driver.Value{}, classify(raw, err)
	}
	return d.value(resp.Secret)
}

// value checks what Key Vault returned and turns it into a Value; the core
// checks exp.
func (d *kv) value(sec azsecrets.Secret) (driver.Value, error) {
	if sec.Value == nil {
		return driver.Value{}, driver.Errorf(secrets.CodeUnavailable, "Key Vault answered 200 without a secret value (a proxy in the way?)")
	}
	v := driver.Value{Data: *sec.Value}
	if sec.ID != nil {
		v.Version = sec.ID.Version()
	}
	if a := sec.Attributes; a != nil {
		// Key Vault answers 403 for a disabled secret; a vault emulator or
		// an older API may answer 200 with enabled:false instead.
		if a.Enabled != nil && !*a.Enabled {
			return driver.Value{}, driver.Errorf(secrets.CodePermission, disabledReason)
		}
		// Key Vault returns secrets outside their nbf/exp window on purpose
		// (for testing); keyward enforces the window.
		if a.NotBefore != nil && d.now().Before(*a.NotBefore) {
			return driver.Value{}, driver.Errorf(secrets.CodeNotFound,
				"the secret is not valid before %s (its nbf attribute)", a.NotBefore.UTC().Format(time.RFC3339))
		}
		if a.Expires != nil {
			v.ExpiresAt = a.Expires.UTC()
		}
	}
	return v, nil
}

const disabledReason = "the secret is disabled in Key Vault (enabled: false); enable it or set a new version"

// Ping checks that the vault answers and accepts the credentials, by asking
// for PingName, which needs only the "get" permission. A 404 is success.
func (d *kv) Ping(ctx context.Context) error {
	var raw *http.Response
	_, err := d.client.GetSecret(policy.WithCaptureResponse(ctx, &raw), PingName, "", nil)
	if err == nil {
		return nil
	}
	if err := classify(raw, err); !errors.Is(err, secrets.ErrNotFound) {
		return err
	}
	return nil
}

// nonRetriable is what azcore's bearer-token policy marks credential and
// challenge failures with (its errorinfo package is internal to the SDK).
type nonRetriable interface {
	error
	NonRetriable()
}

// classify turns an error of GetSecret into a driver error. Key Vault's
// error bodies are never quoted: a message can echo what was sent or stored.
// The context's own errors are returned as they are, for the core's rule.
func classify(raw *http.Response, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return classifyResponse(re)
	}
	if raw != nil && raw.StatusCode >= 200 && raw.StatusCode < 300 {
		// A 2xx whose body did not decode: the SDK's decode error may quote
		// the body, which holds the value, so it is dropped.
		return driver.Errorf(secrets.CodeUnavailable, "Key Vault answered %d with a body that is not a secret bundle (a proxy in the way?)", raw.StatusCode)
	}
	var afe *azidentity.AuthenticationFailedError
	var nre nonRetriable
	switch {
	case errors.As(err, &afe):
		// Entra ID's error body explains the failure (AADSTS codes) and
		// holds no Key Vault secret, so the cause is kept.
		return driver.Wrap(secrets.CodePermission, err, "cannot get a token for Key Vault from Entra ID")
	case errors.As(err, &nre):
		return driver.Wrap(secrets.CodePermission, err, "cannot authenticate to Key Vault (the credential or the 401 challenge failed)")
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return driver.Wrap(secrets.CodeUnavailable, err, "cannot reach Key Vault")
	}
	// Anything else came from neither the vault's body nor the network; its
	// text is the SDK's own.
	return driver.Wrap(secrets.CodeUnknown, err, "")
}

// kvError is the part of Key Vault's error body keyward reads. The message is
// read only to recognise a few cases and never copied into an error.
type kvError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError *struct {
			Code string `json:"code"`
		} `json:"innererror"`
	} `json:"error"`
}

var codeRE = regexp.MustCompile(`^[A-Za-z]{1,64}$`)

// safeCode returns c if it looks like one of Key Vault's error codes, which
// are words ("SecretNotFound", "ForbiddenByRbac"), and "" otherwise: a body
// that echoes a value into its code field (API keys have digits and dashes)
// must not get it into the error through the code either.
func safeCode(c string) string {
	if codeRE.MatchString(c) {
		return c
	}
	return ""
}

func classifyResponse(re *azcore.ResponseError) error {
	var body kvError
	if re.RawResponse != nil {
		if b, err := runtime.Payload(re.RawResponse); err == nil {
			_ = json.Unmarshal(b, &body) // a body that is not Key Vault's JSON leaves the codes empty
		}
	}
	code := safeCode(re.ErrorCode)
	inner := ""
	if body.Error.InnerError != nil {
		inner = safeCode(body.Error.InnerError.Code)
	}
	msg := strings.ToLower(body.Error.Message)
	cause := &ResponseError{StatusCode: re.StatusCode, ErrorCode: code, InnerCode: inner, sdk: sanitize(re, code)}
	status := re.StatusCode
	switch {
	case status == http.StatusNotFound:
		reason := "no such secret (or version) in the vault"
		if strings.Contains(msg, "deleted but recoverable") {
			reason = "the secret is deleted (recoverable until purged); recover it or set it again"
		}
		return driver.Wrap(secrets.CodeNotFound, cause, "%s", reason)
	case status == http.StatusForbidden && (inner == "SecretDisabled" || strings.Contains(msg, "disabled secret")):
		return driver.Wrap(secrets.CodePermission, cause, disabledReason)
	case status == http.StatusUnauthorized:
		return driver.Wrap(secrets.CodePermission, cause, "Key Vault rejected the token")
	case status == http.StatusForbidden:
		return driver.Wrap(secrets.CodePermission, cause, "the identity may not get this secret (grant the \"Key Vault Secrets User\" role or a get access policy), or a firewall rule refused it")
	case status == http.StatusTooManyRequests:
		return driver.Wrap(secrets.CodeUnavailable, cause, "Key Vault is throttling requests, still after the SDK's retries")
	case status >= 500 || status == http.StatusRequestTimeout:
		return driver.Wrap(secrets.CodeUnavailable, cause, "Key Vault failed, still after the SDK's retries")
	case status == http.StatusBadRequest:
		return driver.Wrap(secrets.CodeInvalidRef, cause, "Key Vault rejected the request as malformed")
	}
	return driver.Wrap(secrets.CodeUnknown, cause, "unexpected answer from Key Vault")
}

// ResponseError is the cause of an error from a Key Vault answer. It holds
// the status and codes but none of the body, whose message may echo a value.
// errors.As also finds an *azcore.ResponseError behind it, a copy whose
// response has the body removed and the request's headers dropped.
type ResponseError struct {
	StatusCode int    // the HTTP status
	ErrorCode  string // Key Vault's error.code ("SecretNotFound", "Forbidden", ...), "" if none
	InnerCode  string // Key Vault's error.innererror.code ("SecretDisabled", "ForbiddenByRbac", ...)
	sdk        *azcore.ResponseError
}

// Error returns the status and codes, never the body.
func (e *ResponseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Key Vault answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.ErrorCode != "" {
		b.WriteString(" (" + e.ErrorCode)
		if e.InnerCode != "" {
			b.WriteString("/" + e.InnerCode)
		}
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the sanitized *azcore.ResponseError.
func (e *ResponseError) Unwrap() error { return e.sdk }

// sanitize copies re without anything that could hold a value: the body,
// the server's status text, and the request (whose headers carry the token).
func sanitize(re *azcore.ResponseError, code string) *azcore.ResponseError {
	out := &azcore.ResponseError{ErrorCode: code, StatusCode: re.StatusCode}
	if r := re.RawResponse; r != nil {
		resp := &http.Response{
			Status:     fmt.Sprintf("%d %s", r.StatusCode, http.StatusText(r.StatusCode)),
			StatusCode: r.StatusCode,
			Proto:      r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
			Header: r.Header.Clone(),
			Body:   http.NoBody,
		}
		if r.Request != nil && r.Request.URL != nil {
			u := *r.Request.URL
			u.User = nil
			resp.Request = &http.Request{Method: r.Request.Method, URL: &u, Header: http.Header{}}
		}
		out.RawResponse = resp
	}
	return out
}
