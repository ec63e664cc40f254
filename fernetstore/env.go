package fernetstore

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	secrets "github.com/keyward/secrets"
)

// KeyRingFromLookup is KeyRingFromEnv reading ENCRYPTION_KEY and
// ENCRYPTION_KEY_PREVIOUS through getenv (os.Getenv when nil), for a CLI or
// a service that keeps its environment in its own map. An empty
// ENCRYPTION_KEY is "not set". Errors name the variable and the expected
// shape, never the value.
//
// When ENCRYPTION_KEY_REF is set, the ring is instead the one
// KeyRingFromRef makes for it, refreshed every ENCRYPTION_KEY_REFRESH
// (default 1m, "off" for never on a timer): not loaded yet, since reading
// it needs the stack the store is served in (NewFromEnv loads it on the
// store's first use; a host that builds the store itself calls
// KeyRing.Load). ENCRYPTION_KEY or ENCRYPTION_KEY_PREVIOUS set with it, a
// ref through env:, and a ref that is not one are errors matching
// secrets.ErrInvalidRef that say how to fix the configuration.
func KeyRingFromLookup(getenv func(string) string) (*KeyRing, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.TrimSpace(getenv(EnvKeyRef)) != "" {
		return keyRefFromLookup(getenv, nil)
	}
	primary := getenv(EnvKey)
	if strings.TrimSpace(primary) == "" {
		return nil, keyError(EnvKey + " is not set; " + keyShape)
	}
	var prev []string
	if p := getenv(EnvPreviousKeys); p != "" {
		prev = strings.Split(p, ",")
	}
	return parseRing(primary, prev, EnvKey, func(n int) string {
		return fmt.Sprintf("%s entry %d (comma-separated)", EnvPreviousKeys, n)
	})
}

// ParseURL returns the Options a fernet:// URL names
// ("fernet://?table=api_keys&plaintext=allow&dialect=postgres"), checked
// completely and without I/O: an unknown or repeated parameter, a host or
// path (the database comes from DATABASE_URL), a plaintext= other than allow
// or deny, an unknown dialect= and a table or column name that is not a
// plain SQL name are errors matching secrets.ErrInvalidRef, which name the
// parameter and never quote the URL. It is how a program that opens the store itself (keyward, the
// example service) honours the configuration's db = fernet://... line
// exactly as the fernet:// opener does.
func ParseURL(rawURL string) (*Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, urlError("cannot parse the URL: write fernet://?table=NAME")
	}
	if u.Scheme != Backend {
		return nil, urlError("the URL is not a fernet:// URL: write fernet://?table=NAME")
	}
	if u.User != nil {
		return nil, urlError("the URL holds user information; the database and its credentials come from DATABASE_URL, never from the fernet:// URL")
	}
	return optionsFromURL(u)
}

// optionsFromURL is ParseURL for a parsed URL: the one reading of a fernet://
// URL's parameters, for ParseURL and the fernet:// opener.
func optionsFromURL(u *url.URL) (*Options, error) {
	if err := secrets.CheckParams(u, urlParams...); err != nil {
		return nil, err
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return nil, urlError("write fernet://?table=NAME: the database comes from DATABASE_URL, not the URL's host or path")
	}
	q := u.Query()
	o := &Options{
		Table: q.Get("table"), Dialect: Dialect(q.Get("dialect")),
		IDColumn: q.Get("id_column"), NameColumn: q.Get("name_column"), ProviderColumn: q.Get("provider_column"),
		ValueColumn: q.Get("value_column"), ExpiresAtColumn: q.Get("expires_column"), CreatedAtColumn: q.Get("created_column"),
	}
	switch t := IDType(q.Get("id_type")); t {
	case IDAuto, IDInteger, IDText:
		o.IDType = t
	default:
		return nil, urlError(fmt.Sprintf("id_type= takes %q or %q (or leave it out to read it from the table)", IDInteger, IDText))
	}
	if rc := q.Get("ref_columns"); rc != "" {
		refs, err := parseRefColumns(rc)
		if err != nil {
			return nil, urlError("ref_columns=: " + err.Error())
		}
		o.RefColumns = refs
	}
	if p := q.Get("poll"); p != "" {
		d, err := time.ParseDuration(p)
		if err != nil || d < minPollInterval || d > maxPollInterval {
			return nil, urlError(fmt.Sprintf("poll= is how often a replica polls the change log on MariaDB and SQLite: a duration from %v to %v, such as 1s", minPollInterval, maxPollInterval))
		}
		o.PollInterval = d
	}
	switch q.Get("plaintext") {
	case "", "deny":
	case "allow":
		o.AllowPlaintext = true
	default:
		return nil, urlError(`plaintext= takes "allow" (migration mode) or "deny" (the default)`)
	}
	switch o.Dialect {
	case "", SQLite, Postgres, MySQL:
	default:
		return nil, urlError(fmt.Sprintf("dialect= takes %q, %q or %q (or leave it out to detect it from DATABASE_URL)", SQLite, Postgres, MySQL))
	}
	for _, n := range []struct {
		param, value       string
		qualified, dashing bool // a schema-qualified table; "-" for a column the table lacks
	}{
		{"table", o.Table, true, false},
		{"id_column", o.IDColumn, false, false},
		{"value_column", o.ValueColumn, false, false},
		{"name_column", o.NameColumn, false, true},
		{"provider_column", o.ProviderColumn, false, true},
		{"expires_column", o.ExpiresAtColumn, false, true},
		{"created_column", o.CreatedAtColumn, false, true},
	} {
		if n.value == "" || (n.dashing && n.value == "-") {
			continue
		}
		// Every dialect allows the same names; quoting is only checked here.
		if _, err := SQLite.quoteIdent(n.value, n.qualified); err != nil {
			return nil, urlError(n.param + "=: " + err.Error())
		}
	}
	return o, nil
}

func urlError(reason string) error {
	return &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef, Reason: reason}
}

// parseRefColumns reads ref_columns=COLUMN:SCHEME,...
func parseRefColumns(v string) ([]RefColumn, error) {
	var out []RefColumn
	seen := map[string]bool{}
	for _, part := range strings.Split(v, ",") {
		col, scheme, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || col == "" || scheme == "" {
			return nil, fmt.Errorf("write COLUMN:SCHEME pairs, comma-separated, such as key_env_var:env,secret_name:awssm")
		}
		if _, err := SQLite.quoteIdent(col, false); err != nil {
			return nil, err
		}
		if !refSchemeRE.MatchString(scheme) {
			return nil, fmt.Errorf("the scheme of column %s is not a scheme name (lower-case letters, digits, '+', '-', '.'), such as env or awssm", col)
		}
		if seen[strings.ToLower(col)] {
			return nil, fmt.Errorf("column %s is named twice", col)
		}
		seen[strings.ToLower(col)] = true
		out = append(out, RefColumn{Column: col, Scheme: scheme})
	}
	return out, nil
}
