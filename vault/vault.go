package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/bounds"
	"github.com/keyward/secrets/internal/refs"
)

// Backend is the name this package reports in errors and audit events.
const Backend = "vault"

// Options configures a Store. A nil *Options means defaults.
type Options struct {
	// Mount is the default mount, or a path inside one, that refs are
	// relative to: with Mount "secret" the ref "bots/anthropic#api_key"
	// reads bots/anthropic in the secret/ mount. Empty means refs start with
	// their mount: "secret/bots/anthropic#api_key".
	Mount string

	// Auth logs in to Vault: approle.NewAppRoleAuth, kubernetes.NewKubernetesAuth
	// or any api.AuthMethod. The Store logs in on first use, renews the token
	// with api.LifetimeWatcher and logs in again when renewal is no longer
	// possible. It sets the token on the client it was given, so give it a
	// client of its own. nil means the client's token as is (VAULT_TOKEN),
	// which is checked on first use and never renewed.
	Auth api.AuthMethod

	// Logger receives token lifecycle events: checked, logged in, renewed,
	// logged in again. It never receives a token or a value. nil means
	// slog.Default().
	Logger *slog.Logger

	// Now is the clock for Secret.ExpiresAt and token expiry; nil means time.Now.
	Now func() time.Time

	// ReloginWait is how long the background renewal waits between failed
	// attempts to log in again; 0 means 5 seconds.
	ReloginWait time.Duration
}

// Store resolves refs from Vault's KV v1 and v2 secrets engines, and reads
// other engines' paths (database/creds/app) as dynamic secrets. It is safe
// for concurrent use. Close stops its token renewal.
type Store struct {
	opts      Options
	prefix    string
	prefixErr error

	initMu    sync.Mutex
	inited    atomic.Bool
	closed    atomic.Bool
	client    *api.Client
	fromEnv   bool         // client made from the environment on first use
	ownHTTP   *http.Client // that client's HTTP client, the only one Close touches
	bgCancel  func()       // stops the renewal goroutine
	watchDone chan struct{}

	auth authState

	mountsMu   sync.RWMutex
	mounts     map[string]mountInfo // by mount path, "secret/"
	preflights sync.Map             // mount path guess -> *preflight in flight
}

var (
	_ secrets.KeyResolver        = (*Store)(nil)
	_ secrets.Pinger             = (*Store)(nil)
	_ interface{ Close() error } = (*Store)(nil)
)

// New returns a Store reading through client. A nil client means one made
// from Vault's environment (VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE,
// VAULT_CACERT, ... through api.DefaultConfig) on first use. New does no I/O:
// the token is checked, or the Store logs in, on the first Resolve.
func New(client *api.Client, opts *Options) *Store {
	s := &Store{client: client, fromEnv: client == nil, mounts: map[string]mountInfo{}}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Logger == nil {
		s.opts.Logger = slog.Default()
	}
	if s.opts.Now == nil {
		s.opts.Now = time.Now
	}
	if s.opts.ReloginWait <= 0 {
		s.opts.ReloginWait = 5 * time.Second
	}
	s.prefix, s.prefixErr = cleanMount(s.opts.Mount)
	s.auth.kick = make(chan struct{}, 1)
	return s
}

// Client returns the Vault client the Store uses, making it from the
// environment if it was not given one. It is for tests and for callers who
// want to share the Store's login.
func (s *Store) Client() (*api.Client, error) {
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if err := s.makeClientLocked(); err != nil {
		return nil, err
	}
	return s.client, nil
}

func (s *Store) makeClientLocked() error {
	if s.client != nil {
		return nil
	}
	if err := checkAddresses(os.Getenv); err != nil {
		return err
	}
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		if isURLError(cfg.Error) {
			return malformedAddress("")
		}
		// Past checkAddresses, the error names which VAULT_* variable is
		// malformed and quotes at most a number or a file path.
		return &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef,
			Reason: "cannot configure the Vault client from the environment (VAULT_ADDR, VAULT_CACERT, ...)", Err: cfg.Error}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		if isURLError(err) {
			return malformedAddress("")
		}
		return &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef,
			Reason: fmt.Sprintf("cannot make a Vault client from the environment: %v", err)}
	}
	s.client, s.ownHTTP = c, cfg.HttpClient
	return nil
}

// addressVariables are the variables vault/api parses as URLs.
var addressVariables = []string{"VAULT_ADDR", "VAULT_AGENT_ADDR", "VAULT_PROXY_ADDR", "VAULT_HTTP_PROXY"}

// checkAddresses reports the first of addressVariables that is set and does
// not parse as a URL, by name only. url.Parse's error quotes the whole URL,
// and an address's user info can hold a password, so the chain is cut on
// purpose: the error holds neither the value nor the parse error.
func checkAddresses(getenv func(string) string) error {
	for _, name := range addressVariables {
		if v := getenv(name); v != "" {
			if _, err := url.Parse(v); err != nil {
				return malformedAddress(name)
			}
		}
	}
	return nil
}

// malformedAddress is the error for an address variable that does not parse;
// name is "" when vault/api refused one that checkAddresses accepted.
func malformedAddress(name string) error {
	how := "it must be a URL such as https://vault.example.com:8200 (brackets around an IPv6 host, " +
		"a numeric port, no user or password: the token goes in VAULT_TOKEN)"
	switch name {
	case "":
		name = "one of " + strings.Join(addressVariables, ", ")
	case "VAULT_PROXY_ADDR", "VAULT_HTTP_PROXY":
		how = "it must be a proxy URL such as http://proxy.example.com:3128 (brackets around an IPv6 host, " +
			"a numeric port, a user and password %-encoded)"
	}
	return &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef, Reason: name + " is malformed: " + how}
}

// isURLError reports whether err holds a *url.Error, whose text quotes a URL.
func isURLError(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}

// ready makes the client and checks the token or logs in, once. Failures are
// not remembered: the next resolve tries again, so a Vault that was down at
// start is picked up when it comes back.
func (s *Store) ready(ctx context.Context, ref string) error {
	if s.closed.Load() {
		return s.errClosed(ref)
	}
	if s.inited.Load() {
		return nil
	}
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if s.closed.Load() {
		return s.errClosed(ref)
	}
	if s.inited.Load() {
		return nil
	}
	if s.prefixErr != nil {
		return &secrets.Error{Op: "resolve", Backend: Backend, Ref: ref, Code: secrets.CodeInvalidRef,
			Reason: "the Store's default " + s.prefixErr.Error()}
	}
	if err := s.makeClientLocked(); err != nil {
		return err
	}
	if s.opts.Auth == nil {
		if err := s.checkToken(ctx, ref); err != nil {
			return err
		}
	} else {
		if err := s.login(ctx, ref); err != nil {
			return err
		}
		bg, cancel := context.WithCancel(context.Background())
		s.bgCancel, s.watchDone = cancel, make(chan struct{})
		go s.renew(bg, s.watchDone)
	}
	s.inited.Store(true)
	return nil
}

func (s *Store) errClosed(ref string) error {
	return &secrets.Error{Op: "resolve", Backend: Backend, Ref: ref, Code: secrets.CodeUnavailable, Reason: "the Store is closed"}
}

// Resolve returns the secret at ref: "mount/path#field", or "path#field"
// under the default mount, with "?version=N" for a KV v2 version.
func (s *Store) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	if err := ctx.Err(); err != nil {
		return secrets.Secret{}, err
	}
	secrets.InfoFrom(ctx).SetBackend(Backend)
	invalid := func(reason string) (secrets.Secret, error) {
		return secrets.Secret{}, &secrets.Error{Op: "resolve", Backend: Backend, Ref: ref, Code: secrets.CodeInvalidRef, Reason: reason}
	}
	r, err := refs.Parse(ref, "version")
	if err != nil {
		return invalid(err.Error())
	}
	full, err := joinRef(s.prefix, r.Path)
	if err != nil {
		return invalid(err.Error())
	}
	version := 0
	if v := r.Query.Get("version"); r.Query.Has("version") {
		n, err := bounds.Int("?version", v, 1, math.MaxInt, "?version=3")
		if err != nil {
			return invalid(err.Error())
		}
		version = n
	}
	if err := s.ready(ctx, ref); err != nil {
		return secrets.Secret{}, err
	}
	m, err := s.mountFor(ctx, ref, full)
	if err != nil {
		return secrets.Secret{}, err
	}
	path, params := m.readPath(full, version)
	if version > 0 && m.kind != kvV2 {
		return invalid("?version is only for KV version 2 mounts; " + m.path + " is " + m.describe())
	}
	sec, err := s.read(ctx, path, params)
	if err != nil {
		return secrets.Secret{}, classify(ctx, "resolve", ref, "reading "+path, err)
	}
	return s.toSecret(ref, r.Field, m, sec)
}

// read does one GET, and when a logged-in token turns out to be revoked or
// expired (a 403 that lookup-self confirms), logs in again and retries once.
func (s *Store) read(ctx context.Context, path string, params url.Values) (*api.Secret, error) {
	token := s.client.Token()
	sec, err := s.client.Logical().ReadWithDataWithContext(ctx, path, params)
	if err == nil || s.opts.Auth == nil || !isStatus(err, 403) || !s.tokenDead(ctx) {
		return sec, err
	}
	if lerr := s.relogin(ctx, token, "a request was denied and the token no longer works"); lerr != nil {
		return nil, err
	}
	s.kickRenewal()
	return s.client.Logical().ReadWithDataWithContext(ctx, path, params)
}

// toSecret turns Vault's answer into a Secret. The whole data map is the
// document; a map that is only {"value": "..."} is that value, which is how
// a bare secret is stored (vault kv put secret/x value=sk-...).
func (s *Store) toSecret(ref, field string, m mountInfo, sec *api.Secret) (secrets.Secret, error) {
	fail := func(code secrets.Code, reason string) (secrets.Secret, error) {
		return secrets.Secret{}, &secrets.Error{Op: "resolve", Backend: Backend, Ref: ref, Code: code, Reason: reason}
	}
	if sec == nil {
		return fail(secrets.CodeNotFound, "no secret at this path in "+m.path)
	}
	data := sec.Data
	var version string
	if m.kind == kvV2 {
		meta, _ := sec.Data["metadata"].(map[string]any)
		if meta != nil {
			version = fmt.Sprint(meta["version"])
		}
		inner, ok := sec.Data["data"].(map[string]any)
		if !ok || inner == nil {
			switch {
			case meta != nil && meta["destroyed"] == true:
				return fail(secrets.CodeNotFound, "version "+version+" was destroyed")
			case meta != nil && meta["deletion_time"] != nil && meta["deletion_time"] != "":
				return fail(secrets.CodeNotFound, "version "+version+" was deleted")
			}
			return fail(secrets.CodeNotFound, "no secret at this path in "+m.path)
		}
		data = inner
	}
	value, code, reason := pick(data, field)
	if code != secrets.CodeUnknown {
		return fail(code, reason)
	}
	out := secrets.NewSecret(value)
	out.Version = version
	// Only a lease makes an expiry: KV v1 answers carry a lease_duration
	// that is a refresh hint, with no lease id.
	if sec.LeaseID != "" && sec.LeaseDuration > 0 {
		out.ExpiresAt = s.opts.Now().Add(time.Duration(sec.LeaseDuration) * time.Second)
	}
	return out, nil
}

// pick returns the value of field in data, or the whole secret when field is
// "". It returns CodeUnknown when it succeeds.
func pick(data map[string]any, field string) (string, secrets.Code, string) {
	bare, isBare := data["value"].(string)
	isBare = isBare && len(data) == 1
	if field == "" {
		if isBare {
			return bare, secrets.CodeUnknown, ""
		}
		j, err := json.Marshal(data)
		if err != nil {
			return "", secrets.CodeInvalidRef, "the secret cannot be encoded as JSON"
		}
		return string(j), secrets.CodeUnknown, ""
	}
	if v, ok := data[field]; ok {
		if str, ok := v.(string); ok {
			return str, secrets.CodeUnknown, ""
		}
		j, err := json.Marshal(v)
		if err != nil {
			return "", secrets.CodeInvalidRef, "the field cannot be encoded as JSON"
		}
		return string(j), secrets.CodeUnknown, ""
	}
	if isBare {
		// A bare value may itself be a JSON document (value=@key.json).
		v, err := refs.Field([]byte(bare), field)
		switch {
		case errors.Is(err, refs.ErrNoField):
			return "", secrets.CodeNotFound, err.Error()
		case err != nil:
			return "", secrets.CodeInvalidRef, err.Error()
		}
		return v, secrets.CodeUnknown, ""
	}
	return "", secrets.CodeNotFound, refs.ErrNoField.Error()
}

// Ping checks that Vault answers and is unsealed (sys/health), without
// checking the token.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := s.Client()
	if err != nil {
		return err
	}
	h, err := c.Sys().HealthWithContext(ctx)
	if err != nil {
		return classify(ctx, "ping", "", "checking sys/health", err)
	}
	switch {
	case !h.Initialized:
		return &secrets.Error{Op: "ping", Backend: Backend, Code: secrets.CodeUnavailable, Reason: "Vault is not initialized"}
	case h.Sealed:
		return &secrets.Error{Op: "ping", Backend: Backend, Code: secrets.CodeUnavailable, Reason: "Vault is sealed"}
	}
	return nil
}

// Close stops the token renewal, releases the keep-alive connections of the
// client the Store made from the environment, and makes later resolves fail
// with ErrUnavailable. A client given to New is the host's: its connections
// are left alone. Close does not revoke the token: a replacement Store may
// be starting with the same credentials.
func (s *Store) Close() error {
	s.initMu.Lock()
	if s.closed.Swap(true) {
		s.initMu.Unlock()
		return nil
	}
	cancel, done, own := s.bgCancel, s.watchDone, s.ownHTTP
	s.initMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	// After the renewal stopped, so that its last request's connection is
	// idle too; a resolve still running keeps its own until it ends.
	if own != nil {
		own.CloseIdleConnections()
	}
	return nil
}

// TokenExpiry returns when the token in use expires: the static token's as
// found on first use, or the logged-in token's as of its last renewal. The
// zero time means it never expires or is not known yet.
func (s *Store) TokenExpiry() time.Time {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	return s.auth.expiry
}

// mount kinds.
const (
	kvV1 = iota + 1
	kvV2
	otherEngine
)

type mountInfo struct {
	path string // "secret/", with the trailing slash Vault gives
	typ  string // "kv", "database", ...
	kind int
}

func (m mountInfo) describe() string {
	switch m.kind {
	case kvV1:
		return "KV version 1"
	case kvV2:
		return "KV version 2"
	}
	return "a " + m.typ + " engine"
}

// readPath returns the API path and query to read full under m.
func (m mountInfo) readPath(full string, version int) (string, url.Values) {
	if m.kind != kvV2 {
		return full, nil
	}
	rest := strings.TrimPrefix(full, m.path)
	var q url.Values
	if version > 0 {
		q = url.Values{"version": {strconv.Itoa(version)}}
	}
	return m.path + "data/" + rest, q
}

type preflight struct {
	done chan struct{}
	m    mountInfo
	err  error
}

// mountFor returns the mount of full, asking Vault (sys/internal/ui/mounts)
// only the first time a path in that mount is seen. Concurrent first
// resolves in one mount share one request.
func (s *Store) mountFor(ctx context.Context, ref, full string) (mountInfo, error) {
	if m, ok := s.knownMount(full); ok {
		return m, nil
	}
	// Concurrent callers of the same first segment wait for one request; a
	// caller whose path turns out to be in another mount asks on its own.
	key, _, _ := strings.Cut(full, "/")
	p := &preflight{done: make(chan struct{})}
	if prev, loaded := s.preflights.LoadOrStore(key, p); loaded {
		p = prev.(*preflight)
		select {
		case <-p.done:
		case <-ctx.Done():
			return mountInfo{}, ctx.Err()
		}
		if p.err == nil && strings.HasPrefix(full, p.m.path) {
			return p.m, nil
		}
		if m, ok := s.knownMount(full); ok {
			return m, nil
		}
		return s.detect(ctx, ref, full)
	}
	p.m, p.err = s.detect(ctx, ref, full)
	s.preflights.Delete(key)
	close(p.done)
	return p.m, p.err
}

func (s *Store) knownMount(full string) (mountInfo, bool) {
	s.mountsMu.RLock()
	defer s.mountsMu.RUnlock()
	// Vault refuses overlapping mounts, so at most one known mount is a
	// prefix of full; the loop is over the few mounts a service uses.
	for p, m := range s.mounts {
		if strings.HasPrefix(full, p) {
			return m, true
		}
	}
	return mountInfo{}, false
}

// detect asks Vault which mount full is in, and its type and KV version.
func (s *Store) detect(ctx context.Context, ref, full string) (mountInfo, error) {
	sec, err := s.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+full)
	var m mountInfo
	switch {
	case err != nil && isStatus(err, 404), err == nil && sec == nil:
		// Vaults before 0.10.1 lack the endpoint; they only had KV v1.
		first, _, _ := strings.Cut(full, "/")
		m = mountInfo{path: first + "/", typ: "kv", kind: kvV1}
	case err != nil:
		e := classify(ctx, "resolve", ref, "finding the mount of "+full, err)
		if isStatus(err, 403) {
			var se *secrets.Error
			if errors.As(e, &se) {
				// Vault answers 403 both for a path the token may not touch
				// and for a mount that does not exist, to hide which mounts exist.
				se.Reason = "finding the mount of " + full + ": Vault denied access: no such mount, or the token's policies do not reach this path"
			}
		}
		return mountInfo{}, e
	default:
		path, _ := sec.Data["path"].(string)
		typ, _ := sec.Data["type"].(string)
		if path == "" || !strings.HasSuffix(path, "/") || !strings.HasPrefix(full+"/", path) {
			return mountInfo{}, &secrets.Error{Op: "resolve", Backend: Backend, Ref: ref, Code: secrets.CodeUnavailable,
				Reason: "Vault's answer about the mount of " + full + " does not name a mount containing it"}
		}
		m = mountInfo{path: path, typ: typ, kind: otherEngine}
		if typ == "kv" || typ == "generic" {
			m.kind = kvV1
			if opt, _ := sec.Data["options"].(map[string]any); opt != nil && fmt.Sprint(opt["version"]) == "2" {
				m.kind = kvV2
			}
		}
	}
	if !strings.HasPrefix(full, m.path) {
		return mountInfo{}, &secrets.Error{Op: "resolve", Backend: Backend, Ref: ref, Code: secrets.CodeInvalidRef,
			Reason: "the ref names the mount " + m.path + " itself, not a secret in it"}
	}
	s.mountsMu.Lock()
	s.mounts[m.path] = m
	s.mountsMu.Unlock()
	s.opts.Logger.Debug("vault: mount detected", "mount", m.path, "engine", m.describe())
	return m, nil
}
