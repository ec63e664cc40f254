package secrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/envstore"
	"github.com/keyward/secrets/secretstest"
)

// Resolving a key whose name is in the environment.
func Example_env() {
	os.Setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
	defer os.Unsetenv("ANTHROPIC_API_KEY")

	var r secrets.KeyResolver = envstore.New(nil)
	key, err := r.Resolve(context.Background(), "ANTHROPIC_API_KEY")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(key.Reveal()), "bytes")
	// Output: 15 bytes
}

// A Mux mixing two backends: user-provided keys in the database, the
// service's own key in the environment.
func ExampleMux() {
	os.Setenv("OPENAI_API_KEY", "sk-openai-service")
	defer os.Unsetenv("OPENAI_API_KEY")
	db := new(secretstest.Fake) // stands in for fernetstore here
	db.Set("42", "sk-ant-user-42")

	var mux secrets.Mux
	mux.Handle("db", db)
	mux.Handle("env", envstore.New(nil))

	ctx := context.Background()
	for _, ref := range []string{"db:42", "env:OPENAI_API_KEY"} {
		key, err := mux.Resolve(ctx, ref)
		fmt.Println(ref, err == nil, key.Len())
	}
	_, err := mux.Resolve(ctx, "vault:secret/bots#key")
	fmt.Println(errors.Is(err, secrets.ErrUnknownScheme))
	// Output:
	// db:42 true 14
	// env:OPENAI_API_KEY true 17
	// true
}

// Opening a whole stack from configuration: the text would normally come
// from KEYWARD_CONFIG or KEYWARD_CONFIG_FILE (see OpenFromEnv).
func ExampleOpenConfig() {
	os.Setenv("ANTHROPIC_API_KEY_2", "sk-ant-bot-2")
	defer os.Unsetenv("ANTHROPIC_API_KEY_2")

	cfg, err := secrets.ParseConfig(`
env     = env://?allow=ANTHROPIC_*,OPENAI_*
audit   = on
timeout = 2s`)
	if err != nil {
		fmt.Println(err)
		return
	}
	stack, err := secrets.OpenConfig(context.Background(), cfg, &secrets.StackOptions{
		Auditor: secrets.AuditFunc(func(_ context.Context, ev secrets.AuditEvent) {
			fmt.Println("audit:", ev.Ref, ev.Backend, ev.Outcome)
		}),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stack.Close()

	key, err := stack.Resolve(context.Background(), "env:ANTHROPIC_API_KEY_2")
	fmt.Println(key.Len(), err)
	_, err = stack.Resolve(context.Background(), "env:VAULT_TOKEN")
	fmt.Println(errors.Is(err, secrets.ErrPermission))
	// Output:
	// audit: env:ANTHROPIC_API_KEY_2 env ok
	// 12 <nil>
	// audit: env:VAULT_TOKEN env permission_denied
	// true
}

// Printing a Secret shows a redaction, whatever prints it.
func ExampleSecret() {
	key := secrets.NewSecret("sk-ant-api03-very-secret")
	key.Version = "3"

	fmt.Println(key)
	fmt.Printf("%v %s %q %x %+v\n", key, key, key, key, key)
	fmt.Printf("%#v\n", key)
	j, _ := json.Marshal(map[string]any{"bot": "support", "key": key})
	fmt.Println(string(j))
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // deterministic output
			}
			return a
		},
	}))
	logger.Info("resolved", "key", key)
	// Output:
	// [redacted]
	// [redacted] [redacted] "[redacted]" [redacted] [redacted]
	// secrets.Secret{value:"[redacted]", Version:"3", ExpiresAt:time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)}
	// {"bot":"support","key":"[redacted]"}
	// level=INFO msg=resolved key=[redacted]
}
