package main

import (
	"github.com/keyward/secrets/fernetstore"
)

// openSchemaStore opens the encrypted column on --db without a key ring,
// for what needs no key: creating and checking the table (init) and
// deleting a row. Such a store refuses to resolve or write a value, saying
// to set ENCRYPTION_KEY; ENCRYPTION_KEY is not read at all, so a missing or
// malformed one does not stop init. An invocation opens its store once,
// through this or openStore. It does no I/O: the first query connects.
func (a *app) openSchemaStore() (*fernetstore.Store, error) { return a.open(false) }
