package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
)

// genkeyStoreHelp is what genkey's help says about --store.
const genkeyStoreHelp = `

With --store REF (a ref of the configured stack, as ENCRYPTION_KEY_REF takes
it: awssm:keyward/master, vault:secret/keyward#key, azurekv:keyward-master),
the new key is written as a new version of that secret instead of printed
(AWS PutSecretValue: the old key becomes AWSPREVIOUS; a Vault KV v2 write;
Key Vault SetSecret), and only the new version's id is printed. Services
with ENCRYPTION_KEY_REF=REF read it within ENCRYPTION_KEY_REFRESH (default
1m) and encrypt under it; the old key still decrypts. Then run keyward
rotate to re-encrypt every row under the new key.`

// genkeyStoreFlag adds --store to genkey and returns where its value goes.
func (a *app) genkeyStoreFlag(c *cobra.Command) *string {
	ref := new(string)
	c.Flags().StringVar(ref, "store", "", "write the new key as a new version of this secret-manager ref (awssm:NAME, vault:PATH#FIELD, azurekv:NAME) and print only its version")
	c.Long += genkeyStoreHelp
	return ref
}

// genkeyStore writes a new key as the new current version of ref through
// the configured stack's Mux, and prints the version id, never the key.
func (a *app) genkeyStore(ctx context.Context, ref string) (err error) {
	defer func() {
		// The backends' errors quote the ref; one holding what looks like
		// a key without its padding is shown masked, as the ring shows it.
		if err == nil || fernetstore.MaskKeyLike(ref) == ref {
			return
		}
		var e *exitError
		if errors.As(classify(err), &e) {
			err = &exitError{code: e.code, err: errors.New(fernetstore.MaskKeyLike(e.Error()))}
		}
	}()
	if err := checkStoreRef(ref); err != nil {
		return err
	}
	ref = strings.TrimSpace(ref)
	st, err := a.stack(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	// The secret's current value must be a key, or nothing: a new version
	// on top of another kind of secret would give the ring a previous
	// version that is no key, and every service reading it would refuse it.
	cur, err := st.Mux.ResolveVersions(ctx, ref, 1)
	switch {
	case err == nil:
		if _, kerr := fernetstore.ParseKeyRing(cur[0].Reveal()); kerr != nil {
			return errorf(exitConfig, "--store %s: the secret's current version (%s) is not a Fernet key: is it the right secret? A key ring read from it would refuse that version; name a new secret, or one that holds only keys", fernetstore.MaskKeyLike(ref), clean(cur[0].Version))
		}
	case secrets.CodeOf(err) == secrets.CodeNotFound:
		// A new secret (or a new #field): nothing to check.
	default:
		return classify(err)
	}
	key, err := fernetstore.GenerateKey()
	if err != nil {
		return errorf(exitConfig, "%v", err)
	}
	version, err := st.Mux.PutVersion(ctx, ref, key)
	if err != nil {
		return classify(err)
	}
	shown := fernetstore.MaskKeyLike(ref) // a key pasted into the name without its padding is not printed
	fmt.Fprintf(a.stdout, "%s: stored a new key as version %s\n", shown, clean(version))
	fmt.Fprintf(a.stderr, "Services with %s=%s read it within %s (default 1m) and encrypt under it; the previous version still decrypts.\nThen run keyward rotate (with %s=%s) to re-encrypt every row under it, and keyward check.\n",
		fernetstore.EnvKeyRef, shown, fernetstore.EnvKeyRefresh, fernetstore.EnvKeyRef, shown)
	return nil
}

// checkStoreRef applies ENCRYPTION_KEY_REF's rules to --store, and refuses
// db:, keyward's own encrypted column.
func checkStoreRef(ref string) error {
	if _, err := fernetstore.KeyRingFromRef(ref, nil); err != nil {
		return errorf(exitUsage, "--store takes a ref as %s does: %s", fernetstore.EnvKeyRef, reason(err))
	}
	if scheme, _, _ := strings.Cut(strings.TrimSpace(ref), ":"); scheme == "db" {
		return errorf(exitUsage, "--store db:... would keep the key in the encrypted column it protects: name a secret in a secret manager (awssm:, vault:, azurekv:)")
	}
	return nil
}

// refKeyRing is the key ring of ENCRYPTION_KEY_REF for the commands that
// open the encrypted column (rotate, check, put, ...): read now, through
// the configured stack's Mux, with the rules of fernetstore's
// KeyRingFromLookup (ENCRYPTION_KEY with it, env:, a malformed ref:
// refused) and db:, the column itself, refused. keyRing calls it when
// ENCRYPTION_KEY_REF is set.
func (a *app) refKeyRing(ctx context.Context) (*fernetstore.KeyRing, error) {
	ring, err := fernetstore.KeyRingFromLookup(a.getenv)
	if err != nil {
		return nil, errorf(exitConfig, "%s", reason(err))
	}
	if err := checkStoreRef(ring.Ref()); err != nil {
		return nil, errorf(exitConfig, "%s: %v", fernetstore.EnvKeyRef, err)
	}
	// One command is short: its ring is read once, and again only for a
	// token no key opens (a key put meanwhile), never on a timer.
	if ring, err = fernetstore.KeyRingFromRef(ring.Ref(), &fernetstore.KeyRefOptions{Refresh: -1}); err != nil {
		return nil, errorf(exitConfig, "%s", reason(err))
	}
	st, err := a.stack(ctx)
	if err != nil {
		return nil, err
	}
	// The stack stays open for the ring's reads until the process ends.
	ctx, cancel := context.WithTimeout(ctx, fernetstore.DefaultKeyLoadTimeout+5*time.Second)
	defer cancel()
	if err := ring.Load(ctx, st.Mux); err != nil {
		return nil, classify(err)
	}
	return ring, nil
}
