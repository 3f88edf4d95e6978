package config

import (
	"fmt"
	"net"
	"strconv"
)

// OpsConfig is ops: the operations listener (gateway/ops), which serves
// Prometheus metrics (/metrics), liveness (/livez) and readiness
// (/readyz) over plain HTTP. It is off unless Listen is set.
type OpsConfig struct {
	// Listen is the host:port the ops listener binds, e.g. 127.0.0.1:9464
	// ("" = off, the default). An address other than loopback is allowed
	// (Kubernetes probes and scrapes the pod IP) and logs a warning at
	// start: anyone who reaches it reads the metrics.
	Listen string `yaml:"listen"`
}

// validateOps checks ops.
func (c *Config) validateOps(bad func(key, problem, fix string)) {
	l := c.Ops.Listen
	if l == "" {
		return
	}
	const fix = "write it like 127.0.0.1:9464 (loopback), or :9464 / POD_IP:9464 for Kubernetes probes; omit ops.listen to turn the listener off"
	host, port, err := net.SplitHostPort(l)
	if err != nil {
		bad("ops.listen", fmt.Sprintf("%q is not host:port", l), fix)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		bad("ops.listen", fmt.Sprintf("port %q is not a TCP port", port), fix)
		return
	}
	if host != "" && net.ParseIP(host) == nil && !ValidHost(host) {
		bad("ops.listen", fmt.Sprintf("host %q is neither an IP address nor a host name", host), fix)
		return
	}
	if l == c.Listen {
		bad("ops.listen", fmt.Sprintf("%q is also listen, the SSH front door's address", l), "give the ops listener its own port, e.g. 127.0.0.1:9464")
	}
}
