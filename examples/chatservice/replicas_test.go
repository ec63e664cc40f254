package main

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// Issue 13's done-when: the chat service, run twice on one PostgreSQL with a
// one-hour cache TTL, sends a new key to the provider from both replicas
// soon after `keyward update`. The replicas are two processes of the built
// binary, as an operator runs them; the key is put and updated with the
// built keyward CLI; each replica talks to a provider of its own, which
// records every key it is sent, so the test knows which replica sent what.

// replicaConfig is the replicas' KEYWARD_CONFIG: the encrypted column, a
// cache that keeps a key for an hour, and the audit log on stderr.
const replicaConfig = "db = fernet://; cache = ttl=1h; audit = on"

// switchDeadline bounds the wait for both replicas to send the new key. It
// is a generous bound for a slow, loaded machine, not the figure measured:
// the test logs that.
const switchDeadline = 20 * time.Second

// sentKey is one request a recording provider received.
type sentKey struct {
	key string
	at  time.Time
}

// recordingProvider stands in for Anthropic and OpenAI for one replica: it
// answers a request carrying one of the keys it accepts, refuses any other
// (401, as the real ones do), and records the key of every request.
type recordingProvider struct {
	srv    *httptest.Server
	accept map[string]bool
	mu     sync.Mutex
	got    []sentKey
}

func newRecordingProvider(t *testing.T, accept ...string) *recordingProvider {
	t.Helper()
	p := &recordingProvider{accept: map[string]bool{}}
	for _, k := range accept {
		p.accept[k] = true
	}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *recordingProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	key := r.Header.Get("x-api-key")
	if key == "" {
		key, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	p.mu.Lock()
	p.got = append(p.got, sentKey{key, at})
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !p.accept[key] {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"type":"authentication_error","message":"invalid x-api-key"}}`)
		return
	}
	var req providerRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || len(req.Messages) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	reply := "recorded: " + req.Messages[len(req.Messages)-1].Content
	if r.URL.Path == "/v1/messages" {
		json.NewEncoder(w).Encode(map[string]any{"content": []map[string]string{{"type": "text", "text": reply}}})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"choices": []map[string]any{{"message": map[string]string{"content": reply}}}})
}

// sent returns a copy of the requests received so far, in arrival order.
func (p *recordingProvider) sent() []sentKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sentKey(nil), p.got...)
}

// firstWith returns the index of the first request in sent carrying key, or -1.
func firstWith(sent []sentKey, key string) int {
	for i, s := range sent {
		if s.key == key {
			return i
		}
	}
	return -1
}

// binaries are the chat service and the keyward CLI, built from the module
// root into a directory of the test's.
type binaries struct{ chat, keyward string }

func buildBinaries(t *testing.T) binaries {
	t.Helper()
	dir := t.TempDir()
	b := binaries{chat: filepath.Join(dir, "chatservice"), keyward: filepath.Join(dir, "keyward")}
	for bin, pkg := range map[string]string{b.chat: "./examples/chatservice", b.keyward: "./cmd/keyward"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return b
}

// processEnv is env as a process's whole environment, with PATH and a HOME
// of the test's.
func processEnv(t *testing.T, env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// redact replaces every secret in text by its name, so that a failure can
// show a process's output without showing a key.
func redact(text string, secrets map[string]string) string {
	for name, v := range secrets {
		text = strings.ReplaceAll(text, v, "<"+name+">")
	}
	return text
}

// runBinary runs bin with args, env and stdin, and returns its stdout; it
// fails the test if the command fails, or if its stdout or stderr holds any
// of secrets.
func runBinary(t *testing.T, bin string, env map[string]string, stdin string, secrets map[string]string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = processEnv(t, env)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	for name, v := range secrets {
		if strings.Contains(stdout.String(), v) || strings.Contains(stderr.String(), v) {
			t.Errorf("%s %s printed %s", filepath.Base(bin), args[0], name)
		}
	}
	if err != nil {
		t.Fatalf("%s %s: %v\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), err, redact(stderr.String(), secrets))
	}
	return stdout.String()
}

// replica is one running chat service process.
type replica struct {
	name           string
	base           string // http://127.0.0.1:PORT
	provider       *recordingProvider
	stdout, stderr *testenv.Buffer
	bodies         *testenv.Buffer // every chat response body
	token          string
	client         *http.Client
}

// startReplica starts the chat service binary with env as its whole
// environment and returns it once it listens; it is stopped (SIGINT, as
// Ctrl-C) at the end of the test and must exit cleanly.
func startReplica(t *testing.T, bin, name string, env map[string]string, provider *recordingProvider, secrets map[string]string) *replica {
	t.Helper()
	r := &replica{name: name, provider: provider, stdout: new(testenv.Buffer), stderr: new(testenv.Buffer),
		bodies: new(testenv.Buffer), client: &http.Client{Timeout: 10 * time.Second}}
	cmd := exec.Command(bin)
	cmd.Env = processEnv(t, env)
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("replica %s did not stop cleanly: %v\nstderr: %s", name, err, redact(r.stderr.String(), secrets))
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("replica %s did not stop within 30 s of SIGINT", name)
		}
	})
	const listening = "chatservice listening on "
	deadline := time.Now().Add(60 * time.Second)
	for {
		if i := strings.Index(r.stdout.String(), listening); i >= 0 {
			line, _, found := strings.Cut(r.stdout.String()[i+len(listening):], "\n")
			if found {
				r.base = strings.TrimSpace(line)
				return r
			}
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("replica %s exited before it listened: %v\nstderr: %s", name, err, redact(r.stderr.String(), secrets))
		case <-time.After(20 * time.Millisecond): // polling the process's output
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not listen within a minute\nstderr: %s", name, redact(r.stderr.String(), secrets))
		}
	}
}

// chat sends one chat to bot id and returns the status.
func (r *replica) chat(id string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, r.base+"/api/chat/"+id, strings.NewReader(`{"message":"hello"}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r.bodies.Write(b)
	return resp.StatusCode, err
}

// scrapeMetrics reads base's /metrics: each sample's series as the text
// format prints it (name{label="value",...}, labels sorted by name) and its
// value.
func scrapeMetrics(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %s", base, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// withAppName returns dsn with the connections' application_name set, by
// which pg_stat_activity tells the test's processes apart.
func withAppName(t *testing.T, dsn, name string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// awaitListener waits until a connection of application appName LISTENs
// (the replica's watch of api_keys is subscribed: an update from now on
// reaches it) and reports whether one did within 15 s.
func awaitListener(t *testing.T, db *sql.DB, appName string) bool {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'", appName).Scan(&n)
		if err != nil {
			t.Fatalf("read pg_stat_activity: %v", err)
		}
		if n > 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // polling another process's state
	}
}

// TestReplicasSwitchKeyOnUpdate runs the chat service twice on one fresh
// PostgreSQL schema with a one-hour cache TTL; both send key 1 (the second
// chat a cache hit), then `keyward update` stores key 2, and both must send
// key 2 within switchDeadline, and never key 1 after their first key 2. The
// time from the update's exit to each replica's first request with key 2 is
// logged.
func TestReplicasSwitchKeyOnUpdate(t *testing.T) {
	dsn, db := freshSchema(t)
	bins := buildBinaries(t)
	encKey, err := fernetstore.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key1, key2 := "sk-ant-replica-one-"+randomHex(16), "sk-ant-replica-two-"+randomHex(16)
	secrets := map[string]string{"key 1": key1, "key 2": key2, "ENCRYPTION_KEY": encKey}
	tag := "kwrep_" + randomHex(4) + "_"

	replicaEnv := func(name string, p *recordingProvider) map[string]string {
		return map[string]string{
			"DATABASE_URL": withAppName(t, dsn, tag+name), fernetstore.EnvKey: encKey, "KEYWARD_CONFIG": replicaConfig,
			"CHAT_ADDR": "127.0.0.1:0", "CHAT_DATA_DIR": t.TempDir(), "CHAT_RATE": "10000", "CHAT_BURST": "10000",
			"ANTHROPIC_BASE_URL": p.srv.URL, "OPENAI_BASE_URL": p.srv.URL,
		}
	}
	providerA, providerB := newRecordingProvider(t, key1, key2), newRecordingProvider(t, key1, key2)
	// The first replica makes the tables (and seeds its demo bots).
	a := startReplica(t, bins.chat, "A", replicaEnv("a", providerA), providerA, secrets)

	// The operator stores key 1 and points a bot at it, then makes a
	// client token, each with its command.
	cli := map[string]string{"DATABASE_URL": withAppName(t, dsn, tag+"cli"), fernetstore.EnvKey: encKey}
	id := strings.TrimSpace(runBinary(t, bins.keyward, cli, key1+"\n", secrets, "put", "--name", "rotating", "--provider", "anthropic"))
	if id == "" {
		t.Fatal("keyward put printed no id")
	}
	var botID int64
	if err := db.QueryRow("INSERT INTO bots (name, provider, api_key_ref) VALUES ($1, $2, $3) RETURNING id", "rotating", "anthropic", "db:"+id).Scan(&botID); err != nil {
		t.Fatal(err)
	}
	bot := strconv.FormatInt(botID, 10)
	token := strings.TrimSpace(runBinary(t, bins.chat, map[string]string{"DATABASE_URL": dsn}, "", secrets, "token", "add", "--name", "replicas", "--bots", "*"))
	if token == "" {
		t.Fatal("chatservice token add printed no token")
	}
	secrets["the client token"] = token
	b := startReplica(t, bins.chat, "B", replicaEnv("b", providerB), providerB, secrets)
	replicas := []*replica{a, b}
	for _, r := range replicas {
		r.token = token
	}
	for _, r := range replicas {
		if !awaitListener(t, db, tag+strings.ToLower(r.name)) {
			t.Errorf("replica %s never LISTENs on PostgreSQL: no update reaches its cache before the TTL (1 h) ends", r.name)
		}
	}

	// Both send key 1; the second chat is answered from the cache.
	const calls, hits = "keyward_cache_backend_calls_total", "keyward_cache_hits_total"
	for _, r := range replicas {
		if code, err := r.chat(bot); code != http.StatusOK {
			t.Fatalf("first chat through replica %s: %d %v\nstderr: %s", r.name, code, err, redact(r.stderr.String(), secrets))
		}
		first := scrapeMetrics(t, r.base)
		if code, err := r.chat(bot); code != http.StatusOK {
			t.Fatalf("second chat through replica %s: %d %v", r.name, code, err)
		}
		second := scrapeMetrics(t, r.base)
		if second[calls] != first[calls] || second[hits] != first[hits]+1 {
			t.Errorf("the second chat through replica %s made %v backend calls and %v cache hits, want 0 and 1 (the key cached)",
				r.name, second[calls]-first[calls], second[hits]-first[hits])
		}
		sent := r.provider.sent()
		if len(sent) != 2 || sent[0].key != key1 || sent[1].key != key1 {
			t.Fatalf("replica %s sent %d requests before the update, want 2 with key 1 (first with key 1: %d)", r.name, len(sent), firstWith(sent, key1))
		}
	}
	before := map[string]float64{}
	for _, r := range replicas {
		before[r.name] = scrapeMetrics(t, r.base)[calls]
	}

	// Both replicas chat in a loop while keyward update stores key 2, and
	// go on until each has sent it, and a few chats more.
	const chatsAfterSwitch = 20
	var wg sync.WaitGroup
	failures := make([]error, len(replicas))
	chats := make([]int, len(replicas))
	updateDone := make(chan struct{})
	var updateStart, updated time.Time
	for i, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			more := -1
			for more != 0 {
				select {
				case <-updateDone:
					if time.Since(updated) > switchDeadline {
						return
					}
				default:
				}
				code, err := r.chat(bot)
				chats[i]++
				if code != http.StatusOK {
					failures[i] = errors.Join(failures[i], fmt.Errorf("chat %d: status %d %v", chats[i], code, err))
					if code == 0 {
						return
					}
				}
				if more > 0 {
					more--
				} else if more < 0 && firstWith(r.provider.sent(), key2) >= 0 {
					more = chatsAfterSwitch
				}
				time.Sleep(2 * time.Millisecond) // pacing the loop, not waiting for a TTL
			}
		}()
	}
	updateStart = time.Now()
	runBinary(t, bins.keyward, cli, key2+"\n", secrets, "update", id)
	updated = time.Now()
	close(updateDone)
	wg.Wait()
	t.Logf("keyward update ran for %v", updated.Sub(updateStart))

	for i, r := range replicas {
		if failures[i] != nil {
			t.Errorf("replica %s: chats failed: %v", r.name, failures[i])
		}
		sent := r.provider.sent()
		at := firstWith(sent, key2)
		if at < 0 {
			t.Errorf("replica %s still sent key 1 %v after keyward update exited (%d chats): its cache kept the replaced key",
				r.name, switchDeadline, chats[i])
			continue
		}
		// Requests with key 1 that arrived after the update exited: chats
		// sent in the gap between the commit reaching the replica and
		// the replica's cache dropping the key.
		late := 0
		for _, s := range sent[:at] {
			if s.key == key1 && s.at.After(updated) {
				late++
			}
		}
		t.Logf("replica %s: first request with key 2 %v after keyward update exited (%v after it started; negative: before the CLI process had exited); %d requests with key 1 after the exit; %d backend calls since the update",
			r.name, sent[at].at.Sub(updated), sent[at].at.Sub(updateStart), late, int(scrapeMetrics(t, r.base)[calls]-before[r.name]))
		for j, s := range sent[at:] {
			if s.key != key2 {
				t.Errorf("replica %s: request %d after its first with key 2 carried %s", r.name, j, map[bool]string{true: "key 1", false: "an unknown key"}[s.key == key1])
			}
		}
		if n := len(sent) - at; n < chatsAfterSwitch {
			t.Errorf("replica %s: %d requests with key 2, want at least %d", r.name, n, chatsAfterSwitch)
		}
	}

	// Keys are canaries: no process printed one, no response held one.
	for _, r := range replicas {
		for name, v := range secrets {
			for what, text := range map[string]string{"stdout": r.stdout.String(), "stderr": r.stderr.String(), "responses": r.bodies.String()} {
				if strings.Contains(text, v) {
					t.Errorf("replica %s's %s hold %s", r.name, what, name)
				}
			}
		}
	}
}
