package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/secrets/internal/bounds"
)

// settings are the service's CHAT_* variables, each checked at start: a bad
// value stops the start with a message that names the variable and the form
// it accepts, instead of becoming a default or a zero.
type settings struct {
	addr     string
	dataDir  string
	provider string // CHAT_DEFAULT_PROVIDER

	rate  float64
	burst int

	readHeaderTimeout, readTimeout, writeTimeout, idleTimeout time.Duration
	maxConns, maxConnsPerClient                               int
	maxBody                                                   int64

	trustedHosts   hostList
	corsOrigins    map[string]bool
	trustedProxies []netip.Prefix
	tlsCert        *tls.Certificate
}

// The settings' defaults. The write timeout is above the provider client's
// 60 s, so a slow provider's answer still reaches the client.
const (
	defaultAddr     = "127.0.0.1:8080"
	providerTimeout = 60 * time.Second
)

// loadSettings reads and checks every setting; the error lists every bad one.
func loadSettings(getenv func(string) string) (*settings, error) {
	env := func(k, d string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return d
	}
	s := &settings{addr: env("CHAT_ADDR", defaultAddr), dataDir: env("CHAT_DATA_DIR", "."), provider: getenv("CHAT_DEFAULT_PROVIDER")}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	check(checkDataDir(s.dataDir))
	s.rate, err = bounds.Float("CHAT_RATE", env("CHAT_RATE", "5"), 0, 10000, "5 (chats a second per client)")
	check(err)
	s.burst, err = bounds.Int("CHAT_BURST", env("CHAT_BURST", "10"), 1, 10000, "10")
	check(err)
	duration := func(name, def string, lo, hi time.Duration) time.Duration {
		d, err := bounds.Duration(name, env(name, def), lo, hi, def)
		check(err)
		return d
	}
	s.readHeaderTimeout = duration("CHAT_READ_HEADER_TIMEOUT", "5s", 100*time.Millisecond, 5*time.Minute)
	s.readTimeout = duration("CHAT_READ_TIMEOUT", "15s", 100*time.Millisecond, 10*time.Minute)
	s.writeTimeout = duration("CHAT_WRITE_TIMEOUT", "90s", providerTimeout+5*time.Second, 10*time.Minute)
	s.idleTimeout = duration("CHAT_IDLE_TIMEOUT", "30s", 100*time.Millisecond, 10*time.Minute)
	s.maxConns, err = bounds.Int("CHAT_MAX_CONNS", env("CHAT_MAX_CONNS", "512"), 1, 1_000_000, "512 (connections open at once)")
	check(err)
	s.maxConnsPerClient, err = bounds.Int("CHAT_MAX_CONNS_PER_CLIENT", env("CHAT_MAX_CONNS_PER_CLIENT", "64"), 1, 1_000_000, "64 (connections of one address, or IPv6 /64, at once; trusted proxies are exempt)")
	check(err)
	body, err := bounds.Int("CHAT_MAX_BODY", env("CHAT_MAX_BODY", "65536"), 64, 64<<20, "65536 (bytes of a chat request body)")
	check(err)
	s.maxBody = int64(body)

	switch s.provider {
	case "", "anthropic", "openai":
	default:
		check(errors.New("CHAT_DEFAULT_PROVIDER must be anthropic or openai (the provider of a Python bot whose model names none), or unset"))
	}
	host, _, err := net.SplitHostPort(s.addr)
	if err != nil {
		check(fmt.Errorf("CHAT_ADDR must be host:port, such as 127.0.0.1:8080 or :8080; got %s", strconv.Quote(cut(s.addr))))
	}
	s.trustedHosts, err = parseHosts(getenv("CHAT_TRUSTED_HOSTS"), host)
	check(err)
	s.corsOrigins, err = parseOrigins(getenv("CHAT_CORS_ORIGINS"))
	check(err)
	s.trustedProxies, err = parseProxies(getenv("CHAT_TRUSTED_PROXIES"))
	check(err)
	cert, key := getenv("CHAT_TLS_CERT"), getenv("CHAT_TLS_KEY")
	switch {
	case cert == "" && key == "":
	case cert == "" || key == "":
		check(errors.New("CHAT_TLS_CERT and CHAT_TLS_KEY go together: set both (PEM files of the certificate chain and its private key) or neither"))
	default:
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			// The error of crypto/tls names the files and the problem,
			// never the key's bytes.
			check(fmt.Errorf("CHAT_TLS_CERT and CHAT_TLS_KEY must name a PEM certificate and its private key: %w", err))
		} else if now := time.Now(); now.After(c.Leaf.NotAfter) || now.Before(c.Leaf.NotBefore) {
			check(fmt.Errorf("CHAT_TLS_CERT is not valid now: the certificate is valid from %s to %s (UTC); renew it", c.Leaf.NotBefore.UTC().Format(time.RFC3339), c.Leaf.NotAfter.UTC().Format(time.RFC3339)))
		} else {
			s.tlsCert = &c
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// checkDataDir refuses a CHAT_DATA_DIR that is not an existing, writable
// directory (the development key, token and demo files live there).
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("CHAT_DATA_DIR must be an existing, writable directory (where the development key and the demo's files are kept); %s is not a directory", strconv.Quote(cut(dir)))
	}
	f, err := os.CreateTemp(dir, ".chatservice-write-check-*")
	if err != nil {
		return fmt.Errorf("CHAT_DATA_DIR must be an existing, writable directory; %s cannot be written: %v", strconv.Quote(cut(dir)), errors.Unwrap(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func cut(s string) string {
	if len(s) > 60 {
		return strings.ToValidUTF8(s[:60], "") + "..."
	}
	return s
}

// list splits a comma-separated setting, dropping empty items.
func list(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// hostList is CHAT_TRUSTED_HOSTS: exact host names, "*.example.com" for any
// subdomain, or "*" for any host.
type hostList struct {
	any      bool
	exact    map[string]bool
	suffixes []string // ".example.com"
}

// parseHosts reads CHAT_TRUSTED_HOSTS. Unset, the service answers only to
// loopback names, and a service listening beyond loopback must say which
// names it serves: a Host header is what a DNS-rebinding page controls.
func parseHosts(v, listenHost string) (hostList, error) {
	h := hostList{exact: map[string]bool{}}
	const form = "CHAT_TRUSTED_HOSTS must be a comma-separated list of host names without port (chat.example.com, *.example.com, 10.0.0.5, [::1]) or *"
	items := list(v)
	if len(items) == 0 {
		ip, err := netip.ParseAddr(listenHost)
		if listenHost != "localhost" && (err != nil || !ip.IsLoopback()) {
			where := listenHost
			if where == "" {
				where = "every interface"
			}
			return h, fmt.Errorf("CHAT_TRUSTED_HOSTS must be set when CHAT_ADDR listens beyond loopback (%s): the host names clients reach this service by, such as chat.example.com (* for any, behind a proxy that checks them)", where)
		}
		for _, n := range []string{"localhost", "127.0.0.1", "::1"} {
			h.exact[n] = true
		}
		if listenHost != "" {
			h.exact[strings.ToLower(listenHost)] = true
		}
		return h, nil
	}
	for _, it := range items {
		it = strings.ToLower(it)
		switch {
		case it == "*":
			h.any = true
		case strings.HasPrefix(it, "*."):
			if !validHostName(it[2:]) {
				return h, fmt.Errorf("%s; got %s", form, strconv.Quote(cut(it)))
			}
			h.suffixes = append(h.suffixes, it[1:])
		default:
			name := strings.TrimSuffix(strings.TrimPrefix(it, "["), "]")
			if _, err := netip.ParseAddr(name); err != nil && !validHostName(name) {
				return h, fmt.Errorf("%s; got %s", form, strconv.Quote(cut(it)))
			}
			h.exact[name] = true
		}
	}
	return h, nil
}

func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// allows reports whether the request's Host header names a trusted host.
func (h hostList) allows(hostHeader string) bool {
	if h.any {
		return true
	}
	name := hostHeader
	if n, _, err := net.SplitHostPort(hostHeader); err == nil {
		name = n
	}
	name = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"))
	if h.exact[name] {
		return true
	}
	if !validHostName(name) {
		return false
	}
	for _, s := range h.suffixes {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return true
		}
	}
	return false
}

// parseOrigins reads CHAT_CORS_ORIGINS: origins as a browser sends them
// (scheme://host[:port]). "*" is refused: the allow-list is the point.
func parseOrigins(v string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, it := range list(v) {
		u, err := url.Parse(it)
		if it == "*" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
			u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("CHAT_CORS_ORIGINS must be a comma-separated list of origins such as https://app.example.com,http://localhost:3000 (scheme, host and port only; * is not accepted); got %s", strconv.Quote(cut(it)))
		}
		host := strings.ToLower(u.Host)
		if strings.ContainsAny(host, "*?%") || u.Port() != "" && (u.Port() == "0" || strings.TrimLeft(u.Port(), "0123456789") != "") {
			return nil, fmt.Errorf("CHAT_CORS_ORIGINS must name each origin exactly (no wildcard: list every origin, such as https://app.example.com,https://admin.example.com); got %s", strconv.Quote(cut(it)))
		}
		// A browser's Origin omits the default port.
		if u.Scheme == "https" {
			host = strings.TrimSuffix(host, ":443")
		} else {
			host = strings.TrimSuffix(host, ":80")
		}
		out[strings.ToLower(u.Scheme)+"://"+host] = true
	}
	return out, nil
}

// parseProxies reads CHAT_TRUSTED_PROXIES: addresses or CIDR prefixes of the
// proxies whose X-Forwarded-For is believed.
func parseProxies(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, it := range list(v) {
		p, err := netip.ParsePrefix(it)
		if err != nil {
			a, aerr := netip.ParseAddr(it)
			if aerr != nil {
				return nil, fmt.Errorf("CHAT_TRUSTED_PROXIES must be a comma-separated list of IP addresses or CIDR prefixes, such as 10.0.0.0/8,192.168.1.10,fd00::/8; got %s", strconv.Quote(cut(it)))
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			// Clients are compared unmapped: ::ffff:10.0.0.0/104 is 10.0.0.0/8.
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		if p.Bits() == 0 {
			return nil, fmt.Errorf("CHAT_TRUSTED_PROXIES must not hold %s: trusting every address lets any client forge X-Forwarded-For (and get a fresh rate bucket per request); list your proxies' addresses or networks, such as 10.0.0.0/8", p)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
