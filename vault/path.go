package vault

import (
	"errors"
	"net/url"
	"strings"
)

// reservedMounts are Vault's own top-level paths. A ref that names no default
// mount names its mount in its first segment; these must never be reachable
// that way, because refs often come from rows a tenant can edit and a read
// of sys/ or auth/ paths is not a secret lookup (go-cloud #3763 let a key id
// reach other Vault paths).
var reservedMounts = map[string]bool{"sys": true, "auth": true, "identity": true}

// errPath is a path that escapes its mount or is not a Vault path at all.
type errPath struct{ reason string }

func (e *errPath) Error() string { return e.reason }

// cleanPath checks a %-unescaped ref path and returns it unchanged when it is
// a plain relative Vault path: segments separated by single slashes, none of
// them "." or "..", no leading or trailing slash, no backslash. It rewrites
// nothing on purpose: a ref that would need cleaning is refused, so that what
// the operator wrote is exactly what is read, and no spelling of a path can
// step out of the mount (Vault's router does not resolve dot segments, but
// proxies in front of it may).
func cleanPath(p string) (string, error) {
	switch {
	case p == "":
		return "", &errPath{"empty path"}
	case strings.HasPrefix(p, "/"):
		return "", &errPath{"absolute path: refs are relative to a mount; write mount/path, without a leading '/'"}
	case strings.HasSuffix(p, "/"):
		return "", &errPath{"path ends with '/': that names a folder, not a secret"}
	case strings.ContainsRune(p, '\\'):
		return "", &errPath{"path contains a backslash"}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			return "", &errPath{"path has an empty segment ('//')"}
		}
		if isDots(seg) {
			return "", &errPath{"path has a '.' or '..' segment: refs may not step out of their mount"}
		}
		for _, r := range seg {
			if r < 0x20 || r == 0x7f {
				return "", &errPath{"path contains a control character"}
			}
		}
	}
	return p, nil
}

// isDots reports whether seg is "." or "..", also after any further rounds
// of %-unescaping, so that a double-encoded "%252e%252e" that some layer
// might decode again is refused too.
func isDots(seg string) bool {
	for range 4 {
		if seg == "." || seg == ".." {
			return true
		}
		u, err := url.PathUnescape(seg)
		if err != nil || u == seg {
			return false
		}
		seg = u
	}
	return true // still decoding after 4 rounds: refuse rather than guess
}

// joinRef returns the full Vault path of a ref path under prefix ("" when the
// Store has no default mount). Without a prefix the first segment is the
// mount and must not be one of Vault's own top-level paths, and the ref must
// name something inside it.
func joinRef(prefix, p string) (string, error) {
	p, err := cleanPath(p)
	if err != nil {
		return "", err
	}
	if prefix != "" {
		return prefix + "/" + p, nil
	}
	mount, rest, ok := strings.Cut(p, "/")
	if !ok || rest == "" {
		return "", &errPath{"the ref names only a mount: write mount/path#field, or set a default mount"}
	}
	if reservedMounts[mount] {
		return "", &errPath{"refs may not name Vault's own " + mount + "/ paths"}
	}
	return p, nil
}

// cleanMount checks a default mount (or a path prefix inside a mount) from
// Options or the URL, and strips surrounding slashes ("secret/" is "secret").
func cleanMount(m string) (string, error) {
	m = strings.Trim(m, "/")
	if m == "" {
		return "", nil
	}
	if _, err := cleanPath(m); err != nil {
		return "", errors.New("mount " + err.Error())
	}
	first, _, _ := strings.Cut(m, "/")
	if reservedMounts[first] {
		return "", errors.New("mount may not be Vault's own " + first + "/ path")
	}
	return m, nil
}
