package vault_test

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/api"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/vault"
)

// A ref that tries to leave its mount is refused before any request.
func Example() {
	cfg := api.DefaultConfig()
	cfg.Address = "http://127.0.0.1:8200"
	client, err := api.NewClient(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	store := vault.New(client, &vault.Options{Mount: "secret"})
	defer store.Close()

	_, err = store.Resolve(context.Background(), "../sys/policy/root")
	fmt.Println(err)
	// Output:
	// keyward: vault: resolve "../sys/policy/root": invalid ref: path has a '.' or '..' segment: refs may not step out of their mount
}

// Opening by configuration: the URL names the mount and the login method;
// VAULT_ADDR and the AppRole credentials come from the environment.
func Example_openURL() {
	r, err := secrets.Open(context.Background(), "vault://?mount=secret&auth=approle")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.(*vault.Store).Close()
	// key, err := r.Resolve(ctx, "bots/anthropic#api_key")
	fmt.Printf("%T\n", r)
	// Output: *vault.Store
}
