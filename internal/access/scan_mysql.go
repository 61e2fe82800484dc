package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// scanMysqlGrant is one line of SHOW GRANTS: privileges on an object, or roles.
type scanMysqlGrant struct {
	Privileges  []string // upper case, column lists dropped: SELECT, ALL PRIVILEGES
	Columns     bool     // some privilege was on a column list
	ObjectType  string   // "", FUNCTION, PROCEDURE or PROXY
	DB, Table   string   // "*" for any; for PROXY the proxied user and host
	Roles       []string // a role grant: the roles granted
	GrantOption bool
}

// scanMysqlToken is a lexical token of a GRANT statement.
type scanMysqlToken struct {
	text   string
	quoted bool // a `quoted` identifier or 'string'
	paren  bool // a parenthesized list, text is its content
}

func scanLexGrant(s string) ([]scanMysqlToken, error) {
	var out []scanMysqlToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '`' || c == '\'' || c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(s); j++ {
				if s[j] == '\\' && c != '`' && j+1 < len(s) {
					b.WriteByte(s[j+1])
					j++
					continue
				}
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c { // doubled quote
						b.WriteByte(c)
						j++
						continue
					}
					break
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated %c at %d", c, i)
			}
			out = append(out, scanMysqlToken{text: b.String(), quoted: true})
			i = j + 1
		case c == '(':
			depth, j := 0, i
			var q byte
			for ; j < len(s); j++ {
				switch {
				case q != 0:
					if s[j] == q {
						q = 0
					}
				case s[j] == '`' || s[j] == '\'':
					q = s[j]
				case s[j] == '(':
					depth++
				case s[j] == ')':
					depth--
				}
				if depth == 0 && q == 0 {
					break
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unbalanced ( at %d", i)
			}
			out = append(out, scanMysqlToken{text: s[i+1 : j], paren: true})
			i = j + 1
		case c == ',' || c == '.' || c == '@' || c == '*' || c == '=':
			out = append(out, scanMysqlToken{text: string(c)})
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r`'\"(),.@*=", rune(s[j])) {
				j++
			}
			if j == i { // a stray ) or similar
				j++
			}
			out = append(out, scanMysqlToken{text: s[i:j]})
			i = j
		}
	}
	return out, nil
}

func (t scanMysqlToken) is(word string) bool {
	return !t.quoted && !t.paren && strings.EqualFold(t.text, word)
}

// scanParseGrant parses one line of SHOW GRANTS (MySQL 5.7/8, MariaDB).
func scanParseGrant(line string) (scanMysqlGrant, error) {
	var g scanMysqlGrant
	toks, err := scanLexGrant(line)
	if err != nil {
		return g, fmt.Errorf("grant %q: %w", line, err)
	}
	if len(toks) == 0 || !toks[0].is("GRANT") {
		return g, fmt.Errorf("grant %q: does not start with GRANT", line)
	}
	i := 1
	// Privileges (words, commas, column lists) or roles (quoted names,
	// optionally @host), up to ON or TO.
	var words []string
	flush := func() {
		if len(words) > 0 {
			g.Privileges = append(g.Privileges, strings.ToUpper(strings.Join(words, " ")))
			words = nil
		}
	}
	for ; i < len(toks) && !toks[i].is("ON") && !toks[i].is("TO"); i++ {
		t := toks[i]
		switch {
		case t.paren:
			g.Columns = true
		case t.text == "," && !t.quoted:
			flush()
		case t.text == "@" && !t.quoted:
			i++ // the role's host
		case t.quoted:
			g.Roles = append(g.Roles, t.text)
		default:
			words = append(words, t.text)
		}
	}
	flush()
	if i >= len(toks) {
		return g, fmt.Errorf("grant %q: no TO", line)
	}
	if toks[i].is("ON") {
		i++
		if i < len(toks) && (toks[i].is("FUNCTION") || toks[i].is("PROCEDURE") || toks[i].is("TABLE")) {
			if !toks[i].is("TABLE") {
				g.ObjectType = strings.ToUpper(toks[i].text)
			}
			i++
		}
		if len(g.Privileges) == 1 && g.Privileges[0] == "PROXY" {
			g.ObjectType = "PROXY"
		}
		var parts []string
		sep := "."
		if g.ObjectType == "PROXY" {
			sep = "@"
		}
		for ; i < len(toks) && !toks[i].is("TO"); i++ {
			if toks[i].text == sep && !toks[i].quoted {
				continue
			}
			parts = append(parts, toks[i].text)
		}
		switch len(parts) {
		case 1:
			g.DB, g.Table = parts[0], "*"
			if g.ObjectType == "PROXY" {
				g.Table = ""
			}
		case 2:
			g.DB, g.Table = parts[0], parts[1]
		default:
			return g, fmt.Errorf("grant %q: cannot read the object", line)
		}
		if i >= len(toks) {
			return g, fmt.Errorf("grant %q: no TO", line)
		}
	}
	// After TO come the account (quoted) and options; GRANT OPTION is the
	// only unquoted GRANT there.
	for j := i + 1; j+1 < len(toks); j++ {
		if toks[j].is("GRANT") && toks[j+1].is("OPTION") {
			g.GrantOption = true
		}
	}
	if len(g.Roles) > 0 && len(g.Privileges) > 0 {
		return g, fmt.Errorf("grant %q: mixes roles and privileges", line)
	}
	return g, nil
}

// scanMysqlLikeMatch reports whether name matches a MySQL database pattern of a
// grant (% and _ wildcards, \ escapes).
func scanMysqlLikeMatch(pattern, name string) bool {
	if pattern == "" {
		return name == ""
	}
	switch pattern[0] {
	case '%':
		for k := 0; k <= len(name); k++ {
			if scanMysqlLikeMatch(pattern[1:], name[k:]) {
				return true
			}
		}
		return false
	case '_':
		return name != "" && scanMysqlLikeMatch(pattern[1:], name[1:])
	case '\\':
		if len(pattern) > 1 {
			return name != "" && name[0] == pattern[1] && scanMysqlLikeMatch(pattern[2:], name[1:])
		}
	}
	return name != "" && name[0] == pattern[0] && scanMysqlLikeMatch(pattern[1:], name[1:])
}

// scanMysqlReadOnly are privileges that read and change nothing.
var scanMysqlReadOnly = map[string]bool{"SELECT": true, "SHOW VIEW": true, "SHOW DATABASES": true, "USAGE": true, "PROCESS": true,
	"REPLICATION CLIENT": true, "BINLOG MONITOR": true, "SLAVE MONITOR": true, "REPLICA MONITOR": true}

type scanMysqlAccount struct {
	user, host string
	role       bool
	expired    bool
}

// scanMySQL lists the accounts that can log in and hold privileges on the
// connection's database (global, database-level, table-level, routine or
// proxy grants, and those of the roles granted to them).
func scanMySQL(ctx context.Context, db *sql.DB) ([]Principal, error) {
	var current sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&current); err != nil {
		return nil, fmt.Errorf("current database: %w", err)
	}
	dbName := current.String
	accounts, err := scanMysqlAccounts(ctx, db)
	if err != nil {
		return nil, err
	}
	grantsOf := map[string][]scanMysqlGrant{} // "user@host" → its grants
	roleHost := map[string]string{}           // role → host to SHOW GRANTS FOR
	for _, a := range accounts {
		if a.role {
			roleHost[a.user] = a.host
		}
	}
	showGrants := func(user, host string) ([]scanMysqlGrant, error) {
		key := user + "@" + host
		if g, ok := grantsOf[key]; ok {
			return g, nil
		}
		q := "SHOW GRANTS FOR " + scanQuoteMySQL(user)
		if host != "" {
			q += "@" + scanQuoteMySQL(host)
		}
		lines, err := scanStrings(ctx, db, q)
		if err != nil {
			return nil, fmt.Errorf("show grants for %s: %w", key, err)
		}
		var gs []scanMysqlGrant
		for _, l := range lines {
			if strings.HasPrefix(strings.ToUpper(l), "SET ") {
				continue // SET DEFAULT ROLE
			}
			g, err := scanParseGrant(l)
			if err != nil {
				return nil, err
			}
			gs = append(gs, g)
		}
		grantsOf[key] = gs
		return gs, nil
	}
	var out []Principal
	for _, a := range accounts {
		if a.role {
			continue
		}
		locked, err := scanMysqlLocked(ctx, db, a)
		if accountDropped(err) {
			continue // dropped since it was listed (a grant revoked meanwhile): it cannot log in
		}
		if err != nil {
			return nil, err
		}
		if locked {
			continue // cannot log in
		}
		p := Principal{Name: a.user + "@" + a.host, User: a.user, Host: a.host, PasswordExpired: a.expired}
		own, err := showGrants(a.user, a.host)
		if accountDropped(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// The roles it can SET ROLE to, transitively.
		type held struct {
			via    string
			grants []scanMysqlGrant
		}
		all := []held{{"", own}}
		seen := map[string]bool{}
		for k := 0; k < len(all); k++ {
			for _, g := range all[k].grants {
				for _, r := range g.Roles {
					if seen[r] {
						continue
					}
					seen[r] = true
					p.MemberOf = append(p.MemberOf, r)
					h, ok := roleHost[r]
					if !ok {
						h = "%"
					}
					rg, err := showGrants(r, h)
					if err != nil {
						return nil, err
					}
					all = append(all, held{r, rg})
				}
			}
		}
		slices.Sort(p.MemberOf)
		for _, h := range all {
			for _, g := range h.grants {
				scanMysqlAddGrant(&p, g, dbName, h.via)
			}
		}
		if len(p.Privileges) == 0 && len(p.Attributes) == 0 {
			continue // no privilege here: the database is not theirs to reach
		}
		out = append(out, p)
	}
	return out, nil
}

// scanMysqlAddGrant adds a grant to p when it reaches dbName (or the mysql
// schema, which holds the grants), with its risks.
func scanMysqlAddGrant(p *Principal, g scanMysqlGrant, dbName, via string) {
	if len(g.Privileges) == 0 {
		return
	}
	viaS := ""
	if via != "" {
		viaS = " (via " + via + ")"
	}
	privs := slices.DeleteFunc(slices.Clone(g.Privileges), func(s string) bool { return s == "USAGE" })
	var on string
	switch {
	case g.ObjectType == "PROXY":
		on = "PROXY " + g.DB + "@" + g.Table
	case g.DB == "*":
		on = "*.*"
	case g.DB == "mysql" || scanMysqlLikeMatch(g.DB, dbName) && (g.Table == "*" || g.DB == dbName):
		on = g.DB + "." + g.Table
		if g.ObjectType != "" {
			on = g.ObjectType + " " + on
		}
	default:
		return // another database
	}
	if len(privs) == 0 && !g.GrantOption {
		return
	}
	p.Privileges = append(p.Privileges, Privilege{On: on, Privileges: g.Privileges, Grantable: g.GrantOption, Via: via})
	readOnly := true
	for _, pr := range privs {
		if !scanMysqlReadOnly[pr] {
			readOnly = false
		}
	}
	list := strings.Join(privs, ", ")
	switch {
	case g.ObjectType == "PROXY":
		p.addRisk(SeverityHigh, "PROXY on %s: acts as that account%s", g.DB+"@"+g.Table, viaS)
	case g.DB == "*":
		if slices.Contains(privs, "ALL PRIVILEGES") || slices.Contains(privs, "ALL") {
			p.Attributes = scanAppendMissing(p.Attributes, "ALL PRIVILEGES ON *.*")
			p.addRisk(SeverityCritical, "ALL PRIVILEGES ON *.*%s", viaS)
		}
		if slices.Contains(privs, "SUPER") {
			p.Attributes = scanAppendMissing(p.Attributes, "SUPER")
			p.addRisk(SeverityCritical, "SUPER%s", viaS)
		}
		if slices.Contains(privs, "CREATE USER") {
			p.Attributes = scanAppendMissing(p.Attributes, "CREATE USER")
		}
		switch {
		case len(privs) == 0:
		case readOnly:
			p.addRisk(SeverityHigh, "%s ON *.*: reads every database, the mysql schema's password hashes included%s", list, viaS)
		default:
			p.addRisk(SeverityHigh, "%s ON *.*%s", list, viaS)
		}
	case g.DB == "mysql" && !readOnly:
		p.addRisk(SeverityCritical, "%s ON %s: rewrites the grant tables%s", list, on, viaS)
	case g.DB == "mysql":
		p.addRisk(SeverityHigh, "%s ON %s: reads the grant tables%s", list, on, viaS)
	case len(privs) == 0:
	case readOnly:
		p.addRisk(SeverityMedium, "%s ON %s%s", list, on, viaS)
	default:
		p.addRisk(SeverityHigh, "%s ON %s%s", list, on, viaS)
	}
	if g.GrantOption {
		p.addRisk(SeverityHigh, "GRANT OPTION ON %s%s", on, viaS)
	}
}

func scanAppendMissing(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// scanMysqlAccounts lists the accounts and, on MariaDB, which are roles.
func scanMysqlAccounts(ctx context.Context, db *sql.DB) ([]scanMysqlAccount, error) {
	rows, err := db.QueryContext(ctx, "SELECT User, Host, password_expired, is_role FROM mysql.user")
	mariadb := err == nil
	if err != nil {
		// MySQL: no is_role; roles are locked accounts.
		rows, err = db.QueryContext(ctx, "SELECT User, Host, password_expired, 'N' FROM mysql.user")
	}
	if err != nil {
		return nil, fmt.Errorf("list accounts (the scan needs SELECT on mysql.user): %w", err)
	}
	defer rows.Close()
	var out []scanMysqlAccount
	for rows.Next() {
		var a scanMysqlAccount
		var expired, role string
		if err := rows.Scan(&a.user, &a.host, &expired, &role); err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		a.expired, a.role = strings.EqualFold(expired, "Y"), mariadb && strings.EqualFold(role, "Y")
		out = append(out, a)
	}
	return out, rows.Err()
}

// scanMysqlLocked reads ACCOUNT LOCK from SHOW CREATE USER (MySQL 5.7+,
// MariaDB 10.4+).
func scanMysqlLocked(ctx context.Context, db *sql.DB, a scanMysqlAccount) (bool, error) {
	stmts, err := scanStrings(ctx, db, "SHOW CREATE USER "+scanQuoteMySQL(a.user)+"@"+scanQuoteMySQL(a.host))
	if err != nil {
		return false, fmt.Errorf("show create user %s@%s: %w", a.user, a.host, err)
	}
	for _, s := range stmts {
		toks, err := scanLexGrant(s)
		if err != nil {
			return false, fmt.Errorf("show create user %s@%s: %w", a.user, a.host, err)
		}
		for i := 0; i+1 < len(toks); i++ {
			if toks[i].is("ACCOUNT") && toks[i+1].is("LOCK") {
				return true, nil
			}
		}
	}
	if len(stmts) == 0 {
		return false, errors.New("show create user returned nothing")
	}
	return false, nil
}

// accountDropped reports whether err says the account no longer exists:
// MySQL and MariaDB answer SHOW CREATE USER and SHOW GRANTS for a user
// dropped after the scan listed it with error 1133 or 1141.
func accountDropped(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1133 || me.Number == 1141)
}

func scanQuoteMySQL(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}
