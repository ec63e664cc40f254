package awssm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/awssm"
)

// fakeSessionToken is shaped like an STS session token: long base64.
const fakeSessionToken = "IQoJb3JpZ2luX2VjEKw//////////wEaCXVzLWVhc3QtMSJHMEUCIQDkwTokenCanary+" +
	"Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG9mcmVkcGx1Z2h4eXp6eQ=="

// echoClient is newClient with a session token in its credentials, which
// the SDK sends in X-Amz-Security-Token on every request.
func echoClient(endpoint string) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDKEYWARDTEST", "keyward-test-secret-key", fakeSessionToken),
		HTTPClient:   &http.Client{},
		Retryer:      fastRetryer(1),
	})
}

// TestEchoedErrorTypeAndRequestID: an endpoint that echoes what it was sent
// (a proxy, a misconfigured emulator, an attacker's endpoint) can put a
// canary or the caller's session token in the error type (X-Amzn-ErrorType,
// __type) and the request id. Neither may reach an error's text or anything
// reachable from it; only values shaped like AWS's are kept.
func TestEchoedErrorTypeAndRequestID(t *testing.T) {
	canary := "kw-canary-" + token()
	longIdent := "KwCanary" + strings.Repeat(token(), 5) // identifier-shaped, too long
	echo := "<session token>"
	for _, tc := range []struct {
		name                string
		header, body, reqID string
		batch               bool
	}{
		{name: "token in header, canary in body and id", header: echo, body: canary, reqID: canary},
		{name: "canary in header, token in id", header: canary, body: "ResourceNotFoundException", reqID: echo},
		{name: "canary in body only", body: canary, reqID: "req " + canary},
		{name: "token in body", body: echo, reqID: "00000000-0000-0000-0000-000000000000" + canary},
		{name: "namespaced canary", body: "com.amazonaws.secretsmanager#" + canary, reqID: canary},
		{name: "namespaced long identifier", body: "com.amazonaws.secretsmanager#" + longIdent, reqID: longIdent},
		{name: "canary with a colon", header: canary + ":http://internal.example/" + canary, reqID: canary},
		{name: "batch entry code", batch: true, body: canary, reqID: canary},
		{name: "batch entry token", batch: true, body: echo, reqID: echo},
		{name: "batch entry namespaced", batch: true, body: "aws.protocoltests#" + canary, reqID: canary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			name := "kw/" + token()
			f.put(name, secretValue())
			sub := func(s string, r *http.Request) string {
				return strings.ReplaceAll(s, echo, r.Header.Get("X-Amz-Security-Token"))
			}
			var sawToken bool
			f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
				sawToken = r.Header.Get("X-Amz-Security-Token") == fakeSessionToken
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				w.Header().Set("X-Amzn-RequestId", sub(tc.reqID, r))
				if tc.batch {
					if op != "BatchGetSecretValue" {
						return false
					}
					w.WriteHeader(200)
					json.NewEncoder(w).Encode(map[string]any{"Errors": []map[string]string{
						{"SecretId": name, "ErrorCode": sub(tc.body, r), "Message": canary}}})
					return true
				}
				if tc.header != "" {
					w.Header().Set("X-Amzn-ErrorType", sub(tc.header, r))
				}
				w.WriteHeader(400)
				json.NewEncoder(w).Encode(map[string]string{"__type": sub(tc.body, r), "message": canary})
				return true
			})
			store := awssm.New(echoClient(f.srv.URL), nil)
			var err error
			if tc.batch {
				res, berr := store.ResolveMany(context.Background(), []string{name, name + "?stage=AWSCURRENT"})
				if berr != nil {
					t.Fatal(berr)
				}
				err = res[0].Err
			} else {
				_, err = store.Resolve(context.Background(), name)
			}
			if !sawToken {
				t.Fatal("test bug: the SDK did not send the session token")
			}
			if err == nil {
				t.Fatal("Resolve succeeded on an error answer")
			}
			wantKeywardError(t, err, secrets.CodeOf(err))
			noLeak(t, canary, err)
			noLeak(t, fakeSessionToken, err)
			noLeak(t, fakeSessionToken[:40], err)
			noLeak(t, longIdent, err)
			var api smithy.APIError
			if errors.As(err, &api) {
				for _, s := range []string{api.ErrorCode(), api.Error()} {
					if strings.Contains(s, "anary") || strings.Contains(s, "IQoJ") {
						t.Errorf("the reachable API error holds the echoed value (%d bytes of text)", len(s))
					}
				}
			}
			var withID interface{ ServiceRequestID() string }
			if errors.As(err, &withID) && withID.ServiceRequestID() != "" {
				t.Errorf("ServiceRequestID() = %d bytes, want \"\" for an id not shaped like AWS's", len(withID.ServiceRequestID()))
			}
		})
	}
}

// TestWellFormedErrorTypeAndRequestIDKept: values shaped like AWS's stay in
// the text and classify as before.
func TestWellFormedErrorTypeAndRequestIDKept(t *testing.T) {
	for _, tc := range []struct {
		header, body, reqID string
		want                error
		code                string
	}{
		{"", "ResourceNotFoundException", "a1b2c3d4-5678-90ab-cdef-0123456789ab", secrets.ErrNotFound, "ResourceNotFoundException"},
		{"ResourceNotFoundException", "", "0123456789ABCDEF", secrets.ErrNotFound, "ResourceNotFoundException"},
		{"", "com.amazonaws.secretsmanager#AccessDeniedException", "JQ9V7RNHZ0A3KTR1HN5XZBD2G2QUBWE4M0F5X7YK6P8S2C1LQD3A", secrets.ErrPermission, "AccessDeniedException"},
		{"ThrottlingException:http://internal.amazon.com/coral/", "", "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f", secrets.ErrUnavailable, "ThrottlingException"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			f := newFake(t)
			name := "kw/" + token()
			f.put(name, secretValue())
			f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				w.Header().Set("X-Amzn-RequestId", tc.reqID)
				if tc.header != "" {
					w.Header().Set("X-Amzn-ErrorType", tc.header)
				}
				w.WriteHeader(400)
				json.NewEncoder(w).Encode(map[string]string{"__type": tc.body, "message": "m"})
				return true
			})
			_, err := awssm.New(echoClient(f.srv.URL), nil).Resolve(context.Background(), name)
			wantKeywardError(t, err, tc.want)
			for _, want := range []string{"GetSecretValue: " + tc.code, "request id " + tc.reqID} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != tc.code {
				t.Errorf("errors.As(smithy.APIError) on %v: %v", err, api)
			}
			if tc.code == "ResourceNotFoundException" {
				var rnf *types.ResourceNotFoundException
				if !errors.As(err, &rnf) {
					t.Errorf("errors.As(*types.ResourceNotFoundException) failed on %v", err)
				}
			}
			var withID interface{ ServiceRequestID() string }
			if !errors.As(err, &withID) || withID.ServiceRequestID() != tc.reqID {
				t.Errorf("ServiceRequestID() is not %q", tc.reqID)
			}
			if text := fmt.Sprintf("%+v", err); strings.Contains(text, "withheld") {
				t.Errorf("a well-formed value was withheld: %s", text)
			}
		})
	}
}
