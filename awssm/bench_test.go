package awssm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/secrets/awssm"
	"github.com/keyward/secrets/cache"
)

// cpu returns the CPU time (user + system) the process has used. On a
// shared, noisy machine CPU time per op varies far less than wall time.
func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per op since start (client and, for the
// loopback benchmarks, the in-process server too).
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
}

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
		start := cpu()
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
		reportCPU(b, start)
		b.ReportMetric(float64(f.count("GetSecretValue"))/float64(b.N), "calls/op")
	})
	b.Run("SDK", func(b *testing.B) {
		f, refList := benchFake(b, 1)
		store := awssm.New(newClient(f.srv.URL, 3, http.DefaultTransport), nil)
		b.ReportAllocs()
		start := cpu()
		for b.Loop() {
			if _, err := store.Resolve(ctx, refList[0]); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start)
		b.ReportMetric(float64(f.count("GetSecretValue"))/float64(b.N), "calls/op")
	})
	b.Run("SDKField", func(b *testing.B) {
		f := newFake(b)
		doc, _ := json.Marshal(map[string]string{"api_key": secretValue(), "org": "org-1"})
		f.put("kw/doc", string(doc))
		store := awssm.New(newClient(f.srv.URL, 3, http.DefaultTransport), nil)
		b.ReportAllocs()
		start := cpu()
		for b.Loop() {
			if _, err := store.Resolve(ctx, "kw/doc#api_key"); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start)
	})
	b.Run("Cached", func(b *testing.B) {
		f, refList := benchFake(b, 1)
		store := awssm.New(newClient(f.srv.URL, 3, http.DefaultTransport), nil)
		c := cache.New(store, &cache.Options{TTL: time.Hour})
		defer c.Close()
		b.ReportAllocs()
		start := cpu()
		for b.Loop() {
			if _, err := c.Resolve(ctx, refList[0]); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start)
		b.ReportMetric(float64(f.count("GetSecretValue"))/float64(b.N), "calls/op")
	})
}

// canned is an http.RoundTripper that answers every request with the same
// GetSecretValue body, in process: with it, a benchmark measures the client
// alone (SDK or hand-written), without a server or the loopback network.
type canned struct{ body []byte }

func (c canned) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-Requestid", "req-bench")
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: h, Request: r,
		ContentLength: int64(len(c.body)), Body: io.NopCloser(bytes.NewReader(c.body))}, nil
}

// BenchmarkClientOnly is BenchmarkResolve without the server: the same
// request and answer, through the SDK or by hand, over an in-process
// transport, so the difference is the SDK's own cost (serialising, SigV4
// signing, the middleware stack, deserialising) and nothing else.
func BenchmarkClientOnly(b *testing.B) {
	ctx := context.Background()
	answer, _ := json.Marshal(map[string]any{"ARN": fakeARNPrefix + "kw/one-AbCdEf", "Name": "kw/one",
		"VersionId": "v-1", "VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.7e9, "SecretString": secretValue()})
	rt := canned{body: answer}
	b.Run("RawHTTP", func(b *testing.B) {
		client := &http.Client{Transport: rt}
		body := []byte(`{"SecretId":"kw/one"}`)
		b.ReportAllocs()
		start := cpu()
		for b.Loop() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:1/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var out struct{ SecretString, VersionId string }
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || out.SecretString == "" {
				b.Fatal("bad answer", err)
			}
		}
		reportCPU(b, start)
	})
	b.Run("SDK", func(b *testing.B) {
		store := awssm.New(newClient("http://127.0.0.1:1", 3, rt), nil)
		b.ReportAllocs()
		start := cpu()
		for b.Loop() {
			if _, err := store.Resolve(ctx, "kw/one"); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start)
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
		start := cpu()
		for b.Loop() {
			for _, r := range refList {
				if _, err := store.Resolve(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportCPU(b, start)
		report(b, f)
	})
	b.Run("NoBatch", func(b *testing.B) {
		f, refList := setup(b)
		store := awssm.New(newClient(f.srv.URL, 3, http.DefaultTransport), &awssm.Options{NoBatch: true})
		start := cpu()
		for b.Loop() {
			res, err := store.ResolveMany(ctx, refList)
			if err != nil || res[0].Err != nil {
				b.Fatal(err, res[0].Err)
			}
		}
		reportCPU(b, start)
		report(b, f)
	})
	b.Run("Batch", func(b *testing.B) {
		f, refList := setup(b)
		store := awssm.New(newClient(f.srv.URL, 3, http.DefaultTransport), nil)
		start := cpu()
		for b.Loop() {
			res, err := store.ResolveMany(ctx, refList)
			if err != nil || res[0].Err != nil {
				b.Fatal(err, res[0].Err)
			}
		}
		reportCPU(b, start)
		report(b, f)
	})
}
