package envstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/joho/godotenv"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// Backend is the name envstore reports in errors and audit events.
const Backend = "env"

// DefaultDeny lists the variables a ref may never name unless
// Options.ReplaceDefaultDeny is set: they hold the keys to other secrets, or
// a credential the stack's own SDKs and drivers read, or the file, endpoint
// path or proxy URL that yields one, and refs often come from rows a tenant
// can edit. Deny patterns match regardless of case, since some systems'
// environments do.
//
// The names come from the sources of the modules the backends link (each
// one's os.Getenv and LookupEnv calls). Left readable on purpose:
// identifiers (AWS_ACCESS_KEY_ID, AWS_ROLE_ARN, AZURE_CLIENT_ID, PGUSER),
// public certificates (AWS_CA_BUNDLE, VAULT_CACERT, VAULT_CLIENT_CERT,
// PGSSLROOTCERT) and the local token endpoints (IDENTITY_ENDPOINT,
// MSI_ENDPOINT, IMDS_ENDPOINT, AWS_EC2_METADATA_SERVICE_ENDPOINT), which give
// nothing without the secret header or the host's own network.
var DefaultDeny = []string{
	// This stack: the master keys (and ENCRYPTION_KEY_REF), the database
	// URL with its password, keyward's own configuration.
	"ENCRYPTION_KEY*",
	"DATABASE_URL",
	"KEYWARD_*",

	// aws-sdk-go-v2 config: static keys (AWS_SECRET_KEY is the older
	// spelling), the container provider's token and its file, the ECS
	// relative URI (its id alone fetches the task's credentials), the web
	// identity token file, and the files holding keys or cached logins.
	"AWS_SECRET_ACCESS_KEY",
	"AWS_SECRET_KEY",
	"AWS_SESSION_TOKEN",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_WEB_IDENTITY_TOKEN_FILE",
	"AWS_SHARED_CREDENTIALS_FILE",
	"AWS_CONFIG_FILE",
	"AWS_LOGIN_CACHE_DIRECTORY",

	// azidentity and MSAL: client secret, certificate and its password,
	// user password, workload identity token file, and the secret headers
	// that App Service and Service Fabric (IDENTITY_HEADER) and Azure
	// Machine Learning (MSI_SECRET) require at their managed identity
	// endpoint.
	"AZURE_CLIENT_SECRET",
	"AZURE_CLIENT_CERTIFICATE_PASSWORD",
	"AZURE_CLIENT_CERTIFICATE_PATH",
	"AZURE_PASSWORD",
	"AZURE_FEDERATED_TOKEN_FILE",
	"IDENTITY_HEADER",
	"MSI_SECRET",

	// vault/api: the token, extra headers (often an auth header), the TLS
	// client key, a plugin's unwrap token, MFA credentials, the HTTP proxy
	// (user info); and the vault backend's AppRole and Kubernetes inputs.
	"VAULT_TOKEN",
	"VAULT_HEADERS",
	"VAULT_CLIENT_KEY",
	"VAULT_UNWRAP_TOKEN",
	"VAULT_MFA",
	"VAULT_HTTP_PROXY",
	"VAULT_PROXY_ADDR",
	"VAULT_ROLE_ID",
	"VAULT_ROLE_ID_FILE",
	"VAULT_SECRET_ID",
	"VAULT_SECRET_ID_FILE",
	"VAULT_KUBERNETES_TOKEN_FILE",

	// pgx (libpq's variables): the password, the password and service files
	// (both may hold passwords), the TLS client key and its passphrase.
	"PGPASSWORD",
	"PGPASSFILE",
	"PGSSLPASSWORD",
	"PGSSLKEY",
	"PGSERVICEFILE",

	// MySQL clients' password variable, and the proxy URLs net/http reads
	// for every SDK (http://user:password@proxy).
	"MYSQL_PWD",
	"HTTP_PROXY",
	"HTTPS_PROXY",
}

// Options configures a Store. A nil *Options means the process environment
// under the default policy.
type Options struct {
	// Lookup finds a variable; nil means os.LookupEnv. Set but empty is a
	// value; unset is ErrNotFound.
	Lookup func(name string) (value string, ok bool)
	// DotEnv names .env files read on first use, after the environment:
	// a variable set in the environment wins over the file.
	DotEnv []string
	// Allow lists patterns (path.Match syntax: ANTHROPIC_*) of names that may
	// be read. Empty means every name not denied.
	Allow []string
	// Deny lists patterns of names that may never be read, in addition to
	// DefaultDeny (or instead of it, with ReplaceDefaultDeny).
	Deny []string
	// ReplaceDefaultDeny drops DefaultDeny, leaving only Deny.
	ReplaceDefaultDeny bool
}

// Store resolves environment variable names to their values. Resolve,
// ResolveMany, Ping and Close come from the driver layer (driver.Resolver),
// which reads the .env files on first use.
type Store struct {
	*driver.Resolver
}

var (
	_ secrets.KeyResolver   = (*Store)(nil)
	_ secrets.BatchResolver = (*Store)(nil)
	_ secrets.Pinger        = (*Store)(nil)
)

// env is the Store's driver: the policy, the lookup and, once opened, the
// variables of the .env files.
type env struct {
	lookup func(string) (string, bool)
	allow  []string
	deny   []string
	files  []string
	dotenv map[string]string
}

// New returns a Store. It does no I/O: .env files are read on first use.
// It panics if a pattern is malformed (a programming error); openers
// validate patterns from configuration with ValidatePatterns first.
func New(opts *Options) *Store {
	var o Options
	if opts != nil {
		o = *opts
	}
	e := env{lookup: o.Lookup, allow: clone(o.Allow), files: clone(o.DotEnv)}
	if e.lookup == nil {
		e.lookup = os.LookupEnv
	}
	if !o.ReplaceDefaultDeny {
		e.deny = append(e.deny, DefaultDeny...)
	}
	e.deny = append(e.deny, o.Deny...)
	if err := ValidatePatterns(append(clone(e.allow), e.deny...)); err != nil {
		panic("envstore: " + err.Error())
	}
	return &Store{driver.Open(Backend, e.open, &driver.Options{Check: e.check})}
}

func clone(s []string) []string { return append([]string(nil), s...) }

// ValidatePatterns reports the first malformed pattern.
func ValidatePatterns(patterns []string) error {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("malformed pattern %q: use path.Match syntax such as ANTHROPIC_*", p)
		}
	}
	return nil
}

func match(patterns []string, name string) (string, bool) {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return p, true
		}
	}
	return "", false
}

// matchFold is match ignoring case: on Windows the environment is
// case-insensitive, so "encryption_key" reads ENCRYPTION_KEY.
func matchFold(patterns []string, name string) (string, bool) {
	upper := strings.ToUpper(name)
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToUpper(p), upper); ok {
			return p, true
		}
	}
	return "", false
}

// validName reports whether name is a portable environment variable name.
func validName(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// open reads the .env files: the driver is a copy of e holding their
// variables. Parse errors are reported without godotenv's text, which quotes
// the offending line (and so a value).
func (e env) open(context.Context) (driver.Driver, error) {
	e.dotenv = map[string]string{}
	// Earlier files win, as with godotenv.Load.
	for i := len(e.files) - 1; i >= 0; i-- {
		f := e.files[i]
		m, err := godotenv.Read(f)
		var pe *fs.PathError
		switch {
		case errors.As(err, &pe):
			return nil, driver.Errorf(secrets.CodeUnavailable, "cannot read .env file %s: %v", f, pe.Err)
		case err != nil:
			return nil, driver.Errorf(secrets.CodeUnavailable, "cannot parse .env file %s: check its syntax (NAME=value, one per line)", f)
		}
		maps.Copy(e.dotenv, m)
	}
	return &e, nil
}

// check is the policy: ref must name a variable the Store may read. The
// core applies it before the .env files are read.
func (e env) check(ref driver.Ref) error {
	name := ref.Name
	if !validName(name) {
		return driver.Errorf(secrets.CodeInvalidRef, "not a variable name: use letters, digits and '_', not starting with a digit")
	}
	if p, denied := matchFold(e.deny, name); denied {
		return driver.Errorf(secrets.CodePermission, "variable %s is denied by the policy (pattern %q): it holds the key to other secrets", name, p)
	}
	if len(e.allow) > 0 {
		if _, ok := match(e.allow, name); !ok {
			return driver.Errorf(secrets.CodePermission, "variable %s is not in the allow list (%s)", name, strings.Join(e.allow, ", "))
		}
	}
	return nil
}

// Get returns the value of the variable ref names ("ANTHROPIC_API_KEY"; the
// core picks a #field of a JSON value), which check has allowed.
func (e *env) Get(_ context.Context, ref driver.Ref) (driver.Value, error) {
	name := ref.Name
	value, ok := e.lookup(name)
	if !ok {
		value, ok = e.dotenv[name]
	}
	if !ok {
		where := "the service's environment"
		if len(e.files) > 0 {
			where += " or " + strings.Join(e.files, ", ")
		}
		return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "variable %s is not set: set it in %s", name, where)
	}
	return driver.Value{Data: value}, nil
}

func init() {
	secrets.Register("env", openURL)
}

// openURL opens "env://?allow=A_*,B_*&deny=C_*&dotenv=.env".
func openURL(_ context.Context, u *url.URL) (secrets.KeyResolver, error) {
	if err := secrets.CheckParams(u, "allow", "deny", "dotenv"); err != nil {
		return nil, err
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") {
		return nil, &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef,
			Reason: "env URLs take no host or path: write env:// or env://?allow=ANTHROPIC_*"}
	}
	q := u.Query()
	list := func(k string) []string {
		if q.Get(k) == "" {
			return nil
		}
		return strings.Split(q.Get(k), ",")
	}
	o := &Options{Allow: list("allow"), Deny: list("deny"), DotEnv: list("dotenv")}
	if err := ValidatePatterns(append(clone(o.Allow), o.Deny...)); err != nil {
		return nil, &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef, Reason: err.Error()}
	}
	return New(o), nil
}
