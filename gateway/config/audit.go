package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Audit defaults.
const (
	DefaultRotateSize         = 256 << 20
	DefaultCheckpointInterval = 10 * time.Second
	DefaultTransitMount       = "transit"
	DefaultTransitKey         = "beamgate-audit"
	DefaultCheckpointKVPath   = "beamgate/audit/checkpoints"
)

// CheckpointConfig is audit.checkpoint. With the Vault cookie backend the
// checkpoints are signed by Vault Transit and the latest one per replica
// is kept in Vault KV; with the file backend they are signed by a local
// ed25519 key (KeyFile) and the latest one is kept beside that key. Either
// way the signing key is out of the audit directory's reach.
type CheckpointConfig struct {
	Interval time.Duration `yaml:"interval"` // default 10s
	// KeyFile is the file backend's signing key (created when missing).
	// Default: checkpoint-key in the directory <audit dir>.anchor beside
	// the audit directory. It must not be in the audit directory.
	KeyFile string `yaml:"key_file"`
	// TransitMount and TransitKey name the Vault Transit key (type
	// ed25519), KVPath where the checkpoints go below cookies.vault's KV
	// mount.
	TransitMount string `yaml:"transit_mount"`
	TransitKey   string `yaml:"transit_key"`
	KVPath       string `yaml:"kv_path"`
}

// ByteSize is a size in bytes, written as a number or with a unit: 512KiB,
// 256MiB, 1GiB (also KB, MB, GB as powers of 1000).
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseByteSize parses a ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (use bytes or a unit: 256MiB, 1GiB)", s)
	}
	return ByteSize(n * mult), nil
}

// RotateDailyOn is audit.rotate_daily with its default.
func (a AuditConfig) RotateDailyOn() bool { return a.RotateDaily == nil || *a.RotateDaily }

// AnchorDir is the directory of the file backend's checkpoint key and
// latest checkpoints.
func (a AuditConfig) AnchorDir() string { return filepath.Dir(a.Checkpoint.KeyFile) }

func (c *Config) resolveAudit(abs func(*string)) {
	a := &c.Audit
	if a.Replica == "" {
		a.Replica, _ = os.Hostname()
		if a.Replica == "" {
			a.Replica = "beamgate"
		}
	}
	if a.RotateSize == 0 {
		a.RotateSize = DefaultRotateSize
	}
	cp := &a.Checkpoint
	if cp.Interval == 0 {
		cp.Interval = DefaultCheckpointInterval
	}
	abs(&cp.KeyFile)
	if cp.KeyFile == "" && a.Path != "" {
		dir := filepath.Dir(a.Path)
		cp.KeyFile = filepath.Join(dir+".anchor", "checkpoint-key")
	}
	if cp.TransitMount == "" {
		cp.TransitMount = DefaultTransitMount
	}
	if cp.TransitKey == "" {
		cp.TransitKey = DefaultTransitKey
	}
	if cp.KVPath == "" {
		cp.KVPath = DefaultCheckpointKVPath
	}
}

func (c *Config) validateAudit(bad func(key, problem, fix string)) {
	a := c.Audit
	if a.Path == "" {
		return
	}
	if !validName(a.Replica) {
		bad("audit.replica", fmt.Sprintf("%q is not a name (letters, digits, '-', '_', '.')", a.Replica), "set audit.replica to this gateway's name, e.g. bastion-1")
	}
	if a.RotateSize < 0 || (a.RotateSize > 0 && a.RotateSize < 64<<10) {
		bad("audit.rotate_size", fmt.Sprintf("%d bytes", a.RotateSize), "use at least 64KiB, e.g. 256MiB")
	}
	if a.Keep < 0 {
		bad("audit.keep", "is negative", "set how many rotated files to keep, or 0 to keep all")
	}
	if a.KeepAge < 0 || (a.KeepAge > 0 && a.KeepAge < time.Hour) {
		bad("audit.keep_age", a.KeepAge.String(), "use 0 (no age limit) or at least 1h, e.g. 2160h for 90 days")
	}
	cp := a.Checkpoint
	if cp.Interval < time.Second || cp.Interval > time.Hour {
		bad("audit.checkpoint.interval", cp.Interval.String(), "use between 1s and 1h (default 10s): records after the newest checkpoint can be cut undetected")
	}
	if c.Cookies.Backend != "vault" {
		keyDir, _ := filepath.Abs(filepath.Dir(cp.KeyFile))
		logDir, _ := filepath.Abs(filepath.Dir(a.Path))
		if keyDir == logDir || strings.HasPrefix(keyDir, logDir+string(filepath.Separator)) {
			bad("audit.checkpoint.key_file", fmt.Sprintf("%s is inside the audit directory %s", cp.KeyFile, logDir),
				"put the checkpoint key outside the audit directory (the default is "+logDir+".anchor/checkpoint-key), so that rewriting the log alone is caught")
		}
	}
}
