package all

import (
	"github.com/stewardhq/steward/internal/dbx"
	"github.com/stewardhq/steward/internal/dbx/mysql"
	"github.com/stewardhq/steward/internal/dbx/postgres"
	"github.com/stewardhq/steward/internal/dbx/sqlite"
)

// Registry returns a registry holding every built-in engine: postgres,
// mysql and sqlite.
func Registry() *dbx.Registry {
	r := dbx.NewRegistry()
	r.Register(postgres.New())
	r.Register(mysql.New())
	r.Register(sqlite.New())
	return r
}
