package azurekv_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

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
