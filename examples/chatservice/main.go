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
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
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

	"github.com/joho/godotenv"

	secrets "github.com/keyward/secrets"
	_ "github.com/keyward/secrets/all"
	"github.com/keyward/secrets/audittable"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/fernetstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "token" {
		os.Exit(runTokenCommand(ctx, os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	flags := flag.NewFlagSet("chatservice", flag.ExitOnError)
	envFile := flags.String("env-file", "", "a .env file of settings (examples/deployments/*.env); variables already set win")
	flags.Parse(os.Args[1:])
	if flags.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: chatservice [--env-file FILE] | chatservice token add|list|revoke ...")
		os.Exit(2)
	}
	if *envFile != "" {
		// godotenv.Load sets only the variables not already set. The
		// error names the file, never a value.
		if err := godotenv.Load(*envFile); err != nil {
			fmt.Fprintf(os.Stderr, "chatservice: --env-file %s: %v\n", *envFile, err)
			os.Exit(2)
		}
	}
	if err := run(ctx, os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		// One JSON line like every other line on stderr.
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("chatservice did not start", "error", err)
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
	addr     string
	bots     *botStore
	keys     *fernetstore.Store
	stack    *secrets.Stack
	standIn  *standIn
	tokens   *tokenStore
	devToken string // the development client token, on the zero-config start
	conns    *connLimiter
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
	// Checked first: a bad setting must stop the service before it serves,
	// not become a default or 0 (a limiter that refuses every chat).
	cfg, err := loadSettings(getenv)
	if err != nil {
		return err
	}
	dataDir := cfg.dataDir

	// The configuration first, read by the library: a typo in it stops the
	// service before it touches the database.
	dotenv := filepath.Join(dataDir, demoEnv)
	stackCfg, err := stackConfig(getenv, dotenv)
	if err != nil {
		return err
	}
	// The "db" scheme is always this service's own encrypted column, on its
	// own connection, with the options of the configuration's db line.
	keyOpts := new(fernetstore.Options)
	if raw, ok := stackCfg.Backends["db"]; ok {
		if keyOpts, err = fernetstore.ParseURL(raw); err != nil {
			return fmt.Errorf("the configuration's db line (db: is this service's encrypted column): %w", err)
		}
	}

	ring, devKey, err := keyRing(getenv, dataDir)
	if err != nil {
		return err
	}
	if devKey != "" {
		log.Warn("WARNING: ENCRYPTION_KEY is not set, so this run uses a DEVELOPMENT key kept in "+devKey+
			": anyone who can read that file can decrypt every key in the database",
			"to_move_to_a_real_key", moveOffDevKey(devKey))
	} else if old := staleDevKey(dataDir, ring); old != "" {
		log.Warn("the development key in "+old+" is not in ENCRYPTION_KEY or ENCRYPTION_KEY_PREVIOUS: keys it encrypted no longer decrypt",
			"to_fix", moveOffDevKey(old))
	}

	dsn := cmp.Or(getenv("DATABASE_URL"), "sqlite:"+filepath.Join(dataDir, "chatservice.db"))
	db, err := fernetstore.OpenDB(dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	// Every request reads the token and the bot: keep connections for
	// them rather than database/sql's 2 idle ones (the rest churned).
	db.SetMaxIdleConns(16)
	dialect, err := fernetstore.DetectDialect(db)
	if err != nil {
		return err
	}
	keys := fernetstore.New(db, ring, keyOpts)
	bots := &botStore{db: db, dialect: dialect}
	tokens := &tokenStore{db: db, dialect: dialect}

	m := newMetrics()
	backends := map[string]secrets.KeyResolver{"db": keys}
	for scheme, r := range opts.backends {
		backends[scheme] = r
	}
	auditTo := []secrets.Auditor{m, secrets.SlogAuditor(log)}
	if stackCfg.AuditTable != "" {
		// audit = db: the audit table is in this service's own database
		// (the library would open DATABASE_URL, whose default is not this
		// service's). It is flushed when run returns.
		table, err := audittable.New(db, &audittable.Options{Table: stackCfg.AuditTable, Dialect: dialect, Logger: log})
		if err != nil {
			return fmt.Errorf("the audit table (audit = db): %w", err)
		}
		defer table.Close()
		// Made now, if missing, so that a table the service cannot create
		// stops the start instead of dropping every row.
		if err := table.CreateTable(ctx); err != nil {
			return fmt.Errorf("the audit table (audit = db): %w", err)
		}
		m.watchAudit(table)
		auditTo = append(auditTo, table)
		stackCfg.AuditTable = ""
	}
	// OpenConfig checks every backend URL and does no I/O.
	stack, err := secrets.OpenConfig(ctx, stackCfg, &secrets.StackOptions{Backends: backends,
		Auditor: secrets.AuditFunc(func(ctx context.Context, ev secrets.AuditEvent) {
			for _, a := range auditTo {
				a.Audit(ctx, ev)
			}
		})})
	if err != nil {
		return err
	}
	defer stack.Close()

	if err := bots.detect(ctx); err != nil {
		return err
	}
	var devToken string
	if bots.shape == pythonBots {
		// The Python service's database is that service's: its tables are
		// read and checked, never created, changed or seeded.
		info, err := keys.Describe(ctx)
		if err != nil {
			return fmt.Errorf("the Python service's key table (the db line's): %w", err)
		}
		advice, err := bots.usePython(ctx, info, keyOpts, legacyScheme(stackCfg), cfg.provider)
		if err != nil {
			return err
		}
		for _, a := range advice {
			log.Info("note on the Python service's database", "note", a)
		}
		// Client tokens live in a table of this service's own, which the
		// operator creates, with the first token, beside the Python tables.
		ok, err := tokens.exists(ctx)
		if err != nil {
			return fmt.Errorf("the client tokens table: %w", err)
		}
		if !ok {
			return fmt.Errorf("this database (the Python service's) has no %s table for the client tokens of /api/chat: make the first token with `go run ./examples/chatservice token add --name NAME --bots '*'` (same DATABASE_URL; it creates that one table and touches no other)", tokenTable)
		}
	} else {
		if err := keys.CreateSchema(ctx); err != nil {
			return err
		}
		// The service's own key table: its change triggers let every
		// replica's cache hear of a change at once, whoever makes it
		// (keyward update, another replica).
		if err := keys.InstallTriggers(ctx); err != nil {
			return fmt.Errorf("install the key table's change triggers: %w", err)
		}
		if err := bots.createTable(ctx); err != nil {
			return fmt.Errorf("create the bots table: %w", err)
		}
		if err := tokens.createTable(ctx); err != nil {
			return fmt.Errorf("create the client tokens table: %w", err)
		}
		if err := seed(ctx, bots, keys, dotenv, dataDir); err != nil {
			return err
		}
		if devKey != "" {
			// The zero-config start stays zero-config: a development
			// client token, printed in the curl lines.
			if devToken, err = tokens.ensureDevToken(ctx, dataDir); err != nil {
				return err
			}
		}
	}
	if c, ok := secrets.Find[*cache.Cache](stack); ok {
		m.watchCache(c)
	}
	// The files that hold secrets must be the owner's alone: a copy, an
	// unpack or a volume mount may have widened them.
	for _, f := range []string{devKeyFile, devTokenFile, standInKeysFile, demoEnv} {
		path := filepath.Join(dataDir, f)
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("a file holding secrets is readable beyond its owner: run chmod 600 "+path, "file", path, "mode", fi.Mode().Perm().String())
		}
	}

	a := &app{bots: bots, keys: keys, stack: stack, tokens: tokens, devToken: devToken}
	providers := map[string]string{"anthropic": getenv("ANTHROPIC_BASE_URL"), "openai": getenv("OPENAI_BASE_URL")}
	if providers["anthropic"] == "" || providers["openai"] == "" {
		// The stand-in knows the keys it issued (at seeding, in its own
		// file), as a provider does: a chat it answers proves the service
		// resolved and sent the right key.
		a.standIn, err = loadStandIn(filepath.Join(dataDir, standInKeysFile))
		if err != nil {
			return err
		}
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
		log.Info("stand-in provider listening (set ANTHROPIC_BASE_URL and OPENAI_BASE_URL for real ones)", "addr", "http://"+ln.Addr().String())
	}
	for name, base := range providers {
		if err := checkProviderURL(base); err != nil {
			return fmt.Errorf("%s base URL: %w", name, err)
		}
	}
	// Warm the cache, so the first chat is a hit, and say which bots
	// cannot chat.
	all, err := bots.all(ctx)
	if err != nil {
		return err
	}
	// One batch: a backend that can fetch many secrets in one call (AWS
	// BatchGetSecretValue) does, through the same allow list, cache and
	// audit as a single resolve.
	var refs []string
	var named []bot
	for _, b := range all {
		if b.Problem != "" {
			log.Warn("bot cannot chat", "bot", b.Name, "problem", b.Problem)
			continue
		}
		refs, named = append(refs, b.KeyRef), append(named, b)
	}
	if len(refs) > 0 {
		if c, ok := secrets.Find[*cache.Cache](stack); ok {
			// The cache's Warm fetches its misses in one batch call
			// where the backend has one (AWS BatchGetSecretValue).
			if err := c.Warm(ctx, refs); err != nil {
				log.Warn("warm-up: some keys did not load", "error", err)
			}
		}
		results, err := stack.ResolveMany(ctx, refs)
		if err != nil && len(results) != len(refs) {
			log.Warn("warm-up: the key backends did not answer", "error", err)
		}
		for i, r := range results {
			if r.Err != nil {
				log.Warn("bot key does not resolve", "bot", named[i].Name, "ref", named[i].KeyRef, "error", r.Err)
			}
		}
		log.Info("cache warmed", "keys", len(refs))
	}

	s := &server{
		cfg: cfg, bots: bots, tokens: tokens, keys: stack, ping: pingConfigured(stack, configuredSchemes(getenv, stackCfg, opts.backends)), providers: providers,
		client: &http.Client{
			Timeout:   providerTimeout,
			Transport: providerTransport(),
			// Never follow a redirect: Go drops Authorization on a
			// cross-host redirect but would forward x-api-key.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		limits:  newClientLimits(cfg.rate, cfg.burst),
		metrics: m, log: log,
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	a.addr = ln.Addr().String()
	hs := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: cfg.readHeaderTimeout,
		ReadTimeout:       cfg.readTimeout,
		WriteTimeout:      cfg.writeTimeout,
		IdleTimeout:       cfg.idleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if cfg.tlsCert != nil {
		scheme = "https"
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cfg.tlsCert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	}
	errc := make(chan error, 1)
	// A cap on open connections (idle ones give way to newcomers), and on
	// those of one client; beyond it, new ones wait in the kernel's backlog
	// instead of costing a descriptor each.
	var inner net.Listener = ln
	if hs.TLSConfig != nil {
		inner = tls.NewListener(ln, hs.TLSConfig)
	}
	limited := newConnLimiter(inner, cfg.maxConns, cfg.maxConnsPerClient, func(a net.Addr) bool { return s.trusted(addrOf(a.String())) })
	hs.ConnState = limited.ConnState
	a.conns = limited
	go func() { errc <- hs.Serve(limited) }()
	log.Info("chatservice started", "addr", scheme+"://"+a.addr, "bots", len(all), "tls", cfg.tlsCert != nil,
		"read_timeout", cfg.readTimeout.String(), "write_timeout", cfg.writeTimeout.String(), "idle_timeout", cfg.idleTimeout.String(),
		"max_conns", cfg.maxConns, "max_body", cfg.maxBody, "cors_origins", len(cfg.corsOrigins), "trusted_proxies", len(cfg.trustedProxies))

	printTry(stdout, scheme+"://"+a.addr, devToken, all)
	if opts.ready != nil {
		opts.ready(a)
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	log.Info("chatservice shutting down: finishing the requests in flight", "grace", "10s")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = hs.Shutdown(shutdown)
	log.Info("chatservice stopped", "clean", err == nil)
	return err
}

// providerTransport keeps enough idle connections to each provider for the
// chats in flight (http.DefaultTransport keeps 2 a host: the rest reconnect).
func providerTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}

// configuredSchemes are the backends /readyz checks: the configuration's
// lines (and the db line, always this service's column), or on the
// zero-config start the two the demo uses, db and env, rather than every
// linked backend's default (which the demo never calls).
func configuredSchemes(getenv func(string) string, cfg *secrets.Config, extra map[string]secrets.KeyResolver) []string {
	set := map[string]bool{"db": true}
	if getenv(secrets.ConfigEnv) == "" && getenv(secrets.ConfigFileEnv) == "" {
		set["env"] = true
	} else {
		for scheme := range cfg.Backends {
			set[scheme] = true
		}
	}
	for scheme := range extra {
		set[scheme] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// pingConfigured pings the stack's backends for schemes that can be pinged.
func pingConfigured(stack *secrets.Stack, schemes []string) func(context.Context) error {
	return func(ctx context.Context) error {
		var errs []error
		for _, scheme := range schemes {
			r, ok := stack.Mux.Resolver(scheme)
			if p, isPinger := r.(secrets.Pinger); ok && isPinger {
				if err := p.Ping(ctx); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", scheme, err))
				}
			}
		}
		return errors.Join(errs...)
	}
}

// printTry prints the curl lines a newcomer tries, with the development
// client token when there is one.
func printTry(w io.Writer, base, devToken string, all []bot) {
	auth := `-H "Authorization: Bearer $CHAT_TOKEN" `
	fmt.Fprintf(w, "chatservice listening on %s\n", base)
	if devToken != "" {
		fmt.Fprintf(w, "development client token (kept in %s; make real ones with `go run ./examples/chatservice token add`):\n  export CHAT_TOKEN=%s\n", devTokenFile, devToken)
	} else {
		fmt.Fprintf(w, "set CHAT_TOKEN to a client token (`go run ./examples/chatservice token add --name NAME --bots '*'`)\n")
	}
	fmt.Fprintf(w, "try:\n")
	for _, b := range all {
		if b.Problem != "" {
			fmt.Fprintf(w, "  # bot %s (%s) cannot chat: %s\n", b.ID, b.Name, b.Problem)
			continue
		}
		fmt.Fprintf(w, "  curl -s -X POST %s%s/api/chat/%s -d '{\"message\":\"hello\"}'   # %s (%s, key at %s)\n", auth, base, b.ID, b.Name, b.Provider, b.KeyRef)
	}
	fmt.Fprintf(w, "  curl -s %s/metrics | grep keyward_\n", base)
}

// moveOffDevKey is what the warnings about the development key tell the
// operator to do, step by step.
func moveOffDevKey(devKey string) string {
	return "1) make a key: go run ./cmd/keyward genkey; 2) start with ENCRYPTION_KEY=<that key> and " +
		"ENCRYPTION_KEY_PREVIOUS=$(cat " + devKey + ") and re-encrypt every row under the new key: " +
		"ENCRYPTION_KEY=<that key> ENCRYPTION_KEY_PREVIOUS=$(cat " + devKey + ") go run ./cmd/keyward rotate --db <DATABASE_URL, default sqlite:chatservice.db>; " +
		"3) once keyward check says every row is under the primary key, drop ENCRYPTION_KEY_PREVIOUS and delete " + devKey + "; 4) make client tokens (go run ./examples/chatservice token add) and revoke the development one (token list, token revoke ID)"
}

// staleDevKey returns the path of a development key file in dataDir whose
// key the ring does not hold (an operator set ENCRYPTION_KEY without moving
// the demo's rows to it), or "".
func staleDevKey(dataDir string, ring *fernetstore.KeyRing) string {
	path := filepath.Join(dataDir, devKeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	dev, err := fernetstore.ParseKeyRing(strings.TrimSpace(string(b)))
	if err != nil {
		return ""
	}
	probe, err := dev.Encrypt([]byte("probe"))
	if err != nil {
		return ""
	}
	if _, _, err := ring.Decrypt(probe); err == nil {
		return ""
	}
	return path
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
// encrypted column, one in an environment variable read from dotenv. The
// stand-in provider "issues" both keys: they are added to its own file in
// dataDir, which it reads at start, so it knows them without the resolver.
func seed(ctx context.Context, bots *botStore, keys *fernetstore.Store, dotenv, dataDir string) error {
	existing, err := bots.all(ctx)
	if err != nil || len(existing) > 0 {
		return err
	}
	issued := filepath.Join(dataDir, standInKeysFile)
	dbKey := "sk-ant-demo-" + randomHex(16)
	if err := issueKey(issued, dbKey); err != nil {
		return err
	}
	id, err := keys.Put(ctx, "support-bot", "anthropic", dbKey, time.Time{})
	if err != nil {
		return err
	}
	if err := bots.add(ctx, "support", "anthropic", "db:"+id); err != nil {
		return err
	}
	if _, err := os.Stat(dotenv); errors.Is(err, os.ErrNotExist) {
		envKey := "sk-openai-demo-" + randomHex(16)
		if err := issueKey(issued, envKey); err != nil {
			return err
		}
		if err := os.WriteFile(dotenv, []byte(demoEnvVar+"="+envKey+"\n"), 0o600); err != nil {
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
// demo's .env file, a 5 s timeout and the audit table.
func stackConfig(getenv func(string) string, dotenv string) (*secrets.Config, error) {
	cfg, err := secrets.ConfigFromLookup(getenv)
	if err != nil {
		return nil, err
	}
	if getenv(secrets.ConfigEnv) == "" && getenv(secrets.ConfigFileEnv) == "" {
		cfg.Backends["env"] = "env://?dotenv=" + url.QueryEscape(dotenv)
		cfg.Timeout = 5 * time.Second
		// The demo keeps its audit trail in its own database, in the
		// Python service's api_key_usage shape: keyward audit lists it.
		cfg.Audit, cfg.AuditTable = true, secrets.DefaultAuditTable
	}
	return cfg, nil
}
