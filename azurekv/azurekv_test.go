package azurekv_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/azurekv"
	"github.com/keyward/secrets/internal/azurekvtest"
	"github.com/keyward/secrets/secretstest"
)

func token() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// env is one in-process vault and a Store reading it through the real SDK.
type env struct {
	srv    *azurekvtest.Server
	client *azsecrets.Client
	cred   *azurekvtest.Credential
	store  *azurekv.Store
	now    time.Time
}

const retries = 2 // the SDK makes retries+1 attempts

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := azurekvtest.NewServer()
	t.Cleanup(srv.Close)
	client, cred, err := srv.NewClient(retries)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, client: client, cred: cred, now: time.Now()}
	e.store = azurekv.New(client, &azurekv.Options{Now: func() time.Time { return e.now }})
	return e
}

func (e *env) resolve(t *testing.T, ref string) (secrets.Secret, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.store.Resolve(ctx, ref)
}

// wantErr checks err's code, backend and that its text (in every format)
// holds none of the values.
func wantErr(t *testing.T, err error, code secrets.Code, reasonPart string, values ...string) *secrets.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", code)
	}
	var e *secrets.Error
	if !errors.As(err, &e) {
		t.Fatalf("%T is not a *secrets.Error: %v", err, err)
	}
	if !errors.Is(err, code) || e.Code != code {
		t.Fatalf("got code %v (%v), want %v", e.Code, err, code)
	}
	if e.Backend != azurekv.Backend {
		t.Errorf("Backend = %q, want %q", e.Backend, azurekv.Backend)
	}
	if !strings.Contains(err.Error(), reasonPart) {
		t.Errorf("error %q does not say %q", err, reasonPart)
	}
	text := fmt.Sprintf("%v|%+v|%#v|%s", err, err, err, err)
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		text += re.Error()
	}
	for _, v := range values {
		if strings.Contains(text, v) {
			t.Errorf("the error shows a secret value (%d bytes)", len(v))
		}
	}
	return e
}

// sdkErr describes an SDK error without its text, which can quote a request
// or response body holding a value.
func sdkErr(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fmt.Sprintf("status %d, code %q", re.StatusCode, re.ErrorCode)
	}
	return fmt.Sprintf("%T", err)
}

// staticCred hands out a fixed token, one the vault may not accept.
type staticCred string

func (c staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(c), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestConformance(t *testing.T) {
	secretstest.RunConformance(t, secretstest.Harness{
		New: func(t *testing.T) secretstest.Subject {
			e := newEnv(t)
			e.store = azurekv.New(e.client, nil)
			t.Cleanup(func() { e.store.Close() })
			return secretstest.Subject{Resolver: e.store, Put: e.put}
		},
		Backend:    azurekv.Backend,
		MissingRef: "no-such-secret",
		InvalidRefs: []string{
			"bad_name", "has space", strings.Repeat("a", 128), "a/b/c", "name/ver-sion", "name/",
			"/version", "name?x=1", "ключ", "name#",
		},
		Documents: true,
		Expiry:    true,
	})
}

// put stores value through the SDK, as the conformance suite's Put.
func (e *env) put(t *testing.T, name, value string, expiresAt time.Time) (string, error) {
	// Key Vault names allow no '_'.
	name = strings.ReplaceAll(name, "_", "-")
	p := azsecrets.SetSecretParameters{Value: &value}
	if !expiresAt.IsZero() {
		p.SecretAttributes = &azsecrets.SecretAttributes{Expires: &expiresAt}
	}
	_, err := e.client.SetSecret(context.Background(), name, p, nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && len(value) > azurekvtest.MaxValueBytes {
		return "", fmt.Errorf("%w: Key Vault holds at most 25 KiB", secretstest.ErrUnsupported)
	}
	if err != nil {
		// The SDK's error shows the request body; never print it.
		return "", fmt.Errorf("SetSecret failed: %s", sdkErr(err))
	}
	return name, nil
}

func TestChallengeHandshake(t *testing.T) {
	e := newEnv(t)
	ver := e.srv.Set("greeting", "sk-ant-test-"+token(), azurekvtest.Attributes{})
	s, err := e.resolve(t, "greeting")
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != ver {
		t.Errorf("Version = %q, want %q", s.Version, ver)
	}
	log := e.srv.Log()
	if len(log) != 2 {
		t.Fatalf("server saw %d requests, want 2 (the challenge, then the authorized retry): %+v", len(log), log)
	}
	if log[0].Authorized || log[0].Status != http.StatusUnauthorized {
		t.Errorf("first request = %+v, want an unauthenticated request answered 401", log[0])
	}
	if !log[1].Authorized || log[1].Status != http.StatusOK {
		t.Errorf("second request = %+v, want the bearer token answered 200", log[1])
	}
	calls, tro := e.cred.Calls()
	if calls != 1 {
		t.Errorf("GetToken called %d times, want 1", calls)
	}
	if tro.TenantID != e.srv.TenantID {
		t.Errorf("token asked for tenant %q, want the challenge's %q", tro.TenantID, e.srv.TenantID)
	}
	if len(tro.Scopes) != 1 || tro.Scopes[0] != azurekvtest.Resource+"/.default" {
		t.Errorf("token asked for scopes %q, want the challenge's resource", tro.Scopes)
	}
	// The token is reused: a second resolve is one request, no new challenge.
	if _, err := e.resolve(t, "greeting"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.srv.Log()); n != 3 {
		t.Errorf("after a second resolve the server saw %d requests, want 3", n)
	}
}

// With the SDK's default check on, a challenge naming vault.azure.net for a
// vault at 127.0.0.1 is refused before any token is sent.
func TestChallengeResourceVerified(t *testing.T) {
	srv := azurekvtest.NewServer()
	defer srv.Close()
	opts := srv.ClientOptions(retries)
	opts.DisableChallengeResourceVerification = false
	cred := srv.Credential()
	client, err := azsecrets.NewClient(srv.URL, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Set("greeting", "sk-ant-test-"+token(), azurekvtest.Attributes{})
	_, err = azurekv.New(client, nil).Resolve(context.Background(), "greeting")
	wantErr(t, err, secrets.CodePermission, "cannot authenticate")
	if n, _ := cred.Calls(); n != 0 {
		t.Errorf("GetToken called %d times; no token may be asked for a mismatched challenge", n)
	}
}

func TestCredentialFailure(t *testing.T) {
	e := newEnv(t)
	e.srv.Set("greeting", "sk-ant-test-"+token(), azurekvtest.Attributes{})
	e.cred.Fail(errors.New("no identity configured"))
	_, err := e.resolve(t, "greeting")
	wantErr(t, err, secrets.CodePermission, "no identity configured")
	for _, ev := range e.srv.Log() {
		if ev.Authorized {
			t.Errorf("an authorized request reached the server without a token: %+v", ev)
		}
	}
}

func TestVersions(t *testing.T) {
	e := newEnv(t)
	v1val, v2val := "sk-ant-v1-"+token(), "sk-ant-v2-"+token()
	v1 := e.srv.Set("rotating", v1val, azurekvtest.Attributes{})
	v2 := e.srv.Set("rotating", v2val, azurekvtest.Attributes{})
	for _, c := range []struct{ ref, want, ver string }{
		{"rotating", v2val, v2},
		{"rotating/" + v1, v1val, v1},
		{"rotating/" + v2, v2val, v2},
	} {
		s, err := e.resolve(t, c.ref)
		if err != nil {
			t.Fatalf("%s: %v", c.ref, err)
		}
		if s.Reveal() != c.want || s.Version != c.ver {
			t.Errorf("%s: got version %q (value matches: %v), want version %q", c.ref, s.Version, s.Reveal() == c.want, c.ver)
		}
	}
	_, err := e.resolve(t, "rotating/0123456789abcdef0123456789abcdef")
	wantErr(t, err, secrets.CodeNotFound, "no such secret")
}

func TestNotFound(t *testing.T) {
	e := newEnv(t)
	_, err := e.resolve(t, "missing")
	ke := wantErr(t, err, secrets.CodeNotFound, "no such secret")
	var re *azurekv.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 404 || re.ErrorCode != "SecretNotFound" {
		t.Fatalf("cause = %#v, want a 404 SecretNotFound *ResponseError", ke.Err)
	}
	var are *azcore.ResponseError
	if !errors.As(err, &are) || are.StatusCode != 404 || are.ErrorCode != "SecretNotFound" {
		t.Fatalf("errors.As found no sanitized *azcore.ResponseError: %v", err)
	}
	if e.srv.Gets("missing") != 1 {
		t.Errorf("a 404 was retried: %d GETs", e.srv.Gets("missing"))
	}
}

func TestDeletedSecret(t *testing.T) {
	e := newEnv(t)
	e.srv.Inject(azurekvtest.Fault{Name: "gone", Status: 404, Body: azurekvtest.ErrorBody("SecretNotFound", "",
		"Secret gone is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.")})
	_, err := e.resolve(t, "gone")
	wantErr(t, err, secrets.CodeNotFound, "deleted")
}

func TestForbidden(t *testing.T) {
	e := newEnv(t)
	v := "sk-ant-test-" + token()
	e.srv.Set("locked", v, azurekvtest.Attributes{})
	e.srv.Inject(azurekvtest.Fault{Name: "locked", Status: 403, Body: azurekvtest.ErrorBody("Forbidden", "ForbiddenByRbac",
		"Caller is not authorized to perform action on resource. Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'")})
	_, err := e.resolve(t, "locked")
	wantErr(t, err, secrets.CodePermission, "may not get this secret", v)
	var re *azurekv.ResponseError
	if !errors.As(err, &re) || re.InnerCode != "ForbiddenByRbac" {
		t.Errorf("cause lacks the inner code: %v", err)
	}
	if n := e.srv.Gets("locked"); n != 1 {
		t.Errorf("a 403 was retried: %d GETs", n)
	}
}

func TestUnauthorizedToken(t *testing.T) {
	srv := azurekvtest.NewServer()
	defer srv.Close()
	srv.Set("greeting", "sk-ant-test-"+token(), azurekvtest.Attributes{})
	// A token the vault rejects: Key Vault answers 401 with a fresh
	// challenge; the SDK asks once more, then gives up.
	client, err := azsecrets.NewClient(srv.URL, staticCred("revoked-"+token()), srv.ClientOptions(retries))
	if err != nil {
		t.Fatal(err)
	}
	_, err = azurekv.New(client, nil).Resolve(context.Background(), "greeting")
	wantErr(t, err, secrets.CodePermission, "rejected the token")
	for _, ev := range srv.Log() {
		if ev.Status != http.StatusUnauthorized {
			t.Errorf("request %+v was not refused", ev)
		}
	}
}

func TestDisabled(t *testing.T) {
	e := newEnv(t)
	v := "sk-ant-test-" + token()
	ver := e.srv.Set("off", v, azurekvtest.Attributes{Disabled: true})
	for _, ref := range []string{"off", "off/" + ver} {
		_, err := e.resolve(t, ref)
		ke := wantErr(t, err, secrets.CodePermission, "disabled", v)
		var re *azurekv.ResponseError
		if !errors.As(ke, &re) || re.StatusCode != 403 || re.InnerCode != "SecretDisabled" {
			t.Errorf("%s: cause %v, want 403 Forbidden/SecretDisabled", ref, ke.Err)
		}
	}
	// Re-enabled through the SDK's PATCH, it resolves.
	_, err := e.client.UpdateSecretProperties(context.Background(), "off", ver,
		azsecrets.UpdateSecretPropertiesParameters{SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(true)}}, nil)
	if err != nil {
		t.Fatal(sdkErr(err))
	}
	if s, err := e.resolve(t, "off"); err != nil || s.Reveal() != v {
		t.Fatalf("after enabling: %v", err)
	}
}

func TestNotBefore(t *testing.T) {
	e := newEnv(t)
	nbf := e.now.Add(time.Hour).Truncate(time.Second)
	e.srv.Set("early", "sk-ant-test-"+token(), azurekvtest.Attributes{NotBefore: nbf})
	_, err := e.resolve(t, "early")
	wantErr(t, err, secrets.CodeNotFound, "not valid before "+nbf.UTC().Format(time.RFC3339))
	e.now = nbf // the injected clock reaches nbf: valid
	if _, err := e.resolve(t, "early"); err != nil {
		t.Fatal(err)
	}
}

func TestExpired(t *testing.T) {
	e := newEnv(t)
	exp := e.now.Add(time.Minute).Truncate(time.Second)
	v := "sk-ant-test-" + token()
	e.srv.Set("ageing", v, azurekvtest.Attributes{Expires: exp})
	s, err := e.resolve(t, "ageing")
	if err != nil {
		t.Fatal(err)
	}
	if !s.ExpiresAt.Equal(exp) {
		t.Errorf("ExpiresAt = %v, want %v", s.ExpiresAt, exp)
	}
	e.now = exp
	_, err = e.resolve(t, "ageing")
	wantErr(t, err, secrets.CodeExpired, "expired at "+exp.UTC().Format(time.RFC3339), v)
}

func TestThrottledThenSuccess(t *testing.T) {
	e := newEnv(t)
	v := "sk-ant-test-" + token()
	e.srv.Set("busy", v, azurekvtest.Attributes{})
	e.srv.Inject(azurekvtest.Fault{Name: "busy", Status: 429, Times: 1,
		Body: azurekvtest.ErrorBody("Throttled", "", "Request was not processed because too many requests were received.")})
	s, err := e.resolve(t, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if s.Reveal() != v {
		t.Fatal("wrong value after a retried 429")
	}
	if n := e.srv.Gets("busy"); n != 2 {
		t.Errorf("server saw %d GETs, want 2 (the 429, then the retry)", n)
	}
}

func TestPersistentUnavailable(t *testing.T) {
	for _, status := range []int{429, 500, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			e := newEnv(t)
			e.srv.Set("down", "sk-ant-test-"+token(), azurekvtest.Attributes{})
			e.srv.Inject(azurekvtest.Fault{Name: "down", Status: status, Body: azurekvtest.ErrorBody("ServiceUnavailable", "", "try later")})
			_, err := e.resolve(t, "down")
			wantErr(t, err, secrets.CodeUnavailable, "after the SDK's retries")
			if n := e.srv.Gets("down"); n != retries+1 {
				t.Errorf("server saw %d GETs, want %d (1 + MaxRetries)", n, retries+1)
			}
		})
	}
}

func TestGarbageBody(t *testing.T) {
	v := "sk-ant-test-" + token()
	for name, body := range map[string]string{
		"html":      "<html><body>" + v + "</body></html>",
		"truncated": `{"value":"` + v,
		"badattrs":  `{"value":"` + v + `","attributes":{"exp":"` + v + `"}}`,
		"novalue":   `{"id":"https://x/secrets/a/b"}`,
		"empty":     ``,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.srv.Inject(azurekvtest.Fault{Name: "mangled", Status: 200, Body: body})
			_, err := e.resolve(t, "mangled")
			wantErr(t, err, secrets.CodeUnavailable, "answered 200", v)
		})
	}
}

// Error bodies may echo what the vault holds or was sent; none of it may
// reach our error, including through errors.As to the SDK's error.
func TestSecretEchoedInErrorBody(t *testing.T) {
	v := "sk-ant-test-" + token()
	for _, status := range []int{400, 401, 403, 404, 409, 429, 500, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			e := newEnv(t)
			e.srv.Inject(azurekvtest.Fault{Name: "echo", Status: status,
				Header: http.Header{"WWW-Authenticate": {`Bearer authorization="https://login.microsoftonline.com/x", resource="https://vault.azure.net"`}},
				Body:   azurekvtest.ErrorBody(v, v, "the value was "+v)})
			_, err := e.resolve(t, "echo")
			if err == nil {
				t.Fatal("no error")
			}
			wantErr(t, err, secrets.CodeOf(err), "", v)
			var re *azcore.ResponseError
			if !errors.As(err, &re) || re.StatusCode != status {
				t.Errorf("no sanitized *azcore.ResponseError with status %d behind %v", status, err)
			}
			if strings.Contains(fmt.Sprint(re.RawResponse.Request.Header), e.srv.Token) {
				t.Error("the sanitized response keeps the request's bearer token")
			}
		})
	}
}

func TestCanceled(t *testing.T) {
	e := newEnv(t)
	e.srv.Set("greeting", "sk-ant-test-"+token(), azurekvtest.Attributes{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.store.Resolve(ctx, "greeting")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	var ke *secrets.Error
	if !errors.As(err, &ke) || ke.Backend != azurekv.Backend {
		t.Errorf("%v is not a *secrets.Error of azurekv", err)
	}
	if len(e.srv.Log()) != 0 {
		t.Error("a canceled resolve made a request")
	}

	// Canceled while the SDK waits between retries of a 503.
	e.srv.Inject(azurekvtest.Fault{Name: "greeting", Status: 503})
	ctx, cancel = context.WithCancel(context.Background())
	client, _, _ := e.srv.NewClient(1000)
	store := azurekv.New(client, nil)
	done := make(chan error, 1)
	go func() { _, err := store.Resolve(ctx, "greeting"); done <- err }()
	for e.srv.Gets("greeting") < 3 {
		time.Sleep(time.Millisecond) // polling the server, not waiting for a timer
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestDeadline(t *testing.T) {
	e := newEnv(t)
	e.srv.Set("slow", "sk-ant-test-"+token(), azurekvtest.Attributes{})
	if _, err := e.resolve(t, "slow"); err != nil { // the handshake, before the vault hangs
		t.Fatal(err)
	}
	e.srv.Inject(azurekvtest.Fault{Name: "slow", Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := e.store.Resolve(ctx, "slow")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("got %v, want context.DeadlineExceeded and ErrUnavailable", err)
	}
}

// The audit decorator learns which backend answered, for a value and for an error.
func TestAuditBackend(t *testing.T) {
	e := newEnv(t)
	e.srv.Set("greeting", "sk-ant-test-"+token(), azurekvtest.Attributes{})
	var got []string
	audited := secrets.NewAudit(e.store, secrets.AuditFunc(func(_ context.Context, ev secrets.AuditEvent) {
		got = append(got, ev.Backend)
	}), nil)
	for _, ref := range []string{"greeting", "missing"} {
		audited.Resolve(context.Background(), ref)
	}
	if len(got) != 2 || got[0] != azurekv.Backend || got[1] != azurekv.Backend {
		t.Errorf("audited backends %q, want %q twice", got, azurekv.Backend)
	}
}

func TestPing(t *testing.T) {
	e := newEnv(t)
	if err := e.store.Ping(context.Background()); err != nil {
		t.Fatalf("Ping on a vault without %s: %v", azurekv.PingName, err)
	}
	e.srv.Inject(azurekvtest.Fault{Name: azurekv.PingName, Status: 403, Times: 1, Body: azurekvtest.ErrorBody("Forbidden", "AccessDenied", "no")})
	err := e.store.Ping(context.Background())
	if !errors.Is(err, secrets.ErrPermission) {
		t.Fatalf("Ping with a 403: %v, want ErrPermission", err)
	}
	e.srv.Inject(azurekvtest.Fault{Name: azurekv.PingName, Status: 503})
	if err := e.store.Ping(context.Background()); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("Ping with 503s: %v, want ErrUnavailable", err)
	}
}

func TestNewVault(t *testing.T) {
	srv := azurekvtest.NewServer()
	defer srv.Close()
	cred := srv.Credential()
	store, err := azurekv.NewVault(srv.URL, &azurekv.Options{Credential: cred, ClientOptions: srv.ClientOptions(retries)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Log()); n != 0 {
		t.Fatalf("NewVault made %d requests; it must do no I/O", n)
	}
	v := "sk-ant-test-" + token()
	srv.Set("greeting", v, azurekvtest.Attributes{})
	for range 2 {
		if s, err := store.Resolve(context.Background(), "greeting"); err != nil || s.Reveal() != v {
			t.Fatalf("Resolve: %v", err)
		}
	}
	if n, _ := cred.Calls(); n != 1 {
		t.Errorf("GetToken called %d times, want 1 (one client, made once)", n)
	}
	for _, bad := range []string{"http://myvault.vault.azure.net/", "https://", "https://u:p@x.vault.azure.net/", "https://x.vault.azure.net/secrets", "https://x.vault.azure.net/?a=b", "://"} {
		if _, err := azurekv.NewVault(bad, nil); !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("NewVault(%q) = %v, want ErrInvalidRef", bad, err)
		} else if strings.Contains(err.Error(), "u:p") {
			t.Errorf("NewVault error quotes the URL's credentials: %v", err)
		}
	}
}

func TestNewNilClient(t *testing.T) {
	_, err := azurekv.New(nil, nil).Resolve(context.Background(), "x")
	wantErr(t, err, secrets.CodePermission, "nil")
}

func TestOpen(t *testing.T) {
	// Opening does no I/O and reads no credentials, so this works offline.
	r, err := secrets.Open(context.Background(), "azurekv://myvault.vault.azure.net")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*azurekv.Store); !ok {
		t.Fatalf("Open returned %T", r)
	}
	if _, err := secrets.Open(context.Background(), "azurekv://myvault.vault.azure.net/"); err != nil {
		t.Errorf("trailing slash: %v", err)
	}
	t.Setenv(azurekv.VaultURLEnv, "")
	if _, err := secrets.Open(context.Background(), "azurekv://"); !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), azurekv.VaultURLEnv) {
		t.Errorf("a bare azurekv:// without %s: %v", azurekv.VaultURLEnv, err)
	}
	t.Setenv(azurekv.VaultURLEnv, "https://fromenv.vault.azure.net/")
	if r, err := secrets.Open(context.Background(), "azurekv://"); err != nil {
		t.Errorf("a bare azurekv:// with %s set: %v", azurekv.VaultURLEnv, err)
	} else if _, ok := r.(*azurekv.Store); !ok {
		t.Errorf("Open returned %T", r)
	}
	t.Setenv(azurekv.VaultURLEnv, "http://not-https.example/")
	if _, err := secrets.Open(context.Background(), "azurekv://"); !errors.Is(err, secrets.ErrInvalidRef) {
		t.Errorf("%s without https: %v", azurekv.VaultURLEnv, err)
	}
	for _, bad := range []string{
		"azurekv://myvault.vault.azure.net?tenant=x",
		"azurekv:///path",
		"azurekv://myvault.vault.azure.net/secrets/x",
		"azurekv://user:sk-pass@myvault.vault.azure.net",
	} {
		_, err := secrets.Open(context.Background(), bad)
		if !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("Open(%q) = %v, want ErrInvalidRef", bad, err)
		} else if strings.Contains(err.Error(), "sk-pass") {
			t.Errorf("Open error shows the URL's password: %v", err)
		}
	}
}
