// Package azurekvtest is an in-process Azure Key Vault for tests: a TLS
// server speaking the secrets REST API (GET, PUT and PATCH of
// /secrets/{name}[/{version}]) with Key Vault's 401 bearer challenge, its
// error bodies, and injectable faults, plus a fake credential. It lets tests
// drive the real azsecrets client, challenge policy and retry policy, never
// touching the network beyond loopback.
package azurekvtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// Resource is the audience Key Vault names in its challenge.
const Resource = "https://vault.azure.net"

// MaxValueBytes is Key Vault's limit on a secret value (25 KiB); a larger
// PUT is answered 400 BadParameter, as Key Vault does.
const MaxValueBytes = 25 * 1024

// Fault makes the server answer matching requests with a canned response,
// after authentication succeeded.
type Fault struct {
	Name   string      // the secret name it applies to; "" means every request
	Status int         // the status to answer
	Header http.Header // extra response headers (Retry-After, ...)
	Body   string      // the body, sent as is
	Times  int         // how many requests it answers; 0 means all of them
	// Hang makes the server answer nothing until the client gives up
	// (its context ends); Status and Body are then unused.
	Hang bool
}

// Event is one request the server saw.
type Event struct {
	Method, Path string
	Authorized   bool // it carried the expected bearer token
	Status       int  // the status answered
}

// Attributes are the settable attributes of a secret version.
type Attributes struct {
	Disabled  bool      // enabled: false
	NotBefore time.Time // nbf; zero means none
	Expires   time.Time // exp; zero means none
}

type version struct {
	id    string
	value string
	attrs Attributes
	ctype string
	tags  map[string]string
	at    time.Time
}

// Server is an in-process Key Vault. Create it with NewServer and Close it.
type Server struct {
	// URL is the vault URL to give azsecrets.NewClient ("https://127.0.0.1:port/").
	URL string
	// TenantID is the tenant named in the challenge.
	TenantID string
	// Token is the bearer token the server accepts. Read it; do not change
	// it while the server runs (a test wanting a rejected token uses a
	// credential of its own).
	Token string

	ts *httptest.Server
	hc *http.Client

	mu       sync.Mutex
	secrets  map[string][]*version // versions in creation order; the last is current
	faults   []*Fault
	log      []Event
	noLog    bool
	getCount map[string]int
}

// NewServer starts a Server with a fresh tenant id and token.
func NewServer() *Server {
	s := &Server{
		TenantID: "00000000-0000-0000-0000-" + randHex(6),
		Token:    "kvtest-token-" + randHex(16),
		secrets:  map[string][]*version{},
		getCount: map[string]int{},
	}
	s.ts = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	s.URL = s.ts.URL + "/"
	// The httptest client keeps 2 idle connections; concurrent tests would
	// pay a TLS handshake for most requests.
	tr := s.ts.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	s.hc = &http.Client{Transport: tr}
	return s
}

// Close shuts the server down.
func (s *Server) Close() {
	s.hc.CloseIdleConnections()
	s.ts.Close()
}

// HTTPClient returns an *http.Client that trusts the server's certificate.
func (s *Server) HTTPClient() *http.Client { return s.hc }

// ClientOptions returns options for azsecrets.NewClient that reach this
// server: its certificate trusted (no InsecureSkipVerify), the challenge's
// resource check off (the host is 127.0.0.1, not *.vault.azure.net), and
// maxRetries retries 1ms apart, so no test waits.
func (s *Server) ClientOptions(maxRetries int32) *azsecrets.ClientOptions {
	return &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: s.hc,
			Retry: policy.RetryOptions{
				MaxRetries:    maxRetries,
				RetryDelay:    time.Millisecond,
				MaxRetryDelay: 2 * time.Millisecond,
			},
		},
		DisableChallengeResourceVerification: true,
	}
}

// NewClient returns a real azsecrets client for this server, using a fresh
// Credential that hands out the server's token, and that credential.
func (s *Server) NewClient(maxRetries int32) (*azsecrets.Client, *Credential, error) {
	cred := s.Credential()
	c, err := azsecrets.NewClient(s.URL, cred, s.ClientOptions(maxRetries))
	return c, cred, err
}

// Credential returns a fake azcore.TokenCredential that hands out s.Token.
func (s *Server) Credential() *Credential { return &Credential{token: s.Token} }

// Set stores a new version of name with value and attrs, and returns the
// version id. It bypasses the HTTP API (see the PUT handler for that).
func (s *Server) Set(name, value string, attrs Attributes) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &version{id: randHex(16), value: value, attrs: attrs, at: time.Now()}
	s.secrets[name] = append(s.secrets[name], v)
	return v.id
}

// SetAttributes replaces the attributes of name's version ("" for the
// current one). It reports whether that version exists.
func (s *Server) SetAttributes(name, ver string, attrs Attributes) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.find(name, ver)
	if v == nil {
		return false
	}
	v.attrs = attrs
	return true
}

// Inject adds a fault; faults are tried in the order added.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fc := f
	fc.Header = f.Header.Clone()
	s.faults = append(s.faults, &fc)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Log returns the requests seen so far, in order.
func (s *Server) Log() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.log...)
}

// SetLogging turns the request log on (the default) or off; benchmarks turn
// it off so that it does not grow with b.N.
func (s *Server) SetLogging(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noLog = !on
}

// Gets returns how many authorized GETs of name the server answered,
// faults included.
func (s *Server) Gets(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getCount[name]
}

// find returns name's version ver ("" = current), or nil. s.mu is held.
func (s *Server) find(name, ver string) *version {
	vs := s.secrets[name]
	if len(vs) == 0 {
		return nil
	}
	if ver == "" {
		return vs[len(vs)-1]
	}
	for _, v := range vs {
		if v.id == ver {
			return v
		}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	status := s.handle(w, r)
	s.mu.Lock()
	if !s.noLog {
		s.log = append(s.log, Event{Method: r.Method, Path: r.URL.Path,
			Authorized: r.Header.Get("Authorization") == "Bearer "+s.Token, Status: status})
	}
	s.mu.Unlock()
}

// handle answers r and returns the status it wrote.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) int {
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		// Key Vault answers every request without a valid token with this
		// challenge; the SDK's policy learns tenant and scope from it.
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="%s"`, s.TenantID, Resource))
		return writeError(w, http.StatusUnauthorized, "Unauthorized", "", "AKV10000: Request is missing a Bearer or PoP token.")
	}
	if r.URL.Query().Get("api-version") == "" {
		return writeError(w, http.StatusBadRequest, "BadParameter", "", "The request URI is missing the api-version parameter.")
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/secrets/")
	if !ok {
		return writeError(w, http.StatusNotFound, "NotFound", "", "No such path.")
	}
	name, ver, _ := strings.Cut(rest, "/")
	if r.Method == http.MethodGet {
		s.mu.Lock()
		s.getCount[name]++
		s.mu.Unlock()
	}
	if f := s.fault(name); f != nil {
		if f.Hang {
			<-r.Context().Done()
			return 0
		}
		for k, vs := range f.Header {
			w.Header()[k] = vs
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(f.Status)
		io.WriteString(w, f.Body)
		return f.Status
	}
	if !nameRE.MatchString(name) || strings.Contains(ver, "/") {
		return writeError(w, http.StatusBadRequest, "BadParameter", "", "The request URI contains an invalid name: "+name)
	}
	switch r.Method {
	case http.MethodGet:
		return s.get(w, r, name, ver)
	case http.MethodPut:
		if ver != "" {
			return writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "", "PUT takes no version.")
		}
		return s.put(w, r, name)
	case http.MethodPatch:
		return s.patch(w, r, name, ver)
	}
	return writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "", "Method not allowed.")
}

// fault returns the first fault matching name, counting its use.
func (s *Server) fault(name string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Name != "" && f.Name != name {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return f
	}
	return nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, name, ver string) int {
	s.mu.Lock()
	v := s.find(name, ver)
	var body []byte
	if v != nil && !v.attrs.Disabled {
		body = s.bundle(r, name, v, true)
	}
	s.mu.Unlock()
	switch {
	case v == nil:
		id := name
		if ver != "" {
			id += "/" + ver
		}
		return writeError(w, http.StatusNotFound, "SecretNotFound", "",
			fmt.Sprintf("A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command.", id))
	case body == nil:
		return writeError(w, http.StatusForbidden, "Forbidden", "SecretDisabled", "Operation get is not allowed on a disabled secret.")
	}
	return writeJSON(w, http.StatusOK, body)
}

// setParams is the body of a PUT or PATCH.
type setParams struct {
	Value       *string           `json:"value"`
	ContentType *string           `json:"contentType"`
	Tags        map[string]string `json:"tags"`
	Attributes  *struct {
		Enabled *bool  `json:"enabled"`
		NBF     *int64 `json:"nbf"`
		Exp     *int64 `json:"exp"`
	} `json:"attributes"`
}

func (p *setParams) apply(v *version) {
	if p.ContentType != nil {
		v.ctype = *p.ContentType
	}
	if p.Tags != nil {
		v.tags = p.Tags
	}
	if a := p.Attributes; a != nil {
		if a.Enabled != nil {
			v.attrs.Disabled = !*a.Enabled
		}
		if a.NBF != nil {
			v.attrs.NotBefore = time.Unix(*a.NBF, 0).UTC()
		}
		if a.Exp != nil {
			v.attrs.Expires = time.Unix(*a.Exp, 0).UTC()
		}
	}
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, name string) int {
	var p setParams
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil || p.Value == nil {
		return writeError(w, http.StatusBadRequest, "BadParameter", "", "The request body is not a valid secret: a value is required.")
	}
	if len(*p.Value) > MaxValueBytes {
		return writeError(w, http.StatusBadRequest, "BadParameter", "", "Secret value is too large.")
	}
	v := &version{id: randHex(16), value: *p.Value, at: time.Now()}
	p.apply(v)
	s.mu.Lock()
	s.secrets[name] = append(s.secrets[name], v)
	body := s.bundle(r, name, v, true)
	s.mu.Unlock()
	return writeJSON(w, http.StatusOK, body)
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, name, ver string) int {
	var p setParams
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil || p.Value != nil {
		return writeError(w, http.StatusBadRequest, "BadParameter", "", "The request body is not a valid secret update.")
	}
	s.mu.Lock()
	v := s.find(name, ver)
	var body []byte
	if v != nil {
		p.apply(v)
		body = s.bundle(r, name, v, false)
	}
	s.mu.Unlock()
	if v == nil {
		return writeError(w, http.StatusNotFound, "SecretNotFound", "", "A secret with (name/id) "+name+" was not found in this key vault.")
	}
	return writeJSON(w, http.StatusOK, body)
}

// bundle is a Key Vault SecretBundle. s.mu is held.
func (s *Server) bundle(r *http.Request, name string, v *version, withValue bool) []byte {
	attrs := map[string]any{
		"enabled":         !v.attrs.Disabled,
		"created":         v.at.Unix(),
		"updated":         v.at.Unix(),
		"recoveryLevel":   "Recoverable+Purgeable",
		"recoverableDays": 90,
	}
	if !v.attrs.NotBefore.IsZero() {
		attrs["nbf"] = v.attrs.NotBefore.Unix()
	}
	if !v.attrs.Expires.IsZero() {
		attrs["exp"] = v.attrs.Expires.Unix()
	}
	b := map[string]any{
		"id":         "https://" + r.Host + "/secrets/" + name + "/" + v.id,
		"attributes": attrs,
	}
	if withValue {
		b["value"] = v.value
	}
	if v.ctype != "" {
		b["contentType"] = v.ctype
	}
	if v.tags != nil {
		b["tags"] = v.tags
	}
	out, _ := json.Marshal(b)
	return out
}

func writeJSON(w http.ResponseWriter, status int, body []byte) int {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-request-id", randHex(16))
	w.WriteHeader(status)
	w.Write(body)
	return status
}

// ErrorBody returns a Key Vault error body.
func ErrorBody(code, innerCode, message string) string {
	e := map[string]any{"code": code, "message": message}
	if innerCode != "" {
		e["innererror"] = map[string]string{"code": innerCode}
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return string(b)
}

func writeError(w http.ResponseWriter, status int, code, innerCode, message string) int {
	return writeJSON(w, status, []byte(ErrorBody(code, innerCode, message)))
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Credential is a fake azcore.TokenCredential. It records what it was asked
// for, so a test can check the challenge's tenant and scope reached it.
type Credential struct {
	token string

	mu    sync.Mutex
	calls int
	last  policy.TokenRequestOptions
	err   error
}

// GetToken returns the server's token valid for an hour, or the error set by Fail.
func (c *Credential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.last = opts
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Fail makes every later GetToken return err (nil restores success).
func (c *Credential) Fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

// Calls returns how many times GetToken was called and the options of the last call.
func (c *Credential) Calls() (int, policy.TokenRequestOptions) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.last
}
