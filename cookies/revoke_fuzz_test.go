package cookies

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodeRevocationList feeds arbitrary JSON (as Vault returns KV data)
// to the revocation list decoder: it must not panic, and what it accepts
// must be usable for lookups.
func FuzzDecodeRevocationList(f *testing.F) {
	f.Add(`{"entries":[{"id":"a","user":"alice","time":"2026-01-02T03:04:05Z","reason":"left","actor":"ops"}]}`)
	f.Add(`{"entries":[{"id":"b","serial":"18446744073709551615","time":"2026-01-02T03:04:05Z","reason":"","actor":""}]}`)
	f.Add(`{"entries":[{"id":"c","fingerprint":"SHA256:abc","key_id":"k","time":"2026-01-02T03:04:05Z"}]}`)
	f.Add(`{"entries":[{"id":"d"}]}`)
	f.Add(`{"entries":{}}`)
	f.Add(`{"entries":null}`)
	f.Add(`{}`)
	f.Add(`{"entries":[{"serial":12}]}`)
	f.Fuzz(func(t *testing.T, src string) {
		var data map[string]any
		dec := json.NewDecoder(strings.NewReader(src))
		dec.UseNumber()
		if dec.Decode(&data) != nil || data == nil {
			return
		}
		list, err := decodeRevocationList(data)
		if err != nil {
			return
		}
		s := newSnapshot(1, list.Entries)
		for _, e := range list.Entries {
			if !s.Revoked(e.User, e.Fingerprint, e.KeyID, e.Serial) {
				t.Fatalf("accepted entry %+v does not revoke", e)
			}
		}
	})
}
