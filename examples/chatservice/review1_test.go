package main

// Attacking review of the issue-14 hardening (helper attack1). Each test is a
// reproduction of one finding and fails on the service as it is; the report
// lists them by severity with a suggested fix.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/testenv"
)

// reviewRaw sends one raw request on a new connection and returns the
// response (nil and the error if none came within 5 s).
func reviewRaw(t *testing.T, addr, req string) (*http.Response, []byte, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, req)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b, nil
}

// reviewRun runs the service once with env and stops it as soon as it
// listens: run's error (nil if it started) and its stderr.
func reviewRun(t *testing.T, env map[string]string) (error, string) {
	t.Helper()
	env["CHAT_ADDR"] = "127.0.0.1:0"
	stderr := new(testenv.Buffer)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, func(k string) string { return env[k] }, io.Discard, stderr, &runOptions{ready: func(*app) { cancel() }})
	return err, stderr.String()
}

// countingPing is a key backend whose Ping counts its calls (a cloud
// secret manager's API call each).
type countingPing struct{ n atomic.Int64 }

func (*countingPing) Resolve(context.Context, string) (secrets.Secret, error) {
	return secrets.Secret{}, secrets.ErrUnavailable
}
func (c *countingPing) Ping(context.Context) error { c.n.Add(1); return nil }

// MEDIUM. /readyz answers any Host, needs no token, is not rate limited, and
// pings every configured backend on every request: an anonymous client
// turns each of its requests into a call to Vault / AWS Secrets Manager /
// GCP (quota, throttling that then fails the service's own resolves, cost).
func TestReviewReadyzAmplifiesBackendPings(t *testing.T) {
	probe := new(countingPing)
	s := startWith(t, map[string]string{}, map[string]secrets.KeyResolver{"probe": probe})
	before := probe.n.Load()
	const n = 50
	for i := 0; i < n; i++ {
		s.do(t, "GET", "/readyz", "", map[string]string{"Host": "attacker.example"})
	}
	if got := probe.n.Load() - before; got > 5 {
		t.Errorf("%d anonymous GET /readyz (untrusted Host, no token) made %d backend Ping calls: /readyz is a free amplifier onto the key backends; cache its answer for a second or two and coalesce concurrent probes (singleflight)", n, got)
	}
}

// MEDIUM. The connection cap is global: one client that holds
// CHAT_MAX_CONNS keep-alive connections (one request each every
// < CHAT_IDLE_TIMEOUT keeps them forever) starves every other client, and
// the orchestrator's /healthz probe with them, so the pod is restarted.
func TestReviewOneClientTakesEveryConnectionAndHealthz(t *testing.T) {
	s := start(t, map[string]string{"CHAT_MAX_CONNS": "4"})
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	// Another client, the liveness probe.
	resp, _, err := reviewRaw(t, s.addr, "GET /healthz HTTP/1.1\r\nHost: 10.0.0.7:8080\r\n\r\n")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("with one client holding all CHAT_MAX_CONNS=4 connections idle, the liveness probe got no answer within 5 s (%v): a per-client connection limit (by IP / rate key), or the probes on their own listener, would keep one client from taking the whole service and getting it restarted", err)
	}
}

// LOW-MEDIUM. The rate limit's LRU holds 10000 buckets and runs before the
// token check. A client that cycles through more than 10000 keys (the /64s
// of one IPv6 /48: 65536 of them) finds every bucket evicted before it comes
// back, so it is never limited, without a token; its own bucket is reset too.
func TestReviewRateLimitLRUThrashFromOneIPv6Slash48(t *testing.T) {
	s := start(t, map[string]string{"CHAT_RATE": "0.001", "CHAT_BURST": "1", "CHAT_TRUSTED_PROXIES": "127.0.0.1"})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	chat := func(xff string) int {
		req, _ := http.NewRequest("POST", "http://"+s.addr+"/api/chat/1", strings.NewReader(`{"message":"hi"}`))
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	first := "2001:db8:77:0::1"
	if a, b := chat(first), chat(first); a != 401 || b != 429 {
		t.Fatalf("the same /64 twice: %d then %d, want 401 (passed the limit) then 429", a, b)
	}
	for i := 1; i <= 10000; i++ {
		chat(fmt.Sprintf("2001:db8:77:%x::1", i))
	}
	if got := chat(first); got != 429 {
		t.Errorf("after 10000 other /64s of the same /48, the limited /64 got %d, want 429: the LRU evicted its empty bucket, so a client with a /48 is never rate limited (and the limit runs before the token check, so it needs no token). Fix: never evict a bucket that has not refilled (expire by time, burst/rate), add a coarser /48 bucket, and rate limit per client token after authorization", got)
	}
}

// LOW-MEDIUM. The rate limit is spent before the token is checked, per
// address only: requests without any token from an address (a carrier-grade
// NAT, an office, one IPv6 /64) spend the bucket of the token holders behind
// it, so an anonymous client locks them out.
func TestReviewAnonymousRequestsSpendTokenHoldersBucket(t *testing.T) {
	s := start(t, map[string]string{"CHAT_RATE": "0.001", "CHAT_BURST": "3"})
	for i := 0; i < 3; i++ {
		if code, _, _ := s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, nil); code != 401 {
			t.Fatalf("anonymous chat %d: %d, want 401", i, code)
		}
	}
	if code, m, _ := s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, bearer(s.devToken)); code != 200 {
		t.Errorf("after 3 anonymous 401s from the same address, the token holder's first chat got %d %v, want 200: rate limit per client token after authorization, and let only refused requests (401/403) spend a per-address bucket", code, m)
	}
}

// LOW. A JSON object followed by whitespace that takes the body over
// CHAT_MAX_BODY gets 400 "nothing after it" instead of 413 body_too_large:
// the MaxBytesError of the trailing-data check is not recognized.
func TestReviewOverLimitAfterObjectIs413(t *testing.T) {
	s := start(t, map[string]string{"CHAT_RATE": "1000", "CHAT_BURST": "1000"})
	body := `{"message":"hi"}` + strings.Repeat(" ", 70<<10)
	code, m, _ := s.do(t, "POST", "/api/chat/1", body, bearer(s.devToken))
	if code != 413 || m["code"] != "body_too_large" {
		t.Errorf("a 70 KB body (an object then spaces): %d %v, want 413 body_too_large; in readChat, check errors.As(terr, &tooBig) from dec.Token() before calling it trailing data", code, m)
	}
}

// LOW. Strict JSON has gaps: a duplicate "message" key is accepted (the last
// wins, so a proxy or WAF that reads the first sees another request), field
// names match case-insensitively, and invalid UTF-8 is silently replaced.
func TestReviewStrictJSONGaps(t *testing.T) {
	s := start(t, map[string]string{"CHAT_RATE": "1000", "CHAT_BURST": "1000"})
	for _, tc := range []struct{ what, body string }{
		{"a duplicate key", `{"message":"hello","message":"the other message"}`},
		{"a field name in another case", `{"Message":"hi"}`},
		{"invalid UTF-8 in the message", "{\"message\":\"hi \xff\xfe\"}"},
	} {
		if code, m, _ := s.do(t, "POST", "/api/chat/1", tc.body, bearer(s.devToken)); code != 400 {
			t.Errorf("%s: %d %v, want 400 bad_request (reject duplicate names, match \"message\" exactly, require utf8.Valid on the body)", tc.what, code, m)
		}
	}
}

// LOW. Not every answer is JSON with a code: a CONNECT request gets
// ServeMux's text/plain 404 (the catch-all "/" pattern does not match it).
func TestReviewConnectAnswersJSON(t *testing.T) {
	s := start(t, map[string]string{})
	resp, b, err := reviewRaw(t, s.addr, "CONNECT localhost:80 HTTP/1.1\r\nHost: localhost:80\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(b, &m) != nil || m["code"] == "" {
		t.Errorf("CONNECT: %d %s %q, want a JSON error with a code (answer CONNECT, and any request the mux would redirect, before the mux)", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}

// LOW. Vary: Origin is sent only when the request has an Origin, so a
// shared cache may store the answer to a request without one (no
// Access-Control-Allow-Origin) and serve it to an allowed origin, or the
// reverse; the fetch standard asks for Vary: Origin on every response whose
// CORS headers depend on Origin.
func TestReviewVaryOriginOnEveryResponse(t *testing.T) {
	s := start(t, map[string]string{"CHAT_CORS_ORIGINS": "https://app.example.com"})
	_, _, with := s.do(t, "GET", "/metrics", "", map[string]string{"Origin": "https://app.example.com"})
	_, _, without := s.do(t, "GET", "/metrics", "", nil)
	if with.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Fatalf("GET /metrics from the allowed origin has no Access-Control-Allow-Origin")
	}
	if !strings.Contains(strings.Join(without.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("GET /metrics without Origin has Vary %q, while with the allowed Origin it carries Access-Control-Allow-Origin: add Vary: Origin to every response when CHAT_CORS_ORIGINS is set", without.Header.Values("Vary"))
	}
}

// LOW. CHAT_TRUSTED_PROXIES footguns: an IPv4-mapped prefix is accepted but
// never matches (peers are unmapped, and an IPv6 prefix holds no IPv4
// address), so the operator's proxy is silently not trusted; 0.0.0.0/0 and
// ::/0 are accepted without a word, which makes every client's
// X-Forwarded-For believed (a fresh rate bucket per request).
func TestReviewTrustedProxiesFootguns(t *testing.T) {
	cfg, err := loadSettings(func(k string) string {
		return map[string]string{"CHAT_TRUSTED_PROXIES": "::ffff:10.0.0.0/104"}[k]
	})
	if err == nil {
		s := &server{cfg: cfg}
		if !s.trusted(netip.MustParseAddr("10.0.0.5")) {
			t.Errorf("CHAT_TRUSTED_PROXIES=::ffff:10.0.0.0/104 is accepted but 10.0.0.5 is not trusted: unmap 4in6 prefixes in parseProxies (or refuse them)")
		}
	}
	err, stderr := reviewRun(t, map[string]string{"CHAT_DATA_DIR": t.TempDir(), "CHAT_TRUSTED_PROXIES": "0.0.0.0/0,::/0"})
	if err == nil && !strings.Contains(stderr, "CHAT_TRUSTED_PROXIES") {
		t.Errorf("CHAT_TRUSTED_PROXIES=0.0.0.0/0,::/0 starts without a word: every client may then forge X-Forwarded-For and get a fresh rate bucket per request; refuse a /0 (or warn at start)")
	}
}

// LOW. CHAT_CORS_ORIGINS accepts origins no browser ever sends, so the
// operator's allow-list silently allows nothing: an explicit default port
// (browsers omit :443 and :80) and a wildcard host kept literally.
func TestReviewCORSOriginsFootguns(t *testing.T) {
	for _, tc := range []struct{ setting, browserSends string }{
		{"https://app.example.com:443", "https://app.example.com"},
		{"http://localhost:80", "http://localhost"},
		{"https://*.example.com", "https://app.example.com"},
	} {
		cfg, err := loadSettings(func(k string) string { return map[string]string{"CHAT_CORS_ORIGINS": tc.setting}[k] })
		if err == nil && !cfg.corsOrigins[tc.browserSends] {
			t.Errorf("CHAT_CORS_ORIGINS=%s is accepted but never matches the Origin a browser sends (%s): drop default ports, refuse * in a host", tc.setting, tc.browserSends)
		}
	}
}

// LOW. CHAT_WRITE_TIMEOUT below the provider's time is accepted (from
// 100ms), though the comment on the settings says the write timeout must be
// above the provider client's 60 s: a provider answering after it leaves the
// client with a dropped connection and no JSON, while the paid provider call
// runs to its end.
func TestReviewWriteTimeoutBelowProviderTime(t *testing.T) {
	// Fixed by refusing the setting: the write timeout must leave the
	// provider call (60 s) room to answer.
	for _, v := range []string{"300ms", "60s", "64s"} {
		err := runUntilReady(t, map[string]string{"CHAT_DATA_DIR": t.TempDir(), "CHAT_WRITE_TIMEOUT": v})
		if err == nil || !strings.Contains(err.Error(), "CHAT_WRITE_TIMEOUT must be a Go duration from 1m5s") {
			t.Errorf("CHAT_WRITE_TIMEOUT=%s: %v; want a refusal: at or below the provider's 60 s, a slow provider's answer never reaches the client", v, err)
		}
	}
	if err := runUntilReady(t, map[string]string{"CHAT_DATA_DIR": t.TempDir(), "CHAT_WRITE_TIMEOUT": "65s"}); err != nil {
		t.Errorf("CHAT_WRITE_TIMEOUT=65s: %v", err)
	}
}

// LOW. CHAT_DATA_DIR is the one setting not checked with the others: a
// missing directory fails later with a file error that does not name the
// variable.
func TestReviewDataDirChecked(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", "such", "dir")
	err, _ := reviewRun(t, map[string]string{"CHAT_DATA_DIR": missing})
	if err == nil || !strings.Contains(err.Error(), "CHAT_DATA_DIR") {
		t.Errorf("CHAT_DATA_DIR=<missing directory>: %v; want a refusal naming CHAT_DATA_DIR and that it must be an existing, writable directory", err)
	}
}

// LOW. The secret files of the data directory (the development
// ENCRYPTION_KEY, the development client token, the stand-in's issued
// keys) are made 0600, but a later start uses them whatever their mode,
// without a word: after a cp, an unpack or a volume mount with another
// umask the master key is world-readable (ssh refuses such a key file).
func TestReviewSecretFileModesChecked(t *testing.T) {
	dir := t.TempDir()
	t.Run("first start", func(t *testing.T) { start(t, map[string]string{"CHAT_DATA_DIR": dir}) })
	files := []string{devKeyFile, devTokenFile, standInKeysFile, demoEnv}
	for _, f := range files {
		if err := os.Chmod(filepath.Join(dir, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stderr string
	t.Run("second start", func(t *testing.T) {
		s := start(t, map[string]string{"CHAT_DATA_DIR": dir})
		stderr = s.stderr.String()
	})
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		warned := false
		for _, l := range grepLines(stderr, f) {
			warned = warned || strings.Contains(l, "mode") || strings.Contains(l, "permission") || strings.Contains(l, "readable")
		}
		if fi.Mode().Perm()&0o077 != 0 && !warned {
			t.Errorf("%s is mode %v (readable by others) and the start said nothing about it: warn (or refuse, or chmod 0600) when a secret file is readable beyond its owner", f, fi.Mode().Perm())
		}
	}
}

// LOW. An expired certificate in CHAT_TLS_CERT starts the service without a
// word: every client then fails the handshake.
func TestReviewExpiredCertificate(t *testing.T) {
	// Not t.TempDir: its path holds this test's name, which holds the
	// words the warning is searched for.
	dir, err := os.MkdirTemp("", "attack1-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dataDir := filepath.Join(dir, "data")
	os.Mkdir(dataDir, 0o700)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "expired"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	err, stderr := reviewRun(t, map[string]string{"CHAT_DATA_DIR": dataDir, "CHAT_TLS_CERT": certFile, "CHAT_TLS_KEY": keyFile})
	warned := false
	for _, l := range grepLines(stderr, "expir") {
		warned = warned || strings.Contains(strings.ToLower(l), "certificate")
	}
	if err == nil && !warned {
		t.Errorf("a certificate that expired a day ago started the service without a word: check Leaf.NotAfter (and NotBefore) at start and refuse, or warn")
	}
}

// LOW. A suffix entry of CHAT_TRUSTED_HOSTS (*.corp.example) matches any
// Host that ends with it, including ones that are no host name at all.
func TestReviewTrustedHostSuffixNeedsAHostName(t *testing.T) {
	s := start(t, map[string]string{"CHAT_TRUSTED_HOSTS": "*.corp.example"})
	for _, host := range []string{"evil.example;.corp.example", "evil.example&.corp.example", "evil.example_x.corp.example!.corp.example"} {
		code, m, _ := s.do(t, "GET", "/metrics", "", map[string]string{"Host": host})
		if code != 400 {
			t.Errorf("Host %q with CHAT_TRUSTED_HOSTS=*.corp.example: %d %v, want 400 untrusted_host (check validHostName(name) in hostList.allows)", host, code, m)
		}
	}
}

func grepLines(text, sub string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(strings.ToLower(l), sub) {
			out = append(out, l)
		}
	}
	return out
}
