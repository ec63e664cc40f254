package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// The middleware around the routes, outermost first: the access log, the
// trusted-hosts check, CORS. Each answers in JSON with a stable code.

// recorder remembers the status and size a handler wrote, for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	token  int64 // the client token's id, once checked; never the token
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// accessLog writes one line per request: method, path, status, size,
// duration, client and the client token's id. Never a body, a query string,
// a header value or a token: the path of this service holds only a bot id.
func (s *server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		if r.Method == http.MethodConnect {
			// ServeMux answers CONNECT before any route, in text/plain.
			rec.Header().Set("Allow", "GET, HEAD, POST, OPTIONS")
			fail(rec, http.StatusMethodNotAllowed, "method_not_allowed", "CONNECT is not served here: this is not a proxy")
		} else {
			next.ServeHTTP(rec, r)
		}
		if rec.status == 0 {
			rec.status = statusClientGone
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", loggedPath(r.URL.Path)),
			slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("client", s.clientIP(r).String()),
		}
		if rec.token != 0 {
			attrs = append(attrs, slog.Int64("token_id", rec.token))
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// loggedPath is the request's path for the access log, with a client token
// a client put in it by mistake cut to its public prefix.
func loggedPath(p string) string {
	if i := strings.Index(p, tokenPrefix); i >= 0 {
		return p[:i+len(tokenPrefix)] + "[redacted]"
	}
	return p
}

// statusClientGone is logged for a request whose client left before an
// answer was written (nginx's 499).
const statusClientGone = 499

// trustHosts refuses a request whose Host header is not a trusted host name
// (DNS rebinding, cache poisoning through Host). /healthz and /readyz answer
// any Host: orchestrators probe by address, and they reveal nothing.
func (s *server) trustHosts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !s.cfg.trustedHosts.allows(r.Host) {
			fail(w, http.StatusBadRequest, "untrusted_host", "this service does not answer to that Host: add it to CHAT_TRUSTED_HOSTS")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cors answers preflights from the allowed origins and marks their
// responses; other origins get no CORS header, so browsers keep their pages
// from reading the answers.
func (s *server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && s.cfg.corsOrigins[strings.ToLower(origin)]
		if origin != "" || len(s.cfg.corsOrigins) > 0 {
			// Every answer may differ by Origin: a shared cache must not
			// serve one origin's answer to another.
			w.Header().Add("Vary", "Origin")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed || !strings.HasPrefix(r.URL.Path, "/api/chat/") {
				fail(w, http.StatusForbidden, "cors_origin_not_allowed", "this origin may not call this service: add it to CHAT_CORS_ORIGINS")
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "POST")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
		}
		next.ServeHTTP(w, r)
	})
}

// clientIP is the address a request came from: the connection's peer, or,
// when the peer is a trusted proxy, the first address in X-Forwarded-For
// that is not one, read from the right (the only part a client cannot
// forge).
func (s *server) clientIP(r *http.Request) netip.Addr {
	peer := addrOf(r.RemoteAddr)
	if !s.trusted(peer) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	var all []string
	for _, h := range hops {
		all = append(all, strings.Split(h, ",")...)
	}
	for i := len(all) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(all[i]))
		if err != nil {
			// A malformed hop: nothing left of it can be believed.
			return peer
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a
		}
		peer = a
	}
	return peer
}

func (s *server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.trustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func addrOf(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// rateKey is the rate limit's bucket for a client: its IPv4 address, or its
// IPv6 /64 (one subscriber's network: an IPv6 client has 2^64 addresses).
func rateKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
