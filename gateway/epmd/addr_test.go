package epmd

import "testing"

func TestAddr(t *testing.T) {
	for _, tt := range [][3]string{
		{"prod-01", "prod-01:4369", "prod-01"},
		{"127.0.0.2:4400", "127.0.0.2:4400", "127.0.0.2"},
		{"[::1]:4369", "[::1]:4369", "::1"},
		{"::1", "[::1]:4369", "::1"},
		{"[::1]", "[::1]:4369", "::1"},
	} {
		if addr, host := Addr(tt[0]); addr != tt[1] || host != tt[2] {
			t.Errorf("Addr(%q) = %q, %q; want %q, %q", tt[0], addr, host, tt[1], tt[2])
		}
	}
}
