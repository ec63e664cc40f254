package awssm_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// token returns a random hex string for distinctive secret values.
func token() string {
	b := make([]byte, 10)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// secretValue returns a value that a leak search can find unambiguously.
func secretValue() string { return "sk-ant-test-" + token() }

// counter is an http.RoundTripper that counts requests by operation
// (the X-Amz-Target header), below the SDK: every attempt, retries included.
type counter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func newCounter(next http.RoundTripper) *counter {
	if next == nil {
		next = http.DefaultTransport
	}
	return &counter{next: next, n: map[string]int{}}
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *counter) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.n)
}

// fastRetryer is the SDK's standard retryer with attempts attempts, no
// backoff and no retry quota, so retry tests take milliseconds.
func fastRetryer(attempts int) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = attempts
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		o.RateLimiter = ratelimit.None
	})
}

// newClient returns a real SDK client for endpoint with static credentials
// (so requests are signed as for AWS) and a counting transport.
func newClient(endpoint string, attempts int, rt http.RoundTripper) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDKEYWARDTEST", "keyward-test-secret-key", ""),
		HTTPClient:   &http.Client{Transport: rt},
		Retryer:      fastRetryer(attempts),
	})
}

// fakeSecret is one secret of the fake service.
type fakeSecret struct {
	str     *string
	bin     []byte
	version string
}

// fakeSM is an in-process Secrets Manager speaking awsJson1.1, for what
// moto cannot do: throttling, 5xx, slow and garbage answers. hook, when set,
// may answer a request itself (it returns true) before the fake does.
type fakeSM struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	secrets map[string]fakeSecret
	calls   map[string]int
	hook    func(w http.ResponseWriter, r *http.Request, op string, n int) bool
}

const fakeARNPrefix = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"

func newFake(t testing.TB) *fakeSM {
	f := &fakeSM{t: t, secrets: map[string]fakeSecret{}, calls: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSM) put(name, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[name] = fakeSecret{str: &value, version: "v-" + token()[:8]}
}

func (f *fakeSM) setHook(h func(w http.ResponseWriter, r *http.Request, op string, n int) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

func (f *fakeSM) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	// Shaped like AWS's (a UUID): others are withheld from errors.
	id := token() + token()
	w.Header().Set("X-Amzn-Requestid", id[:8]+"-"+id[8:12]+"-"+id[12:16]+"-"+id[16:20]+"-"+id[20:32])
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeAPIError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]string{"__type": code, "message": message})
}

func (f *fakeSM) serve(w http.ResponseWriter, r *http.Request) {
	// Check what the real SDK must have sent: a signed awsJson1.1 POST.
	target := r.Header.Get("X-Amz-Target")
	if r.Method != http.MethodPost || !strings.HasPrefix(target, "secretsmanager.") ||
		r.Header.Get("Content-Type") != "application/x-amz-json-1.1" ||
		!strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDKEYWARDTEST/") {
		writeAPIError(w, 400, "IncompleteSignature", "the fake wants a signed awsJson1.1 POST")
		return
	}
	op := strings.TrimPrefix(target, "secretsmanager.")
	f.mu.Lock()
	f.calls[op]++
	n := f.calls[op]
	hook := f.hook
	f.mu.Unlock()
	if hook != nil && hook(w, r, op, n) {
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in struct {
		SecretId     string
		VersionStage string
		VersionId    string
		SecretIdList []string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeAPIError(w, 400, "SerializationException", "bad JSON")
		return
	}
	switch op {
	case "GetSecretValue":
		e, status, code := f.lookup(in.SecretId)
		if code != "" {
			writeAPIError(w, status, code, "Secrets Manager can't find the specified secret.")
			return
		}
		writeJSON(w, 200, e)
	case "BatchGetSecretValue":
		if len(in.SecretIdList) > 20 {
			writeAPIError(w, 400, "InvalidParameterException", "too many ids")
			return
		}
		var out struct {
			SecretValues []map[string]any
			Errors       []map[string]string
		}
		for _, id := range in.SecretIdList {
			e, _, code := f.lookup(id)
			if code != "" {
				out.Errors = append(out.Errors, map[string]string{"SecretId": id, "ErrorCode": code, "Message": "not found"})
				continue
			}
			out.SecretValues = append(out.SecretValues, e)
		}
		writeJSON(w, 200, out)
	case "ListSecrets":
		writeJSON(w, 200, map[string]any{"SecretList": []any{}})
	default:
		writeAPIError(w, 400, "UnknownOperationException", "")
	}
}

func (f *fakeSM) lookup(id string) (map[string]any, int, string) {
	name := strings.TrimPrefix(id, fakeARNPrefix)
	if name != id {
		name = name[:max(0, len(name)-7)] // the "-AbCdEf" suffix of a full ARN
	}
	f.mu.Lock()
	s, ok := f.secrets[name]
	f.mu.Unlock()
	if !ok {
		return nil, 400, "ResourceNotFoundException"
	}
	e := map[string]any{
		"ARN": fakeARNPrefix + name + "-AbCdEf", "Name": name, "VersionId": s.version,
		"VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.7e9,
	}
	if s.str != nil {
		e["SecretString"] = *s.str
	} else {
		e["SecretBinary"] = s.bin
	}
	return e, 200, ""
}
