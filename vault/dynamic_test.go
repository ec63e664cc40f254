package vault

import (
	"context"
	"database/sql"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	_ "github.com/jackc/pgx/v5/stdlib"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/internal/testenv"
)

// TestDynamicDatabaseCredentials reads real dynamic secrets: Vault's database
// engine makes a PostgreSQL role per read, with a lease. The lease becomes
// Secret.ExpiresAt, so a cache in front fetches new credentials once the old
// ones expire instead of serving them past their lease.
func TestDynamicDatabaseCredentials(t *testing.T) {
	testenv.PostgresDSN(t) // the server Vault's database engine talks to (127.0.0.1:5432, database test)
	srv := testenv.Vault(t)
	root, cnt := newClient(t, srv.Addr, srv.RootToken)
	ctx := context.Background()

	if err := root.Sys().Mount("database", &api.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	// Vault reaches the test PostgreSQL (trust auth: any password works).
	must := func(path string, data map[string]any) {
		t.Helper()
		if _, err := root.Logical().Write(path, data); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	must("database/config/test", map[string]any{
		"plugin_name":       "postgresql-database-plugin",
		"connection_url":    "postgresql://{{username}}:{{password}}@127.0.0.1:5432/test?sslmode=disable",
		"username":          "postgres",
		"password":          "not-checked-by-trust-auth",
		"allowed_roles":     "readonly",
		"verify_connection": true,
	})
	must("database/roles/readonly", map[string]any{
		"db_name":             "test",
		"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
		"default_ttl":         "2m",
		"max_ttl":             "10m",
	})
	t.Cleanup(func() {
		// Revoking the leases drops the roles Vault made in PostgreSQL.
		root.Sys().RevokePrefix("database/creds/readonly")
	})

	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	store := New(root, &Options{Now: clock})
	defer store.Close()
	c := cache.New(store, &cache.Options{TTL: time.Hour, Now: clock, LazyRefresh: true})
	defer c.Close()

	type creds struct{ Username, Password string }
	resolve := func() (creds, secrets.Secret) {
		t.Helper()
		s, err := c.Resolve(ctx, "database/creds/readonly")
		if err != nil {
			t.Fatalf("resolve dynamic credentials: %v", err)
		}
		var cr creds
		if err := json.Unmarshal([]byte(s.Reveal()), &cr); err != nil || cr.Username == "" || cr.Password == "" {
			t.Fatalf("the dynamic secret is not {username, password}: %v", err)
		}
		return cr, s
	}

	first, s1 := resolve()
	if want := now.Add(2 * time.Minute); s1.ExpiresAt.Before(want.Add(-5*time.Second)) || s1.ExpiresAt.After(want.Add(5*time.Second)) {
		t.Fatalf("ExpiresAt = %v, want the 2m lease from %v", s1.ExpiresAt, now)
	}
	// The role is real: Vault made it in PostgreSQL. (Trust auth accepts any
	// password, so this checks the user, not the password.)
	login(t, first.Username, first.Password)

	// Within the lease: a cache hit, no new role.
	reads := cnt.n.Load()
	if again, _ := resolve(); again != first || cnt.n.Load() != reads {
		t.Fatal("a resolve within the lease did not come from the cache")
	}

	// Past the lease (the cache TTL is an hour): new credentials, not the
	// expired ones.
	advance(2*time.Minute + time.Second)
	second, s2 := resolve()
	if second.Username == first.Username {
		t.Fatal("the cache served credentials past their lease")
	}
	if !s2.ExpiresAt.After(s1.ExpiresAt) {
		t.Errorf("the new lease ends at %v, not after the old one (%v)", s2.ExpiresAt, s1.ExpiresAt)
	}
	login(t, second.Username, second.Password)
}

// login opens a connection to the test database as user.
func login(t *testing.T, user, password string) {
	t.Helper()
	db, err := sql.Open("pgx", "postgres://"+user+":"+password+"@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var who string
	if err := db.QueryRow("SELECT current_user").Scan(&who); err != nil || who != user {
		t.Fatalf("logging in with the dynamic credentials: %q, %v", who, err)
	}
}
