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
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/refs"
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

var _ secrets.KeyResolver = (*Store)(nil)
var _ secrets.Pinger = (*Store)(nil)

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
// concurrent use.
type Store struct {
	now func() time.Time

	// The client is made once, on first use, so that opening a Store from
	// configuration does no I/O and reads no credentials yet.
	once     sync.Once
	makeErr  error
	client   *azsecrets.Client
	vaultURL string
	cred     azcore.TokenCredential
	copts    *azsecrets.ClientOptions
}

// New returns a Store that reads secrets with client.
func New(client *azsecrets.Client, opts *Options) *Store {
	s := newStore(opts)
	s.client = client
	s.once.Do(func() {})
	if client == nil {
		s.makeErr = errors.New("azurekv.New was given a nil *azsecrets.Client")
	}
	return s
}

// NewVault returns a Store for the vault at vaultURL
// ("https://myvault.vault.azure.net/"). It only checks the URL: the
// credential and the client are made on the first Resolve or Ping.
func NewVault(vaultURL string, opts *Options) (*Store, error) {
	u, err := url.Parse(vaultURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef,
			Reason: "the vault URL must look like https://myvault.vault.azure.net/ (https, a host, no path, query or credentials)"}
	}
	s := newStore(opts)
	s.vaultURL = "https://" + u.Host + "/"
	if opts != nil {
		s.cred = opts.Credential
		if opts.ClientOptions != nil {
			co := *opts.ClientOptions
			s.copts = &co
		}
	}
	return s, nil
}

func newStore(opts *Options) *Store {
	s := &Store{now: time.Now}
	if opts != nil && opts.Now != nil {
		s.now = opts.Now
	}
	return s
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

// getClient returns the client, making it on first use.
func (s *Store) getClient() (*azsecrets.Client, error) {
	s.once.Do(func() {
		cred := s.cred
		if cred == nil {
			c, err := azidentity.NewDefaultAzureCredential(nil)
			if err != nil {
				// azidentity's construction errors name missing or
				// contradictory settings, never a secret value.
				s.makeErr = fmt.Errorf("cannot make DefaultAzureCredential (set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or use a managed identity or az login): %w", err)
				return
			}
			cred = c
		}
		c, err := azsecrets.NewClient(s.vaultURL, cred, s.copts)
		if err != nil {
			s.makeErr = fmt.Errorf("cannot make the Key Vault client: %w", err)
			return
		}
		s.client = c
	})
	return s.client, s.makeErr
}

// Key Vault's object name rule: 1-127 characters of [0-9a-zA-Z-].
var (
	nameRE    = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	versionRE = regexp.MustCompile(`^[0-9a-zA-Z]{1,64}$`)
)

// ref is a parsed azurekv ref: "name", "name/version", with an optional "#field".
type ref struct {
	name, version, field string
}

// parseRef parses and validates a ref. Its errors never quote the ref.
func parseRef(s string) (ref, error) {
	r, err := refs.Parse(s)
	if err != nil {
		return ref{}, err
	}
	name, version, hasVersion := strings.Cut(r.Path, "/")
	if !nameRE.MatchString(name) {
		return ref{}, errors.New("a Key Vault secret name is 1-127 letters, digits and dashes: write name, name/version or name#field")
	}
	if hasVersion && !versionRE.MatchString(version) {
		return ref{}, errors.New("the version after '/' must be a Key Vault version id (letters and digits, like 4387e9f3d6e14c459867679a90fd0f79)")
	}
	return ref{name: name, version: version, field: r.Field}, nil
}

// Resolve reads the secret ref names: "name" (the current version),
// "name/version", either with "#field" to pick one key of a JSON secret.
func (s *Store) Resolve(ctx context.Context, refStr string) (secrets.Secret, error) {
	secrets.InfoFrom(ctx).SetBackend(Backend)
	if err := ctx.Err(); err != nil {
		return secrets.Secret{}, ctxError(refStr, err)
	}
	r, err := parseRef(refStr)
	if err != nil {
		return secrets.Secret{}, fail(refStr, secrets.CodeInvalidRef, err.Error(), nil)
	}
	client, err := s.getClient()
	if err != nil {
		return secrets.Secret{}, fail(refStr, secrets.CodePermission, err.Error(), nil)
	}
	var raw *http.Response
	resp, err := client.GetSecret(policy.WithCaptureResponse(ctx, &raw), r.name, r.version, nil)
	if err != nil {
		return secrets.Secret{}, classify(ctx, refStr, raw, err)
	}
	return s.secret(refStr, r, resp.Secret)
}

// secret checks what Key Vault returned and turns it into a Secret.
func (s *Store) secret(refStr string, r ref, kv azsecrets.Secret) (secrets.Secret, error) {
	if kv.Value == nil {
		return secrets.Secret{}, fail(refStr, secrets.CodeUnavailable,
			"Key Vault answered 200 without a secret value (a proxy in the way?)", nil)
	}
	out := secrets.Secret{}
	if kv.ID != nil {
		out.Version = kv.ID.Version()
	}
	now := s.now()
	if a := kv.Attributes; a != nil {
		// Key Vault answers 403 for a disabled secret; a vault emulator or
		// an older API may answer 200 with enabled:false instead.
		if a.Enabled != nil && !*a.Enabled {
			return secrets.Secret{}, fail(refStr, secrets.CodePermission, disabledReason, nil)
		}
		// Key Vault returns secrets outside their nbf/exp window on purpose
		// (for testing); keyward enforces the window.
		if a.NotBefore != nil && now.Before(*a.NotBefore) {
			return secrets.Secret{}, fail(refStr, secrets.CodeNotFound,
				"the secret is not valid before "+a.NotBefore.UTC().Format(time.RFC3339)+" (its nbf attribute)", nil)
		}
		if a.Expires != nil {
			out.ExpiresAt = a.Expires.UTC()
			if out.ExpiredAt(now) {
				return secrets.Secret{}, fail(refStr, secrets.CodeExpired,
					"the secret expired at "+out.ExpiresAt.Format(time.RFC3339)+" (its exp attribute); set a new version in Key Vault", nil)
			}
		}
	}
	value := *kv.Value
	if r.field != "" {
		v, err := refs.Field([]byte(value), r.field)
		switch {
		case errors.Is(err, refs.ErrNoField):
			return secrets.Secret{}, fail(refStr, secrets.CodeNotFound, "the JSON secret has no field "+fmt.Sprintf("%q", r.field), nil)
		case err != nil:
			return secrets.Secret{}, fail(refStr, secrets.CodeInvalidRef, err.Error(), nil)
		}
		value = v
	}
	sec := secrets.NewSecret(value)
	sec.Version = out.Version
	sec.ExpiresAt = out.ExpiresAt
	return sec, nil
}

const disabledReason = "the secret is disabled in Key Vault (enabled: false); enable it or set a new version"

// Ping checks that the vault answers and accepts the credentials, by asking
// for PingName, which needs only the "get" permission. A 404 is success.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return &secrets.Error{Op: "ping", Backend: Backend, Code: ctxCode(err), Err: err}
	}
	client, err := s.getClient()
	if err != nil {
		return &secrets.Error{Op: "ping", Backend: Backend, Code: secrets.CodePermission, Reason: err.Error()}
	}
	var raw *http.Response
	_, err = client.GetSecret(policy.WithCaptureResponse(ctx, &raw), PingName, "", nil)
	if err == nil {
		return nil
	}
	e := classify(ctx, "", raw, err)
	if e.Code == secrets.CodeNotFound {
		return nil
	}
	e.Op = "ping"
	return e
}

func fail(refStr string, code secrets.Code, reason string, cause error) *secrets.Error {
	return &secrets.Error{Op: "resolve", Backend: Backend, Ref: refStr, Code: code, Reason: reason, Err: cause}
}

func ctxCode(err error) secrets.Code {
	if errors.Is(err, context.DeadlineExceeded) {
		return secrets.CodeUnavailable
	}
	return secrets.CodeUnknown
}

func ctxError(refStr string, err error) *secrets.Error {
	return fail(refStr, ctxCode(err), "", err)
}

// nonRetriable is what azcore's bearer-token policy marks credential and
// challenge failures with (its errorinfo package is internal to the SDK).
type nonRetriable interface {
	error
	NonRetriable()
}

// classify turns an error of GetSecret into a *secrets.Error. Key Vault's
// error bodies are never quoted: a message can echo what was sent or stored.
func classify(ctx context.Context, refStr string, raw *http.Response, err error) *secrets.Error {
	if cerr := ctx.Err(); cerr != nil {
		return ctxError(refStr, cerr)
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return classifyResponse(refStr, re)
	}
	if raw != nil && raw.StatusCode >= 200 && raw.StatusCode < 300 {
		// A 2xx whose body did not decode: the SDK's decode error may quote
		// the body, which holds the value, so it is dropped.
		return fail(refStr, secrets.CodeUnavailable,
			fmt.Sprintf("Key Vault answered %d with a body that is not a secret bundle (a proxy in the way?)", raw.StatusCode), nil)
	}
	var afe *azidentity.AuthenticationFailedError
	var nre nonRetriable
	switch {
	case errors.As(err, &afe):
		// Entra ID's error body explains the failure (AADSTS codes) and
		// holds no Key Vault secret, so the cause is kept.
		return fail(refStr, secrets.CodePermission, "cannot get a token for Key Vault from Entra ID", err)
	case errors.As(err, &nre):
		return fail(refStr, secrets.CodePermission,
			"cannot authenticate to Key Vault (the credential or the 401 challenge failed)", err)
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return fail(refStr, secrets.CodeUnavailable, "cannot reach Key Vault", err)
	}
	// Anything else came from neither the vault's body nor the network; its
	// text is the SDK's own.
	return fail(refStr, secrets.CodeUnknown, "", err)
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

func classifyResponse(refStr string, re *azcore.ResponseError) *secrets.Error {
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
		return fail(refStr, secrets.CodeNotFound, reason, cause)
	case status == http.StatusForbidden && (inner == "SecretDisabled" || strings.Contains(msg, "disabled secret")):
		return fail(refStr, secrets.CodePermission, disabledReason, cause)
	case status == http.StatusUnauthorized:
		return fail(refStr, secrets.CodePermission, "Key Vault rejected the token", cause)
	case status == http.StatusForbidden:
		return fail(refStr, secrets.CodePermission,
			"the identity may not get this secret (grant the \"Key Vault Secrets User\" role or a get access policy), or a firewall rule refused it", cause)
	case status == http.StatusTooManyRequests:
		return fail(refStr, secrets.CodeUnavailable, "Key Vault is throttling requests, still after the SDK's retries", cause)
	case status >= 500 || status == http.StatusRequestTimeout:
		return fail(refStr, secrets.CodeUnavailable, "Key Vault failed, still after the SDK's retries", cause)
	case status == http.StatusBadRequest:
		return fail(refStr, secrets.CodeInvalidRef, "Key Vault rejected the request as malformed", cause)
	}
	return fail(refStr, secrets.CodeUnknown, "unexpected answer from Key Vault", cause)
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
