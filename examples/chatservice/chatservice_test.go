package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

// service runs the chat service in-process on a free port with env as its
// whole environment, and returns it once it listens.
type service struct {
	*app
	stdout, stderr *testenv.Buffer
	bodies         *testenv.Buffer // every response body the test received
	token          string          // the client token post sends: the development token unless set
}

func start(t *testing.T, env map[string]string) *service {
	t.Helper()
	return startWith(t, env, nil)
}

func startWith(t *testing.T, env map[string]string, backends map[string]secrets.KeyResolver) *service {
	t.Helper()
	if env["CHAT_DATA_DIR"] == "" {
		env["CHAT_DATA_DIR"] = t.TempDir()
	}
	env["CHAT_ADDR"] = "127.0.0.1:0"
	s := &service{stdout: new(testenv.Buffer), stderr: new(testenv.Buffer), bodies: new(testenv.Buffer)}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *app, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func(k string) string { return env[k] }, s.stdout, s.stderr, &runOptions{
			ready: func(a *app) { ready <- a }, backends: backends})
	}()
	select {
	case s.app = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("the service did not start: %v\nstderr: %s", err, s.stderr)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("the service did not start within a minute")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return s
}

func (s *service) post(t *testing.T, path, body string) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+s.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok := cmp.Or(s.token, s.devToken); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	s.bodies.Write(b)
	var m map[string]string
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func (s *service) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// assertNoKeys fails if any output of the service or any response holds a key.
func (s *service) assertNoKeys(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if len(k) < 12 {
			t.Fatalf("key %d bytes long is too short to search for", len(k))
		}
		for name, text := range map[string]string{"stdout": s.stdout.String(), "stderr (logs)": s.stderr.String(), "responses": s.bodies.String()} {
			if strings.Contains(text, k) {
				t.Errorf("the service's %s contain a key", name)
			}
		}
	}
}

func TestZeroConfigMainJob(t *testing.T) {
	env := map[string]string{"CHAT_RATE": "1000", "CHAT_BURST": "1000"}
	s := start(t, env)
	dir := env["CHAT_DATA_DIR"]

	// The development key: made on first run, private, and warned about.
	fi, err := os.Stat(filepath.Join(dir, devKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the development key file has mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(s.stderr.String(), "WARNING") || !strings.Contains(s.stderr.String(), "DEVELOPMENT key") {
		t.Error("no loud warning about the development key")
	}
	devKey, _ := os.ReadFile(filepath.Join(dir, devKeyFile))

	// The printed curl lines name both bots and their refs.
	out := s.stdout.String()
	for _, want := range []string{"curl -s -X POST -H \"Authorization: Bearer $CHAT_TOKEN\" http://" + s.addr + "/api/chat/1", "export CHAT_TOKEN=" + s.devToken, "/api/chat/2", "db:1", "env:" + demoEnvVar} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}

	for id, name := range map[int]string{1: "support", 2: "sales"} {
		code, body := s.post(t, fmt.Sprintf("/api/chat/%d", id), `{"message":"hello"}`)
		if code != http.StatusOK || body["bot"] != name || body["reply"] != "stand-in reply to: hello" {
			t.Errorf("bot %d: %d %v", id, code, body)
		}
	}
	if code, body := s.post(t, "/api/chat/99", `{"message":"hi"}`); code != http.StatusNotFound || !strings.Contains(body["error"], "no bot with id 99") {
		t.Errorf("unknown bot: %d %v", code, body)
	}
	if code, _ := s.post(t, "/api/chat/abc", `{"message":"hi"}`); code != http.StatusNotFound {
		t.Errorf("non-numeric bot id: %d", code)
	}
	if code, body := s.post(t, "/api/chat/1", `not json`); code != http.StatusBadRequest || !strings.Contains(body["error"], `{"message"`) {
		t.Errorf("bad body: %d %v", code, body)
	}

	// An expired key: 403 with a clear message.
	ctx := context.Background()
	id, err := s.keys.Put(ctx, "old-bot", "anthropic", "sk-ant-expired-"+randomHex(8), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.bots.add(ctx, "old", "anthropic", "db:"+id); err != nil {
		t.Fatal(err)
	}
	code, body := s.post(t, "/api/chat/3", `{"message":"hi"}`)
	if code != http.StatusForbidden || !strings.Contains(body["error"], `API key of bot "old" has expired`) {
		t.Errorf("expired key: %d %v", code, body)
	}

	// A key the provider rejects: 502 that says so.
	id, _ = s.keys.Put(ctx, "wrong", "openai", "sk-openai-unknown-to-provider-"+randomHex(4), time.Time{})
	s.bots.add(ctx, "wrong", "openai", "db:"+id)
	if code, body := s.post(t, "/api/chat/4", `{"message":"hi"}`); code != http.StatusBadGateway || !strings.Contains(body["error"], "rejected the API key") {
		t.Errorf("rejected key: %d %v", code, body)
	}

	if code, body := s.get(t, "/healthz"); code != http.StatusOK || !strings.Contains(body, "ok") {
		t.Errorf("healthz: %d %s", code, body)
	}
	code, metrics := s.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`keyward_resolves_total{backend="fernet",outcome="ok",source="backend"}`,
		`keyward_resolves_total{backend="fernet",outcome="ok",source="cache"}`,
		`keyward_resolves_total{backend="env",outcome="ok",source="cache"}`,
		`keyward_resolves_total{backend="fernet",outcome="expired"`,
		`keyward_resolve_duration_seconds_bucket{backend="fernet",outcome="ok"`,
		"keyward_cache_hits_total", "keyward_cache_backend_calls_total",
		`chatservice_requests_total{code="200"} 2`, `chatservice_requests_total{code="403"} 1`, `chatservice_requests_total{code="404"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	demoKey, err := s.stack.Resolve(ctx, "db:1")
	if err != nil {
		t.Fatal(err)
	}
	envFile, _ := os.ReadFile(filepath.Join(dir, demoEnv))
	_, envKey, _ := strings.Cut(strings.TrimSpace(string(envFile)), "=")
	s.assertNoKeys(t, demoKey.Reveal(), envKey, strings.TrimSpace(string(devKey)))
}

func TestRestartKeepsKeysAndSeedsOnce(t *testing.T) {
	dir := t.TempDir()
	s1 := start(t, map[string]string{"CHAT_DATA_DIR": dir})
	k1, err := s1.stack.Resolve(context.Background(), "db:1")
	if err != nil {
		t.Fatal(err)
	}
	s2 := start(t, map[string]string{"CHAT_DATA_DIR": dir})
	all, err := s2.bots.all(context.Background())
	if err != nil || len(all) != 2 {
		t.Fatalf("after a restart: %d bots, %v; want the 2 seeded once", len(all), err)
	}
	k2, err := s2.stack.Resolve(context.Background(), "db:1")
	if err != nil || k2.Reveal() != k1.Reveal() {
		t.Fatalf("after a restart the encrypted key does not decrypt to the same value: %v", err)
	}
	if code, _ := s2.post(t, "/api/chat/1", `{"message":"again"}`); code != http.StatusOK {
		t.Errorf("chat after restart: %d", code)
	}
}

func TestRateLimitPerClient(t *testing.T) {
	s := start(t, map[string]string{"CHAT_RATE": "0.001", "CHAT_BURST": "3"})
	var codes []int
	for range 5 {
		code, _ := s.post(t, "/api/chat/1", `{"message":"hi"}`)
		codes = append(codes, code)
	}
	want := []int{200, 200, 200, 429, 429}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("codes = %v, want %v", codes, want)
	}
	// Another client has its own bucket.
	l := newClientLimits(0.001, 1).chats
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if !l.allow(a) || l.allow(a) || !l.allow(b) {
		t.Error("buckets are not per client")
	}
}

func TestBackendOutageIs503(t *testing.T) {
	dir := t.TempDir()
	// A backend that is down: the env backend's .env file cannot be read
	// gives ErrUnavailable without waiting on any retry.
	s := start(t, map[string]string{
		"CHAT_DATA_DIR":  dir,
		"KEYWARD_CONFIG": "env = env://?dotenv=" + filepath.Join(dir, "gone", "missing.env") + "; cache = on; audit = on",
	})
	code, body := s.post(t, "/api/chat/2", `{"message":"hi"}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body["error"], "unavailable") {
		t.Errorf("outage: %d %v", code, body)
	}
	if !strings.Contains(s.stderr.String(), `"outcome":"unavailable"`) {
		t.Error("the audit log does not report the unavailable backend")
	}
}

func TestProviderURLAndRedirects(t *testing.T) {
	for base, ok := range map[string]bool{
		"https://api.anthropic.com": true, "http://127.0.0.1:9999": true, "http://localhost:1": true, "http://[::1]:2": true,
		"http://api.openai.com": false, "ftp://x": false, "https://u:p@h": false, "not a url": false,
	} {
		if err := checkProviderURL(base); (err == nil) != ok {
			t.Errorf("checkProviderURL(%q) = %v, want ok=%v", base, err, ok)
		}
	}

	// A provider that redirects: the key must not follow the redirect.
	var leaked atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-api-key") != "" || r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
	}))
	defer other.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	s := start(t, map[string]string{"ANTHROPIC_BASE_URL": redirector.URL, "OPENAI_BASE_URL": redirector.URL})
	code, body := s.post(t, "/api/chat/1", `{"message":"hi"}`)
	if code != http.StatusBadGateway {
		t.Errorf("a redirecting provider: %d %v, want 502", code, body)
	}
	if leaked.Load() {
		t.Fatal("the key followed the provider's redirect to another host")
	}
}
