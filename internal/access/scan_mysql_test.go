package access

import (
	"slices"
	"testing"
)

func TestScanParseGrant(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want scanMysqlGrant
	}{
		{"GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED VIA unix_socket OR mysql_native_password WITH GRANT OPTION",
			scanMysqlGrant{Privileges: []string{"ALL PRIVILEGES"}, DB: "*", Table: "*", GrantOption: true}},
		{"GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'",
			scanMysqlGrant{Privileges: []string{"USAGE"}, DB: "*", Table: "*"}},
		{"GRANT SELECT, INSERT, CREATE TEMPORARY TABLES ON `shop\\_db`.* TO `app`@`10.0.%`",
			scanMysqlGrant{Privileges: []string{"SELECT", "INSERT", "CREATE TEMPORARY TABLES"}, DB: `shop\_db`, Table: "*"}},
		{"GRANT SELECT (`id`, `email`), UPDATE (`email`) ON `shop`.`customers` TO 'u'@'%'",
			scanMysqlGrant{Privileges: []string{"SELECT", "UPDATE"}, Columns: true, DB: "shop", Table: "customers"}},
		{"GRANT SELECT ON `odd``name`.`t` TO `u`@`%` WITH GRANT OPTION",
			scanMysqlGrant{Privileges: []string{"SELECT"}, DB: "odd`name", Table: "t", GrantOption: true}},
		{"GRANT EXECUTE ON PROCEDURE `shop`.`refund` TO `u`@`%`",
			scanMysqlGrant{Privileges: []string{"EXECUTE"}, ObjectType: "PROCEDURE", DB: "shop", Table: "refund"}},
		{"GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION",
			scanMysqlGrant{Privileges: []string{"PROXY"}, ObjectType: "PROXY", DB: "", Table: "%", GrantOption: true}},
		{"GRANT `writer` TO `u`@`%`", scanMysqlGrant{Roles: []string{"writer"}}},
		{"GRANT `r1`@`%`,`r2`@`%` TO `u`@`%` WITH ADMIN OPTION", scanMysqlGrant{Roles: []string{"r1", "r2"}}},
		{"GRANT APPLICATION_PASSWORD_ADMIN,AUDIT_ABORT_EXEMPT ON *.* TO `root`@`localhost`",
			scanMysqlGrant{Privileges: []string{"APPLICATION_PASSWORD_ADMIN", "AUDIT_ABORT_EXEMPT"}, DB: "*", Table: "*"}},
	} {
		got, err := scanParseGrant(tc.line)
		if err != nil {
			t.Errorf("%s: %v", tc.line, err)
			continue
		}
		if !slices.Equal(got.Privileges, tc.want.Privileges) || !slices.Equal(got.Roles, tc.want.Roles) || got.DB != tc.want.DB || got.Table != tc.want.Table ||
			got.ObjectType != tc.want.ObjectType || got.GrantOption != tc.want.GrantOption || got.Columns != tc.want.Columns {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.line, got, tc.want)
		}
	}
	for _, bad := range []string{"", "REVOKE ALL ON *.* FROM x", "GRANT SELECT ON `unterminated", "GRANT SELECT ON a.b.c TO x", "GRANT SELECT"} {
		if _, err := scanParseGrant(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestScanLikeMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"shop", "shop", true}, {"shop", "shop2", false}, {"shop%", "shop_test", true}, {"sh_p", "ship", true},
		{`shop\_db`, "shop_db", true}, {`shop\_db`, "shopXdb", false}, {"%", "", true}, {"_", "", false},
	} {
		if got := scanMysqlLikeMatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("%q LIKE %q = %v", tc.name, tc.pattern, got)
		}
	}
}

func FuzzScanParseGrant(f *testing.F) {
	for _, s := range []string{
		"GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION",
		"GRANT SELECT (`a`) ON `d`.`t` TO 'u'@'%'",
		"GRANT `r`@`%` TO `u`@`%`",
		"GRANT PROXY ON ''@'%' TO 'root'@'localhost'",
		"GRANT SELECT `a`) rN `d`.`t` TO 'u'@'%'", // a stray ) once looped forever
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := scanParseGrant(s)
		if err == nil && len(g.Roles) > 0 && len(g.Privileges) > 0 {
			t.Fatalf("%q: roles and privileges together", s)
		}
	})
}
