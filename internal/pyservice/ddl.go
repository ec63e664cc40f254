package pyservice

// The DDL that SQLAlchemy 2.0's MetaData.create_all emits for the service's
// models (python/models.py), verbatim: the statement text the database
// receives, leading newline, "\t" indents, ", \n" separators (with their
// trailing space) and trailing blank line included, one statement per table
// in the order create_all runs them (api_keys before bots, which references
// it).
//
// How they were derived: SQLAlchemy 2.0.52 (tag rel_2_0_52 of
// github.com/sqlalchemy/sqlalchemy, run from its source tree; it needs no
// database driver to compile DDL) over python/models.py with
// create_mock_engine for sqlite://, postgresql://, mysql:// and mariadb://;
// python/ddl.py prints them, and TestDDLMatchesSQLAlchemy compares these
// constants with its output wherever SQLAlchemy is importable (for example
// PYTHONPATH=<sqlalchemy>/lib). What the compiler does, from
// sql/compiler.py DDLCompiler: String(n) is VARCHAR(n) and Text is TEXT on
// every dialect; DateTime is DATETIME on SQLite and MySQL/MariaDB and
// TIMESTAMP WITHOUT TIME ZONE on PostgreSQL; a primary key column is NOT NULL
// and the key is a table constraint, PRIMARY KEY (id), so the SQLite id is
// not an INTEGER PRIMARY KEY rowid alias; Python-side defaults (uuid4,
// datetime.utcnow) emit no DEFAULT; the foreign key is
// FOREIGN KEY(api_key_id) REFERENCES api_keys (id), unnamed. MySQL/MariaDB
// get no ENGINE, CHARSET or COLLATE (the models set no mysql_* options), so
// the tables take the server's defaults, and their text is the SQLite text.
const (
	sqliteAPIKeys = "\nCREATE TABLE api_keys (\n" +
		"\tid VARCHAR(36) NOT NULL, \n" +
		"\tname VARCHAR(255) NOT NULL, \n" +
		"\tprovider VARCHAR(50) NOT NULL, \n" +
		"\tapi_key TEXT, \n" +
		"\tkey_env_var VARCHAR(255), \n" +
		"\tsecret_name VARCHAR(255), \n" +
		"\texpires_at DATETIME, \n" +
		"\tcreated_at DATETIME, \n" +
		"\tPRIMARY KEY (id)\n" +
		")\n\n"
	sqliteBots = "\nCREATE TABLE bots (\n" +
		"\tid VARCHAR(36) NOT NULL, \n" +
		"\tname VARCHAR(255) NOT NULL, \n" +
		"\tsystem_prompt TEXT, \n" +
		"\tmodel VARCHAR(100), \n" +
		"\tapi_key_id VARCHAR(36), \n" +
		"\tapi_key TEXT, \n" +
		"\tcreated_at DATETIME, \n" +
		"\tPRIMARY KEY (id), \n" +
		"\tFOREIGN KEY(api_key_id) REFERENCES api_keys (id)\n" +
		")\n\n"

	postgresAPIKeys = "\nCREATE TABLE api_keys (\n" +
		"\tid VARCHAR(36) NOT NULL, \n" +
		"\tname VARCHAR(255) NOT NULL, \n" +
		"\tprovider VARCHAR(50) NOT NULL, \n" +
		"\tapi_key TEXT, \n" +
		"\tkey_env_var VARCHAR(255), \n" +
		"\tsecret_name VARCHAR(255), \n" +
		"\texpires_at TIMESTAMP WITHOUT TIME ZONE, \n" +
		"\tcreated_at TIMESTAMP WITHOUT TIME ZONE, \n" +
		"\tPRIMARY KEY (id)\n" +
		")\n\n"
	postgresBots = "\nCREATE TABLE bots (\n" +
		"\tid VARCHAR(36) NOT NULL, \n" +
		"\tname VARCHAR(255) NOT NULL, \n" +
		"\tsystem_prompt TEXT, \n" +
		"\tmodel VARCHAR(100), \n" +
		"\tapi_key_id VARCHAR(36), \n" +
		"\tapi_key TEXT, \n" +
		"\tcreated_at TIMESTAMP WITHOUT TIME ZONE, \n" +
		"\tPRIMARY KEY (id), \n" +
		"\tFOREIGN KEY(api_key_id) REFERENCES api_keys (id)\n" +
		")\n\n"

	mysqlAPIKeys = sqliteAPIKeys
	mysqlBots    = sqliteBots
)

// DDL returns the statements SQLAlchemy's create_all runs for the service's
// models on d, in order (api_keys, then bots); nil for an unknown dialect.
func DDL(d Dialect) []string {
	switch d {
	case SQLite:
		return []string{sqliteAPIKeys, sqliteBots}
	case Postgres:
		return []string{postgresAPIKeys, postgresBots}
	case MySQL:
		return []string{mysqlAPIKeys, mysqlBots}
	}
	return nil
}
