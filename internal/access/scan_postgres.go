package access

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// scanPgLoginsQuery lists the roles that can log in to the current database:
// LOGIN and either superuser or CONNECT (directly, through PUBLIC or a
// role).
const scanPgLoginsQuery = `SELECT r.oid, r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,
  CASE WHEN isfinite(r.rolvaliduntil) THEN r.rolvaliduntil END
FROM pg_roles r
WHERE r.rolcanlogin AND (r.rolsuper OR has_database_privilege(r.oid, current_database(), 'CONNECT'))`

// scanPgMembershipQuery is the transitive membership of every login role.
const scanPgMembershipQuery = `WITH RECURSIVE m(login, role) AS (
  SELECT r.oid, r.oid FROM pg_roles r WHERE r.rolcanlogin
  UNION
  SELECT m.login, am.roleid FROM m JOIN pg_auth_members am ON am.member = m.role
)
SELECT m.login, m.role, r.rolname FROM m JOIN pg_roles r ON r.oid = m.role WHERE m.login <> m.role`

// scanPgUserSchemas leaves out the system schemas.
const scanPgUserSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`

// The ACLs, with the defaults for objects never granted on (the owner
// holds everything; PUBLIC what the engine gives it). Grantee 0 is PUBLIC.
const (
	scanPgDatabaseACLQuery = `SELECT d.datname, d.datdba, a.grantee, a.privilege_type, a.is_grantable
FROM pg_database d CROSS JOIN LATERAL aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a
WHERE d.datname = current_database()`
	scanPgSchemaACLQuery = `SELECT n.nspname, '', n.nspowner, a.grantee, a.privilege_type, a.is_grantable
FROM pg_namespace n CROSS JOIN LATERAL aclexplode(COALESCE(n.nspacl, acldefault('n', n.nspowner))) a
WHERE ` + scanPgUserSchemas
	scanPgTableACLQuery = `SELECT n.nspname, c.relname, c.relowner, a.grantee, a.privilege_type, a.is_grantable
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL aclexplode(COALESCE(c.relacl, acldefault('r', c.relowner))) a
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ` + scanPgUserSchemas
)

// Predefined roles that matter: membership is a power in itself.
var scanPgPredefined = map[string]scanRisk{
	"pg_execute_server_program": {SeverityCritical, "member of pg_execute_server_program: runs programs on the database server"},
	"pg_read_server_files":      {SeverityCritical, "member of pg_read_server_files: reads any file on the database server"},
	"pg_write_server_files":     {SeverityCritical, "member of pg_write_server_files: writes any file on the database server"},
	"pg_write_all_data":         {SeverityHigh, "member of pg_write_all_data: INSERT, UPDATE, DELETE on every table"},
	"pg_read_all_data":          {SeverityMedium, "member of pg_read_all_data: SELECT on every table"},
}

type scanPgACL struct {
	kind      string // database, schema, table
	object    string
	owner     uint32
	grantee   uint32
	privilege string
	grantable bool
}

// scanPostgres lists the login roles of the current database with their
// attributes, memberships, privileges and ownerships.
func scanPostgres(ctx context.Context, db *sql.DB, now time.Time) ([]Principal, error) {
	// One connection: the catalog reads see one snapshot of roles per query.
	names := map[uint32]string{0: "PUBLIC"}
	rows, err := db.QueryContext(ctx, "SELECT oid, rolname FROM pg_roles")
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	for rows.Next() {
		var oid uint32
		var name string
		if err := rows.Scan(&oid, &name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list roles: %w", err)
		}
		names[oid] = name
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	var dbOwnerRole uint32
	for oid, n := range names {
		if n == "pg_database_owner" {
			dbOwnerRole = oid
		}
	}

	members := map[uint32][]uint32{} // login → roles it is a member of
	rows, err = db.QueryContext(ctx, scanPgMembershipQuery)
	if err != nil {
		return nil, fmt.Errorf("list memberships: %w", err)
	}
	for rows.Next() {
		var login, role uint32
		var name string
		if err := rows.Scan(&login, &role, &name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list memberships: %w", err)
		}
		members[login] = append(members[login], role)
		names[role] = name
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list memberships: %w", err)
	}

	var acls []scanPgACL
	var dbName string
	var dbOwner uint32
	rows, err = db.QueryContext(ctx, scanPgDatabaseACLQuery)
	if err != nil {
		return nil, fmt.Errorf("read database privileges: %w", err)
	}
	for rows.Next() {
		a := scanPgACL{kind: "database"}
		if err := rows.Scan(&dbName, &dbOwner, &a.grantee, &a.privilege, &a.grantable); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read database privileges: %w", err)
		}
		a.object, a.owner = dbName, dbOwner
		acls = append(acls, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read database privileges: %w", err)
	}
	for _, q := range []struct{ kind, sql string }{{"schema", scanPgSchemaACLQuery}, {"table", scanPgTableACLQuery}} {
		rows, err := db.QueryContext(ctx, q.sql)
		if err != nil {
			return nil, fmt.Errorf("read %s privileges: %w", q.kind, err)
		}
		for rows.Next() {
			a := scanPgACL{kind: q.kind}
			var schema, rel string
			if err := rows.Scan(&schema, &rel, &a.owner, &a.grantee, &a.privilege, &a.grantable); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read %s privileges: %w", q.kind, err)
			}
			a.object = schema
			if rel != "" {
				a.object += "." + rel
			}
			acls = append(acls, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read %s privileges: %w", q.kind, err)
		}
	}

	rows, err = db.QueryContext(ctx, scanPgLoginsQuery)
	if err != nil {
		return nil, fmt.Errorf("list login roles: %w", err)
	}
	defer rows.Close()
	var out []Principal
	for rows.Next() {
		var oid uint32
		var p Principal
		var super, createRole, createDB, bypassRLS, replication bool
		var validUntil sql.NullTime
		if err := rows.Scan(&oid, &p.Name, &super, &createRole, &createDB, &bypassRLS, &replication, &validUntil); err != nil {
			return nil, fmt.Errorf("list login roles: %w", err)
		}
		for _, a := range []struct {
			on             bool
			name, severity string
			reason         string
		}{
			{super, "SUPERUSER", SeverityCritical, "SUPERUSER: bypasses every privilege check"},
			{createRole, "CREATEROLE", SeverityHigh, "CREATEROLE: creates roles and grants itself their membership"},
			{createDB, "CREATEDB", SeverityHigh, "CREATEDB: creates databases"},
			{bypassRLS, "BYPASSRLS", SeverityHigh, "BYPASSRLS: reads past every row-level security policy"},
			{replication, "REPLICATION", SeverityHigh, "REPLICATION: streams every row of the cluster"},
		} {
			if a.on {
				p.Attributes = append(p.Attributes, a.name)
				p.addRisk(a.severity, "%s", a.reason)
			}
		}
		if validUntil.Valid {
			t := validUntil.Time.UTC()
			p.ValidUntil = &t
			p.PasswordExpired = t.Before(now)
		}
		// The roles whose privileges it holds: itself, PUBLIC, every role
		// it is a member of (SET ROLE reaches them even without INHERIT),
		// and pg_database_owner when it owns the database.
		holds := map[uint32]bool{oid: true, 0: true}
		for _, r := range members[oid] {
			holds[r] = true
			p.MemberOf = append(p.MemberOf, names[r])
			if rk, ok := scanPgPredefined[names[r]]; ok {
				p.risks = append(p.risks, rk)
			}
		}
		if dbOwnerRole != 0 && holds[dbOwner] {
			holds[dbOwnerRole] = true
		}
		slices.Sort(p.MemberOf)
		owned := map[string]bool{}
		for _, a := range acls {
			if holds[a.owner] {
				obj := a.kind + " " + a.object
				if !owned[obj] {
					owned[obj] = true
					p.Owns = append(p.Owns, obj)
					p.addRisk(SeverityHigh, "owns %s%s", obj, scanPgVia(names, oid, a.owner))
				}
			}
		}
		privs := map[[3]string]*Privilege{} // on, via, grantable
		var order [][3]string
		for _, a := range acls {
			if !holds[a.grantee] {
				continue
			}
			on := a.kind + " " + a.object
			via := ""
			if a.grantee != oid {
				via = names[a.grantee]
			}
			k := [3]string{on, via, fmt.Sprint(a.grantable)}
			pr := privs[k]
			if pr == nil {
				pr = &Privilege{On: on, Via: via, Grantable: a.grantable}
				privs[k] = pr
				order = append(order, k)
			}
			if !slices.Contains(pr.Privileges, a.privilege) {
				pr.Privileges = append(pr.Privileges, a.privilege)
			}
			if owned[on] {
				continue // ownership is the reason already
			}
			if sev := scanPgPrivilegeSeverity(a.kind, a.privilege); sev != "" {
				p.addRisk(sev, "%s on %s%s", a.privilege, on, scanPgVia(names, oid, a.grantee))
			}
			if a.grantable {
				p.addRisk(SeverityHigh, "%s on %s WITH GRANT OPTION%s", a.privilege, on, scanPgVia(names, oid, a.grantee))
			}
		}
		for _, k := range order {
			p.Privileges = append(p.Privileges, *privs[k])
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// scanPgPrivilegeSeverity is how much a privilege on an object matters;
// empty for CONNECT, TEMPORARY and schema USAGE (they reach no data).
func scanPgPrivilegeSeverity(kind, privilege string) string {
	switch kind {
	case "database", "schema":
		if privilege == "CREATE" {
			return SeverityHigh
		}
		return ""
	}
	switch privilege {
	case "SELECT", "REFERENCES":
		return SeverityMedium
	case "INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "MAINTAIN":
		return SeverityHigh
	}
	return SeverityMedium
}

func scanPgVia(names map[uint32]string, self, holder uint32) string {
	if holder == self {
		return ""
	}
	return " (via " + strings.TrimSpace(names[holder]) + ")"
}
