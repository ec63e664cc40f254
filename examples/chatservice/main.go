// Command chatservice is a small chat service that shows keyward at work:
// each bot's provider key is resolved through Mux + cache + expiry + audit
// and sent to the provider with the bot's message.
//
// With no configuration it runs on embedded SQLite (chatservice.db), makes a
// development ENCRYPTION_KEY on first run, seeds two bots (one key in the
// encrypted column, one in an env var read from chatservice.env), and starts
// a local stand-in for the providers, so everything runs offline:
//
//	go run ./examples/chatservice
//
// Configuration, all optional: CHAT_ADDR (default 127.0.0.1:8080),
// DATABASE_URL (default sqlite:chatservice.db), ENCRYPTION_KEY and
// ENCRYPTION_KEY_PREVIOUS, KEYWARD_CONFIG or KEYWARD_CONFIG_FILE (not both:
// the backends, see the keyward README; a db = fernet://... line gives the
// options of the service's own encrypted column), ANTHROPIC_BASE_URL and OPENAI_BASE_URL
// (real providers instead of the stand-in), CHAT_RATE and CHAT_BURST (the
// per-client rate limit: chats a second above 0 and at most 10000, default 5;
// burst 1 to 10000, default 10), CHAT_DATA_DIR (where the development key and
// chatservice.env are kept; default the working directory).
//
// On the Python service's database (its SQLAlchemy tables api_keys and bots,
// UUID ids), found from the bots table's columns at start, the service only
// reads: it creates and seeds nothing. A bot's key is its api_keys row's
// (db:<api_key_id>, with the db line's ref_columns following key_env_var and
// secret_name), else its own legacy api_key, read through the configuration
// line that serves the bots table (bots = fernet://?table=bots&plaintext=allow,
// opened from the same DATABASE_URL); its provider is its api_keys row's,
// else its model's ("claude-..." Anthropic, "gpt-..." OpenAI), else
// CHAT_DEFAULT_PROVIDER (anthropic or openai; default none).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	secrets "github.com/keyward/secrets"
	_ "github.com/keyward/secrets/all"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/bounds"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "chatservice:", err)
		os.Exit(1)
	}
}

const (
	devKeyFile = ".keyward-dev-key"
	demoEnv    = "chatservice.env"
	demoEnvVar = "CHAT_DEMO_OPENAI_KEY"
)

// app is a running service, for tests: its address and its parts.
type app struct {
	addr    string
	bots    *botStore
	keys    *fernetstore.Store
	stack   *secrets.Stack
	standIn *standIn
}

// runOptions are for tests; main passes nil.
type runOptions struct {
	// ready is called once the service listens.
	ready func(*app)
	// backends are resolvers by scheme that take the place of the
	// configuration's URL, for a backend that tests cannot reach by URL
	// (Azure Key Vault without Azure AD).
	backends map[string]secrets.KeyResolver
}

// run starts the service and blocks until ctx is done.
func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer, opts *runOptions) error {
	if opts == nil {
		opts = new(runOptions)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	env := func(k, d string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return d
	}
	dataDir := env("CHAT_DATA_DIR", ".")
	// Checked first: a bad limit must stop the service before it serves,
	// not become 0 (a limiter that refuses every chat).
	rps, err := bounds.Float("CHAT_RATE", env("CHAT_RATE", "5"), 0, 10000, "5 (chats a second per client)")
	if err != nil {
		return err
	}
	burst, err := bounds.Int("CHAT_BURST", env("CHAT_BURST", "10"), 1, 10000, "10")
	if err != nil {
		return err
	}
	defaultProvider := getenv("CHAT_DEFAULT_PROVIDER")
	switch defaultProvider {
	case "", "anthropic", "openai":
	default:
		return errors.New("CHAT_DEFAULT_PROVIDER must be anthropic or openai (the provider of a Python bot whose model names none), or unset")
	}

	// The configuration first, read by the library: a typo in it stops the
	// service before it touches the database.
	dotenv := filepath.Join(dataDir, demoEnv)
	cfg, err := stackConfig(getenv, dotenv)
	if err != nil {
		return err
	}
	// The "db" scheme is always this service's own encrypted column, on its
	// own connection, with the options of the configuration's db line.
	keyOpts := new(fernetstore.Options)
	if raw, ok := cfg.Backends["db"]; ok {
		if keyOpts, err = fernetstore.ParseURL(raw); err != nil {
			return fmt.Errorf("the configuration's db line (db: is this service's encrypted column): %w", err)
		}
	}

	ring, devKey, err := keyRing(getenv, dataDir)
	if err != nil {
		return err
	}
	if devKey != "" {
		fmt.Fprintf(stderr, "\n"+
			"  !!! WARNING: ENCRYPTION_KEY is not set, so this run uses a DEVELOPMENT key kept in %s.\n"+
			"  !!! Anyone who can read that file can decrypt every key in the database. For production,\n"+
			"  !!! make a key with `go run ./cmd/keyward genkey`, keep it in your secret store, and set ENCRYPTION_KEY.\n\n",
			devKey)
	}

	dsn := env("DATABASE_URL", "sqlite:"+filepath.Join(dataDir, "chatservice.db"))
	db, err := fernetstore.OpenDB(dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	dialect, err := fernetstore.DetectDialect(db)
	if err != nil {
		return err
	}
	keys := fernetstore.New(db, ring, keyOpts)
	bots := &botStore{db: db, dialect: dialect}

	m := newMetrics()
	backends := map[string]secrets.KeyResolver{"db": keys}
	for scheme, r := range opts.backends {
		backends[scheme] = r
	}
	// OpenConfig checks every backend URL and does no I/O.
	stack, err := secrets.OpenConfig(ctx, cfg, &secrets.StackOptions{Backends: backends,
		Auditor: secrets.AuditFunc(func(ctx context.Context, ev secrets.AuditEvent) {
			m.Audit(ctx, ev)
			secrets.SlogAuditor(log).Audit(ctx, ev)
		})})
	if err != nil {
		return err
	}
	defer stack.Close()

	if err := bots.detect(ctx); err != nil {
		return err
	}
	if bots.shape == pythonBots {
		// The Python service's database is that service's: its tables are
		// read and checked, never created, changed or seeded.
		info, err := keys.Describe(ctx)
		if err != nil {
			return fmt.Errorf("the Python service's key table (the db line's): %w", err)
		}
		advice, err := bots.usePython(ctx, info, keyOpts, legacyScheme(cfg), defaultProvider)
		if err != nil {
			return err
		}
		for _, a := range advice {
			fmt.Fprintf(stderr, "  NOTE: %s\n", a)
		}
	} else {
		if err := keys.CreateSchema(ctx); err != nil {
			return err
		}
		if err := bots.createTable(ctx); err != nil {
			return fmt.Errorf("create the bots table: %w", err)
		}
		if err := seed(ctx, bots, keys, dotenv); err != nil {
			return err
		}
	}
	if c, ok := secrets.Find[*cache.Cache](stack); ok {
		m.watchCache(c)
	}

	a := &app{bots: bots, keys: keys, stack: stack}
	providers := map[string]string{"anthropic": getenv("ANTHROPIC_BASE_URL"), "openai": getenv("OPENAI_BASE_URL")}
	if providers["anthropic"] == "" || providers["openai"] == "" {
		a.standIn = new(standIn)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ps := &http.Server{Handler: a.standIn, ReadHeaderTimeout: 5 * time.Second}
		go ps.Serve(ln)
		defer ps.Close()
		for p, u := range providers {
			if u == "" {
				providers[p] = "http://" + ln.Addr().String()
			}
		}
		fmt.Fprintf(stdout, "stand-in provider on http://%s (set ANTHROPIC_BASE_URL and OPENAI_BASE_URL for real ones)\n", ln.Addr())
		// The stand-in must know the bots' keys to check them. Resolving
		// them now also warms the cache, so the first chat is a hit.
		all, err := bots.all(ctx)
		if err != nil {
			return err
		}
		for _, b := range all {
			if b.Problem != "" {
				log.Warn("bot cannot chat", "bot", b.Name, "problem", b.Problem)
				continue
			}
			k, err := stack.Resolve(ctx, b.KeyRef)
			if err != nil {
				log.Warn("bot key does not resolve", "bot", b.Name, "ref", b.KeyRef, "error", err)
				continue
			}
			a.standIn.accept(k.Reveal())
		}
	}

	for name, base := range providers {
		if err := checkProviderURL(base); err != nil {
			return fmt.Errorf("%s base URL: %w", name, err)
		}
	}
	s := &server{
		bots: bots, keys: stack, providers: providers,
		client: &http.Client{
			Timeout: 60 * time.Second,
			// Never follow a redirect: Go drops Authorization on a
			// cross-host redirect but would forward x-api-key.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		limits:  newClientLimits(rps, burst),
		metrics: m, log: log,
	}
	ln, err := net.Listen("tcp", env("CHAT_ADDR", "127.0.0.1:8080"))
	if err != nil {
		return err
	}
	a.addr = ln.Addr().String()
	hs := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()

	all, _ := bots.all(ctx)
	fmt.Fprintf(stdout, "chatservice listening on http://%s\ntry:\n", a.addr)
	for _, b := range all {
		if b.Problem != "" {
			fmt.Fprintf(stdout, "  # bot %s (%s) cannot chat: %s\n", b.ID, b.Name, b.Problem)
			continue
		}
		fmt.Fprintf(stdout, "  curl -s -X POST http://%s/api/chat/%s -d '{\"message\":\"hello\"}'   # %s (%s, key at %s)\n", a.addr, b.ID, b.Name, b.Provider, b.KeyRef)
	}
	fmt.Fprintf(stdout, "  curl -s http://%s/metrics | grep keyward_\n", a.addr)
	if opts.ready != nil {
		opts.ready(a)
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(shutdown)
}

// legacyScheme returns the scheme of the configuration line that reads the
// bots table (a fernet:// URL with table=bots), which serves the Python
// bots' own api_key; "bots" if several do, "" if none. The fernet:// opener
// reads the database from DATABASE_URL as this service does.
func legacyScheme(cfg *secrets.Config) string {
	var found []string
	for scheme, raw := range cfg.Backends {
		// db: is this service's own store, whatever its line says. Every
		// line has been checked by OpenConfig: one that ParseURL refuses
		// is another backend's.
		if o, err := fernetstore.ParseURL(raw); err == nil && scheme != "db" && strings.EqualFold(o.Table, "bots") {
			found = append(found, scheme)
		}
	}
	switch {
	case len(found) == 0:
		return ""
	case slices.Contains(found, "bots"):
		return "bots"
	}
	slices.Sort(found)
	return found[0]
}

// checkProviderURL refuses a provider base URL that would send keys in the
// clear to another host: https, or http only to a loopback address.
func checkProviderURL(base string) error {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return errors.New("want a URL such as https://api.anthropic.com")
	}
	if u.User != nil {
		return errors.New("the URL must not hold credentials")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return errors.New("keys are only sent over https (or http to a loopback address)")
}

// keyRing returns the ring from ENCRYPTION_KEY and ENCRYPTION_KEY_PREVIOUS,
// or a development key kept in dataDir (made on first run, mode 0600);
// devKey is that file's path.
func keyRing(getenv func(string) string, dataDir string) (ring *fernetstore.KeyRing, devKey string, err error) {
	if getenv(fernetstore.EnvKey) != "" {
		ring, err = fernetstore.KeyRingFromLookup(getenv)
		return ring, "", err
	}
	path := filepath.Join(dataDir, devKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := fernetstore.GenerateKey()
		if err != nil {
			return nil, "", err
		}
		if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
			return nil, "", fmt.Errorf("write the development key: %w", err)
		}
		b = []byte(key)
	} else if err != nil {
		return nil, "", fmt.Errorf("read the development key: %w", err)
	}
	ring, err = fernetstore.ParseKeyRing(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, "", fmt.Errorf("the development key in %s is malformed; delete the file to make a new one (and the database with it): %w", path, err)
	}
	return ring, path, nil
}

// seed adds the two demo bots to an empty bots table: one key in the
// encrypted column, one in an environment variable read from dotenv.
func seed(ctx context.Context, bots *botStore, keys *fernetstore.Store, dotenv string) error {
	existing, err := bots.all(ctx)
	if err != nil || len(existing) > 0 {
		return err
	}
	id, err := keys.Put(ctx, "support-bot", "anthropic", "sk-ant-demo-"+randomHex(16), time.Time{})
	if err != nil {
		return err
	}
	if err := bots.add(ctx, "support", "anthropic", "db:"+id); err != nil {
		return err
	}
	if _, err := os.Stat(dotenv); errors.Is(err, os.ErrNotExist) {
		line := demoEnvVar + "=sk-openai-demo-" + randomHex(16) + "\n"
		if err := os.WriteFile(dotenv, []byte(line), 0o600); err != nil {
			return err
		}
	}
	return bots.add(ctx, "sales", "openai", "env:"+demoEnvVar)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// stackConfig returns the keyward configuration from KEYWARD_CONFIG or
// KEYWARD_CONFIG_FILE, read by the library (which refuses both), or with
// neither the library's defaults with the env backend also reading the
// demo's .env file and a 5 s timeout.
func stackConfig(getenv func(string) string, dotenv string) (*secrets.Config, error) {
	cfg, err := secrets.ConfigFromLookup(getenv)
	if err != nil {
		return nil, err
	}
	if getenv(secrets.ConfigEnv) == "" && getenv(secrets.ConfigFileEnv) == "" {
		cfg.Backends["env"] = "env://?dotenv=" + url.QueryEscape(dotenv)
		cfg.Timeout = 5 * time.Second
	}
	return cfg, nil
}
