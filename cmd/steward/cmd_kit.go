package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/stewardhq/steward/internal/audit"
	"github.com/stewardhq/steward/internal/auth"
	"github.com/stewardhq/steward/internal/backup"
	"github.com/stewardhq/steward/internal/config"
	"github.com/stewardhq/steward/internal/drill"
	"github.com/stewardhq/steward/internal/kit"
	"github.com/stewardhq/steward/internal/store"
)

func newKitCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "kit", Short: "The offline emergency kit: credentials sealed for a threshold of holders, for when Steward is down"}
	cmd.AddCommand(newKitCreateCmd(g), newKitOpenCmd(g, false), newKitOpenCmd(g, true))
	return cmd
}

type kitCreateOptions struct {
	Shares     int
	Threshold  int
	Recipients []string
	Holders    []string
	Out        string
	AuditKey   string
}

func (o *kitCreateOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&o.Shares, "shares", 0, "number of shares, one per holder (required)")
	f.IntVar(&o.Threshold, "threshold", 0, "shares needed to open the kit, at least 2 (required)")
	f.StringArrayVar(&o.Recipients, "recipient", nil, "age recipient (age1…) of each holder, in share order; repeat once per share")
	f.StringArrayVar(&o.Holders, "holder", nil, "name of each holder, in share order (default holder-N); repeat once per share")
	f.StringVar(&o.Out, "out", "", "kit directory to write; must not exist or be empty (required)")
	f.StringVar(&o.AuditKey, "audit-key", "", "audit checkpoint verifier key file to include (default: DATA_DIR/audit.pub)")
}

func newKitCreateCmd(g *globalOptions) *cobra.Command {
	o := &kitCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create --shares N --threshold K --recipient age1… (×N) --out DIR",
		Short: "Seal the kit credentials into a new kit directory, split among the holders, with the offline runbook",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKitCreate(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func (o *kitCreateOptions) holderSpecs() ([]kit.HolderSpec, error) {
	switch {
	case o.Out == "":
		return nil, usagef("--out DIR is required: the kit directory to write")
	case o.Shares < 2:
		return nil, usagef("--shares %d: give the number of holders, at least 2", o.Shares)
	case o.Threshold < 2 || o.Threshold > o.Shares:
		return nil, usagef("--threshold %d: must be between 2 and --shares (%d)", o.Threshold, o.Shares)
	case len(o.Recipients) != o.Shares:
		return nil, usagef("%d --recipient given for --shares %d: give one age recipient per holder, in share order", len(o.Recipients), o.Shares)
	case len(o.Holders) != 0 && len(o.Holders) != o.Shares:
		return nil, usagef("%d --holder given for --shares %d: name every holder or none", len(o.Holders), o.Shares)
	}
	hs := make([]kit.HolderSpec, o.Shares)
	for i := range hs {
		hs[i] = kit.HolderSpec{Name: fmt.Sprintf("holder-%d", i+1), Recipient: strings.TrimSpace(o.Recipients[i])}
		if len(o.Holders) > 0 {
			hs[i].Name = o.Holders[i]
		}
	}
	return hs, nil
}

type kitCreateResult struct {
	Dir            string        `json:"dir"`
	Kit            *kit.Manifest `json:"kit"`
	Runbooks       []string      `json:"runbooks"`
	MissingRunbook []string      `json:"missing_runbooks"`
	AuditKey       bool          `json:"audit_key_included"`
}

func runKitCreate(ctx context.Context, g *globalOptions, o *kitCreateOptions, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	holders, err := o.holderSpecs()
	if err != nil {
		return err
	}
	a, err := g.openApp(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.actor.Require(auth.PermAdmin); err != nil {
		return err
	}
	creds, err := kit.ResolveCredentials(a.cfg.Kit)
	if err != nil {
		return usageError{err}
	}
	spec := kit.Spec{Threshold: o.Threshold, Holders: holders, Credentials: creds, CreatedBy: a.actor.Actor()}
	if err := spec.Validate(); err != nil {
		return usagef("%v", err)
	}
	res := kitCreateResult{Runbooks: []string{}, MissingRunbook: []string{}}
	if spec.Runbooks, err = kitRunbooks(ctx, a); err != nil {
		return err
	}
	for _, rb := range spec.Runbooks {
		if rb.Markdown != "" {
			res.Runbooks = append(res.Runbooks, rb.Service+"/"+rb.Drill)
		} else {
			res.MissingRunbook = append(res.MissingRunbook, rb.Service+"/"+rb.Drill)
		}
	}
	spec.Contacts = kitContacts(a.cfg)
	spec.AuditKey, spec.AuditKeyNote, err = kitAuditKey(a, o.AuditKey)
	if err != nil {
		return err
	}
	res.AuditKey = spec.AuditKey != ""

	m, err := kit.Create(o.Out, spec)
	if err != nil {
		if errors.Is(err, kit.ErrNotEmpty) {
			return usageError{err}
		}
		return err
	}
	res.Kit = m
	res.Dir, _ = filepath.Abs(o.Out)
	var hs []map[string]any
	for _, h := range m.Holders {
		hs = append(hs, map[string]any{"share": h.Share, "name": h.Name, "fingerprint": h.Fingerprint})
	}
	names := make([]string, len(m.Credentials))
	for i, c := range m.Credentials {
		names[i] = c.Name
	}
	if _, err := a.audit.Append(ctx, audit.Entry{Actor: a.actor.Actor(), Action: "kit.create", Target: "kit:" + m.ID, Outcome: "ok",
		Details: map[string]any{"dir": res.Dir, "shares": m.Shares, "threshold": m.Threshold, "holders": hs,
			"credentials": names, "runbooks": res.Runbooks, "missing_runbooks": res.MissingRunbook, "audit_key_included": res.AuditKey}}); err != nil {
		return fmt.Errorf("kit %s written to %s, but recording it in the audit log failed: %w", m.ID, res.Dir, err)
	}
	if g.json() {
		return printJSON(out, res)
	}
	fmt.Fprintf(out, "kit %s written to %s: %d credentials, %d of %d shares open it\n", m.ID, res.Dir, len(m.Credentials), m.Threshold, m.Shares)
	for _, h := range m.Holders {
		fmt.Fprintf(out, "  share %d  %-16s %s  %s\n", h.Share, h.Name, h.File, h.Fingerprint)
	}
	fmt.Fprintf(out, "runbooks: %d included", len(res.Runbooks))
	if len(res.MissingRunbook) > 0 {
		fmt.Fprintf(out, "; no passed drill yet for %s", strings.Join(res.MissingRunbook, ", "))
	}
	fmt.Fprintln(out)
	if !res.AuditKey {
		fmt.Fprintf(out, "audit verifier key: not included (%s)\n", spec.AuditKeyNote)
	}
	fmt.Fprintf(out, "Next: give every holder a copy of the directory (their share is share-N-NAME.age), print README.md or index.html,\n"+
		"and rehearse with `steward kit drill %s share-….txt` within %d days.\n", o.Out, int(kit.DrillInterval.Hours()/24))
	return nil
}

// kitRunbooks renders, for every drill, the restore runbook of its last
// passed run, or a note when there is none.
func kitRunbooks(ctx context.Context, a *app) ([]kit.Runbook, error) {
	var out []kit.Runbook
	for i := range a.cfg.Services {
		svc := &a.cfg.Services[i]
		for j := range svc.Drills {
			d := &svc.Drills[j]
			rb := kit.Runbook{Service: svc.Name, Drill: d.Name}
			runs, err := drill.History(ctx, a.store, svc.Name, d.Name, 200)
			if err != nil {
				return nil, fmt.Errorf("drill history of %s/%s: %w", svc.Name, d.Name, err)
			}
			last := drill.LastPassed(runs)
			if last == nil {
				rb.Note = fmt.Sprintf("No passed run of drill %s/%s yet: run `steward drill run %s/%s`, then create the kit again.", svc.Name, d.Name, svc.Name, d.Name)
				out = append(out, rb)
				continue
			}
			md, err := drill.Runbook(svc, d, last.Report, kitBackupManifest(ctx, a, svc, d, last.Report))
			if err != nil {
				rb.Note = fmt.Sprintf("The runbook of drill %s/%s could not be written: %v.", svc.Name, d.Name, err)
			}
			rb.Markdown = md
			out = append(out, rb)
		}
	}
	return out, nil
}

// kitBackupManifest fetches the manifest of the backup a drill restored,
// for the runbook's object list; nil when it cannot be had.
func kitBackupManifest(ctx context.Context, a *app, svc *config.Service, d *config.Drill, rep *drill.Report) *backup.Manifest {
	b := svc.Backup(d.Backup)
	if b == nil || b.Repository == "" || rep.BackupRef == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	repo, err := backup.OpenRepository(ctx, b.Repository)
	if err != nil {
		a.log.Warn("kit: backup repository unavailable for the runbook", "service", svc.Name, "drill", d.Name, "err", err)
		return nil
	}
	defer repo.Close()
	m, err := repo.Get(ctx, rep.BackupRef)
	if err != nil {
		a.log.Warn("kit: backup manifest unavailable for the runbook", "service", svc.Name, "drill", d.Name, "err", err)
		return nil
	}
	return &m
}

// kitContacts lists every service's contacts, provider NOC and SIRT
// included.
func kitContacts(cfg *config.Config) []kit.ServiceContacts {
	var out []kit.ServiceContacts
	for _, svc := range cfg.Services {
		sc := kit.ServiceContacts{Service: svc.Name, Owners: svc.Owners}
		for _, c := range []struct {
			role string
			c    config.Contact
		}{{"On-call", svc.Contacts.Oncall}, {"Escalation", svc.Contacts.Escalation}, {"Provider NOC", svc.Contacts.ProviderNOC}, {"Provider SIRT", svc.Contacts.ProviderSIRT}} {
			if !c.c.IsZero() {
				sc.Contacts = append(sc.Contacts, kit.Contact{Role: c.role, Name: c.c.Name, Phone: c.c.Phone, Email: c.c.Email, URL: c.c.URL})
			}
		}
		out = append(out, sc)
	}
	return out
}

// kitAuditKey reads the audit checkpoint verifier key: from path, else
// DATA_DIR/audit.pub (creating the signing key the way the server would
// when there is none yet). Without one it returns a note saying why.
func kitAuditKey(a *app, path string) (key, why string, err error) {
	if path == "" {
		path = filepath.Join(a.cfg.Steward.DataDir, audit.PubKeyFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if _, _, err := signingKey(a); err != nil {
				a.log.Warn("kit: audit signing key unavailable", "err", err)
			}
		}
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Sprintf("%s does not exist (the signing key comes from steward.audit.signing_key); pass --audit-key with the verifier key file", path), nil
	}
	if err != nil {
		return "", "", fmt.Errorf("audit verifier key: %w", err)
	}
	text := strings.TrimSpace(string(b))
	if _, err := note.NewVerifier(text); err != nil {
		return "", "", usagef("audit verifier key %s: %v", path, err)
	}
	return text, "", nil
}

func newKitOpenCmd(g *globalOptions, rehearsal bool) *cobra.Command {
	use, short := "open DIR SHARE_FILE…", "Open the kit from a threshold of decrypted shares and print the credentials (needs no config or store)"
	if rehearsal {
		use, short = "drill DIR SHARE_FILE…", "Rehearse opening the kit: check that the shares open it without printing any value, and record the drill"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKitOpen(cmd.Context(), g, args[0], args[1:], rehearsal, cmd.OutOrStdout())
		},
	}
}

// kitVerifyFailed marks a kit or a share set that failed verification
// (exit 1), keeping the message.
type kitVerifyFailed struct{ err error }

func (e kitVerifyFailed) Error() string   { return e.err.Error() }
func (e kitVerifyFailed) Unwrap() []error { return []error{e.err, errFailed} }

type kitOpenResult struct {
	Kit         string           `json:"kit"`
	CreatedAt   time.Time        `json:"created_at"`
	Threshold   int              `json:"threshold"`
	Shares      int              `json:"shares"`
	Used        []int            `json:"used"`
	Disagreeing []int            `json:"disagreeing"`
	Credentials []kit.Credential `json:"credentials,omitempty"`
	Names       []string         `json:"names"`
	Recorded    bool             `json:"recorded"`
}

// runKitOpen opens the kit in dir. It uses no config or store (Steward may
// be down); when one is reachable it records kit.open or kit.drill.
func runKitOpen(ctx context.Context, g *globalOptions, dir string, files []string, rehearsal bool, out io.Writer) error {
	if err := g.validate(); err != nil {
		return err
	}
	action := "kit.open"
	if rehearsal {
		action = "kit.drill"
	}
	var inputs []kit.ShareInput
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return usagef("share file: %v", err)
		}
		inputs = append(inputs, kit.ShareInput{Name: f, Data: b})
	}
	absDir, _ := filepath.Abs(dir)
	opened, openErr := kit.Open(dir, inputs)
	details := map[string]any{"dir": absDir, "share_files": len(files)}
	target := "kit"
	outcome := "ok"
	if openErr != nil {
		outcome = "failure"
		details["error"] = openErr.Error()
		if m, err := kit.ReadManifest(dir); err == nil {
			target = "kit:" + m.ID
		}
	} else {
		target = "kit:" + opened.Manifest.ID
		details["used"] = opened.Used
		details["disagreeing"] = opened.Disagreeing
		details["credentials"] = opened.Bundle.Names()
		var holders []string
		for _, s := range opened.Used {
			holders = append(holders, opened.Manifest.Holders[s-1].Name)
		}
		details["holders"] = holders
	}
	recErr := g.kitAudit(ctx, action, target, outcome, details)
	if recErr != nil {
		fmt.Fprintf(g.stderr, "steward: warning: %s not recorded in the audit log: %v\n", action, recErr)
	}
	if openErr != nil {
		switch {
		case errors.Is(openErr, kit.ErrChecksum), errors.Is(openErr, kit.ErrWrongKey):
			return kitVerifyFailed{openErr}
		case errors.Is(openErr, kit.ErrTooFewShares), errors.Is(openErr, kit.ErrBadShare):
			return usageError{openErr}
		}
		var pe *fs.PathError
		if errors.As(openErr, &pe) {
			return usageError{openErr}
		}
		return openErr
	}

	m, b := opened.Manifest, opened.Bundle
	res := kitOpenResult{Kit: m.ID, CreatedAt: m.CreatedAt, Threshold: m.Threshold, Shares: m.Shares, Used: opened.Used,
		Disagreeing: opened.Disagreeing, Names: b.Names(), Recorded: recErr == nil}
	if res.Disagreeing == nil {
		res.Disagreeing = []int{}
	}
	if !rehearsal {
		res.Credentials = b.Credentials
	}
	if len(opened.Disagreeing) > 0 {
		fmt.Fprintf(g.stderr, "steward: warning: share(s) %s do not agree with the others (corrupted or altered) and were left out; their holders should decrypt them again\n", joinInts(opened.Disagreeing))
	}
	if g.json() {
		return printJSON(out, res)
	}
	if rehearsal {
		fmt.Fprintf(out, "kit opens: %d credentials recovered (%s)\n", len(b.Credentials), strings.Join(b.Names(), ", "))
		fmt.Fprintf(out, "kit %s, shares %s (threshold %d of %d); no value was printed\n", m.ID, joinInts(opened.Used), m.Threshold, m.Shares)
		if res.Recorded {
			fmt.Fprintln(out, "drill recorded in the audit log (kit.drill)")
		}
		return nil
	}
	fmt.Fprintf(out, "kit %s (created %s) opened with shares %s (threshold %d of %d)\n", m.ID, m.CreatedAt.Format(time.RFC3339), joinInts(opened.Used), m.Threshold, m.Shares)
	for _, c := range b.Credentials {
		fmt.Fprintf(out, "\n%s", c.Name)
		if c.Description != "" {
			fmt.Fprintf(out, " — %s", c.Description)
		}
		fmt.Fprintln(out)
		for _, line := range strings.Split(strings.TrimRight(c.Value, "\n"), "\n") {
			fmt.Fprintf(out, "    %s\n", line)
		}
	}
	fmt.Fprintln(out, "\nRotate every credential you used once the emergency is over, and create a new kit.")
	return nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// kitAudit records an event when a config and its store are reachable,
// without migrating or creating anything: opening the kit must work when
// Steward is down, and then there is simply nothing to record into.
func (g *globalOptions) kitAudit(ctx context.Context, action, target, outcome string, details map[string]any) error {
	if g.Server != "" {
		return errors.New("--server is set; the kit records into the local store only")
	}
	cfg, err := g.loadConfig(false)
	if err != nil {
		return err
	}
	storeURL, err := g.storeURL(cfg)
	if err != nil {
		return err
	}
	if dialect, _, path, err := store.ParseURL(storeURL); err == nil && dialect == store.SQLite {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("store %s: %w", path, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	log := g.logger()
	st, err := store.Open(ctx, storeURL, store.Options{Logger: log, NoMigrate: true})
	if err != nil {
		return err
	}
	defer st.Close()
	l := audit.New(st, audit.Options{Logger: log})
	l.Start(ctx)
	mgr := auth.NewManager(st, customRoles(cfg), auditFunc(l))
	actor := mgr.LocalAdmin(osUser())
	if g.Token != "" {
		if actor, err = mgr.Authenticate(ctx, g.Token); err != nil {
			l.Close()
			return err
		}
	}
	_, err = l.Append(ctx, audit.Entry{Actor: actor.Actor(), Action: action, Target: target, Outcome: outcome, Details: details})
	return errors.Join(err, l.Close())
}
