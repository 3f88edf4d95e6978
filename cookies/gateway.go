package cookies

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// SecretSize is the size of a generated gateway secret, in bytes.
const SecretSize = 32

// minSecret is the shortest gateway secret Gateway accepts.
const minSecret = 16

// DefaultWindow is the gateway cookie lifetime used when none is set.
const DefaultWindow = 24 * time.Hour

// cookieEncoding renders cookies with letters and digits only, so a cookie
// is a valid unquoted argument to -setcookie / --cookie and a safe atom.
var cookieEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Gateway derives per-user gateway cookies: HMAC-SHA256(secret, user ‖
// window index), where the window index is the Unix time divided by
// Window. A cookie is accepted during its own window and the next one, so
// a cookie printed just before a window boundary keeps working.
//
// The secret is Secret (a file's, fixed), or, when Keys is set, the
// Keyring's current secret (Vault's, rotated); after a rotation cookies
// of the previous secret stay accepted until its PreviousUntil.
type Gateway struct {
	Secret []byte
	Keys   *Keyring
	Window time.Duration
}

func (g Gateway) window() time.Duration {
	if g.Window < time.Second {
		return DefaultWindow
	}
	return g.Window
}

// secrets returns the current secret, and the previous one while it is
// still accepted at now (nil otherwise).
func (g Gateway) secrets(now time.Time) (cur, prev []byte) {
	if g.Keys == nil {
		return g.Secret, nil
	}
	k := g.Keys.Load()
	if k == nil {
		return nil, nil
	}
	if k.Previous != nil && now.Before(k.PreviousUntil) {
		return k.Current, k.Previous
	}
	return k.Current, nil
}

// index returns the window index at t.
func (g Gateway) index(t time.Time) int64 {
	return t.Unix() / int64(g.window()/time.Second)
}

// Cookie returns user's gateway cookie for the window containing at: 32
// characters from A-Z and 2-7.
func (g Gateway) Cookie(user string, at time.Time) string {
	cur, _ := g.secrets(at)
	return cookieAt(cur, user, g.index(at))
}

func cookieAt(secret []byte, user string, idx int64) string {
	mac := hmac.New(sha256.New, secret)
	// Length-prefix the user so (user, index) pairs never collide.
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(len(user)))
	mac.Write([]byte("beamgate gateway cookie v1\x00"))
	mac.Write(hdr[:])
	mac.Write([]byte(user))
	binary.BigEndian.PutUint64(hdr[:], uint64(idx))
	mac.Write(hdr[:])
	return cookieEncoding.EncodeToString(mac.Sum(nil)[:20])
}

// Accepted returns the gateway cookies accepted for user at now: the
// current window's first, then the previous window's; then the same of
// the previous secret while it is still accepted after a rotation.
func (g Gateway) Accepted(user string, now time.Time) []string {
	idx := g.index(now)
	cur, prev := g.secrets(now)
	out := []string{cookieAt(cur, user, idx), cookieAt(cur, user, idx-1)}
	if prev != nil {
		out = append(out, cookieAt(prev, user, idx), cookieAt(prev, user, idx-1))
	}
	return out
}

// Expired returns user's n gateway cookies before the two current ones,
// newest first, so a refused handshake can say "expired" rather than
// "wrong".
func (g Gateway) Expired(user string, now time.Time, n int) []string {
	idx := g.index(now)
	cur, _ := g.secrets(now)
	out := make([]string, 0, n)
	for i := range int64(n) {
		out = append(out, cookieAt(cur, user, idx-2-i))
	}
	return out
}

// Expires returns when the cookie Cookie(user, at) stops being accepted.
func (g Gateway) Expires(at time.Time) time.Time {
	w := int64(g.window() / time.Second)
	return time.Unix((g.index(at)+2)*w, 0)
}

// Validate reports whether g can derive cookies safely.
func (g Gateway) Validate() error {
	secret := g.Secret
	if g.Keys != nil {
		if k := g.Keys.Load(); k != nil {
			secret = k.Current
		} else {
			secret = nil
		}
	}
	if len(secret) < minSecret {
		return fmt.Errorf("cookies: gateway secret of %d bytes is shorter than %d", len(secret), minSecret)
	}
	if g.Window != 0 && g.Window < time.Minute {
		return fmt.Errorf("cookies: gateway cookie window %s is shorter than 1m", g.Window)
	}
	return nil
}

// LoadOrCreateSecret reads the gateway secret at path, creating it with
// SecretSize random bytes and mode 0600 when it does not exist. A secret
// file readable by group or others is refused like a cookie file.
func LoadOrCreateSecret(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		secret := make([]byte, SecretSize)
		if _, err := rand.Read(secret); err != nil {
			f.Close()
			return nil, err
		}
		_, werr := f.Write(secret)
		cerr := f.Close()
		if err := errors.Join(werr, cerr); err != nil {
			return nil, fmt.Errorf("cookies: writing gateway secret: %w", err)
		}
		return secret, nil
	case !errors.Is(err, os.ErrExist):
		return nil, fmt.Errorf("cookies: %w", err)
	}
	f, err = os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cookies: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cookies: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, &PermissionError{Path: path, Mode: fi.Mode()}
	}
	secret, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("cookies: %w", err)
	}
	if len(secret) < minSecret {
		return nil, fmt.Errorf("cookies: gateway secret %s holds %d bytes, fewer than %d; delete it to generate a new one", path, len(secret), minSecret)
	}
	return secret, nil
}
