package backup

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"

	"github.com/stewardhq/steward/internal/config"
)

// encryptedSuffix is appended to the name of an encrypted object.
const encryptedSuffix = ".age"

// parseRecipients parses age recipients (age1… public keys).
func parseRecipients(rs []string) ([]age.Recipient, error) {
	out := make([]age.Recipient, 0, len(rs))
	for _, s := range rs {
		r, err := age.ParseRecipients(strings.NewReader(s))
		if err != nil || len(r) != 1 {
			return nil, fmt.Errorf("invalid age recipient %q: want an age1… public key", s)
		}
		out = append(out, r[0])
	}
	return out, nil
}

// parseIdentity parses one or more age identities (AGE-SECRET-KEY-1…,
// one a line; # comments allowed), as age-keygen writes them.
func parseIdentity(s string) ([]age.Identity, error) {
	ids, err := age.ParseIdentities(strings.NewReader(s))
	if err != nil {
		// age's message may quote the key; do not repeat it.
		return nil, fmt.Errorf("%w: the identity is not a valid age secret key (want AGE-SECRET-KEY-1…)", ErrDecrypt)
	}
	return ids, nil
}

// Identity resolves the backup's decryption identity (a secret reference);
// "" when the backup is not encrypted or no identity is configured.
func Identity(b *config.Backup) (string, error) {
	if b.Encrypt.Identity == "" {
		return "", nil
	}
	v, err := b.Encrypt.Identity.Resolve()
	if err != nil {
		return "", fmt.Errorf("backup %s: encrypt.identity: %w", b.Name, err)
	}
	return v, nil
}

// decrypt streams the age-encrypted src to dst with the identities.
func decrypt(dst io.Writer, src io.Reader, ids []age.Identity, m Manifest, object string) (int64, error) {
	r, err := age.Decrypt(src, ids...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return 0, fmt.Errorf("%w %s: object %s was encrypted to %s, and the configured identity matches none of them; set encrypt.identity to the secret key of one of those recipients",
				ErrDecrypt, m.Ref(), object, recipientList(m.Recipients))
		}
		return 0, fmt.Errorf("%w %s: object %s: %v", ErrDecrypt, m.Ref(), object, err)
	}
	n, err := io.Copy(dst, r)
	if err != nil {
		return n, fmt.Errorf("%w %s: object %s: %v", ErrDecrypt, m.Ref(), object, err)
	}
	return n, nil
}

func recipientList(rs []string) string {
	if len(rs) == 0 {
		return "unknown recipients"
	}
	return strings.Join(rs, ", ")
}
