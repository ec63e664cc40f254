package fernetstore_test

// The tests of this package open every database through OpenDB, as a host
// does: these imports link the three database packages into the test binary
// (the package itself links none; see TestLinksNoSQLDriver), and so register
// them for the tests in package fernetstore too, which cannot import them
// (they import fernetstore).
import (
	_ "github.com/keyward/secrets/fernetstore/mysql"
	_ "github.com/keyward/secrets/fernetstore/postgres"
	_ "github.com/keyward/secrets/fernetstore/sqlite"
)
