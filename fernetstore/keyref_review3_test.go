package fernetstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

// review3StdKey returns a key written in the std alphabet (which decodeKey
// and Python's Fernet accept) holding a '+' or '/', which split it into runs
// of URL-safe characters (the old maskKeyLike counted only those).
func review3StdKey(t *testing.T) string {
	for {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		k := base64.StdEncoding.EncodeToString(b[:])
		if !strings.ContainsAny(k, "+/") {
			continue
		}
		if _, err := decodeKey(k, "k"); err != nil {
			t.Fatal(err)
		}
		return k
	}
}

// review3Shown returns the not-loaded error of ref (or its refusal).
func review3Shown(t *testing.T, ref string) string {
	r, err := KeyRingFromRef(ref, nil)
	if err != nil {
		return err.Error()
	}
	return r.Load(context.Background(), nil).Error()
}

// TestKeyRefReview3StdKeyUnderPathQuoted: defect. looksLikeFernetKey wants
// a run of exactly 43 std-alphabet characters before the '=', but '/' is a
// std character, so a padded std key under a path ("keyward/" + key) is one
// run of 51 and is not refused; in the URL-safe alphabet its '+' and '/'
// split it. maskKeyLike counts only URL-safe runs, so the whole padded key
// is quoted in the error (keyref.go:190-203, 221-224).
func TestKeyRefReview3StdKeyUnderPathQuoted(t *testing.T) {
	key := review3StdKey(t)
	ref := "awssm:keyward/" + key
	if msg := review3Shown(t, ref); strings.Contains(msg, strings.TrimRight(key, "=")) {
		t.Errorf("KeyRingFromRef(%q): the padded std key is accepted and quoted: %s", ref, msg)
	}
}

// TestKeyRefReview3StdKeyBodyNotMasked: defect. A std-alphabet key without
// its padding is left to maskKeyLike, which only hides runs of URL-safe
// characters: the key's '+' and '/' split it into runs under keyLikeRun,
// so it is quoted whole in every error and log line, and as the cause is
// kept (shown == ref), the SDK's text may quote it again (keyref.go:221).
func TestKeyRefReview3StdKeyBodyNotMasked(t *testing.T) {
	body := strings.TrimRight(review3StdKey(t), "=")
	for _, ref := range []string{"awssm:" + body, "vault:secret/" + body + "#key"} {
		if msg := review3Shown(t, ref); strings.Contains(msg, body) {
			t.Errorf("KeyRingFromRef(%q): the unpadded std key is quoted: %s", ref, msg)
		}
	}
}

// TestKeyRefReview3PaddedKeyAfterNameCharAccepted: defect (minor: masked,
// the ring's Ref still returns it). A padded URL-safe key right after a
// '-' or '_' or letter ("keyward-" + key) is one run of 51, not 43, so it is
// not refused, against the commit's "refused in any wrapping"
// (keyref.go:200).
func TestKeyRefReview3PaddedKeyAfterNameCharAccepted(t *testing.T) {
	key, _ := review2Key(t)
	for _, ref := range []string{"awssm:keyward-" + key, "awssm:keyward_" + key, "vault:secret/k" + key + "#key"} {
		if _, err := KeyRingFromRef(ref, nil); err == nil {
			t.Errorf("KeyRingFromRef(%q) accepted a padded key", ref)
		}
	}
}
