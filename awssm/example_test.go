package awssm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/awssm"
)

// Example resolves one field of a JSON secret through the real SDK client,
// here against a tiny in-process stand-in for Secrets Manager; in production
// the client comes from config.LoadDefaultConfig, or the store from
// secrets.Open(ctx, "awssm://?region=eu-west-1").
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"__type":"UnknownOperationException"}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"prod/anthropic"`) {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`)
			return
		}
		fmt.Fprint(w, `{"Name":"prod/anthropic","VersionId":"v-0001","SecretString":"{\"api_key\":\"sk-ant-example\",\"org\":\"org-1\"}"}`)
	}))
	defer srv.Close()

	client := secretsmanager.New(secretsmanager.Options{
		Region:       "eu-west-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "example", ""),
	})
	store := awssm.New(client, nil)

	ctx := context.Background()
	key, err := store.Resolve(ctx, "prod/anthropic#api_key")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(key, key.Version, len(key.Reveal()))

	_, err = store.Resolve(ctx, "prod/openai#api_key")
	fmt.Println(errors.Is(err, secrets.ErrNotFound))
	// Output:
	// [redacted] v-0001 14
	// true
}
