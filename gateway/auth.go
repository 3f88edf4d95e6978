package gateway

import (
	"beamgate/gateway/config"
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// identityKey indexes the verified identity in gossh.Permissions.ExtraData.
type identityKey struct{}

// Identity is who an SSH connection authenticated as. It is created only in
// VerifiedPublicKeyCallback, i.e. after the client proved it holds the key,
// and read back from the connection's gossh.ServerConn.Permissions.
type Identity struct {
	User        string
	KeyID       string // certificate key id, or the key's SHA256 fingerprint
	Fingerprint string // SHA256 fingerprint of the key (the certificate's key for certificates)
	CertSerial  uint64 // certificate serial; 0 for plain keys
	Cert        bool   // authenticated with a certificate

	// For certificates: the CA that signed it (its name and key
	// fingerprint), when it stops being valid (zero: never), and the
	// roles its principals granted.
	CA            string
	CAFingerprint string
	CertExpires   time.Time
	CertRoles     []string
	// RoleSource says where the roles come from: "users entry",
	// "certificate" or "certificate + users entry".
	RoleSource string

	roles atomic.Pointer[[]string] // in force; a reload may change them
	key   gossh.PublicKey          // what the user authenticated with (Reload re-checks it)
}

// Roles returns the roles the identity holds now.
func (id *Identity) Roles() []string {
	if p := id.roles.Load(); p != nil {
		return *p
	}
	return nil
}

func (id *Identity) setRoles(r []string) { r = slices.Clone(r); id.roles.Store(&r) }

// Role sources.
const (
	rolesFromEntry = "users entry"
	rolesFromCert  = "certificate"
	rolesFromBoth  = "certificate + users entry"
)

// Authentication failure reasons. They go to the audit log and never carry
// secrets; the client only learns that authentication failed.
var (
	errUnknownUser  = errors.New("unknown user")
	errKeyNotListed = errors.New("public key not listed for user")
	errNotUserCert  = errors.New("certificate is not a user certificate")
	errUnknownCA    = errors.New("certificate signed by an unknown CA")
	errNoClientAuth = errors.New("authentication method none refused")
	errTooManyConns = errors.New("too many connections for user")
	// errTooManyStarting: over limits.max_unauthenticated.
	errTooManyStarting = errors.New("too many connections still logging in")
	errAuditFailed     = errors.New("audit log unavailable")
	errCertAuthority   = errors.New("certificate signature key is itself a certificate")
	errNotAuthedYet    = errors.New("authentication not completed")
	errHandshakeTimer  = errors.New("handshake timeout")
	errCertRefused     = errors.New("certificate refused")
)

// authenticator decides public-key and certificate logins against a
// validated Config. It is safe for concurrent use.
type authenticator struct {
	cfg   func() *config.Config // the configuration in force
	clock func() time.Time
	// vaultKeys returns the keys a user_cas entry with vault_mount trusts
	// now (read from Vault; nil when none was read yet).
	vaultKeys func(ca *config.UserCA) []gossh.PublicKey
}

// checkKey is the PublicKeyCallback: it decides whether key may log in as
// conn.User(). It runs for queries as well as signed attempts, so it
// returns only restrictions (a certificate's critical options), never an
// identity: that is built by verified once the signature checked out.
func (a *authenticator) checkKey(conn gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
	cfg := a.cfg()
	cert, isCert := key.(*gossh.Certificate)
	if !isCert {
		user, ok := cfg.Users[conn.User()]
		if !ok || user == nil {
			return nil, errUnknownUser
		}
		if user.HasKey(key.Marshal()) {
			return &gossh.Permissions{}, nil
		}
		return nil, errKeyNotListed
	}
	if _, err := a.checkCert(cfg, conn.User(), cert); err != nil {
		return nil, err
	}
	return &gossh.Permissions{CriticalOptions: cloneMap(cert.CriticalOptions)}, nil
}

// certGrant is what a certificate logs its user in with.
type certGrant struct {
	ca      *config.UserCA
	caKey   gossh.PublicKey
	roles   []string // in force
	granted []string // of those, from the certificate's principals
	source  string
	expires time.Time // zero: valid forever
}

// checkCert checks a user certificate for user under cfg: its type, a
// trusted CA as signer, user among its principals, its validity now and
// within the CA's max_cert_validity, its critical options (source-address
// is enforced by x/crypto on the returned critical options), and the
// roles its principals grant. It returns the roles the login gets.
func (a *authenticator) checkCert(cfg *config.Config, user string, cert *gossh.Certificate) (*certGrant, error) {
	if cert.CertType != gossh.UserCert {
		return nil, errNotUserCert
	}
	if _, ok := cert.SignatureKey.(*gossh.Certificate); ok {
		return nil, errCertAuthority
	}
	g := &certGrant{}
	g.ca, g.caKey = a.caOf(cfg, cert.SignatureKey)
	if g.ca == nil {
		return nil, errUnknownCA
	}
	if !config.ValidUserName(user) {
		return nil, fmt.Errorf("%w: user name %q is not one beamgate accepts (letters, digits, '-', '_', '.')", errUnknownUser, user)
	}
	checker := gossh.CertChecker{
		SupportedCriticalOptions: []string{"source-address"},
		Clock:                    a.clock,
	}
	if err := checker.CheckCert(user, cert); err != nil {
		return nil, fmt.Errorf("%w: %w", errCertRefused, err)
	}
	if max := g.ca.MaxCertValidity; max > 0 {
		if cert.ValidBefore == gossh.CertTimeInfinity {
			return nil, fmt.Errorf("%w: valid forever, over CA %s's max_cert_validity of %s", errCertRefused, g.ca.Name, shortDuration(max))
		}
		if span := cert.ValidBefore - cert.ValidAfter; cert.ValidBefore < cert.ValidAfter || span > uint64(max/time.Second) {
			return nil, fmt.Errorf("%w: valid for %s, over CA %s's max_cert_validity of %s (sign it with a shorter validity, e.g. ssh-keygen -V +%s or Vault's ttl)",
				errCertRefused, spanString(span), g.ca.Name, shortDuration(max), shortDuration(max))
		}
	}
	if cert.ValidBefore != gossh.CertTimeInfinity && cert.ValidBefore < 1<<62 {
		g.expires = time.Unix(int64(cert.ValidBefore), 0)
	}
	granted, err := cfg.RolesFor(g.ca, cert.ValidPrincipals)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCertRefused, err)
	}
	g.granted = granted
	entry := cfg.Users[user]
	switch {
	case len(granted) == 0 && entry == nil:
		return nil, fmt.Errorf("%w: %w: the certificate grants no role (no %sROLE principal) and %s has no users: entry", errUnknownUser, errCertRefused, rolePrefix(g.ca), user)
	case len(granted) == 0:
		g.roles, g.source = entry.Roles, rolesFromEntry
	case entry != nil && g.ca.MergeUserRoles:
		g.roles, g.source = granted, rolesFromBoth
		for _, r := range entry.Roles {
			if !slices.Contains(g.roles, r) {
				g.roles = append(slices.Clip(g.roles), r)
			}
		}
	default:
		g.roles, g.source = granted, rolesFromCert
	}
	return g, nil
}

// spanString renders a certificate's validity span in seconds.
func spanString(secs uint64) string {
	if secs > 100*365*24*3600 {
		return "over 100 years"
	}
	return shortDuration(time.Duration(secs) * time.Second)
}

// shortDuration renders d as people write it: 12h, 2h5m, 90s, 3d.
func shortDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func rolePrefix(ca *config.UserCA) string {
	if ca.Legacy() {
		return config.DefaultRolePrefix
	}
	return ca.RolePrefix
}

// caOf returns the trusted CA whose key signed a certificate, and that key.
func (a *authenticator) caOf(cfg *config.Config, signer gossh.PublicKey) (*config.UserCA, gossh.PublicKey) {
	wire := signer.Marshal()
	for _, ca := range cfg.UserCAs() {
		keys := []gossh.PublicKey{ca.PublicKey()}
		if ca.VaultMount != "" {
			keys = nil
			if a.vaultKeys != nil {
				keys = a.vaultKeys(ca)
			}
		}
		for _, k := range keys {
			if k != nil && bytes.Equal(k.Marshal(), wire) {
				return ca, k
			}
		}
	}
	return nil, nil
}

// verified is the VerifiedPublicKeyCallback: key has been proven. It
// returns fresh Permissions carrying the Identity and the certificate's
// critical options (checked again by x/crypto).
func (a *authenticator) verified(conn gossh.ConnMetadata, key gossh.PublicKey, perms *gossh.Permissions) (*gossh.Permissions, error) {
	if perms == nil {
		return nil, errKeyNotListed
	}
	cfg := a.cfg()
	id := &Identity{User: conn.User(), Fingerprint: gossh.FingerprintSHA256(key), key: key}
	out := &gossh.Permissions{ExtraData: map[any]any{}}
	if cert, ok := key.(*gossh.Certificate); ok {
		// Re-check: the PublicKeyCallback result may have been cached
		// from a query made at another time.
		g, err := a.checkCert(cfg, conn.User(), cert)
		if err != nil {
			return nil, err
		}
		id.Cert = true
		id.KeyID = cert.KeyId
		id.CertSerial = cert.Serial
		id.Fingerprint = gossh.FingerprintSHA256(cert.Key)
		id.CA, id.CAFingerprint = g.ca.Name, gossh.FingerprintSHA256(g.caKey)
		id.CertExpires, id.CertRoles, id.RoleSource = g.expires, g.granted, g.source
		id.setRoles(g.roles)
		out.CriticalOptions = cloneMap(cert.CriticalOptions)
	} else {
		u := cfg.Users[id.User]
		if u == nil {
			return nil, errUnknownUser
		}
		id.KeyID = id.Fingerprint
		id.RoleSource = rolesFromEntry
		id.setRoles(u.Roles)
	}
	out.ExtraData[identityKey{}] = id
	out.Extensions = map[string]string{"beamgate-user": id.User}
	return out, nil
}

// identityOf returns the verified identity of an authenticated connection.
func identityOf(sc *gossh.ServerConn) (*Identity, bool) {
	if sc == nil || sc.Permissions == nil {
		return nil, false
	}
	id, ok := sc.Permissions.ExtraData[identityKey{}].(*Identity)
	return id, ok && id != nil && id.User == sc.User()
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sshAlgorithms are the restricted algorithms the server offers.
var (
	kexAlgorithms = []string{"mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org"}
	// chacha20-poly1305 is left out on purpose: x/crypto has no amd64
	// assembly for it, and OpenSSH clients prefer it, so offering it made
	// bulk transfers (a 64 MiB term) CPU-bound in pure-Go ChaCha20. AES-GCM
	// runs on AES-NI; OpenSSH negotiates it when chacha is not offered.
	cipherSuites  = []string{"aes128-gcm@openssh.com", "aes256-gcm@openssh.com"}
	macAlgorithms = []string{"hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"}
)

// publicKeyAuthAlgorithms is x/crypto's supported list without SHA-1 RSA
// and DSA.
func publicKeyAuthAlgorithms() []string {
	return slices.DeleteFunc(gossh.SupportedAlgorithms().PublicKeyAuths, func(a string) bool {
		// DSA by name: x/crypto deprecates its constants, and a future
		// version may drop them while still listing the algorithm.
		return a == gossh.KeyAlgoRSA || a == "ssh-dss" ||
			a == gossh.CertAlgoRSAv01 || a == "ssh-dss-cert-v01@openssh.com"
	})
}

// sourceAddr renders a remote address for audit records.
func sourceAddr(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
