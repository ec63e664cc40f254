package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	secrets "github.com/keyward/secrets"
)

// server is the chat service: POST /api/chat/{bot_id} resolves the bot's key
// through the keyward stack and forwards the message to the bot's provider.
type server struct {
	cfg       *settings
	bots      *botStore
	tokens    *tokenStore
	keys      secrets.KeyResolver
	ping      func(context.Context) error // the configured backends' Ping
	readiness readiness
	providers map[string]string // provider name -> base URL
	client    *http.Client
	limits    *clientLimits
	metrics   *metrics
	log       *slog.Logger
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/chat/{bot_id}", s.chat)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	// Every other method on these paths, and every other path, answers in
	// JSON like the rest (ServeMux's own 404 and 405 are text/plain).
	for path, allow := range map[string]string{"/api/chat/{bot_id}": "POST", "/healthz": "GET, HEAD", "/readyz": "GET, HEAD", "/metrics": "GET, HEAD"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			fail(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+allow)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "not_found", "no such path: POST /api/chat/{bot_id}, GET /healthz, /readyz and /metrics are served")
	})
	return s.accessLog(s.trustHosts(s.cors(mux)))
}

type chatRequest struct {
	Message string `json:"message"`
}

type chatResponse struct {
	Bot   string `json:"bot"`
	Reply string `json:"reply"`
}

// chat answers POST /api/chat/{bot_id}.
func (s *server) chat(w http.ResponseWriter, r *http.Request) {
	code := s.serveChat(w, r)
	s.metrics.chats.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (s *server) serveChat(w http.ResponseWriter, r *http.Request) int {
	id := r.PathValue("bot_id")
	client := s.clientIP(r)
	// The token first: a client without one learns nothing, not even
	// which bot ids exist. Refused requests spend a bucket of their own,
	// so anonymous ones never spend the chats of the token holders behind
	// the same address.
	tokenID, err := s.tokens.check(r.Context(), bearerToken(r), id)
	if rec, ok := w.(*recorder); ok {
		rec.token = tokenID
	}
	if err != nil {
		if isTokenRefusal(err) && !s.limits.refusals.allow(client) {
			return s.tooMany(w)
		}
		return s.refuseToken(w, err)
	}
	if !s.limits.chats.allow(client) {
		return s.tooMany(w)
	}
	arg, why := s.bots.parseID(id)
	if why != "" {
		return fail(w, http.StatusNotFound, "bot_not_found", "no such bot: "+why)
	}
	req, code, msg := readChat(w, r, s.cfg.maxBody)
	if code != 0 {
		return fail(w, code, codeOf(code), msg)
	}
	bot, err := s.bots.get(r.Context(), arg)
	if errors.Is(err, sql.ErrNoRows) {
		return fail(w, http.StatusNotFound, "bot_not_found", fmt.Sprintf("no bot with id %s", id))
	}
	if err != nil {
		s.log.Error("bot lookup", "bot_id", id, "error", err)
		return fail(w, http.StatusServiceUnavailable, "database_unavailable", "the bot database is unavailable, try again")
	}
	if bot.Problem != "" {
		// A configuration problem (no line for the bots' own keys, no
		// provider): it names lines and variables, never a key.
		s.log.Warn("bot cannot chat", "bot", bot.Name, "problem", bot.Problem)
		return fail(w, http.StatusInternalServerError, "bot_misconfigured", bot.Problem)
	}
	// The audit trail says who asked: the client token's id.
	ctx := r.Context()
	if rec, ok := w.(*recorder); ok && rec.token != 0 {
		ctx = secrets.WithRequester(ctx, "token:"+strconv.FormatInt(rec.token, 10))
	}
	key, err := s.keys.Resolve(ctx, bot.KeyRef)
	if err != nil {
		// The error names the ref and the reason, never the value, so it can
		// be logged whole; the client gets a summary.
		s.log.Warn("resolve bot key", "bot", bot.Name, "ref", bot.KeyRef, "error", err)
		return s.keyError(w, bot, err)
	}
	base, ok := s.providers[bot.Provider]
	if !ok {
		return fail(w, http.StatusInternalServerError, "bot_misconfigured", fmt.Sprintf("bot %q uses provider %q, which this service does not know", bot.Name, bot.Provider))
	}
	reply, status, err := s.forward(r.Context(), bot.Provider, base, key, req.Message)
	if err != nil {
		s.log.Warn("provider call", "bot", bot.Name, "provider", bot.Provider, "status", status, "error", err)
		if status == http.StatusUnauthorized || status == http.StatusForbidden {
			return fail(w, http.StatusBadGateway, "provider_rejected_key", fmt.Sprintf("provider %s rejected the API key of bot %q: update it", bot.Provider, bot.Name))
		}
		return fail(w, http.StatusBadGateway, "provider_failed", fmt.Sprintf("provider %s failed: try again", bot.Provider))
	}
	writeJSON(w, http.StatusOK, chatResponse{Bot: bot.Name, Reply: reply})
	return http.StatusOK
}

func (s *server) tooMany(w http.ResponseWriter) int {
	w.Header().Set("Retry-After", "1")
	return fail(w, http.StatusTooManyRequests, "rate_limited", "rate limit exceeded: slow down")
}

func isTokenRefusal(err error) bool {
	return errors.Is(err, errTokenMissing) || errors.Is(err, errTokenUnknown) || errors.Is(err, errTokenRevoked) || errors.Is(err, errTokenScope)
}

// refuseToken answers a request whose client token check failed with err.
func (s *server) refuseToken(w http.ResponseWriter, err error) int {
	switch {
	case errors.Is(err, errTokenMissing):
		w.Header().Set("WWW-Authenticate", `Bearer realm="chatservice"`)
		return fail(w, http.StatusUnauthorized, "token_missing", "send a client token: Authorization: Bearer <token> (make one with: go run ./examples/chatservice token add)")
	case errors.Is(err, errTokenUnknown):
		w.Header().Set("WWW-Authenticate", `Bearer realm="chatservice", error="invalid_token"`)
		return fail(w, http.StatusUnauthorized, "token_invalid", "the client token is not valid")
	case errors.Is(err, errTokenRevoked):
		w.Header().Set("WWW-Authenticate", `Bearer realm="chatservice", error="invalid_token"`)
		return fail(w, http.StatusUnauthorized, "token_revoked", "the client token has been revoked")
	case errors.Is(err, errTokenScope):
		return fail(w, http.StatusForbidden, "token_scope", "the client token may not chat with this bot")
	case errors.Is(err, context.Canceled):
		return statusClientGone
	}
	s.log.Error("token check", "error", err)
	w.Header().Set("Retry-After", "5")
	return fail(w, http.StatusServiceUnavailable, "database_unavailable", "the token database is unavailable, try again")
}

// readChat reads a chat request strictly: at most limit bytes of valid
// UTF-8 holding one JSON object whose one member is "message" (exactly that
// name, once), a non-empty string, and nothing after it. A proxy or a WAF
// in front must not read a different request than this service (duplicate
// names, case-folded names and replaced bytes are where parsers differ).
// It returns the status and message of a refusal, or 0.
func readChat(w http.ResponseWriter, r *http.Request, limit int64) (chatRequest, int, string) {
	var req chatRequest
	const want = `send one JSON object such as {"message": "hello"}`
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return req, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over %d bytes", limit)
	case err != nil:
		return req, http.StatusBadRequest, "the request body could not be read"
	case !utf8.Valid(body):
		return req, http.StatusBadRequest, want + ", in UTF-8"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok := func() json.Token {
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		return t
	}
	if d, ok := tok().(json.Delim); !ok || d != '{' {
		return req, http.StatusBadRequest, want
	}
	seen := false
	for dec.More() {
		name, _ := tok().(string)
		if name != "message" {
			return req, http.StatusBadRequest, want + `: "message" is the only field`
		}
		if seen {
			return req, http.StatusBadRequest, want + `: "message" given twice`
		}
		seen = true
		msg, ok := tok().(string)
		if !ok {
			return req, http.StatusBadRequest, want + `: "message" must be a string`
		}
		req.Message = msg
	}
	if d, ok := tok().(json.Delim); !ok || d != '}' {
		return req, http.StatusBadRequest, want
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, http.StatusBadRequest, want + ", with nothing after it"
	}
	if req.Message == "" {
		return req, http.StatusBadRequest, want + `: "message" must not be empty`
	}
	return req, 0, ""
}

// codeOf is the stable code of a request refusal by status.
func codeOf(status int) string {
	if status == http.StatusRequestEntityTooLarge {
		return "body_too_large"
	}
	return "bad_request"
}

func (s *server) keyError(w http.ResponseWriter, bot bot, err error) int {
	switch {
	case errors.Is(err, secrets.ErrExpired):
		return fail(w, http.StatusForbidden, "key_expired", fmt.Sprintf("the API key of bot %q has expired: put a new one (keyward put) and update the bot", bot.Name))
	case errors.Is(err, secrets.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", "5")
		return fail(w, http.StatusServiceUnavailable, "key_store_unavailable", fmt.Sprintf("the key store for bot %q is unavailable: try again shortly", bot.Name))
	case errors.Is(err, context.Canceled):
		return statusClientGone // the client went away; nothing to write
	}
	// not_found, undecryptable, permission, invalid_ref, denied: the
	// operator's to fix, so a 500 with the outcome as its code.
	return fail(w, http.StatusInternalServerError, "key_"+secrets.Outcome(err), fmt.Sprintf("the API key of bot %q cannot be used (%s): see the service log", bot.Name, secrets.Outcome(err)))
}

// forward sends message to the provider with key, in the provider's own API shape.
func (s *server) forward(ctx context.Context, provider, base string, key secrets.Secret, message string) (string, int, error) {
	var path string
	var body any
	msgs := []map[string]string{{"role": "user", "content": message}}
	switch provider {
	case "anthropic":
		path, body = "/v1/messages", map[string]any{"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": msgs}
	case "openai":
		path, body = "/v1/chat/completions", map[string]any{"model": "gpt-4o-mini", "messages": msgs}
	default:
		return "", 0, fmt.Errorf("unknown provider %q", provider)
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(b))
	if err != nil {
		return "", 0, fmt.Errorf("bad provider URL for %s", provider)
	}
	req.Header.Set("Content-Type", "application/json")
	if provider == "anthropic" {
		req.Header.Set("x-api-key", key.Reveal())
		req.Header.Set("anthropic-version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer "+key.Reveal())
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error names the URL, which holds no key; the key is in a header.
		return "", 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode, fmt.Errorf("provider answered %s", resp.Status)
	}
	var out struct {
		Content []struct{ Text string } `json:"content"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return "", resp.StatusCode, errors.New("provider answered with a body that is not JSON")
	}
	switch {
	case len(out.Content) > 0:
		return out.Content[0].Text, resp.StatusCode, nil
	case len(out.Choices) > 0:
		return out.Choices[0].Message.Content, resp.StatusCode, nil
	}
	return "", resp.StatusCode, errors.New("provider answered without a message")
}

// healthz answers that the process is alive and serving; it checks nothing
// else, so a backend outage never gets the service restarted.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers whether the service can serve chats: its database and
// every configured backend answer Ping. The answer names the parts that do
// not, never their error's detail (the log has it).
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	down := s.readiness.check(func() []string { return s.probe() })
	if len(down) > 0 {
		fail(w, http.StatusServiceUnavailable, "not_ready", "not ready: "+strings.Join(down, " and ")+" unavailable (see the service log)")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// readiness remembers the last readiness probe for a second, and callers
// that come while a probe runs wait for it: /readyz answers anyone, so it
// must not multiply anonymous requests into backend calls (which cost money
// and quota).
type readiness struct {
	mu   sync.Mutex
	at   time.Time
	down []string
}

const readinessTTL = time.Second

func (rd *readiness) check(probe func() []string) []string {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if !rd.at.IsZero() && time.Since(rd.at) < readinessTTL {
		return rd.down
	}
	rd.down, rd.at = probe(), time.Now()
	return rd.down
}

// probe pings the database and the configured backends; it returns the
// parts that do not answer.
func (s *server) probe() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var down []string
	if err := s.bots.db.PingContext(ctx); err != nil {
		s.log.Warn("readyz: the database does not answer", "error", err)
		down = append(down, "database")
	}
	if s.ping != nil {
		if err := s.ping(ctx); err != nil {
			s.log.Warn("readyz: a key backend does not answer", "error", err)
			down = append(down, "key backends")
		}
	}
	return down
}

// fail answers with a JSON error: a stable code for programs and a message
// for people, which never holds a key or a token.
func fail(w http.ResponseWriter, status int, code, msg string) int {
	writeJSON(w, status, map[string]string{"error": msg, "code": code})
	return status
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// clientLimits holds the rate limit's token buckets: one set for chats,
// one for refused requests (no, a wrong or a revoked token), each keyed by
// the client's address (IPv4) or /64 (IPv6).
type clientLimits struct {
	chats, refusals *buckets
}

func newClientLimits(perSecond float64, burst int) *clientLimits {
	return &clientLimits{chats: newBuckets(perSecond, burst), refusals: newBuckets(perSecond, burst)}
}

// site6Factor is how many /64s' worth of rate an IPv6 /48 (one site, or one
// customer's allocation) gets: a client cycling through the 65536 /64s of
// its /48 meets the /48's bucket, which its own traffic keeps in the LRU.
const site6Factor = 16

// buckets is a bounded LRU of token buckets, so that many clients cannot
// grow it without end.
type buckets struct {
	every rate.Limit
	burst int
	l     *lru.Cache[string, *rate.Limiter]
}

func newBuckets(perSecond float64, burst int) *buckets {
	l, _ := lru.New[string, *rate.Limiter](10000)
	return &buckets{every: rate.Limit(perSecond), burst: burst, l: l}
}

func (b *buckets) get(key string, factor int) *rate.Limiter {
	lim, ok := b.l.Get(key)
	if !ok {
		lim = rate.NewLimiter(b.every*rate.Limit(factor), b.burst*factor)
		if prev, found, _ := b.l.PeekOrAdd(key, lim); found {
			lim = prev
		}
	}
	return lim
}

// allow takes a token for client: from its own bucket and, for IPv6, from
// its /48's.
func (b *buckets) allow(client netip.Addr) bool {
	ok := b.get(rateKey(client), 1).Allow()
	if client.Is6() {
		site, _ := client.Prefix(48)
		ok = b.get(site.String(), site6Factor).Allow() && ok
	}
	return ok
}
