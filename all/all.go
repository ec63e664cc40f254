// Package all links every keyward backend and decorator, the audit table
// writer ("audit = db"), and the three databases of the encrypted column,
// so that secrets.Open, secrets.OpenConfig and secrets.DefaultConfig know
// all their URL schemes and fernetstore.OpenDB (DATABASE_URL) every
// database scheme:
//
//	import _ "github.com/keyward/secrets/all"
//
// A service that uses one backend should import only that one, to keep the
// other SDKs out of its binary; a service on the encrypted column imports
// fernetstore and the package of its database (fernetstore/sqlite,
// fernetstore/postgres or fernetstore/mysql).
package all

import (
	_ "github.com/keyward/secrets/audittable"           // audit = db (the audit table)
	_ "github.com/keyward/secrets/awssm"                // awssm://
	_ "github.com/keyward/secrets/azurekv"              // azurekv://
	_ "github.com/keyward/secrets/cache"                // the "cache" decorator
	_ "github.com/keyward/secrets/envstore"             // env://
	_ "github.com/keyward/secrets/fernetstore"          // fernet://
	_ "github.com/keyward/secrets/fernetstore/mysql"    // DATABASE_URL mysql://, mariadb://
	_ "github.com/keyward/secrets/fernetstore/postgres" // DATABASE_URL postgres://, postgresql://
	_ "github.com/keyward/secrets/fernetstore/sqlite"   // DATABASE_URL sqlite:, sqlite3:, file:
	_ "github.com/keyward/secrets/vault"                // vault://
)
