// Package all links every keyward backend and decorator, so that
// secrets.Open, secrets.OpenConfig and secrets.DefaultConfig know all their
// URL schemes:
//
//	import _ "github.com/keyward/secrets/all"
//
// A service that uses one backend should import only that one, to keep the
// other SDKs out of its binary.
package all

import (
	_ "github.com/keyward/secrets/awssm"       // awssm://
	_ "github.com/keyward/secrets/azurekv"     // azurekv://
	_ "github.com/keyward/secrets/cache"       // the "cache" decorator
	_ "github.com/keyward/secrets/envstore"    // env://
	_ "github.com/keyward/secrets/fernetstore" // fernet://
	_ "github.com/keyward/secrets/vault"       // vault://
)
