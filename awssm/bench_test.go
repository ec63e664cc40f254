package awssm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/keyward/secrets/awssm"
	"github.com/keyward/secrets/cache"
)

// benchFake returns a fake holding n secrets and their refs.
func benchFake(b *testing.B, n int) (*fakeSM, []string) {
	f := newFake(b)
	refList := make([]string, n)
	for i := range refList {
		refList[i] = fmt.Sprintf("kw/bench-%03d", i)
		f.put(refList[i], secretValue())
	}
	return f, refList
}

// BenchmarkResolve compares one resolve through the real SDK client with a
// hand-written POST of the same request (the SDK's share is the
// difference), and with the cache in front (hits after the first call).
// Every variant talks to the same in-process awsJson1.1 server over loopback.
func BenchmarkResolve(b *testing.B) {
	ctx := context.Background()
	b.Run("RawHTTP", func(b *testing.B) {
		f, refList := benchFake(b, 1)
		client := &http.Client{}
		body := []byte(`{"SecretId":"` + refList[0] + `"}`)
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
			// The fake checks the form of the header, not the signature.
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDKEYWARDTEST/20261126/us-east-1/secretsmanager/aws4_request")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var out struct{ SecretString, VersionId string }
			err = json.NewDecoder(resp.Body).Decode(&out)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || out.SecretString == "" {
				b.Fatal("bad answer", err)
			}
		}
		b.ReportMetric(float64(f.count("GetSecretValue"))/float64(b.N), "calls/op")
	})
	b.Run("SDK", func(b *testing.B) {
		f, refList := benchFake(b, 1)
		store := awssm.New(newClient(f.srv.URL, 3, http.DefaultTransport), nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := store.Resolve(ctx, refList[0]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(f.count("GetSecretValue"))/float64(b.N), "calls/op")
	})
	b.Run("SDKField", func(b *testing.B) {
		f := newFake(b)
		doc, _ := json.Marshal(map[string]string{"api_key": secretValue(), "org": "org-1"})
		f.put("kw/doc", string(doc))
		store := awssm.New(newClient(f.srv.URL, 3, http.DefaultTransport), nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := store.Resolve(ctx, "kw/doc#api_key"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Cached", func(b *testing.B) {
		f, refList := benchFake(b, 1)
		store := awssm.New(newClient(f.srv.URL, 3, http.DefaultTransport), nil)
		c := cache.New(store, &cache.Options{TTL: time.Hour})
		defer c.Close()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Resolve(ctx, refList[0]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(f.count("GetSecretValue"))/float64(b.N), "calls/op")
	})
}

// BenchmarkResolveMany resolves 50 secrets, each asked for twice (two
// #fields of a JSON secret, as a service reading a key and an org would),
// one GetSecretValue a ref (the loop a caller writes without batching), one
// GetSecretValue a secret (NoBatch) and with BatchGetSecretValue.
func BenchmarkResolveMany(b *testing.B) {
	ctx := context.Background()
	const n = 50
	setup := func(b *testing.B) (*fakeSM, []string) {
		f := newFake(b)
		var refList []string
		for i := range n {
			name := fmt.Sprintf("kw/many-%03d", i)
			doc, _ := json.Marshal(map[string]string{"api_key": secretValue(), "org": "org-1"})
			f.put(name, string(doc))
			refList = append(refList, name+"#api_key", name+"#org")
		}
		return f, refList
	}
	report := func(b *testing.B, f *fakeSM) {
		calls := f.count("GetSecretValue") + f.count("BatchGetSecretValue")
		b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
	}
	b.Run("ResolveLoop", func(b *testing.B) {
		f, refList := setup(b)
		store := awssm.New(newClient(f.srv.URL, 3, http.DefaultTransport), nil)
		for b.Loop() {
			for _, r := range refList {
				if _, err := store.Resolve(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b, f)
	})
	b.Run("NoBatch", func(b *testing.B) {
		f, refList := setup(b)
		store := awssm.New(newClient(f.srv.URL, 3, http.DefaultTransport), &awssm.Options{NoBatch: true})
		for b.Loop() {
			res, err := store.ResolveMany(ctx, refList)
			if err != nil || res[0].Err != nil {
				b.Fatal(err, res[0].Err)
			}
		}
		report(b, f)
	})
	b.Run("Batch", func(b *testing.B) {
		f, refList := setup(b)
		store := awssm.New(newClient(f.srv.URL, 3, http.DefaultTransport), nil)
		for b.Loop() {
			res, err := store.ResolveMany(ctx, refList)
			if err != nil || res[0].Err != nil {
				b.Fatal(err, res[0].Err)
			}
		}
		report(b, f)
	})
}
