package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
	"github.com/keyward/secrets/internal/bounds"
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
// for concurrent use. Resolve, ResolveMany, Ping and Close come from the
// driver layer (driver.Resolver), which opens the Store on first use: it
// makes the client from the environment if none was given, checks the token
// or logs in, and starts the renewal; an open that fails is tried again by
// the next call. Close stops the renewal.
type Store struct {
	*driver.Resolver
	opts      Options     // read when the Store is opened
	client    *api.Client // given to New, or nil
	prefix    string
	prefixErr error
}

// conn is the Store's driver: an opened client, its token, and the mounts it
// has seen.
type conn struct {
	opts      Options
	prefix    string
	client    *api.Client
	ownHTTP   *http.Client // the client's HTTP client when made from the environment, the only one Close touches
	stopRenew func()       // stops the renewal goroutine; nil without Auth
	renewDone chan struct{}

	auth authState

	mountsMu   sync.RWMutex
	mounts     map[string]mountInfo // by mount path, "secret/"
	preflights sync.Map             // mount path guess -> *preflight in flight
}

var (
	_ secrets.KeyResolver   = (*Store)(nil)
	_ secrets.BatchResolver = (*Store)(nil)
	_ secrets.Pinger        = (*Store)(nil)
	_ io.Closer             = (*Store)(nil)
	_ driver.Pinger         = (*conn)(nil)
	_ io.Closer             = (*conn)(nil)
)

// New returns a Store reading through client. A nil client means one made
// from Vault's environment (VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE,
// VAULT_CACERT, ... through api.DefaultConfig) on first use. New does no I/O:
// the token is checked, or the Store logs in, on the first Resolve.
func New(client *api.Client, opts *Options) *Store {
	s := &Store{client: client}
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
	s.Resolver = driver.Open(Backend, s.open, &driver.Options{Params: []string{"version"}, Now: s.opts.Now, Check: s.check})
	return s
}

// Client returns the Vault client the Store uses, opening the Store first
// (making the client from the environment, checking the token or logging in)
// if it is not open yet. It is for tests and for callers who want to share
// the Store's login.
func (s *Store) Client() (*api.Client, error) {
	d, err := s.Driver(context.Background(), "open")
	if err != nil {
		return nil, err
	}
	return d.(*conn).client, nil
}

// TokenExpiry returns when the token in use expires: the static token's as
// found on first use, or the logged-in token's as of its last renewal. The
// zero time means it never expires or is not known yet.
func (s *Store) TokenExpiry() time.Time {
	d, ok := s.Loaded()
	if !ok {
		return time.Time{}
	}
	c := d.(*conn)
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	return c.auth.expiry
}

// check applies vault's ref rules before anything is sent: no ref that
// escapes its mount or has a bad ?version costs a request, or a login.
func (s *Store) check(ref driver.Ref) error {
	if s.prefixErr != nil {
		return driver.Errorf(secrets.CodeInvalidRef, "the Store's default %v", s.prefixErr)
	}
	_, _, err := target(s.prefix, ref)
	return err
}

// target returns the Vault path and the KV v2 version (0 for the latest) a
// ref names under prefix.
func target(prefix string, ref driver.Ref) (string, int, error) {
	full, err := joinRef(prefix, ref.Name)
	if err != nil {
		return "", 0, driver.Errorf(secrets.CodeInvalidRef, "%v", err)
	}
	version := 0
	if ref.Query.Has("version") {
		n, err := bounds.Int("?version", ref.Query.Get("version"), 1, math.MaxInt, "?version=3")
		if err != nil {
			return "", 0, driver.Errorf(secrets.CodeInvalidRef, "%v", err)
		}
		version = n
	}
	return full, version, nil
}

// open makes the client if need be and checks the token or logs in (and
// starts the renewal), on the first caller's ctx.
func (s *Store) open(ctx context.Context) (driver.Driver, error) {
	d := &conn{opts: s.opts, prefix: s.prefix, client: s.client, mounts: map[string]mountInfo{}}
	d.auth.kick = make(chan struct{}, 1)
	if d.client == nil {
		c, hc, err := clientFromEnv()
		if err != nil {
			return nil, err
		}
		d.client, d.ownHTTP = c, hc
	}
	var err error
	if d.opts.Auth == nil {
		err = d.checkToken(ctx)
	} else if err = d.login(ctx); err == nil {
		bg, cancel := context.WithCancel(context.Background())
		d.stopRenew, d.renewDone = cancel, make(chan struct{})
		go d.renew(bg, d.renewDone)
	}
	if err != nil {
		d.Close() // the next call makes a new client: release this one's connections
		return nil, err
	}
	return d, nil
}

// clientFromEnv makes a client from Vault's environment, and returns its
// HTTP client too.
func clientFromEnv() (*api.Client, *http.Client, error) {
	if err := checkAddresses(os.Getenv); err != nil {
		return nil, nil, err
	}
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		if isURLError(cfg.Error) {
			return nil, nil, malformedAddress("")
		}
		// Past checkAddresses, the error names which VAULT_* variable is
		// malformed and quotes at most a number or a file path.
		return nil, nil, driver.Wrap(secrets.CodeInvalidRef, cfg.Error, "cannot configure the Vault client from the environment (VAULT_ADDR, VAULT_CACERT, ...)")
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		if isURLError(err) {
			return nil, nil, malformedAddress("")
		}
		return nil, nil, driver.Errorf(secrets.CodeInvalidRef, "cannot make a Vault client from the environment: %v", err)
	}
	return c, cfg.HttpClient, nil
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
	return driver.Errorf(secrets.CodeInvalidRef, "%s is malformed: %s", name, how)
}

// isURLError reports whether err holds a *url.Error, whose text quotes a URL.
func isURLError(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}

// Get reads the secret at ref: "mount/path", or "path" under the default
// mount, with "?version=N" for a KV v2 version; the core picks a #field.
func (d *conn) Get(ctx context.Context, ref driver.Ref) (driver.Value, error) {
	full, version, err := target(d.prefix, ref)
	if err != nil {
		return driver.Value{}, err
	}
	m, err := d.mountFor(ctx, full)
	if err != nil {
		return driver.Value{}, err
	}
	if version > 0 && m.kind != kvV2 {
		return driver.Value{}, driver.Errorf(secrets.CodeInvalidRef, "?version is only for KV version 2 mounts; %s is %s", m.path, m.describe())
	}
	path, params := m.readPath(full, version)
	sec, err := d.read(ctx, path, params)
	if err != nil {
		return driver.Value{}, classify("reading "+path, err)
	}
	return d.value(m, sec, ref.Field)
}

// read does one GET, and when a logged-in token turns out to be revoked or
// expired (a 403 that lookup-self confirms), logs in again and retries once.
func (d *conn) read(ctx context.Context, path string, params url.Values) (*api.Secret, error) {
	token := d.client.Token()
	sec, err := d.client.Logical().ReadWithDataWithContext(ctx, path, params)
	if err == nil || d.opts.Auth == nil || !isStatus(err, 403) || !d.tokenDead(ctx) {
		return sec, err
	}
	if lerr := d.relogin(ctx, token, "a request was denied and the token no longer works"); lerr != nil {
		return nil, err
	}
	d.kickRenewal()
	return d.client.Logical().ReadWithDataWithContext(ctx, path, params)
}

// value turns Vault's answer into a Value. A KV v2 answer's data is under
// "data", its version under "metadata"; a lease sets ExpiresAt.
func (d *conn) value(m mountInfo, sec *api.Secret, field string) (driver.Value, error) {
	if sec == nil {
		return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "no secret at this path in %s", m.path)
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
				return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "version %s was destroyed", version)
			case meta != nil && meta["deletion_time"] != nil && meta["deletion_time"] != "":
				return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "version %s was deleted", version)
			}
			return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "no secret at this path in %s", m.path)
		}
		data = inner
	}
	v, err := document(data, field)
	if err != nil {
		return driver.Value{}, err
	}
	v.Version = version
	// Only a lease makes an expiry: KV v1 answers carry a lease_duration
	// that is a refresh hint, with no lease id.
	if sec.LeaseID != "" && sec.LeaseDuration > 0 {
		v.ExpiresAt = d.opts.Now().Add(time.Duration(sec.LeaseDuration) * time.Second)
	}
	return v, nil
}

// document is the secret's data as a Value: the decoded map is the document
// a #field is picked from, and its JSON text is the value of a ref without
// one; a map that is only {"value": "..."} is that value (vault kv put
// secret/x value=sk-...), which a #field picks from as from any JSON text
// (value=@key.json). The JSON text is only made when no #field is asked for.
func document(data map[string]any, field string) (driver.Value, error) {
	if bare, ok := data["value"].(string); ok && len(data) == 1 {
		return driver.Value{Data: bare}, nil
	}
	v := driver.Value{Document: data}
	if field == "" {
		j, err := json.Marshal(data)
		if err != nil {
			return driver.Value{}, driver.Errorf(secrets.CodeInvalidRef, "the secret cannot be encoded as JSON")
		}
		v.Data = string(j)
	}
	return v, nil
}

// Ping checks that Vault answers and is unsealed (sys/health).
func (d *conn) Ping(ctx context.Context) error {
	h, err := d.client.Sys().HealthWithContext(ctx)
	if err != nil {
		return classify("checking sys/health", err)
	}
	switch {
	case !h.Initialized:
		return driver.Errorf(secrets.CodeUnavailable, "Vault is not initialized")
	case h.Sealed:
		return driver.Errorf(secrets.CodeUnavailable, "Vault is sealed")
	}
	return nil
}

// Close stops the token renewal and releases the keep-alive connections of
// a client made from the environment. A client given to New is the host's:
// its connections are left alone. Close does not revoke the token: a
// replacement Store may be starting with the same credentials.
func (d *conn) Close() error {
	if d.stopRenew != nil {
		d.stopRenew()
		<-d.renewDone
	}
	// After the renewal stopped, so that its last request's connection is
	// idle too; a resolve still running keeps its own until it ends.
	if d.ownHTTP != nil {
		d.ownHTTP.CloseIdleConnections()
	}
	return nil
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
func (d *conn) mountFor(ctx context.Context, full string) (mountInfo, error) {
	if m, ok := d.knownMount(full); ok {
		return m, nil
	}
	// Concurrent callers of the same first segment wait for one request; a
	// caller whose path turns out to be in another mount asks on its own.
	key, _, _ := strings.Cut(full, "/")
	p := &preflight{done: make(chan struct{})}
	if prev, loaded := d.preflights.LoadOrStore(key, p); loaded {
		p = prev.(*preflight)
		select {
		case <-p.done:
		case <-ctx.Done():
			return mountInfo{}, ctx.Err()
		}
		if p.err == nil && strings.HasPrefix(full, p.m.path) {
			return p.m, nil
		}
		if m, ok := d.knownMount(full); ok {
			return m, nil
		}
		return d.detect(ctx, full)
	}
	p.m, p.err = d.detect(ctx, full)
	d.preflights.Delete(key)
	close(p.done)
	return p.m, p.err
}

func (d *conn) knownMount(full string) (mountInfo, bool) {
	d.mountsMu.RLock()
	defer d.mountsMu.RUnlock()
	// Vault refuses overlapping mounts, so at most one known mount is a
	// prefix of full; the loop is over the few mounts a service uses.
	for p, m := range d.mounts {
		if strings.HasPrefix(full, p) {
			return m, true
		}
	}
	return mountInfo{}, false
}

// detect asks Vault which mount full is in, and its type and KV version.
func (d *conn) detect(ctx context.Context, full string) (mountInfo, error) {
	sec, err := d.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+full)
	var m mountInfo
	switch {
	case err != nil && isStatus(err, 404), err == nil && sec == nil:
		// Vaults before 0.10.1 lack the endpoint; they only had KV v1.
		first, _, _ := strings.Cut(full, "/")
		m = mountInfo{path: first + "/", typ: "kv", kind: kvV1}
	case err != nil:
		e := classify("finding the mount of "+full, err)
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
			return mountInfo{}, driver.Errorf(secrets.CodeUnavailable, "Vault's answer about the mount of %s does not name a mount containing it", full)
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
		return mountInfo{}, driver.Errorf(secrets.CodeInvalidRef, "the ref names the mount %s itself, not a secret in it", m.path)
	}
	d.mountsMu.Lock()
	d.mounts[m.path] = m
	d.mountsMu.Unlock()
	d.opts.Logger.Debug("vault: mount detected", "mount", m.path, "engine", m.describe())
	return m, nil
}
