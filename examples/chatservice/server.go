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
	"net"
	"net/http"
	"strconv"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	secrets "github.com/keyward/secrets"
)

// server is the chat service: POST /api/chat/{bot_id} resolves the bot's key
// through the keyward stack and forwards the message to the bot's provider.
type server struct {
	bots      *botStore
	keys      secrets.KeyResolver
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	return mux
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
	if !s.limits.allow(clientOf(r)) {
		w.Header().Set("Retry-After", "1")
		return fail(w, http.StatusTooManyRequests, "rate limit exceeded: slow down")
	}
	id := r.PathValue("bot_id")
	arg, why := s.bots.parseID(id)
	if why != "" {
		return fail(w, http.StatusNotFound, "no such bot: "+why)
	}
	var req chatRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.Message == "" {
		return fail(w, http.StatusBadRequest, `send a JSON body such as {"message": "hello"}`)
	}
	bot, err := s.bots.get(r.Context(), arg)
	if errors.Is(err, sql.ErrNoRows) {
		return fail(w, http.StatusNotFound, fmt.Sprintf("no bot with id %s", id))
	}
	if err != nil {
		s.log.Error("bot lookup", "bot_id", id, "error", err)
		return fail(w, http.StatusServiceUnavailable, "the bot database is unavailable, try again")
	}
	if bot.Problem != "" {
		// A configuration problem (no line for the bots' own keys, no
		// provider): it names lines and variables, never a key.
		s.log.Warn("bot cannot chat", "bot", bot.Name, "problem", bot.Problem)
		return fail(w, http.StatusInternalServerError, bot.Problem)
	}
	key, err := s.keys.Resolve(r.Context(), bot.KeyRef)
	if err != nil {
		// The error names the ref and the reason, never the value, so it can
		// be logged whole; the client gets a summary.
		s.log.Warn("resolve bot key", "bot", bot.Name, "ref", bot.KeyRef, "error", err)
		return s.keyError(w, bot, err)
	}
	base, ok := s.providers[bot.Provider]
	if !ok {
		return fail(w, http.StatusInternalServerError, fmt.Sprintf("bot %q uses provider %q, which this service does not know", bot.Name, bot.Provider))
	}
	reply, status, err := s.forward(r.Context(), bot.Provider, base, key, req.Message)
	if err != nil {
		s.log.Warn("provider call", "bot", bot.Name, "provider", bot.Provider, "status", status, "error", err)
		if status == http.StatusUnauthorized || status == http.StatusForbidden {
			return fail(w, http.StatusBadGateway, fmt.Sprintf("provider %s rejected the API key of bot %q: update it", bot.Provider, bot.Name))
		}
		return fail(w, http.StatusBadGateway, fmt.Sprintf("provider %s failed: try again", bot.Provider))
	}
	writeJSON(w, http.StatusOK, chatResponse{Bot: bot.Name, Reply: reply})
	return http.StatusOK
}

func (s *server) keyError(w http.ResponseWriter, bot bot, err error) int {
	switch {
	case errors.Is(err, secrets.ErrExpired):
		return fail(w, http.StatusForbidden, fmt.Sprintf("the API key of bot %q has expired: put a new one (keyward put) and update the bot", bot.Name))
	case errors.Is(err, secrets.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", "5")
		return fail(w, http.StatusServiceUnavailable, fmt.Sprintf("the key store for bot %q is unavailable: try again shortly", bot.Name))
	case errors.Is(err, context.Canceled):
		return 499 // the client went away; nothing to write
	}
	return fail(w, http.StatusInternalServerError, fmt.Sprintf("the API key of bot %q cannot be used (%s): see the service log", bot.Name, secrets.Outcome(err)))
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

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.bots.db.PingContext(ctx); err != nil {
		fail(w, http.StatusServiceUnavailable, "database unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func fail(w http.ResponseWriter, code int, msg string) int {
	writeJSON(w, code, map[string]string{"error": msg})
	return code
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientLimits holds a token bucket per client address, in a bounded LRU so
// that many clients cannot grow it without end.
type clientLimits struct {
	every rate.Limit
	burst int
	l     *lru.Cache[string, *rate.Limiter]
}

func newClientLimits(perSecond float64, burst int) *clientLimits {
	l, _ := lru.New[string, *rate.Limiter](10000)
	return &clientLimits{every: rate.Limit(perSecond), burst: burst, l: l}
}

func (c *clientLimits) allow(client string) bool {
	lim, ok := c.l.Get(client)
	if !ok {
		lim = rate.NewLimiter(c.every, c.burst)
		if prev, found, _ := c.l.PeekOrAdd(client, lim); found {
			lim = prev
		}
	}
	return lim.Allow()
}
