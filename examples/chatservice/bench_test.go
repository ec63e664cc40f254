package main

// Issue 14, Speed: requests per second through POST /api/chat/{bot} with the
// stand-in provider, with and without the audit table, on SQLite and
// PostgreSQL; and what the key-resolution path (a cache hit) costs against
// a key in a constant. Nothing here asserts a duration: the numbers are for
// benchstat (see BENCHMARKS.md, "The example chat service (issue 14)").

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
)

// benchConstKey is a KeyResolver that answers every ref with one Secret,
// set once the service has seeded its key (the stand-in provider accepts
// only the keys it issued). Before that it answers not found.
type benchConstKey struct {
	s atomic.Pointer[secrets.Secret]
}

func (c *benchConstKey) Resolve(_ context.Context, ref string) (secrets.Secret, error) {
	if s := c.s.Load(); s != nil {
		return *s, nil
	}
	return secrets.Secret{}, secrets.NewError("resolve", "const", ref, secrets.CodeNotFound, "not set yet", nil)
}

// set makes the constant the key the service seeded for bot 1 (the first
// key the stand-in issued, in its file in dataDir).
func (c *benchConstKey) set(b testing.TB, dataDir string) {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, standInKeysFile))
	if err != nil {
		b.Fatal(err)
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	if !strings.HasPrefix(first, "sk-ant-demo-") {
		b.Fatal("the stand-in's first issued key is not the support bot's")
	}
	s := secrets.NewSecret(strings.TrimSpace(first))
	s.Source.Backend = "const"
	c.s.Store(&s)
}

// benchStart runs the service in-process like startWith, but with its
// output to io.Discard (a buffer would grow by two log lines a request and
// weigh on the numbers), and stops it when b's run ends.
func benchStart(b testing.TB, env map[string]string, backends map[string]secrets.KeyResolver) *app {
	b.Helper()
	env["CHAT_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *app, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func(k string) string { return env[k] }, io.Discard, io.Discard, &runOptions{
			ready: func(a *app) { ready <- a }, backends: backends})
	}()
	var a *app
	select {
	case a = <-ready:
	case err := <-done:
		cancel()
		b.Fatalf("the service did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		b.Fatal("the service did not start within a minute")
	}
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("run: %v", err)
		}
	})
	return a
}

// benchVariant is one configuration of the service under load.
type benchVariant struct {
	name     string
	config   string // KEYWARD_CONFIG; %s is the data directory
	constKey bool   // the db: backend is a constant (benchConstKey)
}

// The stack's layers per variant: audit-on is Mux > cache > expiry > audit
// (metrics + slog to io.Discard); audit-db adds the audit table to the
// auditors; audit-off drops the audit layer; const-key is Mux > expiry with
// db: a constant (no cache, no audit: the nearest to "the key in a
// constant" that needs no change to run, see BenchmarkChatResolve).
var benchVariants = []benchVariant{
	{name: "audit-on", config: "db = fernet://; env = env://?dotenv=%s/chatservice.env; cache = size=1000&ttl=1h; audit = on"},
	{name: "audit-db", config: "db = fernet://; env = env://?dotenv=%s/chatservice.env; cache = size=1000&ttl=1h; audit = db"},
	{name: "audit-off", config: "db = fernet://; env = env://?dotenv=%s/chatservice.env; cache = size=1000&ttl=1h; audit = off"},
	{name: "const-key", config: "db = fernet://; env = env://?dotenv=%s/chatservice.env; audit = off", constKey: true},
}

// benchService starts the service of variant v on dialect's database, with
// a rate limit that the benchmark does not reach.
func benchService(b *testing.B, dialect string, v benchVariant) (*app, string) {
	b.Helper()
	dir := b.TempDir()
	env := map[string]string{
		"CHAT_DATA_DIR":  dir,
		"CHAT_RATE":      "10000",
		"CHAT_BURST":     "10000",
		"DATABASE_URL":   freshDatabase(b, dialect),
		"KEYWARD_CONFIG": fmt.Sprintf(v.config, dir),
	}
	var backends map[string]secrets.KeyResolver
	var c *benchConstKey
	if v.constKey {
		c = new(benchConstKey)
		backends = map[string]secrets.KeyResolver{"db": c}
	}
	a := benchStart(b, env, backends)
	if c != nil {
		c.set(b, dir)
	}
	if a.devToken == "" {
		b.Fatal("no development client token")
	}
	return a, dir
}

// BenchmarkChatRPS drives POST /api/chat/1 (the support bot, its key in the
// encrypted column, a cache hit after the start's warm-up) with keep-alive
// clients, 4 per CPU. It reports req/s, the median and 99th percentile
// latency of the run, the database connections closed per request, and for audit-db the audit table's dropped count
// (/metrics keyward_audit_dropped_total) after the run.
//
// CHAT_BENCH_ROTATE=n starts the order of the variants at the n-th (mod 4),
// so that rounds of one variant each can rotate which variant runs first.
func BenchmarkChatRPS(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("CHAT_BENCH_ROTATE"))
	n = (n%len(benchVariants) + len(benchVariants)) % len(benchVariants)
	order := append(slices.Clone(benchVariants[n:]), benchVariants[:n]...)
	for _, dialect := range []string{"sqlite", "postgres"} {
		for _, v := range order {
			b.Run("db="+dialect+"/v="+v.name, func(b *testing.B) {
				a, _ := benchService(b, dialect, v)
				benchChat(b, a, v.name == "audit-db")
			})
		}
	}
}

func benchChat(b *testing.B, a *app, auditTable bool) {
	url := "http://" + a.addr + "/api/chat/1"
	auth := "Bearer " + a.devToken
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failed    atomic.Int64
		firstErr  atomic.Pointer[string]
	)
	fail := func(msg string) {
		failed.Add(1)
		firstErr.CompareAndSwap(nil, &msg)
	}
	var transports []*http.Transport
	before := a.bots.db.Stats()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
		client := &http.Client{Transport: tr}
		mine := make([]time.Duration, 0, 1024)
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"message":"hello"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", auth)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				fail(err.Error())
				continue
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mine = append(mine, time.Since(t0))
			if err != nil || resp.StatusCode != http.StatusOK {
				fail(fmt.Sprintf("status %d, %v", resp.StatusCode, err))
			}
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		transports = append(transports, tr)
		mu.Unlock()
	})
	b.StopTimer()
	elapsed := b.Elapsed()
	after := a.bots.db.Stats()
	for _, tr := range transports {
		tr.CloseIdleConnections()
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed; the first: %s", n, b.N, *firstErr.Load())
	}
	if elapsed > 0 {
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-us")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-us")
	}
	// Connections the database pool closed because more than its idle
	// limit were idle: each is a new connection later (database/sql keeps 2
	// idle by default; the SQLite pool is one connection).
	b.ReportMetric(float64(after.MaxIdleClosed-before.MaxIdleClosed)/float64(b.N), "db-conns-closed/op")
	if auditTable {
		b.ReportMetric(benchMetric(b, a, "keyward_audit_dropped_total"), "audit-dropped")
	}
}

// benchMetric reads one unlabelled counter from the service's /metrics.
func benchMetric(b testing.TB, a *app, name string) float64 {
	b.Helper()
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				b.Fatalf("/metrics %s: %v", name, err)
			}
			return f
		}
	}
	b.Fatalf("/metrics has no %s", name)
	return 0
}

// BenchmarkChatResolve is what the key-resolution path costs a chat: the
// service's own stack resolving the support bot's key (a cache hit, with
// the requester in the context as the server sets it) against a constant
// KeyResolver, in-process, one goroutine. The service's server resolves
// through the same *secrets.Stack (a.stack); replacing it by a constant in
// the HTTP benchmark needs a change to run (see BENCHMARKS.md).
func BenchmarkChatResolve(b *testing.B) {
	for _, v := range benchVariants[:3] {
		b.Run("v="+v.name, func(b *testing.B) {
			a, _ := benchService(b, "sqlite", v)
			benchResolve(b, a.stack)
			if v.name == "audit-db" {
				b.ReportMetric(benchMetric(b, a, "keyward_audit_dropped_total"), "audit-dropped")
			}
		})
	}
	b.Run("v=const-key", func(b *testing.B) {
		c := new(benchConstKey)
		s := secrets.NewSecret("sk-ant-demo-" + strings.Repeat("0", 32))
		c.s.Store(&s)
		benchResolve(b, c)
	})
}

func benchResolve(b *testing.B, r secrets.KeyResolver) {
	ctx := secrets.WithRequester(context.Background(), "token:1")
	if _, err := r.Resolve(ctx, "db:1"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var err error
	for range b.N {
		_, err = r.Resolve(ctx, "db:1")
	}
	b.StopTimer()
	if err != nil {
		b.Fatal(errors.Join(errors.New("resolve db:1"), err))
	}
}
