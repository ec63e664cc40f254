package fernetstore_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
)

func TestParseURL(t *testing.T) {
	o, err := fernetstore.ParseURL("fernet://?table=app.keys&plaintext=allow&dialect=postgres&id_column=key_id&value_column=v&name_column=-&provider_column=p&expires_column=-&created_column=c")
	if err != nil {
		t.Fatal(err)
	}
	want := fernetstore.Options{Table: "app.keys", AllowPlaintext: true, Dialect: fernetstore.Postgres,
		IDColumn: "key_id", ValueColumn: "v", NameColumn: "-", ProviderColumn: "p", ExpiresAtColumn: "-", CreatedAtColumn: "c"}
	if !reflect.DeepEqual(*o, want) {
		t.Errorf("ParseURL = %+v, want %+v", *o, want)
	}
	if o, err := fernetstore.ParseURL("fernet://"); err != nil || !reflect.DeepEqual(*o, fernetstore.Options{}) {
		t.Errorf("ParseURL(fernet://) = %+v, %v; want the defaults", o, err)
	}
	for raw, says := range map[string]string{
		"fernet://?bogus=1":                      `unknown parameter "bogus"`,
		"fernet://?table=a&table=b":              "more than once",
		"fernet://?plaintext=maybe":              `plaintext= takes "allow"`,
		"fernet://?dialect=oracle":               "dialect= takes",
		"fernet://?table=api-keys":               "table=",
		"fernet://?table=a.b.c":                  "more than one '.'",
		"fernet://?id_column=-":                  "id_column=",
		"fernet://?value_column=x.y":             "value_column=",
		"fernet://?value_column=x;drop":          "query is malformed",
		"fernet://?table=%zz":                    "query is malformed",
		"fernet://host":                          "DATABASE_URL",
		"fernet:///path":                         "DATABASE_URL",
		"env://":                                 "not a fernet:// URL",
		"fernet://user:hunter2-canary@/?table=x": "user information",
		"fernet://%zz":                           "cannot parse",
	} {
		_, err := fernetstore.ParseURL(raw)
		if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), says) {
			t.Errorf("ParseURL(%q) = %v; want ErrInvalidRef saying %q", raw, err, says)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2-canary") {
			t.Errorf("ParseURL(%q): the error quotes the password", raw)
		}
	}
}

func TestKeyRingFromLookup(t *testing.T) {
	t.Setenv(fernetstore.EnvKey, "") // the process environment does not count
	k1, _ := fernetstore.GenerateKey()
	k2, _ := fernetstore.GenerateKey()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if _, err := fernetstore.KeyRingFromLookup(getenv); err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEY is not set") {
		t.Fatalf("no key: %v", err)
	}
	env[fernetstore.EnvKey] = k1
	env[fernetstore.EnvPreviousKeys] = k2 + ", ,"
	ring, err := fernetstore.KeyRingFromLookup(getenv)
	if err != nil || ring.Len() != 2 {
		t.Fatalf("two keys: %v, %v", ring, err)
	}
	old, _ := fernetstore.ParseKeyRing(k2)
	tok, _ := old.Encrypt([]byte("sk-lookup-canary-1"))
	if msg, i, err := ring.Decrypt(tok); err != nil || string(msg) != "sk-lookup-canary-1" || i != 1 {
		t.Errorf("a token under the previous key: %q %d %v", msg, i, err)
	}
	for name, bad := range map[string]string{fernetstore.EnvKey: "abc", fernetstore.EnvPreviousKeys: "zzz"} {
		env[fernetstore.EnvKey], env[fernetstore.EnvPreviousKeys] = k1, ""
		env[name] = bad
		_, err := fernetstore.KeyRingFromLookup(getenv)
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), k1) {
			t.Errorf("malformed %s: %v; want an error naming it, without the key", name, err)
		}
	}
}
