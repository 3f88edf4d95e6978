package handshake

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"strconv"
)

// Digest returns the handshake digest md5(cookie ++ decimal(challenge))
// (dist_util gen_digest; docs/wire.md#digest-and-challenge).
func Digest(challenge uint32, cookie string) [16]byte {
	h := md5.New()
	h.Write([]byte(cookie))
	h.Write(strconv.AppendUint(nil, uint64(challenge), 10))
	var d [16]byte
	h.Sum(d[:0])
	return d
}

// CheckDigest reports, in constant time, whether digest answers challenge
// for cookie.
func CheckDigest(digest [16]byte, challenge uint32, cookie string) bool {
	want := Digest(challenge, cookie)
	return subtle.ConstantTimeCompare(digest[:], want[:]) == 1
}

// NewChallenge returns a random challenge from crypto/rand (OTP's own
// gen_challenge is not cryptographic).
func NewChallenge() (uint32, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("handshake: generating challenge: %w", err)
	}
	return binary.BigEndian.Uint32(b[:]), nil
}
