package fernetstore

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/keyward/secrets/internal/testenv"
)

// pyClientUpdate is the Python service changing a row's key: it encrypts
// the new value with its own Fernet and sends the UPDATE to the database's
// command-line client on stdin (this machine image has Python but no
// PostgreSQL or MariaDB driver for it; the client is, like psycopg or
// PyMySQL, a writer that is not keyward). Neither the key nor the token is
// on a command line.
const pyClientUpdate = `
import json, os, subprocess, sys
from cryptography.fernet import Fernet
a = json.load(sys.stdin)
token = Fernet(os.environ["ENCRYPTION_KEY"]).encrypt(os.environ["NEW_VALUE"].encode()).decode()
sql = "UPDATE %s SET api_key = '%s' WHERE id = '%s';\n" % (a["table"], token, a["id"])
if a["client"] == "psql":
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", a["dsn"], "-f", "-"]
else:
    cmd = ["mysql", "-h", a["host"], "-P", a["port"], "-u", a["user"], a["db"]]
p = subprocess.run(cmd, input=sql.encode(), capture_output=True)
print(json.dumps({"ok": p.returncode == 0, "rc": p.returncode, "stderr": p.stderr.decode()[-300:]}))
`

// TestWatchPythonWriteThroughClient: on PostgreSQL and MariaDB, a row of the
// Python service's table changed by the Python service (not by keyward) is
// heard by a Go replica's watch, through the triggers of init --notify, and
// the replica then reads the new value.
func TestWatchPythonWriteThroughClient(t *testing.T) {
	needPython(t)
	for _, d := range []Dialect{Postgres, MySQL} {
		t.Run(string(d), func(t *testing.T) {
			in := map[string]string{}
			var env []string
			switch d {
			case Postgres:
				testenv.LookPath(t, "psql", "apt-get install postgresql-client")
				in["client"], in["dsn"] = "psql", testenv.PostgresDSN(t)
			case MySQL:
				testenv.LookPath(t, "mysql", "apt-get install mariadb-client")
				cfg, err := mysql.ParseDSN(testenv.MySQLDSN(t))
				if err != nil {
					t.Fatal(err)
				}
				host, port, err := net.SplitHostPort(cfg.Addr)
				if err != nil {
					t.Fatalf("KEYWARD_TEST_MYSQL_DSN's address %q is not host:port", cfg.Addr)
				}
				in["client"], in["host"], in["port"], in["user"], in["db"] = "mysql", host, port, cfg.User, cfg.DBName
				env = append(env, "MYSQL_PWD="+cfg.Passwd)
			}
			db := openTestDB(t, d)
			ctx := context.Background()
			table := pythonTable(t, db, d)
			k1 := mustKey(t)
			s := New(db, mustRing(t, k1), &Options{Table: table, PollInterval: 20 * time.Millisecond})
			t.Cleanup(func() { s.Close() })
			if err := s.InstallTriggers(ctx); err != nil {
				t.Fatal(err)
			}
			old, err := mustRing(t, k1).Encrypt([]byte("sk-ant-py-old-" + randHex(8)))
			if err != nil {
				t.Fatal(err)
			}
			id := insertPy(t, db, d, table, old, nil, nil, nil)
			if _, err := s.Resolve(ctx, id); err != nil {
				t.Fatal(err)
			}
			r, _ := watch(t, s)

			newValue := "sk-ant-py-new-" + randHex(8)
			in["table"], in["id"] = table, id
			var out struct {
				OK     bool
				RC     int
				Stderr string
			}
			runPython(t, pyClientUpdate, append(env, "ENCRYPTION_KEY="+k1, "NEW_VALUE="+newValue), in, &out)
			if !out.OK {
				t.Fatalf("the Python service's update failed (exit %d): %s", out.RC, out.Stderr)
			}
			r.heard(t, id, 0)
			got, err := s.Resolve(ctx, id)
			if err != nil || got.Reveal() != newValue {
				t.Fatalf("after the Python service's write the replica reads another value (err %v)", err)
			}
		})
	}
}
