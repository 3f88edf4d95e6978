package rotate

import "testing"

func TestEpmdAddr(t *testing.T) {
	for _, tt := range [][3]string{
		{"prod-01", "a@prod-01", "prod-01:4369"},
		{"127.0.0.2:4400", "a@x", "127.0.0.2:4400"},
		{"", "a@prod-02", "prod-02:4369"},
		{"[::1]:4369", "a@x", "[::1]:4369"},
		{"::1", "a@x", "[::1]:4369"},
	} {
		if got := epmdAddr(tt[0], tt[1]); got != tt[2] {
			t.Errorf("epmdAddr(%q, %q) = %q, want %q", tt[0], tt[1], got, tt[2])
		}
	}
}
