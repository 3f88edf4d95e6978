//go:build !linux

package audit

import "net"

// syslogOutq is unavailable: a written record counts as delivered, and
// confirmation rests on AckDelay alone.
func syslogOutq(net.Conn) (int, bool) { return 0, false }
