package azurekv_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/azurekv"
	"github.com/keyward/secrets/internal/azurekvtest"
)

func Example() {
	// An in-process Key Vault stands in for https://myvault.vault.azure.net/.
	vault := azurekvtest.NewServer()
	defer vault.Close()
	vault.Set("anthropic-prod", `{"api_key":"sk-ant-example","org":"org-1"}`, azurekvtest.Attributes{})

	// In production: cred, _ := azidentity.NewDefaultAzureCredential(nil)
	// and azsecrets.NewClient("https://myvault.vault.azure.net/", cred, nil).
	client, _, err := vault.NewClient(2)
	if err != nil {
		log.Fatal(err)
	}
	store := azurekv.New(client, nil)
	ctx := context.Background()

	key, err := store.Resolve(ctx, "anthropic-prod#api_key")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key, key.Len()) // printing a Secret shows a redaction

	_, err = store.Resolve(ctx, "anthropic-staging")
	fmt.Println(errors.Is(err, secrets.ErrNotFound))
	fmt.Println(err)
	// Output:
	// [redacted] 14
	// true
	// keyward: azurekv: resolve "anthropic-staging": not found: no such secret (or version) in the vault: Key Vault answered 404 Not Found (SecretNotFound)
}

func Example_open() {
	// Opening reads no credentials and makes no request: DefaultAzureCredential
	// and the client are made on the first Resolve.
	r, err := secrets.Open(context.Background(), "azurekv://myvault.vault.azure.net")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%T\n", r)

	_, err = secrets.Open(context.Background(), "azurekv://myvault.vault.azure.net?client_secret=x")
	fmt.Println(errors.Is(err, secrets.ErrInvalidRef))
	// Output:
	// *azurekv.Store
	// true
}
