package envstore_test

import (
	"context"
	"fmt"
	"os"

	"github.com/keyward/secrets/envstore"
)

func Example() {
	os.Setenv("ANTHROPIC_API_KEY_1", "sk-ant-example")
	defer os.Unsetenv("ANTHROPIC_API_KEY_1")

	store := envstore.New(&envstore.Options{Allow: []string{"ANTHROPIC_*", "OPENAI_*"}})
	key, err := store.Resolve(context.Background(), "ANTHROPIC_API_KEY_1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("printed:", key)
	fmt.Println("length:", key.Len())

	_, err = store.Resolve(context.Background(), "ENCRYPTION_KEY")
	fmt.Println(err)
	// Output:
	// printed: [redacted]
	// length: 14
	// keyward: env: resolve "ENCRYPTION_KEY": permission denied: variable ENCRYPTION_KEY is denied by the policy (pattern "ENCRYPTION_KEY*"): it holds the key to other secrets
}
