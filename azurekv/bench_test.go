package azurekv_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keyward/secrets/azurekv"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/internal/azurekvtest"
)

// benchEnv is a vault holding n secrets and a warmed-up Store on it (the
// challenge done and the token cached), so each resolve is one GET on a
// kept-alive TLS connection.
func benchEnv(b *testing.B, n int) (*azurekvtest.Server, *azurekv.Store, []string) {
	b.Helper()
	srv := azurekvtest.NewServer()
	b.Cleanup(srv.Close)
	srv.SetLogging(false)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bot-%d", i)
		srv.Set(names[i], fmt.Sprintf(`{"api_key":"sk-ant-bench-%d-%s"}`, i, token()), azurekvtest.Attributes{Expires: time.Now().Add(24 * time.Hour)})
	}
	client, _, err := srv.NewClient(2)
	if err != nil {
		b.Fatal(err)
	}
	store := azurekv.New(client, nil)
	if _, err := store.Resolve(context.Background(), names[0]); err != nil {
		b.Fatal(err)
	}
	return srv, store, names
}

// BenchmarkResolve measures one resolve of "bot-0#api_key":
//
//	sdk      through azurekv and the real azsecrets pipeline to the in-process TLS vault
//	rawhttp  the baseline: the same GET with net/http and encoding/json, no SDK
//	cache    azurekv behind cache.New (a hit)
func BenchmarkResolve(b *testing.B) {
	ctx := context.Background()
	b.Run("sdk", func(b *testing.B) {
		srv, store, names := benchEnv(b, 1)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := store.Resolve(ctx, names[0]+"#api_key"); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(srv.Gets(names[0])-1)/float64(b.N), "kv-gets/op")
	})
	b.Run("rawhttp", func(b *testing.B) {
		srv, _, names := benchEnv(b, 1)
		hc := srv.HTTPClient()
		url := srv.URL + "secrets/" + names[0] + "/?api-version=2026-04-01"
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+srv.Token)
			req.Header.Set("Accept", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var bundle struct {
				Value      string `json:"value"`
				ID         string `json:"id"`
				Attributes struct {
					Enabled bool  `json:"enabled"`
					Exp     int64 `json:"exp"`
				} `json:"attributes"`
			}
			err = json.NewDecoder(resp.Body).Decode(&bundle)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				b.Fatal(resp.StatusCode, err)
			}
			var doc map[string]string
			if err := json.Unmarshal([]byte(bundle.Value), &doc); err != nil || doc["api_key"] == "" {
				b.Fatal("no api_key")
			}
		}
	})
	b.Run("cache", func(b *testing.B) {
		srv, store, names := benchEnv(b, 1)
		c := cache.New(store, &cache.Options{TTL: time.Hour})
		defer c.Close()
		before := srv.Gets(names[0])
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := c.Resolve(ctx, names[0]+"#api_key"); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(srv.Gets(names[0])-before)/float64(b.N), "kv-gets/op")
	})
}

// BenchmarkWorkload is a service's pattern: 200 resolves round-robin over 20
// bots' keys per op. It reports the Key Vault GETs each op cost, without and
// with the cache (TTL 5m, so in a benchmark each key is fetched about once).
func BenchmarkWorkload(b *testing.B) {
	const bots, resolves = 20, 200
	ctx := context.Background()
	for _, cached := range []bool{false, true} {
		name := "nocache"
		if cached {
			name = "cache"
		}
		b.Run(name, func(b *testing.B) {
			srv, store, names := benchEnv(b, bots)
			refs := make([]string, bots)
			for i, n := range names {
				refs[i] = n + "#api_key"
			}
			resolve := store.Resolve
			if cached {
				c := cache.New(store, &cache.Options{TTL: 5 * time.Minute})
				defer c.Close()
				resolve = c.Resolve
			}
			gets := func() (n int) {
				for _, nm := range names {
					n += srv.Gets(nm)
				}
				return n
			}
			before := gets()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for i := range resolves {
					if _, err := resolve(ctx, refs[i%bots]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(gets()-before)/float64(b.N), "kv-gets/op")
		})
	}
}

// rawGet is the baseline resolve: one GET with net/http and encoding/json.
func rawGet(ctx context.Context, hc interface {
	Do(*http.Request) (*http.Response, error)
}, url, token string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var bundle struct {
		Value      string `json:"value"`
		ID         string `json:"id"`
		Attributes struct {
			Enabled bool  `json:"enabled"`
			Exp     int64 `json:"exp"`
		} `json:"attributes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&bundle); err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("status %d: %v", resp.StatusCode, err)
	}
	var doc map[string]string
	if err := json.Unmarshal([]byte(bundle.Value), &doc); err != nil || doc["api_key"] == "" {
		return fmt.Errorf("no api_key")
	}
	return nil
}

// BenchmarkPaired alternates an SDK resolve and a raw GET of the same secret
// in every iteration, timing each, so both see the same machine load (this
// machine is shared and noisy). It reports each one's ns and the SDK's share
// of the SDK path: (sdk - raw) / sdk.
func BenchmarkPaired(b *testing.B) {
	ctx := context.Background()
	srv, store, names := benchEnv(b, 1)
	hc := srv.HTTPClient()
	url := srv.URL + "secrets/" + names[0] + "/?api-version=2026-04-01"
	if err := rawGet(ctx, hc, url, srv.Token); err != nil {
		b.Fatal(err)
	}
	var sdk, raw time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := store.Resolve(ctx, names[0]+"#api_key"); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := rawGet(ctx, hc, url, srv.Token); err != nil {
			b.Fatal(err)
		}
		sdk += t1.Sub(t0)
		raw += time.Since(t1)
	}
	b.ReportMetric(float64(sdk.Nanoseconds())/float64(b.N), "sdk-ns/op")
	b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(100*float64(sdk-raw)/float64(sdk), "sdk-share-%")
}

// memVault is an in-memory http transport that answers like Key Vault (the
// challenge, then a fixed bundle), so BenchmarkInMemory measures the client
// side alone: no TLS, no sockets, no server goroutines.
type memVault struct{ token, bundle string }

func (m memVault) Do(req *http.Request) (*http.Response, error) {
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	status, body := 200, m.bundle
	if req.Header.Get("Authorization") != "Bearer "+m.token {
		status, body = 401, azurekvtest.ErrorBody("Unauthorized", "", "AKV10000: Request is missing a Bearer or PoP token.")
		h.Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net"`)
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: h, Request: req,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}, nil
}

// BenchmarkInMemory is the client-side CPU of one resolve against memVault:
// sdk through azurekv and the azsecrets pipeline, raw with net/http's
// request and encoding/json only.
func BenchmarkInMemory(b *testing.B) {
	ctx := context.Background()
	bundle := `{"value":"{\"api_key\":\"sk-ant-bench-` + token() + `\"}","id":"https://v.vault.azure.net/secrets/bot-0/0123456789abcdef0123456789abcdef","attributes":{"enabled":true,"created":1764100000,"updated":1764100000,"exp":4102444800,"recoveryLevel":"Recoverable+Purgeable","recoverableDays":90}}`
	srv := azurekvtest.NewServer() // only for its credential and options
	defer srv.Close()
	mv := memVault{token: srv.Token, bundle: bundle}
	b.Run("sdk", func(b *testing.B) {
		opts := srv.ClientOptions(2)
		opts.Transport = mv
		client, err := azsecrets.NewClient("https://v.vault.azure.net/", srv.Credential(), opts)
		if err != nil {
			b.Fatal(err)
		}
		store := azurekv.New(client, nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := store.Resolve(ctx, "bot-0#api_key"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := rawGet(ctx, mv, "https://v.vault.azure.net/secrets/bot-0/?api-version=2026-04-01", srv.Token); err != nil {
				b.Fatal(err)
			}
		}
	})
}
