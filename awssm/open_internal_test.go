package awssm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// TestOpenOnCallersCtx: NewFromEnv's client is made on the ctx of the call
// that needs it, and an open that failed because that caller's ctx ended is
// tried again on the next caller's ctx; awssm made it once, under the first
// caller's ctx, and kept what that gave for the Store's life.
func TestOpenOnCallersCtx(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprint(w, `{"Name":"kw/open","VersionId":"v-1","SecretString":"sk-open-5d2a"}`)
	}))
	t.Cleanup(srv.Close)

	type caller struct{}
	first, cancelFirst := context.WithCancel(context.WithValue(context.Background(), caller{}, "first"))
	defer cancelFirst()
	var mu sync.Mutex
	var seen []any
	load := loadConfig
	t.Cleanup(func() { loadConfig = load })
	loadConfig = func(ctx context.Context, _ ...func(*config.LoadOptions) error) (aws.Config, error) {
		mu.Lock()
		seen = append(seen, ctx.Value(caller{}))
		mu.Unlock()
		if ctx.Value(caller{}) == "first" {
			cancelFirst() // the first caller gives up while the client is made
			return aws.Config{}, ctx.Err()
		}
		return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDKEYWARDTEST", "keyward-test-secret-key", "")}, nil
	}

	store := NewFromEnv("", "", nil)
	t.Cleanup(func() { store.Close() })
	if _, err := store.Resolve(first, "kw/open"); !errors.Is(err, context.Canceled) {
		t.Fatalf("the first caller, canceled while opening: %v, want context.Canceled", err)
	}
	second := context.WithValue(context.Background(), caller{}, "second")
	s, err := store.Resolve(second, "kw/open")
	if err != nil || s.Reveal() != "sk-open-5d2a" {
		t.Fatalf("the next caller: (%d bytes, %v), want the value", s.Len(), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "first" || seen[1] != "second" {
		t.Fatalf("the client was made on the ctx of %v, want [first second]", seen)
	}
}
