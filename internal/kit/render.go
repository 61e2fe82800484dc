package kit

import (
	"bytes"
	htmltemplate "html/template"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
)

// document is what README.md and index.html show: the offline runbook. It
// never holds a credential's value.
type document struct {
	ID           string
	CreatedAt    string
	CreatedBy    string
	Threshold    int
	Shares       int
	KitRecipient string
	Credentials  []CredentialInfo
	Holders      []Holder
	Checksums    []checksum
	Runbooks     []Runbook
	Contacts     []ServiceContacts
	AuditKey     string
	AuditKeyNote string
	ShareTexts   string // example share file names, threshold of them
	DrillDays    int
}

type checksum struct{ Name, Sum string }

func newDocument(m *Manifest, spec Spec) *document {
	d := &document{ID: m.ID, CreatedAt: m.CreatedAt.Format(time.RFC3339), CreatedBy: m.CreatedBy, Threshold: m.Threshold,
		Shares: m.Shares, KitRecipient: m.KitRecipient, Credentials: m.Credentials, Holders: m.Holders,
		Runbooks: spec.Runbooks, Contacts: spec.Contacts, AuditKey: strings.TrimSpace(spec.AuditKey), AuditKeyNote: spec.AuditKeyNote,
		DrillDays: int(DrillInterval / (24 * time.Hour))}
	for name, sum := range m.Files {
		d.Checksums = append(d.Checksums, checksum{name, sum})
	}
	slices.SortFunc(d.Checksums, func(a, b checksum) int { return strings.Compare(a.Name, b.Name) })
	var ex []string
	for i := 1; i <= m.Threshold; i++ {
		ex = append(ex, "share-"+strconv.Itoa(i)+".txt")
	}
	d.ShareTexts = strings.Join(ex, " ")
	return d
}

func (d *document) markdown() ([]byte, error) {
	var b bytes.Buffer
	err := markdownTmpl.Execute(&b, d)
	return b.Bytes(), err
}

func (d *document) html() ([]byte, error) {
	var b bytes.Buffer
	err := htmlTmpl.Execute(&b, d)
	return b.Bytes(), err
}

// mdCell makes s safe in a Markdown table cell.
func mdCell(s string) string {
	if s == "" {
		return "—"
	}
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// shiftHeadings demotes the Markdown headings of an embedded runbook by n
// levels, leaving fenced code blocks alone.
func shiftHeadings(md string, n int) string {
	lines := strings.Split(md, "\n")
	fenced := false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
			continue
		}
		if !fenced && strings.HasPrefix(l, "#") {
			lines[i] = strings.Repeat("#", n) + l
		}
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

var markdownTmpl = texttemplate.Must(texttemplate.New("README.md").Funcs(texttemplate.FuncMap{
	"cell": mdCell, "shift": shiftHeadings,
}).Parse(`# Steward emergency kit {{.ID}}

Created {{.CreatedAt}}{{if .CreatedBy}} by {{.CreatedBy}}{{end}}. **{{.Threshold}} of the {{.Shares}} share holders together** open it;
fewer learn nothing. Use it when Steward itself is down, unreachable or compromised. Print this page and keep a
copy of the whole directory with every holder and offline (USB stick, safe).

## What the kit contains

The sealed bundle ` + "`bundle.age`" + ` holds these emergency credentials (their values are only inside it):

| credential | what it opens |
| --- | --- |
{{range .Credentials}}| {{cell .Name}} | {{cell .Description}} |
{{end}}
It is encrypted with age to the kit key, whose public half is ` + "`{{.KitRecipient}}`" + `. The kit key exists
nowhere whole: it was split with Shamir secret sharing into {{.Shares}} shares, each encrypted to one holder.

## Who holds which share

| share | holder | file | holder's age recipient | fingerprint |
| ---: | --- | --- | --- | --- |
{{range .Holders}}| {{.Share}} | {{cell .Name}} | ` + "`{{.File}}`" + ` | ` + "`{{.Recipient}}`" + ` | {{.Fingerprint}} |
{{end}}
A holder confirms their key belongs to their share with ` + "`age-keygen -y holder.key`" + `, which prints the recipient above.

## Recover the credentials

1. **Check the kit.** In the kit directory, every file must match:

   ` + "```sh" + `
   sha256sum -c <<'EOF'
{{range .Checksums}}   {{.Sum}}  {{.Name}}
{{end}}   EOF
   ` + "```" + `

   A mismatch means this copy was altered or damaged: use another holder's copy.
2. **Each of at least {{.Threshold}} holders decrypts their own share** with their age key, on their own machine:

   ` + "```sh" + `
   age -d -i holder.key share-N-NAME.age > share-N.txt
   ` + "```" + `

   The result is a short text file. Bring the share files together on one trusted, offline machine
   (or read them out and type them in; a check line catches typing mistakes).
3. **Open the kit** with the ` + "`steward`" + ` binary (no config, store or network needed):

   ` + "```sh" + `
   steward kit open KIT-DIR {{.ShareTexts}}
   steward kit open KIT-DIR {{.ShareTexts}} --output json   # for scripts
   ` + "```" + `

   It checks the kit against ` + "`kit.json`" + `, refuses fewer than {{.Threshold}} shares, names a share that is damaged or
   does not belong to this kit, and prints the credentials.
4. **Afterwards:** rotate every credential you used, create a new kit (` + "`steward kit create`" + `), and have the
   holders destroy their old shares and share files. Opening the kit is recorded in Steward's audit log when
   Steward is reachable; otherwise write down who opened it, when and why.

Without a ` + "`steward`" + ` binary: each share's ` + "`data`" + ` line is base64 of the values, at x = the share number, of
random polynomials over GF(2^8) (the AES field, x^8 + x^4 + x^3 + x + 1), one per byte of the kit key; Lagrange
interpolation at x = 0 of any {{.Threshold}} shares gives the kit key ` + "`AGE-SECRET-KEY-1…`" + `, and
` + "`age -d -i kit.key bundle.age`" + ` prints the bundle as JSON.

## Restore runbooks from the last successful drills
{{range .Runbooks}}{{if .Markdown}}
{{shift .Markdown 2}}
{{else}}
### {{.Service}} / {{.Drill}}

{{.Note}}
{{end}}{{else}}
No drills are configured: there is no restore runbook to include.
{{end}}
## Contacts
{{range .Contacts}}
### {{.Service}}
{{if .Contacts}}
| role | who | phone | email | link |
| --- | --- | --- | --- | --- |
{{range .Contacts}}| {{.Role}} | {{cell .Name}} | {{cell .Phone}} | {{cell .Email}} | {{cell .URL}} |
{{end}}{{else}}
No contacts are configured for {{.Service}}.
{{end}}{{if .Owners}}
Owners: {{range $i, $o := .Owners}}{{if $i}}, {{end}}{{$o}}{{end}}.
{{end}}{{else}}
No services are configured.
{{end}}
## Audit log verifier key

Steward signs checkpoints of its tamper-evident audit log. With this key anyone can check an exported log
against a checkpoint offline, without trusting the Steward that produced them:
{{if .AuditKey}}
` + "```" + `
{{.AuditKey}}
` + "```" + `

Save it as ` + "`audit.pub`" + ` and run
` + "`steward audit verify --file audit-export.jsonl --checkpoint checkpoint.txt --key audit.pub`" + `.
{{else}}
**Not included:** {{.AuditKeyNote}}
{{end}}
## Drill the kit

Rehearse the recovery at least every {{.DrillDays}} days: {{.Threshold}} holders decrypt their shares and run
` + "`steward kit drill KIT-DIR {{.ShareTexts}}`" + `, which opens the kit without printing any value and records
the drill for readiness.
`))

var htmlTmpl = htmltemplate.Must(htmltemplate.New("index.html").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Steward emergency kit {{.ID}}</title>
<style>
body { font: 11pt/1.45 system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #111; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #999; padding: .2em .5em; text-align: left; vertical-align: top; }
code, pre { font: 9.5pt/1.35 ui-monospace, monospace; }
pre { background: #f4f4f4; padding: .6em; white-space: pre-wrap; word-break: break-all; }
h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
section.runbook { page-break-before: always; }
</style>
</head>
<body>
<h1>Steward emergency kit {{.ID}}</h1>
<p>Created {{.CreatedAt}}{{if .CreatedBy}} by {{.CreatedBy}}{{end}}. <strong>{{.Threshold}} of the {{.Shares}} share holders together</strong> open it;
fewer learn nothing. Use it when Steward itself is down, unreachable or compromised. Print this page and keep a
copy of the whole directory with every holder and offline (USB stick, safe).</p>

<h2 id="contents">What the kit contains</h2>
<p>The sealed bundle <code>bundle.age</code> holds these emergency credentials (their values are only inside it):</p>
<table><tr><th>credential</th><th>what it opens</th></tr>
{{range .Credentials}}<tr><td>{{.Name}}</td><td>{{.Description}}</td></tr>
{{end}}</table>
<p>It is encrypted with age to the kit key, whose public half is <code>{{.KitRecipient}}</code>. The kit key exists
nowhere whole: it was split with Shamir secret sharing into {{.Shares}} shares, each encrypted to one holder.</p>

<h2 id="holders">Who holds which share</h2>
<table><tr><th>share</th><th>holder</th><th>file</th><th>holder's age recipient</th><th>fingerprint</th></tr>
{{range .Holders}}<tr><td>{{.Share}}</td><td>{{.Name}}</td><td><code>{{.File}}</code></td><td><code>{{.Recipient}}</code></td><td>{{.Fingerprint}}</td></tr>
{{end}}</table>
<p>A holder confirms their key belongs to their share with <code>age-keygen -y holder.key</code>, which prints the recipient above.</p>

<h2 id="recover">Recover the credentials</h2>
<ol>
<li><p><strong>Check the kit.</strong> In the kit directory, every file must match:</p>
<pre>sha256sum -c &lt;&lt;'EOF'
{{range .Checksums}}{{.Sum}}  {{.Name}}
{{end}}EOF</pre>
<p>A mismatch means this copy was altered or damaged: use another holder's copy.</p></li>
<li><p><strong>Each of at least {{.Threshold}} holders decrypts their own share</strong> with their age key, on their own machine:</p>
<pre>age -d -i holder.key share-N-NAME.age &gt; share-N.txt</pre>
<p>The result is a short text file. Bring the share files together on one trusted, offline machine
(or read them out and type them in; a check line catches typing mistakes).</p></li>
<li><p><strong>Open the kit</strong> with the <code>steward</code> binary (no config, store or network needed):</p>
<pre>steward kit open KIT-DIR {{.ShareTexts}}
steward kit open KIT-DIR {{.ShareTexts}} --output json   # for scripts</pre>
<p>It checks the kit against <code>kit.json</code>, refuses fewer than {{.Threshold}} shares, names a share that is damaged or
does not belong to this kit, and prints the credentials.</p></li>
<li><p><strong>Afterwards:</strong> rotate every credential you used, create a new kit (<code>steward kit create</code>), and have the
holders destroy their old shares and share files. Opening the kit is recorded in Steward's audit log when
Steward is reachable; otherwise write down who opened it, when and why.</p></li>
</ol>
<p>Without a <code>steward</code> binary: each share's <code>data</code> line is base64 of the values, at x = the share number, of
random polynomials over GF(2^8) (the AES field, x^8 + x^4 + x^3 + x + 1), one per byte of the kit key; Lagrange
interpolation at x = 0 of any {{.Threshold}} shares gives the kit key <code>AGE-SECRET-KEY-1…</code>, and
<code>age -d -i kit.key bundle.age</code> prints the bundle as JSON.</p>

<h2 id="runbooks">Restore runbooks from the last successful drills</h2>
{{range .Runbooks}}<section class="runbook">
<h3>{{.Service}} / {{.Drill}}</h3>
{{if .Markdown}}<pre>{{.Markdown}}</pre>{{else}}<p>{{.Note}}</p>{{end}}
</section>
{{else}}<p>No drills are configured: there is no restore runbook to include.</p>
{{end}}
<h2 id="contacts">Contacts</h2>
{{range .Contacts}}<h3>{{.Service}}</h3>
{{if .Contacts}}<table><tr><th>role</th><th>who</th><th>phone</th><th>email</th><th>link</th></tr>
{{range .Contacts}}<tr><td>{{.Role}}</td><td>{{.Name}}</td><td>{{.Phone}}</td><td>{{.Email}}</td><td>{{.URL}}</td></tr>
{{end}}</table>
{{else}}<p>No contacts are configured for {{.Service}}.</p>
{{end}}{{if .Owners}}<p>Owners: {{range $i, $o := .Owners}}{{if $i}}, {{end}}{{$o}}{{end}}.</p>
{{end}}{{else}}<p>No services are configured.</p>
{{end}}
<h2 id="audit-key">Audit log verifier key</h2>
<p>Steward signs checkpoints of its tamper-evident audit log. With this key anyone can check an exported log
against a checkpoint offline, without trusting the Steward that produced them:</p>
{{if .AuditKey}}<pre>{{.AuditKey}}</pre>
<p>Save it as <code>audit.pub</code> and run
<code>steward audit verify --file audit-export.jsonl --checkpoint checkpoint.txt --key audit.pub</code>.</p>
{{else}}<p><strong>Not included:</strong> {{.AuditKeyNote}}</p>
{{end}}
<h2 id="drill">Drill the kit</h2>
<p>Rehearse the recovery at least every {{.DrillDays}} days: {{.Threshold}} holders decrypt their shares and run
<code>steward kit drill KIT-DIR {{.ShareTexts}}</code>, which opens the kit without printing any value and records
the drill for readiness.</p>
</body>
</html>
`))
