package fernetstore

import (
	"strings"
	"testing"
)

// FuzzKeyRef: ENCRYPTION_KEY_REF's parser never panics; a Fernet key
// written into the name with its padding (bare, quoted, as Python prints
// bytes, under a path) is always refused, and no error quotes a key written
// there, with its padding or without, in any wrapping.
func FuzzKeyRef(f *testing.F) {
	key, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"awssm:keyward/master", "vault:secret/keyward#key", "azurekv:keyward-master", "env:ENCRYPTION_KEY",
		"awssm:" + key, `awssm:"` + key + `"`, "awssm:" + strings.TrimRight(key, "="), key, "", ":", "a:#", "awssm: x", "ÄWSSM:x"} {
		f.Add(s, "")
	}
	f.Add("awssm:", key)
	f.Fuzz(func(t *testing.T, raw, pasted string) {
		KeyRingFromRef(raw, nil) // any input: an answer, never a panic
		// raw as a scheme and its wrapping, pasted as the key inside it.
		k, err := decodeKey(pasted, "")
		if err != nil {
			return
		}
		scheme, wrap, _ := strings.Cut(raw, ":")
		if scheme == "" || strings.ContainsAny(scheme, ":#?") {
			scheme = "awssm"
		}
		key := k.Encode()
		for _, form := range []string{key, strings.TrimRight(key, "="), `"` + key + `"`, "'" + key + "',", "b'" + key + "'", "keyward/" + key, key + wrap, wrap + key} {
			ref := scheme + ":" + form
			ring, err := KeyRingFromRef(ref, nil)
			padded := strings.Contains(form, key)
			if err == nil && padded && form != key+wrap && form != wrap+key {
				t.Fatalf("a key pasted into the ref's name with its padding was accepted (form %d characters long)", len(form))
			}
			if err == nil {
				// Accepted (a key without its padding is not told from a
				// name): the ref is shown masked.
				_, err = ring.Encrypt([]byte("x"))
			}
			if err != nil && strings.Contains(err.Error(), strings.TrimRight(key, "=")[:keyLikeRun]) {
				t.Fatalf("the error quotes the pasted key: %v", err)
			}
		}
	})
}
