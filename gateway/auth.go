package gateway

import (
	"beamgate/gateway/config"
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
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

	key gossh.PublicKey // what the user authenticated with (Reload re-checks it)
}

// Authentication failure reasons. They go to the audit log and never carry
// secrets; the client only learns that authentication failed.
var (
	errUnknownUser    = errors.New("unknown user")
	errKeyNotListed   = errors.New("public key not listed for user")
	errNotUserCert    = errors.New("certificate is not a user certificate")
	errUnknownCA      = errors.New("certificate signed by an unknown CA")
	errNoClientAuth   = errors.New("authentication method none refused")
	errTooManyConns   = errors.New("too many connections for user")
	errAuditFailed    = errors.New("audit log unavailable")
	errCertAuthority  = errors.New("certificate signature key is itself a certificate")
	errNotAuthedYet   = errors.New("authentication not completed")
	errHandshakeTimer = errors.New("handshake timeout")
)

// authenticator decides public-key and certificate logins against a
// validated Config. It is safe for concurrent use.
type authenticator struct {
	cfg   func() *config.Config // the configuration in force
	clock func() time.Time
}

// checkKey is the PublicKeyCallback: it decides whether key may log in as
// conn.User(). It runs for queries as well as signed attempts, so it
// returns only restrictions (a certificate's critical options), never an
// identity: that is built by verified once the signature checked out.
func (a *authenticator) checkKey(conn gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
	user, ok := a.cfg().Users[conn.User()]
	if !ok || user == nil {
		return nil, errUnknownUser
	}
	cert, isCert := key.(*gossh.Certificate)
	if !isCert {
		wire := key.Marshal()
		if user.HasKey(wire) {
			return &gossh.Permissions{}, nil
		}
		return nil, errKeyNotListed
	}
	if err := a.checkCert(conn.User(), cert); err != nil {
		return nil, err
	}
	return &gossh.Permissions{CriticalOptions: cloneMap(cert.CriticalOptions)}, nil
}

// checkCert checks a user certificate: type, a configured CA as signer,
// the principal, validity and its signature. source-address is enforced by
// x/crypto on the returned critical options.
func (a *authenticator) checkCert(principal string, cert *gossh.Certificate) error {
	if cert.CertType != gossh.UserCert {
		return errNotUserCert
	}
	if _, ok := cert.SignatureKey.(*gossh.Certificate); ok {
		return errCertAuthority
	}
	ca := cert.SignatureKey.Marshal()
	if !slices.ContainsFunc(a.cfg().CAKeys(), func(k gossh.PublicKey) bool { return bytes.Equal(k.Marshal(), ca) }) {
		return errUnknownCA
	}
	checker := gossh.CertChecker{
		SupportedCriticalOptions: []string{"source-address"},
		Clock:                    a.clock,
	}
	if err := checker.CheckCert(principal, cert); err != nil {
		return fmt.Errorf("certificate refused: %w", err)
	}
	return nil
}

// verified is the VerifiedPublicKeyCallback: key has been proven. It
// returns fresh Permissions carrying the Identity and the certificate's
// critical options (checked again by x/crypto).
func (a *authenticator) verified(conn gossh.ConnMetadata, key gossh.PublicKey, perms *gossh.Permissions) (*gossh.Permissions, error) {
	if perms == nil {
		return nil, errKeyNotListed
	}
	id := &Identity{User: conn.User(), Fingerprint: gossh.FingerprintSHA256(key), key: key}
	out := &gossh.Permissions{ExtraData: map[any]any{}}
	if cert, ok := key.(*gossh.Certificate); ok {
		// Re-check: the PublicKeyCallback result may have been cached
		// from a query made at another time.
		if err := a.checkCert(conn.User(), cert); err != nil {
			return nil, err
		}
		id.Cert = true
		id.KeyID = cert.KeyId
		id.CertSerial = cert.Serial
		id.Fingerprint = gossh.FingerprintSHA256(cert.Key)
		out.CriticalOptions = cloneMap(cert.CriticalOptions)
	} else {
		id.KeyID = id.Fingerprint
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
