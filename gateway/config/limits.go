package config

import (
	"fmt"
	"syscall"
	"time"
)

// Defaults of the buffer limits and the forward timeout.
const (
	DefaultMaxBufferedPerSession = ByteSize(512 << 20)
	DefaultForwardTimeout        = 10 * time.Second
	DefaultShutdownGrace         = 30 * time.Second
	// fallbackBufferBudget is the buffer budget when the machine's memory
	// cannot be read.
	fallbackBufferBudget = ByteSize(2 << 30)
)

// resolveBudgets fills in the buffer and forward defaults.
func (c *Config) resolveBudgets() {
	l := &c.Limits
	if l.MaxBufferedPerSession == 0 {
		l.MaxBufferedPerSession = DefaultMaxBufferedPerSession
	}
	if l.BufferBudget == 0 {
		l.BufferBudget = defaultBufferBudget()
	}
	if l.ForwardTimeout == 0 {
		l.ForwardTimeout = DefaultForwardTimeout
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
}

func (c *Config) validateBudgets(bad func(key, problem, fix string)) {
	l := c.Limits
	if l.MaxBufferedPerSession < 1<<20 {
		bad("limits.max_buffered_per_session", fmt.Sprintf("%d bytes is below 1MiB", l.MaxBufferedPerSession), "use a size such as 512MiB (omit the key for the default)")
	}
	if l.BufferBudget < 1<<20 {
		bad("limits.buffer_budget", fmt.Sprintf("%d bytes is below 1MiB", l.BufferBudget),
			"use a size such as 2GiB (omit the key for a quarter of the machine's memory)")
	}
	if c.ShutdownGrace < 0 || c.ShutdownGrace > time.Hour {
		bad("shutdown_grace", fmt.Sprintf("%s is out of range", c.ShutdownGrace), "use a duration between 1s and 1h, e.g. 30s (omit the key for the default)")
	}
	if l.ForwardTimeout < time.Second {
		bad("limits.forward_timeout", fmt.Sprintf("%s is below 1s", l.ForwardTimeout), "use a duration such as 10s (omit the key for the default)")
	}
}

// defaultBufferBudget is a quarter of the machine's memory (sysinfo(2),
// which the systemd unit's filter allows, unlike /proc/meminfo under
// ProcSubset=pid), or 2GiB when that cannot be read.
func defaultBufferBudget() ByteSize {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil || si.Totalram == 0 {
		return fallbackBufferBudget
	}
	return ByteSize(uint64(si.Totalram) * uint64(si.Unit) / 4)
}
