package access

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// TestSCRAMVerifierRFC7677 derives the client proof of the RFC 7677
// SCRAM-SHA-256 example from the keys scramVerifier computes: if the stored
// key matches, PostgreSQL will accept the password.
func TestAccessSCRAMVerifierRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v := scramVerifier("pencil", salt, 4096)
	parts := strings.Split(strings.TrimPrefix(v, "SCRAM-SHA-256$4096:"), "$")
	keys := strings.Split(parts[1], ":")
	stored, _ := base64.StdEncoding.DecodeString(keys[0])
	server, _ := base64.StdEncoding.DecodeString(keys[1])
	authMsg := "n=user,r=rOprNGfwEbeRWgbNEkqO," +
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," +
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	// Server side: ClientKey = proof XOR HMAC(StoredKey, AuthMessage), and
	// SHA-256(ClientKey) must equal StoredKey.
	sig := hmacSHA256(stored, authMsg)
	ck := make([]byte, len(proof))
	for i := range proof {
		ck[i] = proof[i] ^ sig[i]
	}
	if h := sha256.Sum256(ck); !hmac.Equal(h[:], stored) {
		t.Fatalf("stored key does not verify the RFC 7677 client proof: %s", v)
	}
	if got := base64.StdEncoding.EncodeToString(hmacSHA256(server, authMsg)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Fatalf("server signature %s", got)
	}
}

func TestAccessMySQLNativeHash(t *testing.T) {
	// SELECT PASSWORD('secret') on MariaDB.
	if got := mysqlNativeHash("secret"); got != "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7" {
		t.Fatal(got)
	}
}

func TestAccessClassify(t *testing.T) {
	for _, tc := range []struct {
		engine, grant string
		writes, ddl   bool
		schemas       string
		bad           bool
	}{
		{"postgres", "SELECT ON ALL TABLES IN SCHEMA public, app", false, false, "public,app", false},
		{"postgres", "SELECT (id, status), UPDATE (status) ON TABLE shop.orders", true, false, "shop", false},
		{"postgres", "ALL ON ALL TABLES IN SCHEMA public", true, true, "public", false},
		{"mysql", "SELECT, SHOW VIEW ON shop.*", false, false, "", false},
		{"mysql", "ALL PRIVILEGES ON shop.*", true, true, "", false},
		{"postgres", "SELECT ON t TO postgres", false, false, "", true},
		{"postgres", "SELECT ON t; DROP TABLE t", false, false, "", true},
		{"mysql", "SELECT", false, false, "", true},
	} {
		p, err := classify(tc.engine, []string{tc.grant})
		if (err != nil) != tc.bad {
			t.Fatalf("%s: err %v", tc.grant, err)
		}
		if tc.bad {
			continue
		}
		if p.Writes != tc.writes || p.DDL != tc.ddl || strings.Join(p.Schemas, ",") != tc.schemas {
			t.Fatalf("%s: %+v", tc.grant, p)
		}
	}
}
