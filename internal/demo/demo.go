package demo

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"text/template"
	"time"

	"filippo.io/age"
	"io"
	_ "modernc.org/sqlite" // the demo's application databases are SQLite
	"strings"
)

// Workspace describes what Setup made.
type Workspace struct {
	Dir        string
	ConfigPath string
	Services   []string
	Users      []string
	AdminUser  string
	Seeded     []string // application databases seeded by this call
}

// Setup creates the workspace in dir. It is idempotent: an existing
// steward.yaml is kept (the user may have edited it) and databases that
// already exist are not re-seeded.
func Setup(ctx context.Context, dir string) (*Workspace, error) {
	ws := &Workspace{
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "steward.yaml"),
		Services:   []string{"shop", "billing"},
		Users:      []string{"alice (admin)", "bob (approver)", "carol (approver, dba)", "dana (auditor)", "erin (operator)", "frank (oncall: break_glass)"},
		AdminUser:  "alice",
	}
	for _, d := range []string{dir, filepath.Join(dir, "apps"), filepath.Join(dir, "checkpoints"), filepath.Join(dir, "services"), filepath.Join(dir, "backups")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("demo workspace %s: %w", d, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "emergency-shop.dsn"), []byte("sqlite://"+filepath.Join(dir, "apps", "shop.db")+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("demo emergency credential: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy-tests.yaml"), []byte(policyTests), 0o644); err != nil {
		return nil, fmt.Errorf("demo policy tests: %w", err)
	}
	if _, err := os.Stat(ws.ConfigPath); os.IsNotExist(err) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "backup.key"), []byte(id.String()+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("demo backup key: %w", err)
		}
		if err := writeConfig(ws.ConfigPath, dir, id.Recipient().String()); err != nil {
			return nil, err
		}
	}
	for _, db := range []struct {
		name string
		seed func(context.Context, *sql.DB) error
	}{
		{"shop.db", seedShop},
		{"ledger.db", seedLedger},
	} {
		path := filepath.Join(dir, "apps", db.name)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if err := seedFile(ctx, path, db.seed); err != nil {
			return nil, err
		}
		ws.Seeded = append(ws.Seeded, "apps/"+db.name)
	}
	if len(ws.Seeded) == 0 {
		ws.Seeded = []string{"(already present)"}
	}
	return ws, nil
}

var configTmpl = template.Must(template.New("steward.yaml").Parse(`# Steward demo configuration. Edit it and run: steward -c {{.Dir}}/steward.yaml validate
# services/*.yaml holds the PostgreSQL "catalog" service when PostgreSQL's
# binaries are installed (the demo starts a throwaway cluster for it).
include: ["services/*.yaml"]

steward:
  listen: 127.0.0.1:8080
  data_dir: data
  audit:
    origin: demo.steward.local/audit
    publish: ["file:{{.Dir}}/checkpoints"]

roles:
  - {name: dba, description: Database administrators, permissions: [approve]}
  - {name: oncall, description: On-call engineers who may break the glass, permissions: [operate, break_glass]}

users:
  - {name: alice, email: alice@example.com, roles: [admin]}
  - {name: bob, email: bob@example.com, roles: [approver]}
  - {name: carol, email: carol@example.com, roles: [approver, dba]}
  - {name: dana, email: dana@example.com, roles: [auditor]}
  - {name: erin, email: erin@example.com, roles: [operator]}
  - {name: frank, email: frank@example.com, roles: [oncall]}

# Deploys of the shop need two approvers; billing deploys are approved
# automatically (still planned, executed and audited).
policies:
  approvals:
    - name: shop-deploys
      match: {action: [deploy.gate], service: [shop]}
      require: [{approvals: 2, from: ["role:approver"]}]
      expires: 4h
    - name: billing-deploys
      match: {action: [deploy.gate], service: [billing]}
      auto_approve: true
    - name: data-fixes
      match: {action: [fix.apply, fix.undo, sql.exec]}
      require: [{approvals: 2, from: ["role:approver"]}]
      expires: 24h
  break_glass_reviewers: 2
  break_glass_review: 24h

# The emergency kit seals these for when Steward itself is down.
kit:
  credentials:
    - {name: backup-decryption-key, secret: file:backup.key, description: "age identity that decrypts the shop's backups"}
    - {name: shop-database, secret: file:emergency-shop.dsn, description: "direct connection to the shop's database when Steward is down"}

# The demo starts a webhook receiver on loopback and writes its address and
# signing secret next to this file at every run.
notify:
  channels:
    - {name: ops-webhook, type: webhook, url: file:webhook.url, secret: file:webhook.secret}

# The readiness scorecard (steward score): the policy tests its
# approval-policy control runs, and a waiver - with an owner and an expiry,
# audited - for a control billing cannot meet yet.
readiness:
  policy_tests: [policy-tests.yaml]
  waivers:
    - {service: billing, control: probes-slo, reason: "the ledger has no public endpoint to probe until the invoicing API ships (FIN-12)", owner: team-finance, expires: "{{.WaiverExpires}}"}

services:
  - name: shop
    description: Web shop - catalog, cart and orders
    owners: [team-shop]
    tier: 1
    labels: {domain: commerce, pci: "true"}
    contacts:
      oncall: {name: Shop on-call, phone: "+1 555 0100", url: "https://oncall.example.com/shop"}
      escalation: {name: Head of Engineering, email: cto@example.com}
      provider_noc: {name: Example Cloud NOC, phone: "+1 555 0199", email: noc@cloud.example.com}
      provider_sirt: {name: Example Cloud SIRT, email: security@cloud.example.com}
    objectives: {rto: 15m, rpo: 24h}
    databases:
      - {name: main, engine: sqlite, url: "sqlite://{{.Dir}}/apps/shop.db"}
    backups:
      - name: nightly
        database: main
        method: sqlite
        schedule: "0 2 * * *"
        repository: backups
        freshness: SELECT max(updated_at) FROM orders
        encrypt: {recipients: ["{{.Recipient}}"], identity: file:backup.key}
        retention: {keep_last: 7, daily: 7, weekly: 4}
    drills:
      - name: weekly
        backup: nightly
        schedule: "0 5 * * 1"
        scratch: {kind: ephemeral}
        freshness: SELECT max(updated_at) FROM orders
        verify:
          - {name: customers present, sql: "SELECT count(*) FROM customers", expect: "== 500"}
          - {name: orders present, sql: "SELECT count(*) FROM orders", expect: "> 1000"}
    # The seeded shop has a few data errors for these checks to find.
    checks:
      - {name: orders-amount, database: main, type: row_predicate, table: orders, predicate: "amount_cents >= 0 OR status = 'refund'", show: [status, amount_cents], remedy: fix-negative-amount, remedy_params: {order_ids: id}, owner: team-shop}
      - {name: orders-customer, database: main, type: foreign_key, table: orders, column: customer_id, references: customers.id, severity: warn, owner: team-shop}
      - {name: orders-status, database: main, type: accepted_values, table: orders, column: status, values: [paid, shipped, delivered, pending, cancelled, refund], show: [status], severity: warn}
      - {name: customers-email, database: main, type: unique, table: customers, columns: [email], show: [email], mask: [email]}
      - {name: orders-fresh, database: main, type: freshness, table: orders, column: updated_at, max_age: 7d}
    fixes:
      - name: fix-negative-amount
        database: main
        params: {order_ids: "[]int"}
        select: SELECT id, status, amount_cents FROM orders WHERE id IN :order_ids AND amount_cents < 0 AND status <> 'refund'
        apply: UPDATE orders SET amount_cents = -amount_cents WHERE id IN :order_ids AND amount_cents < 0 AND status <> 'refund'
        max_rows: 10

  - name: billing
    description: Invoicing and the general ledger
    owners: [team-finance]
    tier: 2
    labels: {domain: finance}
    contacts:
      oncall: {name: Finance on-call, phone: "+1 555 0110"}
      escalation: {name: Finance lead, email: finance-lead@example.com}
    databases:
      - {name: ledger, engine: sqlite, url: "sqlite://{{.Dir}}/apps/ledger.db"}
`))

// policyTests are the demo's policy tests (steward policy test, and the
// readiness control approval-policy): canaries the policy must refuse next
// to controls that show the same rule satisfied.
const policyTests = `cases:
  - name: canary self-approval of a shop deploy is refused
    action: {kind: deploy.gate, service: shop, requester: alice}
    votes: [{user: alice, roles: [approver]}, {user: bob, roles: [approver]}]
    expect: {rule: shop-deploys, state: pending, ignored: [alice]}
  - name: control two other approvers approve a shop deploy
    action: {kind: deploy.gate, service: shop, requester: erin}
    votes: [{user: alice, roles: [admin, approver]}, {user: bob, roles: [approver]}]
    expect: {rule: shop-deploys, state: approved}
  - name: canary one approval is not enough for a data fix
    action: {kind: fix.apply, service: shop, requester: erin, facts: {rows_affected: 3}}
    votes: [{user: carol, roles: [approver, dba]}]
    expect: {rule: data-fixes, state: pending}
  - name: canary a stale approval of an earlier plan does not count
    action: {kind: sql.exec, service: billing, requester: erin}
    votes: [{user: bob, roles: [approver], stale: true}, {user: carol, roles: [approver]}]
    expect: {rule: data-fixes, state: pending, ignored: [bob]}
`

func writeConfig(path, dir, recipient string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	vars := map[string]string{"Dir": dir, "Recipient": recipient, "WaiverExpires": time.Now().UTC().AddDate(0, 3, 0).Format("2006-01-02")}
	if err := configTmpl.Execute(f, vars); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("demo config: %w", err)
	}
	return f.Close()
}

// seedFile seeds a new database under a temporary name and renames it into
// place, so an interrupted seed never leaves a half-filled database behind.
func seedFile(ctx context.Context, path string, seed func(context.Context, *sql.DB) error) error {
	tmp := path + ".seeding"
	os.Remove(tmp)
	db, err := sql.Open("sqlite", "file:"+tmp+"?_pragma=journal_mode(DELETE)&_pragma=foreign_keys(1)")
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	err = seed(ctx, db)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("seed %s: %w", filepath.Base(path), err)
	}
	return os.Rename(tmp, path)
}

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Barbara", "Edsger", "Frances", "Donald", "Margaret", "Ken", "Radia", "Linus", "Sophie", "Tim", "Katherine", "Dennis", "Hedy", "John", "Mary", "Niklaus", "Shafi"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Liskov", "Dijkstra", "Allen", "Knuth", "Hamilton", "Thompson", "Perlman", "Torvalds", "Wilson", "Berners-Lee", "Johnson", "Ritchie", "Lamarr", "McCarthy", "Shaw", "Wirth", "Goldwasser"}
	products   = []struct {
		sku, name string
		cents     int
	}{
		{"KB-001", "Mechanical keyboard", 12900}, {"MS-002", "Wireless mouse", 3900}, {"MN-003", "27\" monitor", 28900},
		{"HD-004", "Noise-cancelling headphones", 19900}, {"CB-005", "USB-C cable", 1500}, {"DK-006", "Docking station", 17900},
		{"WC-007", "Webcam", 6900}, {"LS-008", "Laptop stand", 4900}, {"SS-009", "Portable SSD 1TB", 9900}, {"MP-010", "Desk mat", 2500},
	}
	statuses = []string{"paid", "paid", "paid", "shipped", "shipped", "delivered", "delivered", "delivered", "pending", "cancelled", "refund"}
)

func exec(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	_, err := tx.ExecContext(ctx, q, args...)
	return err
}

func seedShop(ctx context.Context, db *sql.DB) error {
	r := rand.New(rand.NewPCG(42, 7))
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	schema := `
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, country TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL, price_cents INTEGER NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, status TEXT NOT NULL, amount_cents INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE order_items (order_id INTEGER NOT NULL, product_id INTEGER NOT NULL, quantity INTEGER NOT NULL, price_cents INTEGER NOT NULL, PRIMARY KEY (order_id, product_id));
CREATE TABLE payments (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, provider TEXT NOT NULL, amount_cents INTEGER NOT NULL, paid_at TEXT NOT NULL);
CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX orders_updated ON orders(updated_at);`
	if err := exec(ctx, tx, schema); err != nil {
		return err
	}
	countries := []string{"DE", "FR", "NL", "US", "GB", "ES", "IT", "SE", "PL", "CA"}
	for i := 1; i <= 500; i++ {
		fn, ln := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		email := fmt.Sprintf("%s.%s.%d@example.com", strings.ToLower(fn), strings.ToLower(ln), i)
		created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(300*24)) * time.Hour)
		if err := exec(ctx, tx, "INSERT INTO customers VALUES (?, ?, ?, ?, ?)", i, fn+" "+ln, email, countries[r.IntN(len(countries))], created.Format(time.RFC3339)); err != nil {
			return err
		}
	}
	for i, p := range products {
		if err := exec(ctx, tx, "INSERT INTO products VALUES (?, ?, ?, ?)", i+1, p.sku, p.name, p.cents); err != nil {
			return err
		}
	}
	// Orders span the 390 days before the seed; none lies in the future.
	start := time.Now().UTC().Truncate(time.Hour).Add(-394 * 24 * time.Hour)
	for id := 1; id <= 5000; id++ {
		created := start.Add(time.Duration(r.IntN(390*24*60)) * time.Minute)
		status := statuses[r.IntN(len(statuses))]
		total := 0
		n := 1 + r.IntN(3)
		seen := map[int]bool{}
		for range n {
			pi := r.IntN(len(products))
			if seen[pi] {
				continue
			}
			seen[pi] = true
			q := 1 + r.IntN(2)
			total += q * products[pi].cents
			if err := exec(ctx, tx, "INSERT INTO order_items VALUES (?, ?, ?, ?)", id, pi+1, q, products[pi].cents); err != nil {
				return err
			}
		}
		amount := total
		if status == "refund" {
			amount = -total
		}
		updated := created.Add(time.Duration(r.IntN(72)) * time.Hour)
		if err := exec(ctx, tx, "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", id, 1+r.IntN(500), status, amount, created.Format(time.RFC3339), updated.Format(time.RFC3339)); err != nil {
			return err
		}
		if status != "pending" && status != "cancelled" {
			provider := []string{"stripe", "adyen", "paypal"}[r.IntN(3)]
			if err := exec(ctx, tx, "INSERT INTO payments (order_id, provider, amount_cents, paid_at) VALUES (?, ?, ?, ?)", id, provider, amount, created.Add(time.Minute).Format(time.RFC3339)); err != nil {
				return err
			}
		}
	}
	// Data errors for the integrity checks to find: three paid orders with
	// negative amounts (a sign bug), an unknown status, an orphan order.
	for _, q := range []string{
		"UPDATE orders SET status = 'paid', amount_cents = -ABS(amount_cents) WHERE id IN (17, 42, 99)",
		"UPDATE orders SET status = 'shiped' WHERE id = 123",
		"UPDATE orders SET customer_id = 9999 WHERE id = 777",
	} {
		if err := exec(ctx, tx, q); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func seedLedger(ctx context.Context, db *sql.DB) error {
	r := rand.New(rand.NewPCG(7, 42))
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	schema := `
CREATE TABLE accounts (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE invoices (id INTEGER PRIMARY KEY, number TEXT NOT NULL UNIQUE, customer TEXT NOT NULL, amount_cents INTEGER NOT NULL, issued_at TEXT NOT NULL, due_at TEXT NOT NULL, paid_at TEXT);
CREATE TABLE ledger_entries (id INTEGER PRIMARY KEY, invoice_id INTEGER, account_id INTEGER NOT NULL, debit_cents INTEGER NOT NULL DEFAULT 0, credit_cents INTEGER NOT NULL DEFAULT 0, booked_at TEXT NOT NULL);`
	if err := exec(ctx, tx, schema); err != nil {
		return err
	}
	accounts := [][2]string{{"1200", "Accounts receivable"}, {"1000", "Bank"}, {"4000", "Revenue"}, {"2200", "VAT payable"}}
	for i, a := range accounts {
		if err := exec(ctx, tx, "INSERT INTO accounts VALUES (?, ?, ?)", i+1, a[0], a[1]); err != nil {
			return err
		}
	}
	start := time.Now().UTC().Truncate(time.Hour).Add(-394 * 24 * time.Hour)
	for id := 1; id <= 2000; id++ {
		issued := start.Add(time.Duration(r.IntN(390*24)) * time.Hour)
		net := 1000 + r.IntN(200000)
		vat := net / 5
		var paid any
		if r.IntN(10) < 8 {
			paid = issued.Add(time.Duration(24+r.IntN(30*24)) * time.Hour).Format(time.RFC3339)
		}
		cust := firstNames[r.IntN(len(firstNames))] + " " + lastNames[r.IntN(len(lastNames))]
		if err := exec(ctx, tx, "INSERT INTO invoices VALUES (?, ?, ?, ?, ?, ?, ?)", id, fmt.Sprintf("INV-2026-%05d", id), cust, net+vat,
			issued.Format(time.RFC3339), issued.Add(30*24*time.Hour).Format(time.RFC3339), paid); err != nil {
			return err
		}
		b := issued.Format(time.RFC3339)
		for _, e := range [][3]int{{1, net + vat, 0}, {3, 0, net}, {4, 0, vat}} {
			if err := exec(ctx, tx, "INSERT INTO ledger_entries (invoice_id, account_id, debit_cents, credit_cents, booked_at) VALUES (?, ?, ?, ?, ?)", id, e[0], e[1], e[2], b); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// AppWrite stands in for the application: it records a new order now, so
// the backup and the drill's RPO measure data as fresh as a live shop's.
func AppWrite(ctx context.Context, dir string, now time.Time) error {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "apps", "shop.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	ts := now.UTC().Format(time.RFC3339)
	_, err = db.ExecContext(ctx, "INSERT INTO orders (customer_id, status, amount_cents, created_at, updated_at) VALUES (1, 'paid', 4900, ?, ?)", ts, ts)
	return err
}

// KitHolders makes five test holders' age keys under dir/kit-holders (a
// kit drill uses test shares, never the real holders') and returns their
// names, recipients and identities.
func KitHolders(dir string) (names, recipients []string, ids []*age.X25519Identity, err error) {
	hdir := filepath.Join(dir, "kit-holders")
	if err := os.MkdirAll(hdir, 0o700); err != nil {
		return nil, nil, nil, err
	}
	for _, n := range []string{"alice", "bob", "carol", "dana", "erin"} {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, nil, nil, err
		}
		if err := os.WriteFile(filepath.Join(hdir, n+".key"), []byte(id.String()+"\n"), 0o600); err != nil {
			return nil, nil, nil, err
		}
		names, recipients, ids = append(names, n), append(recipients, id.Recipient().String()), append(ids, id)
	}
	return names, recipients, ids, nil
}

// DecryptShare decrypts one holder's share file the way the holder would
// with `age -d -i holder.key`, writing the plain share next to it.
func DecryptShare(path string, id *age.X25519Identity) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r, err := age.Decrypt(f, id)
	if err != nil {
		return "", fmt.Errorf("decrypt %s: %w", filepath.Base(path), err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	out := strings.TrimSuffix(path, ".age") + ".txt"
	return out, os.WriteFile(out, b, 0o600)
}
