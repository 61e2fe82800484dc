package fix

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

// Crypt encrypts images at rest with age. The zero value (and nil) keeps
// images as plain JSON.
type Crypt struct {
	Recipients []age.Recipient // encrypt to these
	Identities []age.Identity  // decrypt with these
}

// CryptFromEnv reads STEWARD_IMAGE_RECIPIENTS (age1… public keys, comma or
// space separated) and STEWARD_IMAGE_IDENTITY (a file holding
// AGE-SECRET-KEY-1… lines). Both unset: nil, images are stored in clear.
func CryptFromEnv() (*Crypt, error) {
	rs, idFile := os.Getenv("STEWARD_IMAGE_RECIPIENTS"), os.Getenv("STEWARD_IMAGE_IDENTITY")
	if rs == "" && idFile == "" {
		return nil, nil
	}
	c := &Crypt{}
	for _, f := range strings.FieldsFunc(rs, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		r, err := age.ParseX25519Recipient(f)
		if err != nil {
			return nil, fmt.Errorf("STEWARD_IMAGE_RECIPIENTS: %q is not an age1… public key", f)
		}
		c.Recipients = append(c.Recipients, r)
	}
	if idFile != "" {
		b, err := os.ReadFile(idFile)
		if err != nil {
			return nil, fmt.Errorf("STEWARD_IMAGE_IDENTITY: %w", err)
		}
		ids, err := age.ParseIdentities(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("STEWARD_IMAGE_IDENTITY %s: not an age identity file (want AGE-SECRET-KEY-1… lines)", idFile)
		}
		c.Identities = ids
	}
	return c, nil
}

func (c *Crypt) enabled() bool { return c != nil && len(c.Recipients) > 0 }

// seal encrypts a JSON document to the recipients (base64 of the age file).
func (c *Crypt) seal(doc string) (string, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, c.Recipients...)
	if err != nil {
		return "", fmt.Errorf("encrypt image: %w", err)
	}
	if _, err := io.WriteString(w, doc); err != nil {
		return "", fmt.Errorf("encrypt image: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("encrypt image: %w", err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// open decrypts what seal wrote.
func (c *Crypt) open(text string) (string, error) {
	if c == nil || len(c.Identities) == 0 {
		return "", fmt.Errorf("images are encrypted: set STEWARD_IMAGE_IDENTITY to the age identity of one of their recipients")
	}
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return "", fmt.Errorf("decrypt image: %w", err)
	}
	r, err := age.Decrypt(bytes.NewReader(raw), c.Identities...)
	if err != nil {
		return "", fmt.Errorf("decrypt image: %w", err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("decrypt image: %w", err)
	}
	return string(b), nil
}
