package fernetstore

import (
	"strings"
	"testing"
)

// FuzzKeyRef: ENCRYPTION_KEY_REF's parser never panics; a Fernet key
// written as the name, bare, without its padding, quoted or with a stray
// comma, is always refused, and no error quotes a key written there, in any
// wrapping.
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
		for _, form := range []string{k.Encode(), strings.TrimRight(k.Encode(), "="), `"` + k.Encode() + `"`, "'" + k.Encode() + "',", k.Encode() + wrap} {
			ref := scheme + ":" + form
			_, err := KeyRingFromRef(ref, nil)
			// Without its padding only a key of random look is told from
			// a name (looksLikeFernetKey): one with no lower-case letter,
			// say, is a name of the same length.
			unpadded := form == strings.TrimRight(k.Encode(), "=")
			if err == nil && form != k.Encode()+wrap && (!unpadded || randomLooking(form)) {
				t.Fatalf("a key pasted as the ref's name was accepted (form %d characters long)", len(form))
			}
			if err != nil && strings.Contains(err.Error(), strings.TrimRight(k.Encode(), "=")[:40]) {
				t.Fatalf("the error quotes the pasted key: %v", err)
			}
		}
	})
}

// randomLooking: s mixes upper and lower case with digits, '-' or '_'.
func randomLooking(s string) bool {
	return strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") && strings.ContainsAny(s, "0123456789-_")
}
