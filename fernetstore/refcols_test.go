package fernetstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	secrets "github.com/keyward/secrets"
	_ "github.com/keyward/secrets/awssm"
	_ "github.com/keyward/secrets/cache"
	_ "github.com/keyward/secrets/envstore"
	"github.com/keyward/secrets/internal/testenv"
)

// TestRefColumns: a row of the Python service's table whose api_key is NULL
// resolves through the variable named by key_env_var, else the AWS secret
// named by secret_name, through the same stack (allow list, cache, audit),
// with the row's expiry; it is never plaintext, and the walks leave it.
// On the old code such rows were plaintext "" candidates and db:<uuid> an
// invalid ref.
func TestRefColumns(t *testing.T) {
	endpoint := testenv.MotoServer(t)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
		"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	sm := secretsmanager.New(secretsmanager.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	envKey, awsKey, tokKey := "sk-ant-env-"+randHex(8), "sk-ant-aws-"+randHex(8), "sk-ant-tok-"+randHex(8)
	envVar := "KW_REFTEST_" + strings.ToUpper(randHex(4))
	t.Setenv(envVar, envKey)
	secretName := "prod/anthropic#" + randHex(4) // a '#' that must not read as a #field
	if _, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(secretName), SecretString: aws.String(awsKey)}); err != nil {
		t.Fatal(err)
	}
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		table := pythonTable(t, db, d)
		ring := mustRing(t, mustKey(t))
		tokID := insertPy(t, db, d, table, mustEncrypt(t, ring, tokKey), envVar, nil, nil) // the value wins
		envID := insertPy(t, db, d, table, nil, envVar, "ignored/secret", nil)
		blankID := insertPy(t, db, d, table, "", "", secretName, nil) // empty strings count as unset
		past := any(time.Now().UTC().Add(-time.Hour))
		if d == SQLite {
			past = time.Now().UTC().Add(-time.Hour).Format("2006-01-02 15:04:05.000000")
		}
		expiredID := insertPy(t, db, d, table, nil, envVar, nil, past)
		emptyID := insertPy(t, db, d, table, nil, nil, nil, nil)
		unsetID := insertPy(t, db, d, table, nil, "KW_REFTEST_UNSET_"+randHex(4), nil, nil)

		store := New(db, ring, &Options{Table: table, RefColumns: []RefColumn{{"key_env_var", "env"}, {"secret_name", "awssm"}}})
		var audit bytes.Buffer
		cfg, err := secrets.ParseConfig("env = env://\nawssm = awssm://?region=us-east-1\naudit = on\ncache = size=100&ttl=1m\nallow = db:*, env:" + envVar + ", awssm:prod/*")
		if err != nil {
			t.Fatal(err)
		}
		st, err := secrets.OpenConfig(ctx, cfg, &secrets.StackOptions{Backends: map[string]secrets.KeyResolver{"db": store},
			Auditor: secrets.SlogAuditor(slog.New(slog.NewTextHandler(&audit, nil)))})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for id, want := range map[string]string{tokID: tokKey, envID: envKey, blankID: awsKey} {
			sec, err := st.Resolve(ctx, "db:"+id)
			if err != nil || sec.Reveal() != want {
				t.Fatalf("db:%s: %v", id, err)
			}
		}
		if !strings.Contains(audit.String(), "env:"+envVar) || !strings.Contains(audit.String(), "awssm:prod/anthropic%23") {
			t.Errorf("the followed refs were not audited:\n%s", audit.String())
		}
		if _, err := st.Resolve(ctx, "db:"+expiredID); !errors.Is(err, secrets.ErrExpired) {
			t.Errorf("expired reference row: %v, want ErrExpired", err)
		}
		if _, err := st.Resolve(ctx, "db:"+emptyID); !errors.Is(err, secrets.ErrNotFound) || !strings.Contains(err.Error(), "holds no key") {
			t.Errorf("empty row: %v, want ErrNotFound saying it holds no key", err)
		}
		// The followed ref meets the allow list: this variable is not allowed.
		if _, err := st.Resolve(ctx, "db:"+unsetID); !errors.Is(err, secrets.ErrPermission) {
			t.Errorf("reference to a variable outside the allow list: %v, want ErrPermission", err)
		}
		for _, canary := range []string{envKey, awsKey, tokKey} {
			if strings.Contains(audit.String(), canary) {
				t.Fatal("the audit trail holds a key")
			}
		}

		want := map[string]State{tokID: StatePrimary, envID: StateReference, blankID: StateReference, expiredID: StateReference, emptyID: StateEmpty, unsetID: StateReference}
		for e, err := range store.Entries(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Encryption != want[e.ID] {
				t.Errorf("row %s lists as %s, want %s", e.ID, e.Encryption, want[e.ID])
			}
			if e.ID == envID && e.Ref != "env:"+envVar {
				t.Errorf("reference row's target %q", e.Ref)
			}
		}
		for _, walk := range []func(context.Context, *WalkOptions) (Report, error){store.Migrate, store.Rotate} {
			rep, err := walk(ctx, nil)
			if err != nil || rep.References != 4 || rep.Null != 1 || rep.Done != 0 || rep.AlreadyCurrent != 1 {
				t.Fatalf("walk: %+v %v", rep, err)
			}
		}
		var raw sql.NullString
		if err := db.QueryRow("SELECT api_key FROM "+table+" WHERE id = "+d.ph(1), blankID).Scan(&raw); err != nil || !raw.Valid || raw.String != "" {
			t.Fatalf("migrate wrote to the empty-string reference row: %v", err)
		}
	})
}

// TestPastedKeyInRefColumn: a key pasted into key_env_var or secret_name is
// never quoted: not in the resolve error, not in Entry.Ref (the old code
// showed it in both, and in the audit line of the followed ref).
func TestPastedKeyInRefColumn(t *testing.T) {
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	table := pythonTable(t, db, SQLite)
	canary := "sk-ant-api03-PASTED" + randHex(8)
	envID := insertPy(t, db, SQLite, table, nil, canary, nil, nil)
	awsID := insertPy(t, db, SQLite, table, nil, nil, canary, nil)
	store := New(db, mustRing(t, mustKey(t)), &Options{Table: table, RefColumns: []RefColumn{{"key_env_var", "env"}, {"secret_name", "awssm"}}})
	defer store.Close()
	for _, id := range []string{envID, awsID} {
		_, err := store.Resolve(ctx, id)
		if !errors.Is(err, secrets.ErrInvalidRef) || strings.Contains(err.Error(), canary[8:]) || !strings.Contains(err.Error(), "looks like a key") {
			t.Errorf("resolve of a row with a pasted key: %v", err)
		}
	}
	for e, err := range store.Entries(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(e.Ref, canary[8:]) || e.Encryption != StateBadReference {
			t.Errorf("row %s with a pasted key lists as %s (ref %d bytes), want %s and no ref", e.ID, e.Encryption, len(e.Ref), StateBadReference)
		}
	}
}
