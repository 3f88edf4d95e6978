package config

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"beamgate/audit"
)

// Where audit.ship sends the records.
const (
	ShipSyslog = "syslog" // RFC 5424 to a syslog daemon (audit.NewSyslog)
	ShipStdout = "stdout" // JSON lines on stdout, for a container's log collector (audit.NewStdout)
)

// DefaultShipStateFile is the base name of audit.ship.state_file, beside
// the audit log.
const DefaultShipStateFile = "audit-ship.state"

// ShipConfig is audit.ship: an optional second sink the audit log is
// copied to. The file stays the source of truth; an audit.Shipper follows
// it and sends what is on disk (at least once, each record with its seq).
// Load fills in the defaults below.
type ShipConfig struct {
	// To is syslog or stdout.
	To string `yaml:"to"`
	// Network is the syslog transport: unix (datagram or stream socket),
	// tcp (RFC 6587 octet counting) or udp. Default: unix when Address is
	// empty or a path, tcp otherwise.
	Network string `yaml:"network"`
	// Address is the syslog daemon: a socket path for unix (default
	// /dev/log; relative paths resolve against the config file), host:port
	// for tcp and udp.
	Address string `yaml:"address"`
	// Facility is the syslog facility name (default authpriv).
	Facility string `yaml:"facility"`
	// MaxMessageSize bounds one syslog message in bytes; longer records are
	// cut and marked truncated. 0: 64 KiB on tcp and unix stream sockets,
	// 8 KiB on a unix datagram socket, 2 KiB on udp.
	MaxMessageSize int `yaml:"max_message_size"`
	// StateFile keeps the seq of the last record delivered, so a restart
	// resumes there (default: audit-ship.state beside audit.path).
	StateFile string `yaml:"state_file"`
}

// FacilityCode is the syslog facility number of Facility (validated by
// Load).
func (s *ShipConfig) FacilityCode() int {
	f, err := audit.SyslogFacility(s.Facility)
	if err != nil {
		return audit.FacilityAuthpriv
	}
	return f
}

// resolveShip fills in audit.ship's defaults and resolves its paths.
func (c *Config) resolveShip(abs func(*string)) {
	s := c.Audit.Ship
	if s == nil {
		return
	}
	if s.StateFile == "" && c.Audit.Path != "" {
		s.StateFile = filepath.Join(filepath.Dir(c.Audit.Path), DefaultShipStateFile)
	}
	abs(&s.StateFile)
	if s.To != ShipSyslog {
		return
	}
	if s.Network == "" {
		s.Network = "tcp"
		if s.Address == "" || strings.ContainsRune(s.Address, '/') {
			s.Network = "unix"
		}
	}
	if s.Network == "unix" {
		if s.Address == "" {
			s.Address = "/dev/log"
		}
		abs(&s.Address)
	}
	if s.Facility == "" {
		s.Facility = "authpriv"
	}
}

// validateShip checks audit.ship.
func (c *Config) validateShip(bad func(key, problem, fix string)) {
	s := c.Audit.Ship
	if s == nil {
		return
	}
	const k = "audit.ship."
	switch s.To {
	case ShipSyslog:
	case ShipStdout:
		for _, f := range []struct {
			key string
			set bool
		}{{"network", s.Network != ""}, {"address", s.Address != ""}, {"facility", s.Facility != ""}, {"max_message_size", s.MaxMessageSize != 0}} {
			if f.set {
				bad(k+f.key, "only used with to: syslog", "remove it, or set to: syslog")
			}
		}
	case "":
		bad(k+"to", "missing", "set to: syslog (a syslog daemon) or to: stdout (JSON lines for a container's log collector)")
	default:
		bad(k+"to", fmt.Sprintf("unknown destination %q", s.To), "use to: syslog or to: stdout")
	}
	if s.StateFile != "" && s.StateFile == c.Audit.Path {
		bad(k+"state_file", "is the audit log itself", "use another file, e.g. ./state/"+DefaultShipStateFile)
	}
	if s.To != ShipSyslog {
		return
	}
	switch s.Network {
	case "unix":
	case "tcp", "udp":
		host, port, err := net.SplitHostPort(s.Address)
		switch {
		case s.Address == "":
			bad(k+"address", "missing", fmt.Sprintf("set the syslog daemon's host:port for network: %s, e.g. 127.0.0.1:514", s.Network))
		case err != nil || host == "":
			bad(k+"address", fmt.Sprintf("%q is not host:port", s.Address), "write it like 127.0.0.1:514 or logs.example.com:514")
		default:
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				bad(k+"address", fmt.Sprintf("port %q is not a TCP/UDP port", port), "use a port such as 514")
			}
		}
	default:
		bad(k+"network", fmt.Sprintf("unknown network %q", s.Network), "use unix (a socket such as /dev/log), tcp or udp")
	}
	if _, err := audit.SyslogFacility(s.Facility); err != nil {
		bad(k+"facility", fmt.Sprintf("unknown facility %q", s.Facility), "use authpriv (the default), auth, daemon, user or local0..local7")
	}
	if n := s.MaxMessageSize; n != 0 && (n < 480 || n > audit.MaxLineLen+4096) {
		bad(k+"max_message_size", fmt.Sprintf("%d bytes is out of range", n), "use 480..1052672 bytes, e.g. 65536 (rsyslog needs maxMessageSize raised above its 8k default for that)")
	}
}
