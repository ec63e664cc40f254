package secrets

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/keyward/secrets/internal/bounds"
)

// maxTimeout is the longest timeout the configuration accepts.
const maxTimeout = time.Hour

// Config describes a whole stack: which backend serves each Mux scheme, and
// which decorators sit in front. Parse one with ParseConfig; its text form is
// one "name = value" per line (or separated by ';'), '#' starts a comment:
//
//	db      = fernet://?table=api_keys      # encrypted column, DATABASE_URL + ENCRYPTION_KEY
//	env     = env://?allow=ANTHROPIC_*,OPENAI_*
//	cache   = size=10000&ttl=5m             # the cache decorator ("on" for its defaults)
//	audit   = on                            # log every resolve, never the value (db: to a table)
//	timeout = 5s                            # bound each backend call
//	allow   = db:*, env:ANTHROPIC_*         # only refs matching these (AllowRefs)
//
// Any name other than cache, audit, timeout and allow is a Mux scheme, and its value
// the URL of the backend serving it. Moving a service's keys from the
// encrypted column to AWS Secrets Manager is then a change of one line.
type Config struct {
	// Backends maps a Mux scheme to the URL of the backend serving it.
	Backends map[string]string
	// Cache holds the cache decorator's parameters in query form ("size=1000&ttl=5m");
	// "" means no cache, "on" means the cache's defaults.
	Cache string
	// Audit enables the audit decorator.
	Audit bool
	// AuditTable, when not empty, is the table of the service's own
	// database (DATABASE_URL) that audit events are written to, one row per
	// resolve ("audit = db" sets DefaultAuditTable, "audit = db?table=NAME"
	// sets NAME, and both set Audit). It needs the audittable package linked
	// (see RegisterAuditTable).
	AuditTable string
	// Timeout bounds each backend call; zero means no bound beyond the caller's.
	// The timeout key accepts 0 to 1h: a secret that takes longer is not coming.
	Timeout time.Duration
	// Allow, when not empty, lists the only refs the stack resolves
	// (path.Match patterns over "scheme:ref"); see AllowRefs.
	Allow []string
}

// The environment variables OpenFromEnv reads.
const (
	ConfigEnv     = "KEYWARD_CONFIG"      // the configuration text itself
	ConfigFileEnv = "KEYWARD_CONFIG_FILE" // the path of a file holding it
)

// ParseConfig parses the text form of a Config. Errors name the line.
func ParseConfig(text string) (*Config, error) {
	c := &Config{Backends: map[string]string{}}
	seen := map[string]bool{}
	lines := strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ';' })
	for n, line := range lines {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) error {
			return &Error{Op: "config", Code: CodeInvalidRef,
				Reason: fmt.Sprintf("line %d: ", n+1) + fmt.Sprintf(format, args...)}
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, bad("want name = value")
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if seen[name] {
			return nil, bad("%q is set twice", name)
		}
		seen[name] = true
		switch name {
		case "cache":
			c.Cache = value
		case "audit":
			on, table, err := parseAudit(value)
			if err != nil {
				return nil, bad("%s", err)
			}
			c.Audit, c.AuditTable = on, table
		case "allow":
			for _, p := range strings.Split(value, ",") {
				if p = strings.TrimSpace(p); p != "" {
					if _, err := path.Match(p, ""); err != nil {
						return nil, bad("malformed allow pattern %q: use path.Match syntax such as env:ANTHROPIC_*", p)
					}
					c.Allow = append(c.Allow, p)
				}
			}
			if len(c.Allow) == 0 {
				return nil, bad("allow needs at least one pattern, such as db:*")
			}
		case "timeout":
			d, err := bounds.Duration("timeout", value, 0, maxTimeout, "5s (0 for none beyond the caller's)")
			if err != nil {
				return nil, bad("%s", err)
			}
			c.Timeout = d
		default:
			if !validScheme(name) {
				return nil, bad("%q is neither cache, audit, timeout, allow nor a scheme name (lower-case letters, digits, '+', '-', '.')", name)
			}
			// Parsed here only to name the line; OpenConfig opens it.
			if _, err := parseBackendURL(value); err != nil {
				return nil, bad("the backend for %q: %s", name, err.Reason)
			}
			c.Backends[name] = value
		}
	}
	return c, nil
}

// DefaultAuditTable is the table "audit = db" writes to: the Python
// service's api_key_usage.
const DefaultAuditTable = "api_key_usage"

// auditForms names the accepted values of the audit key, for its errors.
const auditForms = "audit must be on or off, or db (a row per resolve in the table " + DefaultAuditTable +
	" of DATABASE_URL) or db?table=NAME"

// auditTableRE is what an audit table's name may be: an SQL identifier,
// optionally schema-qualified, as fernetstore takes a table name.
var auditTableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

// parseAudit reads the value of the audit key: whether to audit, and the
// table to write to ("" for the host's Auditor or slog). The value is quoted
// back only when it is short and plain: a configuration line should hold no
// secret, but a mistaken one might.
func parseAudit(value string) (on bool, table string, err error) {
	switch strings.ToLower(value) {
	case "on", "true", "1", "yes":
		return true, "", nil
	case "off", "false", "0", "no":
		return false, "", nil
	}
	name, query, hasQuery := strings.Cut(value, "?")
	if strings.ToLower(name) != "db" {
		return false, "", fmt.Errorf("%s", auditForms)
	}
	if !hasQuery {
		return true, DefaultAuditTable, nil
	}
	q, qerr := url.ParseQuery(query)
	if qerr != nil {
		return false, "", fmt.Errorf("audit = db?...: the parameters are malformed: %s", auditForms)
	}
	for k, v := range q {
		if k != "table" {
			what := "a parameter"
			if len(k) <= 32 && auditTableRE.MatchString(k) {
				what = fmt.Sprintf("parameter %q", k)
			}
			return false, "", fmt.Errorf("audit = db?...: unknown %s (known: table); %s", what, auditForms)
		}
		if len(v) != 1 {
			return false, "", fmt.Errorf("audit = db?...: table given more than once; %s", auditForms)
		}
	}
	table = q.Get("table")
	if !auditTableRE.MatchString(table) {
		return false, "", fmt.Errorf("audit = db?table=...: the table name must be letters, digits and '_' (at most 63, not starting with a digit), optionally schema.table; %s", auditForms)
	}
	return true, table, nil
}

// defaultBackends are the backends under their defaults, by Mux scheme.
var defaultBackends = map[string]string{
	"db":      "fernet://",
	"env":     "env://",
	"awssm":   "awssm://",
	"azurekv": "azurekv://",
	"vault":   "vault://",
}

// DefaultConfig returns the configuration used when none is given: every
// default backend whose package is linked in (db: the encrypted column on
// DATABASE_URL, env:, awssm:, azurekv:, vault:), each under its bare URL,
// behind the cache with its defaults and the audit decorator. A bare URL
// holds nothing to mistype, so a backend whose opener needs a variable that
// is not set (azurekv:// without AZURE_KEYVAULT_URL) does not stop
// OpenConfig: its refs fail with the opener's error (see OpenConfig).
func DefaultConfig() *Config {
	c := &Config{Backends: map[string]string{}, Cache: "", Audit: true}
	if _, ok := decorators.lookup("cache"); ok {
		c.Cache = "on"
	}
	for scheme, u := range defaultBackends {
		if _, ok := openers.lookup(strings.TrimSuffix(u, "://")); ok {
			c.Backends[scheme] = u
		}
	}
	return c
}

// ConfigFromEnv returns the configuration in KEYWARD_CONFIG, or in the file
// named by KEYWARD_CONFIG_FILE, or DefaultConfig when neither is set. Both
// set is an error.
func ConfigFromEnv() (*Config, error) { return ConfigFromLookup(os.Getenv) }

// ConfigFromLookup is ConfigFromEnv reading the variables through getenv
// (os.Getenv when nil), for a CLI or a service that keeps its environment
// in its own map: it needs no copy of these rules.
func ConfigFromLookup(getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	text, file := getenv(ConfigEnv), getenv(ConfigFileEnv)
	switch {
	case text != "" && file != "":
		return nil, &Error{Op: "config", Code: CodeInvalidRef,
			Reason: ConfigEnv + " and " + ConfigFileEnv + " are both set: set one"}
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, &Error{Op: "config", Code: CodeUnavailable,
				Reason: "cannot read " + ConfigFileEnv + " " + file, Err: err}
		}
		return ParseConfig(string(b))
	case text != "":
		return ParseConfig(text)
	}
	return DefaultConfig(), nil
}
