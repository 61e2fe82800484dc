package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// maxManifestSize bounds what reading a manifest accepts.
const maxManifestSize = 64 << 20

// Repository is where Steward keeps the backups it takes: a blob bucket
// laid out as <prefix>/<service>/<backup>/<id>/{objects…,manifest.json}.
type Repository struct {
	bucket *blob.Bucket
	url    string
}

// OpenRepository opens the repository at rawURL: file:///path (or a plain
// absolute path), s3://bucket/prefix, gs://bucket/prefix or
// azblob://container/prefix. The URL's path below the bucket becomes the key
// prefix. A file repository's directory is created when missing.
func OpenRepository(ctx context.Context, rawURL string) (*Repository, error) {
	u, err := repositoryURL(rawURL)
	if err != nil {
		return nil, err
	}
	b, err := blob.OpenBucket(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open backup repository %s: %w", redactURL(rawURL), err)
	}
	return &Repository{bucket: b, url: redactURL(rawURL)}, nil
}

// repositoryURL turns a repository setting into the URL gocloud.dev opens.
func repositoryURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("empty backup repository: set repository to a file://, s3://, gs:// or azblob:// URL")
	}
	if !strings.Contains(raw, "://") {
		if !filepath.IsAbs(raw) {
			return "", fmt.Errorf("backup repository %q: a plain path must be absolute (or use file:///…)", raw)
		}
		raw = (&url.URL{Scheme: "file", Path: filepath.ToSlash(raw)}).String()
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("backup repository %s: %w", redactURL(raw), err)
	}
	q := u.Query()
	switch u.Scheme {
	case "file":
		if u.Path == "" || u.Path == "/" {
			return "", fmt.Errorf("backup repository %s: want file:///absolute/directory", raw)
		}
		// Create the directory, keep no sidecar metadata files, and write
		// temporary files beside their final name (os.TempDir may be on
		// another file system, where the final rename would fail).
		for k, v := range map[string]string{"create_dir": "true", "metadata": "skip", "no_tmp_dir": "true"} {
			if !q.Has(k) {
				q.Set(k, v)
			}
		}
	case "s3", "gs", "azblob":
		if u.Host == "" {
			return "", fmt.Errorf("backup repository %s: missing bucket name", redactURL(raw))
		}
		if p := strings.Trim(u.Path, "/"); p != "" && !q.Has("prefix") {
			q.Set("prefix", p+"/")
		}
		u.Path = ""
	default:
		return "", fmt.Errorf("backup repository %s: unsupported scheme %q (use file, s3, gs or azblob)", redactURL(raw), u.Scheme)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return raw
	}
	if q := u.Query(); q.Has("sig") || q.Has("secret_key_path") {
		u.RawQuery = ""
	}
	return u.Redacted()
}

// URL is the repository's URL, without secrets, for messages.
func (r *Repository) URL() string { return r.url }

// Close releases the bucket.
func (r *Repository) Close() error { return r.bucket.Close() }

// folder is the key prefix of one backup.
func folder(service, backup, id string) string {
	return service + "/" + backup + "/" + id + "/"
}

func checkSegment(kind, v string) error {
	if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\\") {
		return fmt.Errorf("invalid %s %q in backup reference", kind, v)
	}
	return nil
}

func checkObjectName(name string) error {
	if name == "" || name == ManifestName || strings.Contains(name, "\\") || !filepath.IsLocal(filepath.FromSlash(name)) || path.Clean(name) != name {
		return fmt.Errorf("invalid object name %q", name)
	}
	return nil
}

func (r *Repository) objectKey(m Manifest, name string) (string, error) {
	for _, s := range [][2]string{{"service", m.Service}, {"backup", m.Backup}, {"id", m.ID}} {
		if err := checkSegment(s[0], s[1]); err != nil {
			return "", err
		}
	}
	if err := checkObjectName(name); err != nil {
		return "", err
	}
	return folder(m.Service, m.Backup, m.ID) + name, nil
}

// Put streams src into object name of backup m, computing its SHA-256 and
// size while writing. The object is visible only once fully written.
func (r *Repository) Put(ctx context.Context, m Manifest, name string, src io.Reader) (Object, error) {
	key, err := r.objectKey(m, name)
	if err != nil {
		return Object{}, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := r.bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return Object{}, fmt.Errorf("write %s to %s: %w", key, r.url, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), src)
	if err != nil {
		// Cancelling the writer's context before Close aborts the write.
		cancel()
		_ = w.Close()
		return Object{}, fmt.Errorf("write %s to %s: %w", key, r.url, err)
	}
	if err := w.Close(); err != nil {
		return Object{}, fmt.Errorf("write %s to %s: %w", key, r.url, err)
	}
	return Object{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Open streams object o of backup m as stored (not verified; see
// VerifyingReader).
func (r *Repository) Open(ctx context.Context, m Manifest, o Object) (io.ReadCloser, error) {
	key, err := r.objectKey(m, o.Name)
	if err != nil {
		return nil, err
	}
	rd, err := r.bucket.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("backup %s: object %s is missing: %w", m.Ref(), o.Name, ErrChecksum)
		}
		return nil, fmt.Errorf("read %s from %s: %w", key, r.url, err)
	}
	return rd, nil
}

// WriteManifest stores m's manifest; it must be the last write of a backup.
func (r *Repository) WriteManifest(ctx context.Context, m Manifest) error {
	for _, s := range [][2]string{{"service", m.Service}, {"backup", m.Backup}, {"id", m.ID}} {
		if err := checkSegment(s[0], s[1]); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	key := folder(m.Service, m.Backup, m.ID) + ManifestName
	if err := r.bucket.WriteAll(ctx, key, append(data, '\n'), &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write manifest %s to %s: %w", key, r.url, err)
	}
	return nil
}

func (r *Repository) readManifest(ctx context.Context, service, backup, id string) (Manifest, error) {
	key := folder(service, backup, id) + ManifestName
	rd, err := r.bucket.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return Manifest{}, fmt.Errorf("%w %s/%s/%s in %s", ErrNoBackup, service, backup, id, r.url)
		}
		return Manifest{}, fmt.Errorf("read manifest %s from %s: %w", key, r.url, err)
	}
	defer rd.Close()
	data, err := io.ReadAll(io.LimitReader(rd, maxManifestSize+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest %s from %s: %w", key, r.url, err)
	}
	if len(data) > maxManifestSize {
		return Manifest{}, fmt.Errorf("manifest %s in %s is larger than %d bytes", key, r.url, maxManifestSize)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("manifest %s in %s is not valid: %w", key, r.url, err)
	}
	if m.Service != service || m.Backup != backup || m.ID != id {
		return Manifest{}, fmt.Errorf("manifest %s in %s names %s: it was moved or edited", key, r.url, m.Ref())
	}
	return m, nil
}

// dirs lists the "folders" directly under prefix.
func (r *Repository) dirs(ctx context.Context, prefix string) ([]string, error) {
	it := r.bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	var out []string
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", prefix, r.url, err)
		}
		if o.IsDir {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(o.Key, prefix), "/"))
		}
	}
	return out, nil
}

// List returns the complete backups (those with a manifest) of
// service/backup, oldest first by snapshot time, then start time. File
// times play no part.
func (r *Repository) List(ctx context.Context, service, backup string) ([]Manifest, error) {
	if err := checkSegment("service", service); err != nil {
		return nil, err
	}
	if err := checkSegment("backup", backup); err != nil {
		return nil, err
	}
	ids, err := r.dirs(ctx, service+"/"+backup+"/")
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, id := range ids {
		m, err := r.readManifest(ctx, service, backup, id)
		if errors.Is(err, ErrNoBackup) {
			continue // incomplete: in progress, or left by a crash
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	slices.SortFunc(out, lessManifest)
	return out, nil
}

// Latest returns the newest complete backup of service/backup by snapshot
// time, or ErrNoBackup.
func (r *Repository) Latest(ctx context.Context, service, backup string) (Manifest, error) {
	ms, err := r.List(ctx, service, backup)
	if err != nil {
		return Manifest{}, err
	}
	if len(ms) == 0 {
		return Manifest{}, fmt.Errorf("%w of %s/%s in %s yet: run `steward backup run %s/%s`", ErrNoBackup, service, backup, r.url, service, backup)
	}
	return ms[len(ms)-1], nil
}

// Get returns the manifest of a backup by reference: SERVICE/BACKUP/ID, or
// a bare ID, searched across the repository. ErrNoBackup when none.
func (r *Repository) Get(ctx context.Context, ref string) (Manifest, error) {
	parts := strings.Split(ref, "/")
	switch len(parts) {
	case 3:
		for i, k := range []string{"service", "backup", "id"} {
			if err := checkSegment(k, parts[i]); err != nil {
				return Manifest{}, err
			}
		}
		return r.readManifest(ctx, parts[0], parts[1], parts[2])
	case 1:
		if err := checkSegment("id", ref); err != nil {
			return Manifest{}, err
		}
	default:
		return Manifest{}, fmt.Errorf("invalid backup reference %q: want SERVICE/BACKUP/ID or ID", ref)
	}
	services, err := r.dirs(ctx, "")
	if err != nil {
		return Manifest{}, err
	}
	for _, s := range services {
		backups, err := r.dirs(ctx, s+"/")
		if err != nil {
			return Manifest{}, err
		}
		for _, b := range backups {
			ok, err := r.bucket.Exists(ctx, folder(s, b, ref)+ManifestName)
			if err != nil {
				return Manifest{}, fmt.Errorf("look up backup %s in %s: %w", ref, r.url, err)
			}
			if ok {
				return r.readManifest(ctx, s, b, ref)
			}
		}
	}
	return Manifest{}, fmt.Errorf("%w %s in %s", ErrNoBackup, ref, r.url)
}

// Delete removes a backup: the manifest first, so that a backup half
// deleted no longer counts, then every object in its folder.
func (r *Repository) Delete(ctx context.Context, m Manifest) error {
	for _, s := range [][2]string{{"service", m.Service}, {"backup", m.Backup}, {"id", m.ID}} {
		if err := checkSegment(s[0], s[1]); err != nil {
			return err
		}
	}
	key := folder(m.Service, m.Backup, m.ID) + ManifestName
	if err := r.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete backup %s from %s: %w", m.Ref(), r.url, err)
	}
	return r.removeFolder(ctx, m.Service, m.Backup, m.ID)
}

// removeFolder deletes every object under a backup's folder.
func (r *Repository) removeFolder(ctx context.Context, service, backup, id string) error {
	prefix := folder(service, backup, id)
	it := r.bucket.List(&blob.ListOptions{Prefix: prefix})
	var errs []error
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("list %s in %s: %w", prefix, r.url, err)
		}
		if o.IsDir {
			continue
		}
		if err := r.bucket.Delete(ctx, o.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			errs = append(errs, fmt.Errorf("delete %s: %w", o.Key, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete backup %s/%s/%s from %s: %w", service, backup, id, r.url, err)
	}
	return nil
}

// Incomplete returns the ids of folders of service/backup that have no
// manifest: backups in progress or left behind by a crash.
func (r *Repository) Incomplete(ctx context.Context, service, backup string) ([]string, error) {
	ids, err := r.dirs(ctx, service+"/"+backup+"/")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		ok, err := r.bucket.Exists(ctx, folder(service, backup, id)+ManifestName)
		if err != nil {
			return nil, fmt.Errorf("look up %s/%s/%s in %s: %w", service, backup, id, r.url, err)
		}
		if !ok {
			out = append(out, id)
		}
	}
	return out, nil
}
