package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
)

// Issue 14. Each test here failed on the service as it was (f000b3a), as
// tried from outside: a 70 KB body was a 400, `{"message":"hi"} garbage` a
// 200, a chat without a credential and with any Host a 200, a preflight a
// text/plain 405, and the 404 and 405 of unknown routes text/plain.

// do sends a request to the service with the given headers and returns the
// status, the decoded JSON body (nil if it is not JSON) and the response.
func (s *service) do(t *testing.T, method, path, body string, header map[string]string) (int, map[string]string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	s.bodies.Write(b)
	var m map[string]string
	if json.Unmarshal(b, &m) != nil {
		m = nil
	}
	return resp.StatusCode, m, resp
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func TestBodyLimitAndStrictJSON(t *testing.T) {
	s := start(t, map[string]string{"CHAT_RATE": "1000", "CHAT_BURST": "1000"})
	auth := bearer(s.devToken)
	big := `{"message":"` + strings.Repeat("a", 70<<10) + `"}`
	for _, tc := range []struct {
		body       string
		code       int
		errCode    string
		says       string
		wantReply  bool
		contentLen bool
	}{
		{body: big, code: 413, errCode: "body_too_large", says: "over 65536 bytes"},
		{body: `{"message":"hi"} garbage`, code: 400, errCode: "bad_request", says: "nothing after it"},
		{body: `{"message":"hi"}{"message":"again"}`, code: 400, errCode: "bad_request", says: "nothing after it"},
		{body: `{"message":"hi","model":"gpt-5"}`, code: 400, errCode: "bad_request", says: `"message" is the only field`},
		{body: `{"message":""}`, code: 400, errCode: "bad_request", says: "must not be empty"},
		{body: `["hi"]`, code: 400, errCode: "bad_request", says: "one JSON object"},
		{body: ``, code: 400, errCode: "bad_request", says: "one JSON object"},
		{body: "{\"message\":\"hi\"}\n  \t", code: 200, wantReply: true},
	} {
		code, body, resp := s.do(t, "POST", "/api/chat/1", tc.body, auth)
		if code != tc.code || body == nil || (tc.errCode != "" && (body["code"] != tc.errCode || !strings.Contains(body["error"], tc.says))) ||
			(tc.wantReply && body["reply"] != "stand-in reply to: hi") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("body %.40q: %d %v (%s); want %d %s saying %q", tc.body, code, body, resp.Header.Get("Content-Type"), tc.code, tc.errCode, tc.says)
		}
	}
	// CHAT_MAX_BODY sets the limit.
	s2 := start(t, map[string]string{"CHAT_MAX_BODY": "100"})
	if code, body, _ := s2.do(t, "POST", "/api/chat/1", `{"message":"`+strings.Repeat("b", 200)+`"}`, bearer(s2.devToken)); code != 413 || body["code"] != "body_too_large" {
		t.Errorf("CHAT_MAX_BODY=100, 200-byte body: %d %v", code, body)
	}
}

func TestJSONErrorsOnEveryRoute(t *testing.T) {
	s := start(t, map[string]string{})
	for _, tc := range []struct{ method, path, code string }{
		{"GET", "/nope", "not_found"},
		{"GET", "/", "not_found"},
		{"GET", "/api/chat/1", "method_not_allowed"},
		{"DELETE", "/api/chat/1", "method_not_allowed"},
		{"POST", "/healthz", "method_not_allowed"},
		{"PUT", "/metrics", "method_not_allowed"},
		{"POST", "/api/chat/", "not_found"},
	} {
		code, body, resp := s.do(t, tc.method, tc.path, "", nil)
		want := map[string]int{"not_found": 404, "method_not_allowed": 405}[tc.code]
		if code != want || body["code"] != tc.code || body["error"] == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %v %s; want %d JSON with code %s", tc.method, tc.path, code, body, resp.Header.Get("Content-Type"), want, tc.code)
		}
		if want == 405 && resp.Header.Get("Allow") == "" {
			t.Errorf("%s %s: a 405 without Allow", tc.method, tc.path)
		}
	}
}

func TestClientTokens(t *testing.T) {
	s := start(t, map[string]string{"CHAT_RATE": "1000", "CHAT_BURST": "1000"})
	ctx := context.Background()
	_, scoped, err := s.tokens.add(ctx, "only bot 2", []string{"2"})
	if err != nil {
		t.Fatal(err)
	}
	revokedID, revoked, err := s.tokens.add(ctx, "revoked", []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.tokens.revoke(ctx, revokedID); err != nil {
		t.Fatal(err)
	}
	wrong := "kwc_" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		name   string
		header map[string]string
		bot    string
		status int
		code   string
	}{
		{"missing", nil, "1", 401, "token_missing"},
		{"not bearer", map[string]string{"Authorization": "Basic " + s.devToken}, "1", 401, "token_missing"},
		{"wrong", bearer(wrong), "1", 401, "token_invalid"},
		{"malformed", bearer("hello"), "1", 401, "token_invalid"},
		{"revoked", bearer(revoked), "1", 401, "token_revoked"},
		{"out of scope", bearer(scoped), "1", 403, "token_scope"},
		{"in scope", bearer(scoped), "2", 200, ""},
		{"dev token", bearer(s.devToken), "1", 200, ""},
		// No token, no knowledge of which bots exist.
		{"missing, unknown bot", nil, "99", 401, "token_missing"},
	} {
		code, body, resp := s.do(t, "POST", "/api/chat/"+tc.bot, `{"message":"hi"}`, tc.header)
		if code != tc.status || (tc.code != "" && body["code"] != tc.code) {
			t.Errorf("%s: %d %v; want %d %s", tc.name, code, body, tc.status, tc.code)
		}
		if code == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: a 401 without WWW-Authenticate: Bearer", tc.name)
		}
	}
	// A revoke takes effect on the next request.
	id, tok, err := s.tokens.add(ctx, "soon revoked", []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, bearer(tok)); code != 200 {
		t.Fatalf("before the revoke: %d %v", code, body)
	}
	if err := s.tokens.revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, bearer(tok)); code != 401 || body["code"] != "token_revoked" {
		t.Errorf("right after the revoke: %d %v", code, body)
	}
	// No token in the logs or in an answer.
	for _, k := range []string{s.devToken, scoped, revoked, tok} {
		if strings.Contains(s.stderr.String(), k) || strings.Contains(s.bodies.String(), k) {
			t.Error("a client token reached the log or a response")
		}
		if strings.Contains(s.stderr.String(), k[:20]) {
			t.Error("a client token's first 20 characters reached the log")
		}
	}
}

func TestTrustedHosts(t *testing.T) {
	s := start(t, map[string]string{})
	auth := bearer(s.devToken)
	for host, want := range map[string]int{
		"evil.example":           400,
		"evil.example:8080":      400,
		"localhost":              200,
		"LOCALHOST:1234":         200,
		"127.0.0.1":              200,
		"[::1]:8080":             200,
		"127.0.0.1.evil.example": 400,
	} {
		h := map[string]string{"Host": host, "Authorization": auth["Authorization"]}
		code, body, _ := s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, h)
		if code != want || (want == 400 && body["code"] != "untrusted_host") {
			t.Errorf("Host %s: %d %v, want %d", host, code, body, want)
		}
	}
	// Probes answer any Host: orchestrators probe by address.
	if code, _, _ := s.do(t, "GET", "/healthz", "", map[string]string{"Host": "10.1.2.3:8080"}); code != 200 {
		t.Errorf("/healthz with the pod's address as Host: %d", code)
	}

	s2 := start(t, map[string]string{"CHAT_TRUSTED_HOSTS": "chat.example.com, *.corp.example"})
	for host, want := range map[string]int{
		"chat.example.com":      200,
		"chat.example.com:443":  200,
		"a.corp.example":        200,
		"corp.example":          400,
		"localhost":             400, // the list replaces the loopback default
		"xchat.example.com":     400,
		"chat.example.com.evil": 400,
	} {
		h := map[string]string{"Host": host, "Authorization": "Bearer " + s2.devToken}
		if code, body, _ := s2.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, h); code != want {
			t.Errorf("CHAT_TRUSTED_HOSTS, Host %s: %d %v, want %d", host, code, body, want)
		}
	}
}

func TestCORSAllowList(t *testing.T) {
	s := start(t, map[string]string{"CHAT_CORS_ORIGINS": "https://app.example.com,http://localhost:3000"})
	preflight := func(origin string) (int, *http.Response) {
		code, _, resp := s.do(t, "OPTIONS", "/api/chat/1", "", map[string]string{"Origin": origin,
			"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"})
		return code, resp
	}
	for _, origin := range []string{"https://app.example.com", "http://localhost:3000"} {
		code, resp := preflight(origin)
		h := resp.Header
		if code != 204 || h.Get("Access-Control-Allow-Origin") != origin || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
			h.Get("Access-Control-Allow-Methods") != "POST" {
			t.Errorf("preflight from allowed %s: %d %v", origin, code, h)
		}
	}
	for _, origin := range []string{"https://evil.example", "https://app.example.com.evil.example", "null", "http://app.example.com"} {
		code, resp := preflight(origin)
		if code != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s: %d with Allow-Origin %q; want 403 and no CORS header", origin, code, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	h := bearer(s.devToken)
	h["Origin"] = "https://app.example.com"
	if code, _, resp := s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, h); code != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("chat from the allowed origin: %d %v", code, resp.Header)
	}
	h["Origin"] = "https://evil.example"
	if _, _, resp := s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, h); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("chat from another origin got Access-Control-Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	// Without CHAT_CORS_ORIGINS no origin is allowed.
	s2 := start(t, map[string]string{})
	if code, _, resp := s2.do(t, "OPTIONS", "/api/chat/1", "", map[string]string{"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}); code != 403 ||
		resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight with no allow-list: %d %v", code, resp.Header)
	}
}

// The rate limit believes X-Forwarded-For only from a trusted proxy, and
// groups IPv6 clients by /64.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	chat := func(s *service, xff string) int {
		h := bearer(s.devToken)
		if xff != "" {
			h["X-Forwarded-For"] = xff
		}
		code, _, _ := s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, h)
		return code
	}
	// Not trusted: a client cannot get a fresh bucket by forging the header.
	s := start(t, map[string]string{"CHAT_RATE": "0.001", "CHAT_BURST": "1"})
	if a, b := chat(s, "203.0.113.1"), chat(s, "203.0.113.2"); a != 200 || b != 429 {
		t.Errorf("untrusted peer with two forged X-Forwarded-For: %d then %d, want 200 then 429", a, b)
	}
	// Trusted: each client behind the proxy has its own bucket, and an
	// address the client prepends (left of the proxy's) is not believed.
	p := start(t, map[string]string{"CHAT_RATE": "0.001", "CHAT_BURST": "1", "CHAT_TRUSTED_PROXIES": "127.0.0.1/32, 10.0.0.0/8"})
	for _, tc := range []struct {
		xff  string
		want int
	}{
		{"203.0.113.1", 200},
		{"203.0.113.2", 200},
		{"203.0.113.1", 429},
		{"198.51.100.7, 203.0.113.1", 429}, // the forged left part is ignored
		{"203.0.113.3, 10.0.0.5", 200},     // a chain of trusted proxies
		{"2001:db8:1:2::1", 200},           // IPv6: the /64 is the client
		{"2001:db8:1:2:ffff::9", 429},      // the same /64
		{"2001:db8:1:3::1", 200},           // another /64
		{"not-an-ip", 200},                 // a bad hop: the peer (the proxy, whose bucket is fresh)
		{"", 429},                          // the proxy itself again
	} {
		if got := chat(p, tc.xff); got != tc.want {
			t.Errorf("trusted proxy, X-Forwarded-For %q: %d, want %d", tc.xff, got, tc.want)
		}
	}
}

func TestRateKey(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"2001:db8::1", "2001:db8::ffff:1", true},
		{"2001:db8:0:1::1", "2001:db8:0:2::1", false},
		{"192.0.2.1", "192.0.2.2", false},
		{"::ffff:192.0.2.1", "192.0.2.1", true},
	} {
		ka := rateKey(addrOf("[" + tc.a + "]:1"))
		kb := rateKey(netip.MustParseAddr(tc.b).Unmap())
		if (ka == kb) != tc.same {
			t.Errorf("rateKey(%s)=%s, rateKey(%s)=%s; same bucket = %v, want %v", tc.a, ka, tc.b, kb, ka == kb, tc.same)
		}
	}
}

// A client dribbling its body, and a connection left idle after a request,
// are closed by the server once their timeout passes (before, only the
// header read had a timeout).
func TestSlowAndIdleConnectionsClosed(t *testing.T) {
	s := start(t, map[string]string{"CHAT_READ_TIMEOUT": "1s", "CHAT_IDLE_TIMEOUT": "1s"})
	// Slow body: headers promise 1000 bytes, one arrives every 100 ms.
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/chat/1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", s.devToken)
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, conn) // returns when the server closes
		close(closed)
	}()
	sent := 1
dribble:
	for ; sent < 1000; sent++ {
		select {
		case <-closed:
			break dribble
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := conn.Write([]byte(" ")); err != nil {
			break
		}
	}
	// 1000 bytes at 10 a second would take 100 s; the server must have
	// closed the connection long before the client finished.
	if sent >= 1000 {
		t.Error("the server read a body dribbled over 100 s without closing the connection")
	}

	// Idle: one request, then nothing.
	conn2, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	fmt.Fprint(conn2, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	br := bufio.NewReader(conn2)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// Wait at most 30 s (thirty idle timeouts) for the server to close it.
	conn2.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("an idle keep-alive connection: read gave %v, want EOF (the server closing it)", err)
	}
}

// CHAT_MAX_CONNS caps the connections served at once: beyond it a new
// connection waits until a busy one ends (an idle one gives way at once:
// TestReviewOneClientTakesEveryConnectionAndHealthz).
func TestConnectionCap(t *testing.T) {
	s := start(t, map[string]string{"CHAT_MAX_CONNS": "2", "CHAT_IDLE_TIMEOUT": "5m", "CHAT_READ_TIMEOUT": "5m", "CHAT_READ_HEADER_TIMEOUT": "5m"})
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Busy: a request whose headers have not ended.
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
		held = append(held, c)
	}
	// Let the server read both (they are then active, not new).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s.conns.activeForTest() == 2 {
			break
		}
	}
	third, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	fmt.Fprint(third, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	br := bufio.NewReader(third)
	answered := make(chan error, 1)
	go func() {
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("a third connection was served while two were busy under CHAT_MAX_CONNS=2 (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	held[0].Close()
	select {
	case err := <-answered:
		if err != nil {
			t.Errorf("the third connection, after one closed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the third connection was not served after one of the two closed")
	}
}

// CHAT_MAX_CONNS_PER_CLIENT: one address cannot hold more; its next
// connection is closed at once.
func TestConnectionCapPerClient(t *testing.T) {
	s := start(t, map[string]string{"CHAT_MAX_CONNS_PER_CLIENT": "2", "CHAT_IDLE_TIMEOUT": "5m"})
	for i := 0; i < 2; i++ {
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
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
		t.Error("a third connection from one client was served under CHAT_MAX_CONNS_PER_CLIENT=2")
	}
}

func TestBadSettingsRefuseToStart(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	os.WriteFile(cert, []byte("not a certificate"), 0o600)
	for _, tc := range []struct{ name, value, says string }{
		{"CHAT_READ_TIMEOUT", "forever", "CHAT_READ_TIMEOUT must be a Go duration"},
		{"CHAT_READ_TIMEOUT", "0s", "CHAT_READ_TIMEOUT must be a Go duration from 100ms"},
		{"CHAT_WRITE_TIMEOUT", "-1s", "CHAT_WRITE_TIMEOUT must be a Go duration"},
		{"CHAT_IDLE_TIMEOUT", "99999h", "CHAT_IDLE_TIMEOUT must be a Go duration"},
		{"CHAT_READ_HEADER_TIMEOUT", "x", "CHAT_READ_HEADER_TIMEOUT must be"},
		{"CHAT_MAX_CONNS", "0", "CHAT_MAX_CONNS must be a whole number from 1"},
		{"CHAT_MAX_BODY", "lots", "CHAT_MAX_BODY must be a whole number"},
		{"CHAT_BURST", "-5", "CHAT_BURST must be a whole number from 1 to 10000"},
		{"CHAT_RATE", "abc", "CHAT_RATE must be a number above 0"},
		{"CHAT_ADDR", "8080", "CHAT_ADDR must be host:port"},
		{"CHAT_ADDR", "0.0.0.0:0", "CHAT_TRUSTED_HOSTS must be set when CHAT_ADDR listens beyond loopback"},
		{"CHAT_TRUSTED_HOSTS", "exa mple.com", "CHAT_TRUSTED_HOSTS must be a comma-separated list of host names"},
		{"CHAT_TRUSTED_HOSTS", "http://chat.example.com", "CHAT_TRUSTED_HOSTS must be"},
		{"CHAT_CORS_ORIGINS", "*", "CHAT_CORS_ORIGINS must be a comma-separated list of origins"},
		{"CHAT_CORS_ORIGINS", "app.example.com", "CHAT_CORS_ORIGINS must be"},
		{"CHAT_CORS_ORIGINS", "https://app.example.com/path", "CHAT_CORS_ORIGINS must be"},
		{"CHAT_TRUSTED_PROXIES", "10.0.0.0/33", "CHAT_TRUSTED_PROXIES must be a comma-separated list of IP addresses or CIDR prefixes"},
		{"CHAT_TRUSTED_PROXIES", "proxy.internal", "CHAT_TRUSTED_PROXIES must be"},
		{"CHAT_TLS_CERT", cert, "CHAT_TLS_CERT and CHAT_TLS_KEY go together"},
		{"CHAT_DEFAULT_PROVIDER", "gemini", "CHAT_DEFAULT_PROVIDER must be anthropic or openai"},
	} {
		d := t.TempDir()
		env := map[string]string{tc.name: tc.value, "CHAT_DATA_DIR": d}
		ctx, cancel := context.WithCancel(context.Background())
		addr := "127.0.0.1:0"
		if tc.name == "CHAT_ADDR" {
			addr = tc.value
		}
		env["CHAT_ADDR"] = addr
		err := run(ctx, func(k string) string { return env[k] }, io.Discard, io.Discard, &runOptions{ready: func(*app) { cancel() }})
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s=%s: run returned %v; want an error saying %q", tc.name, tc.value, err, tc.says)
		}
		if _, err := os.Stat(filepath.Join(d, "chatservice.db")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s=%s: the service made its database before refusing the setting", tc.name, tc.value)
		}
	}
	// A certificate and key that do not load.
	env := map[string]string{"CHAT_DATA_DIR": t.TempDir(), "CHAT_TLS_CERT": cert, "CHAT_TLS_KEY": cert, "CHAT_ADDR": "127.0.0.1:0"}
	if err := runUntilReady(t, env); err == nil || !strings.Contains(err.Error(), "CHAT_TLS_CERT and CHAT_TLS_KEY must name a PEM certificate") {
		t.Errorf("a bad certificate: %v", err)
	}
	// Every bad setting at once: each is named.
	env = map[string]string{"CHAT_DATA_DIR": t.TempDir(), "CHAT_MAX_CONNS": "x", "CHAT_CORS_ORIGINS": "*"}
	if err := runUntilReady(t, env); err == nil || !strings.Contains(err.Error(), "CHAT_MAX_CONNS") || !strings.Contains(err.Error(), "CHAT_CORS_ORIGINS") {
		t.Errorf("two bad settings: %v; want both named", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key to dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chatservice test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	s := start(t, map[string]string{"CHAT_TLS_CERT": certFile, "CHAT_TLS_KEY": keyFile})
	if !strings.Contains(s.stdout.String(), "https://"+s.addr+"/api/chat/1") {
		t.Errorf("the curl lines do not say https:\n%s", s.stdout)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("POST", "https://"+s.addr+"/api/chat/1", strings.NewReader(`{"message":"hi"}`))
	req.Header.Set("Authorization", "Bearer "+s.devToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("chat over TLS: %d %v", resp.StatusCode, resp.TLS)
	}
	// Plain HTTP to the TLS port is not served.
	if resp, err := http.Get("http://" + s.addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS port")
		}
	}
}

// failingPing is a backend that resolves nothing and whose Ping fails.
type failingPing struct{}

func (failingPing) Resolve(context.Context, string) (secrets.Secret, error) {
	return secrets.Secret{}, secrets.ErrUnavailable
}
func (failingPing) Ping(context.Context) error {
	return errors.New("vault.internal: connection refused")
}

func TestHealthAndReadiness(t *testing.T) {
	s := start(t, map[string]string{})
	if code, body, _ := s.do(t, "GET", "/readyz", "", nil); code != 200 || body["status"] != "ready" {
		t.Errorf("/readyz: %d %v", code, body)
	}
	down := startWith(t, map[string]string{}, map[string]secrets.KeyResolver{"vault": failingPing{}})
	if code, body, _ := down.do(t, "GET", "/readyz", "", nil); code != 503 || body["code"] != "not_ready" || !strings.Contains(body["error"], "key backends") ||
		strings.Contains(body["error"], "vault.internal") {
		t.Errorf("/readyz with a backend down: %d %v; want 503 naming the part, not the error", code, body)
	}
	if code, body, _ := down.do(t, "GET", "/healthz", "", nil); code != 200 || body["status"] != "ok" {
		t.Errorf("/healthz with a backend down: %d %v; want 200 (alive)", code, body)
	}
}

// Every stderr line is one JSON object: the access log (one line per
// request, whatever its status), the start and shutdown lines, the
// development-key warning. No line holds a key or a client token.
func TestLogsAreJSONWithAccessLines(t *testing.T) {
	env := map[string]string{"CHAT_RATE": "0.001", "CHAT_BURST": "2"}
	s := start(t, env)
	s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, bearer(s.devToken))                // 200
	s.do(t, "POST", "/api/chat/99", `{"message":"hi"}`, bearer(s.devToken))               // 404
	s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, bearer(s.devToken))                // 429
	s.do(t, "GET", "/nope?token="+s.devToken, "", nil)                                    // 404
	s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, map[string]string{"Host": "evil"}) // 400

	var access []map[string]any
	sawStart, sawWarning := false, false
	for _, line := range strings.Split(strings.TrimSpace(s.stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("a log line is not JSON: %.80q", line)
			continue
		}
		switch m["msg"] {
		case "request":
			access = append(access, m)
		case "chatservice started":
			sawStart = true
		}
		if msg, _ := m["msg"].(string); strings.Contains(msg, "DEVELOPMENT key") && m["to_move_to_a_real_key"] != nil {
			sawWarning = true
		}
	}
	if !sawStart || !sawWarning {
		t.Errorf("start line %v, development-key warning with the steps %v", sawStart, sawWarning)
	}
	var statuses []float64
	for _, a := range access {
		statuses = append(statuses, a["status"].(float64))
		if a["client"] != "127.0.0.1" || a["method"] == nil || a["path"] == nil || a["duration"] == nil {
			t.Errorf("access line lacks a field: %v", a)
		}
	}
	if fmt.Sprint(statuses) != "[200 404 429 404 400]" {
		t.Errorf("access lines' statuses %v, want one line per request: [200 404 429 404 400]", statuses)
	}
	if len(access) > 0 && access[0]["token_id"] == nil {
		t.Errorf("the access line of an authorized chat does not name the token's id: %v", access[0])
	}
	devKey, _ := os.ReadFile(filepath.Join(env["CHAT_DATA_DIR"], devKeyFile))
	dotenv, _ := os.ReadFile(filepath.Join(env["CHAT_DATA_DIR"], demoEnv))
	issued, _ := os.ReadFile(filepath.Join(env["CHAT_DATA_DIR"], standInKeysFile))
	secretsSeen := []string{s.devToken, strings.TrimSpace(string(devKey))}
	secretsSeen = append(secretsSeen, strings.Fields(string(issued))...)
	if _, v, ok := strings.Cut(strings.TrimSpace(string(dotenv)), "="); ok {
		secretsSeen = append(secretsSeen, v)
	}
	if len(secretsSeen) < 4 {
		t.Fatalf("found %d secrets to search for, want the token, the master key and two provider keys", len(secretsSeen))
	}
	for _, v := range secretsSeen {
		if len(v) < 12 {
			t.Fatal("a secret too short to search for")
		}
		if strings.Contains(s.stderr.String(), v) || strings.Contains(s.bodies.String(), v) {
			t.Error("a key or a client token reached the log or a response")
		}
	}
}

// The stand-in knows the keys it issued at seeding, from its own file, not
// from the resolver: a bot whose key is changed in the database to one the
// stand-in never issued is refused by the stand-in.
func TestStandInKnowsOnlyIssuedKeys(t *testing.T) {
	env := map[string]string{"CHAT_RATE": "1000", "CHAT_BURST": "1000"}
	s := start(t, env)
	issued, err := os.ReadFile(filepath.Join(env["CHAT_DATA_DIR"], standInKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(env["CHAT_DATA_DIR"], standInKeysFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("the stand-in's key file has mode %v", fi.Mode().Perm())
	}
	if n := len(strings.Fields(string(issued))); n != 2 {
		t.Fatalf("the stand-in issued %d keys, want 2", n)
	}
	if code, body, _ := s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, bearer(s.devToken)); code != 200 {
		t.Fatalf("seeded bot: %d %v", code, body)
	}
	bots, err := s.bots.all(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(bots[0].KeyRef, "db:")
	if err := s.keys.UpdateValue(context.Background(), id, "sk-ant-never-issued-"+randomHex(8)); err != nil {
		t.Fatal(err)
	}
	if c, ok := secrets.Find[*cache.Cache](s.stack); ok {
		c.Invalidate(bots[0].KeyRef)
	}
	if code, body, _ := s.do(t, "POST", "/api/chat/1", `{"message":"hi"}`, bearer(s.devToken)); code != 502 || body["code"] != "provider_rejected_key" {
		t.Errorf("a key the stand-in never issued: %d %v, want 502 provider_rejected_key", code, body)
	}
}
