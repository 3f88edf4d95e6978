package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Checkpoint is a signed statement about the head of one log: the log
// LogID, written by Replica, had its record Seq with hash Head at time At.
// A checkpoint is kept twice: as an EventCheckpoint record in the log, and
// as the latest checkpoint of its replica in an [Anchor] outside the log
// (Vault KV, or a file beside a key the gateway's audit directory does not
// hold). Verification checks the log against both: a truncated, emptied or
// replaced log no longer reaches the checkpoint its anchor holds.
type Checkpoint struct {
	LogID   string    `json:"log_id"`
	Replica string    `json:"replica"`
	Seq     uint64    `json:"seq"`
	Head    string    `json:"head"`
	At      time.Time `json:"at"`
	KeyID   string    `json:"key_id"` // which key signed: "ed25519:<fingerprint>" or "vault-transit:<key>:<version>"
	Sig     string    `json:"sig"`    // the signature over SignedBytes, as the Signer encodes it
}

// SignedBytes is what a checkpoint's signature covers: a fixed, versioned
// text form of every field but the signature.
func (c Checkpoint) SignedBytes() []byte {
	return fmt.Appendf(nil, "beamgate audit checkpoint v1\nlog_id %s\nreplica %s\nseq %d\nhead %s\nat %s\nkey_id %s\n",
		c.LogID, c.Replica, c.Seq, c.Head, c.At.UTC().Format(time.RFC3339Nano), c.KeyID)
}

// detail renders c as a checkpoint record's Detail.
func (c Checkpoint) detail() map[string]string {
	return map[string]string{
		"log_id": c.LogID, "replica": c.Replica, "seq": strconv.FormatUint(c.Seq, 10), "head": c.Head,
		"at": c.At.UTC().Format(time.RFC3339Nano), "key_id": c.KeyID, "sig": c.Sig,
	}
}

// checkpointOf reads a checkpoint back from an EventCheckpoint record.
func checkpointOf(r *Record) (Checkpoint, error) {
	d := r.Detail
	seq, err := strconv.ParseUint(d["seq"], 10, 64)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint record %d: bad seq %q", r.Seq, d["seq"])
	}
	at, err := time.Parse(time.RFC3339Nano, d["at"])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint record %d: bad time %q", r.Seq, d["at"])
	}
	return Checkpoint{LogID: d["log_id"], Replica: d["replica"], Seq: seq, Head: d["head"], At: at, KeyID: d["key_id"], Sig: d["sig"]}, nil
}

// Signer signs checkpoints with a key the gateway can use but not read
// out: Vault Transit, or (file backend) an ed25519 key outside the audit
// directory.
type Signer interface {
	// KeyID names the key (and version) a signature is made with.
	KeyID() string
	// Sign returns the signature of msg in the Signer's text encoding
	// (base64 for a local key; Vault's "vault:vN:..." for Transit).
	Sign(ctx context.Context, msg []byte) (string, error)
}

// Verifier checks checkpoint signatures with public keys only.
type Verifier interface {
	Verify(keyID string, msg []byte, sig string) error
	// Knows reports whether keyID is one of the verification keys (a
	// signature by an unknown key is another gateway's; a bad signature
	// by a known key is a forgery).
	Knows(keyID string) bool
}

// Anchor keeps the latest checkpoint of each replica outside the log.
type Anchor interface {
	Store(ctx context.Context, c Checkpoint) error
	// Latest returns the replica's latest checkpoint, or nil when none was
	// ever stored.
	Latest(ctx context.Context, replica string) (*Checkpoint, error)
}

// ErrBadSignature is returned by a Verifier for a signature that does not
// verify, or a key it does not know.
var ErrBadSignature = errors.New("audit: checkpoint signature does not verify")

// Ed25519Key is a local checkpoint key (file backend). It is both a Signer
// and, through Public, a Verifier.
type Ed25519Key struct {
	priv ed25519.PrivateKey
	id   string
}

// KeyID implements Signer.
func (k *Ed25519Key) KeyID() string { return k.id }

// Sign implements Signer.
func (k *Ed25519Key) Sign(_ context.Context, msg []byte) (string, error) {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv, msg)), nil
}

// Public returns the key's verifier.
func (k *Ed25519Key) Public() PublicKeys {
	return PublicKeys{k.id: k.priv.Public().(ed25519.PublicKey)}
}

// PublicKeys verifies ed25519 signatures by key id.
type PublicKeys map[string]ed25519.PublicKey

// Verify implements Verifier.
func (p PublicKeys) Verify(keyID string, msg []byte, sig string) error {
	pub, ok := p[keyID]
	if !ok {
		return fmt.Errorf("%w: key %s is not the verification key (%s)", ErrBadSignature, keyID, strings.Join(p.ids(), ", "))
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || !ed25519.Verify(pub, msg, raw) {
		return fmt.Errorf("%w with key %s", ErrBadSignature, keyID)
	}
	return nil
}

// Knows implements Verifier.
func (p PublicKeys) Knows(keyID string) bool { _, ok := p[keyID]; return ok }

func (p PublicKeys) ids() []string {
	out := make([]string, 0, len(p))
	for id := range p {
		out = append(out, id)
	}
	return out
}

// ed25519KeyID is "ed25519:" and the first 16 hex digits of the SHA-256
// of the public key.
func ed25519KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

const (
	privPEMType = "BEAMGATE AUDIT CHECKPOINT PRIVATE KEY"
	pubPEMType  = "BEAMGATE AUDIT CHECKPOINT PUBLIC KEY"
)

// LoadOrCreateEd25519Key reads the checkpoint key at path (PEM, 0600),
// creating it and its public half (path + ".pub", 0644) when missing. The
// directory is created 0700; a key readable by group or others is refused.
func LoadOrCreateEd25519Key(path string) (*Ed25519Key, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createEd25519Key(path)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint key: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit: checkpoint key %s has mode %#o; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != privPEMType || len(b.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit: checkpoint key %s is not a beamgate checkpoint key", path)
	}
	priv := ed25519.NewKeyFromSeed(b.Bytes)
	return &Ed25519Key{priv: priv, id: ed25519KeyID(priv.Public().(ed25519.PublicKey))}, nil
}

func createEd25519Key(path string) (*Ed25519Key, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: checkpoint key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(path, pem.EncodeToMemory(&pem.Block{Type: privPEMType, Bytes: priv.Seed()}), 0o600, true); err != nil {
		return nil, err
	}
	if err := writeFileSync(path+".pub", pem.EncodeToMemory(&pem.Block{Type: pubPEMType, Bytes: pub}), 0o644, false); err != nil {
		return nil, err
	}
	return &Ed25519Key{priv: priv, id: ed25519KeyID(pub)}, nil
}

// LoadPublicKey reads a checkpoint public key file (the .pub beside the
// key) for offline verification.
func LoadPublicKey(path string) (PublicKeys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: public key: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != pubPEMType || len(b.Bytes) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("audit: %s is not a beamgate checkpoint public key", path)
	}
	pub := ed25519.PublicKey(b.Bytes)
	return PublicKeys{ed25519KeyID(pub): pub}, nil
}

// writeFileSync writes data to path atomically (temporary file, fsync,
// rename, directory fsync). exclusive refuses to replace an existing file.
func writeFileSync(path string, data []byte, mode os.FileMode, exclusive bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("audit: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("audit: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("audit: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if exclusive {
		if err := os.Link(tmp.Name(), path); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
	} else if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return syncDir(dir)
}

// FileAnchor keeps each replica's latest checkpoint in a JSON file in Dir
// (checkpoint-<replica>.json), the directory of the file backend's key:
// outside the audit directory, so replacing or truncating the log alone
// is caught. Someone who can write both the log and Dir defeats it.
type FileAnchor struct{ Dir string }

func (a FileAnchor) path(replica string) string {
	return filepath.Join(a.Dir, "checkpoint-"+safeName(replica)+".json")
}

// Store implements Anchor.
func (a FileAnchor) Store(_ context.Context, c Checkpoint) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileSync(a.path(c.Replica), append(b, '\n'), 0o600, false)
}

// Latest implements Anchor.
func (a FileAnchor) Latest(_ context.Context, replica string) (*Checkpoint, error) {
	return ReadCheckpointFile(a.path(replica))
}

// ReadCheckpointFile reads a checkpoint saved by FileAnchor (or exported
// from Vault for offline verification); nil when the file does not exist.
func ReadCheckpointFile(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint: %w", err)
	}
	var c Checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("audit: checkpoint %s: %w", path, err)
	}
	return &c, nil
}

// safeName keeps letters, digits, '-', '_' and '.' of s, for file names.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

// DefaultCheckpointInterval is how often a Checkpointer checkpoints a log
// that has new records.
const DefaultCheckpointInterval = 10 * time.Second

// CheckpointerConfig configures a Checkpointer.
type CheckpointerConfig struct {
	Log      *Log
	Signer   Signer
	Anchor   Anchor
	Replica  string
	Interval time.Duration // DefaultCheckpointInterval when zero
	Now      func() time.Time
	Logger   *zap.Logger
}

// Checkpointer signs the head of a log at an interval (only when records
// were written since the last checkpoint), when asked (a rotation), and at
// Close. Each checkpoint is appended to the log and stored in the anchor.
// Failures are logged and retried at the next tick; they do not stop the
// log.
type Checkpointer struct {
	cfg     CheckpointerConfig
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	mu      sync.Mutex // serialises checkpoints
	lastRec uint64     // seq of the last checkpoint record this checkpointer wrote
	made    int
}

// NewCheckpointer starts checkpointing cfg.Log.
func NewCheckpointer(cfg CheckpointerConfig) (*Checkpointer, error) {
	if cfg.Log == nil || cfg.Signer == nil || cfg.Anchor == nil || cfg.Replica == "" {
		return nil, errors.New("audit: a checkpointer needs a log, a signer, an anchor and a replica name")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultCheckpointInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	c := &Checkpointer{cfg: cfg, kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go c.run()
	return c, nil
}

// Kick asks for a checkpoint now (after a rotation). It never blocks.
func (c *Checkpointer) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Made is the number of checkpoints written.
func (c *Checkpointer) Made() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.made
}

func (c *Checkpointer) run() {
	defer close(c.stopped)
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Interval)
		if err := c.Checkpoint(ctx); err != nil {
			c.cfg.Logger.Warn("audit checkpoint failed; retrying at the next interval", zap.Error(err))
		}
		cancel()
	}
}

// Checkpoint signs the log's current head, unless nothing was written
// since the last checkpoint, appends the checkpoint record and stores it
// in the anchor.
func (c *Checkpointer) Checkpoint(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq, head := c.cfg.Log.Head()
	if seq == 0 || seq == c.lastRec {
		return nil
	}
	cp := Checkpoint{LogID: c.cfg.Log.ID(), Replica: c.cfg.Replica, Seq: seq, Head: head,
		At: c.cfg.Now().UTC(), KeyID: c.cfg.Signer.KeyID()}
	sig, err := c.cfg.Signer.Sign(ctx, cp.SignedBytes())
	if err != nil {
		return fmt.Errorf("audit: signing a checkpoint: %w", err)
	}
	cp.Sig = sig
	rec := &Record{Event: EventCheckpoint, Decision: DecisionInfo, Detail: cp.detail()}
	if err := c.cfg.Log.Append(ctx, rec); err != nil {
		return fmt.Errorf("audit: writing a checkpoint: %w", err)
	}
	c.lastRec = rec.Seq
	if err := c.cfg.Anchor.Store(ctx, cp); err != nil {
		return fmt.Errorf("audit: storing checkpoint %d outside the log: %w", cp.Seq, err)
	}
	c.made++
	return nil
}

// Close writes a final checkpoint (a clean shutdown) and stops. Call it
// before closing the log.
func (c *Checkpointer) Close() error {
	var err error
	c.once.Do(func() {
		close(c.stop)
		<-c.stopped
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = c.Checkpoint(ctx)
	})
	return err
}
