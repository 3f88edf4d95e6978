package cookies

import "testing"

// FuzzParseCookieFile: arbitrary cookie files never panic and accepted
// ones have no empty names or cookies.
func FuzzParseCookieFile(f *testing.F) {
	f.Add([]byte("prismatic: SECRET\n"))
	f.Add([]byte("a: x\na: y\n"))
	f.Add([]byte("- SECRET\n"))
	f.Add([]byte("a: [SECRET]\n"))
	f.Add([]byte("{{{SECRET"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxCookieFile {
			return
		}
		m, err := parseCookieFile(data)
		if err != nil {
			return
		}
		for k, v := range m {
			if k == "" || v == "" {
				t.Fatalf("accepted empty entry %q: %q", k, v)
			}
		}
	})
}
