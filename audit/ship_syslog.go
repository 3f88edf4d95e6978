package audit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// Syslog facilities by name (RFC 5424 table 1, with the names syslog
// daemons use).
var syslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14, "clock": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// FacilityAuthpriv is the default syslog facility of shipped records.
const FacilityAuthpriv = 10

// SyslogFacility returns the facility code of a name such as "authpriv" or
// "local3".
func SyslogFacility(name string) (int, error) {
	if f, ok := syslogFacilities[strings.ToLower(name)]; ok {
		return f, nil
	}
	return 0, fmt.Errorf("audit: unknown syslog facility %q (use authpriv, auth, daemon, user or local0..local7)", name)
}

// SyslogSeverity is the RFC 5424 severity of a record: warning (4) for a
// deny, notice (5) for an allow_write, info (6) otherwise.
func SyslogSeverity(rec *Record) int {
	switch rec.Decision {
	case DecisionDeny:
		return 4
	case DecisionAllowWrite:
		return 5
	}
	return 6
}

// Default message size bounds, by transport.
const (
	SyslogMaxStream   = 64 << 10 // TCP and unix stream sockets
	SyslogMaxUnixgram = 8 << 10  // unix datagram (/dev/log); rsyslog's default maxMessageSize
	SyslogMaxUDP      = 2048     // RFC 5426 receivers must accept at least this
	syslogMinSize     = 480      // RFC 5426: IPv4 minimum
)

// SyslogSDID is the default STRUCTURED-DATA id of shipped records.
const SyslogSDID = "beamgate@32473"

// SyslogOptions configure NewSyslog. The zero value is the defaults.
type SyslogOptions struct {
	// Facility is the syslog facility code; 0 (kern, which only the
	// kernel may use) means FacilityAuthpriv.
	Facility int
	// Hostname is the HOSTNAME field; "" means os.Hostname().
	Hostname string
	// AppName is the APP-NAME field; "" means "beamgate".
	AppName string
	// SDID is the STRUCTURED-DATA element id; "" means SyslogSDID.
	SDID string
	// BOM puts a UTF-8 byte order mark before MSG, as RFC 5424 suggests for
	// UTF-8 messages. Off by default: MSG is then exactly the JSON line.
	BOM bool
	// MaxSize bounds one syslog message in bytes (the octet-counting frame
	// prefix not included). A longer record's MSG is cut at a UTF-8
	// boundary and the STRUCTURED-DATA says truncated="<full length>".
	// 0 means SyslogMaxStream, SyslogMaxUnixgram or SyslogMaxUDP by
	// transport; at least 480.
	MaxSize int
	// DialTimeout bounds a connection attempt (default 5s); WriteTimeout
	// one message write (default 10s).
	DialTimeout, WriteTimeout time.Duration
	// AckDelay is how long a record must have been delivered to the
	// receiver's socket, with the connection still up, before it counts as
	// confirmed (default 1s). See [Syslog].
	AckDelay time.Duration
}

// Syslog is a Destination sending RFC 5424 messages to a syslog daemon:
//
//	<PRI>1 TIMESTAMP HOSTNAME beamgate PROCID MSGID [beamgate@32473 seq="7" user="alice" ...] MSG
//
// PRI is the facility (authpriv by default) and [SyslogSeverity];
// TIMESTAMP is the record's time in UTC with microseconds; MSGID the event;
// the structured data carries seq and, when set, user, session, decision,
// target and cluster (escaped as RFC 5424 says: '"', '\' and ']'; control
// characters become '?'); MSG is the record's JSON line, byte for byte.
//
// Over TCP and unix stream sockets messages are framed by octet counting
// (RFC 6587: "LEN SP MSG"); over unix datagram and UDP each message is one
// datagram. Network "unix" tries a datagram socket first (/dev/log,
// rsyslog's imuxsock) and a stream socket if the path is one. Syslog
// connects on the first Send and again on the Send after a failure.
//
// Confirmation ([Acker]): plain syslog has no acknowledgements. A record
// counts as confirmed once the receiver has taken its bytes off the socket
// (TCP: acknowledged by the peer; unix: read by the daemon; from the
// kernel's SIOCOUTQ on Linux) and AckDelay has passed with the connection
// up. A unix datagram socket reports no disconnection, so there a later
// send, or a probe, must also have found the same socket still bound; over
// UDP, which cannot tell, it is AckDelay after the send. A record lost
// inside the daemon after that (killed before writing it out) is not
// resent. Receivers see duplicates after a reconnection and dedupe by
// (HOSTNAME, seq).
type Syslog struct {
	network, addr string
	kind          syslogKind // from network; unix may turn into unixStream on connect
	opts          SyslogOptions
	hostname      string
	procID        string

	mu     sync.Mutex // guards conn and closed (Close runs concurrently with Send)
	conn   *syslogConn
	closed bool

	// Used by the Send/Unacked goroutine only.
	inflight  []syslogInflight
	delivered int64     // bytes of this connection known to have left the socket
	alive     time.Time // unixgram: when the receiver was last known up (a send, a probe)
	msg       []byte
	frame     []byte
}

type syslogKind uint8

const (
	syslogTCP syslogKind = iota
	syslogUDP
	syslogUnix // unixgram, or unix stream if the socket is one
	syslogUnixgram
	syslogUnixStream
)

func (k syslogKind) stream() bool { return k == syslogTCP || k == syslogUnixStream }

// syslogConn is one connection and its reader, which notices the peer
// closing it.
type syslogConn struct {
	c       net.Conn
	kind    syslogKind
	written int64
	sock    os.FileInfo   // unixgram: the socket file connected to
	dead    chan struct{} // closed when the reader failed
	err     error         // why, set before dead is closed
}

type syslogInflight struct {
	end  int64     // bytes written on the connection up to the end of this message
	sent time.Time // when Send wrote it
	seen time.Time // when it was first known to have left the socket
}

// NewSyslog returns a syslog destination. network is "tcp" (also tcp4,
// tcp6; addr host:port), "udp" (udp4, udp6), "unix" (addr a socket path
// such as /dev/log; datagram or stream) or "unixgram". It does not
// connect: the first Send does.
func NewSyslog(network, addr string, opts SyslogOptions) (*Syslog, error) {
	s := &Syslog{network: network, addr: addr, opts: opts}
	switch network {
	case "tcp", "tcp4", "tcp6":
		s.kind = syslogTCP
	case "udp", "udp4", "udp6":
		s.kind = syslogUDP
	case "unix":
		s.kind = syslogUnix
	case "unixgram":
		s.kind = syslogUnixgram
	default:
		return nil, fmt.Errorf("audit: syslog network %q: use tcp, udp or unix", network)
	}
	if addr == "" {
		return nil, errors.New("audit: syslog: no address")
	}
	if s.kind == syslogTCP || s.kind == syslogUDP {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("audit: syslog address %q: %w", addr, err)
		}
	}
	o := &s.opts
	if o.Facility == 0 {
		o.Facility = FacilityAuthpriv
	}
	if o.Facility < 0 || o.Facility > 23 {
		return nil, fmt.Errorf("audit: syslog facility %d is not 0..23", o.Facility)
	}
	if o.AppName == "" {
		o.AppName = "beamgate"
	}
	if o.SDID == "" {
		o.SDID = SyslogSDID
	}
	if o.SDID != syslogName(o.SDID, 32) {
		return nil, fmt.Errorf("audit: syslog SD-ID %q: up to 32 printable ASCII characters, no '=', ' ', ']' or '\"'", o.SDID)
	}
	if o.MaxSize != 0 && o.MaxSize < syslogMinSize {
		return nil, fmt.Errorf("audit: syslog MaxSize %d is below %d", o.MaxSize, syslogMinSize)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.AckDelay <= 0 {
		o.AckDelay = time.Second
	}
	host := o.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	s.hostname = syslogHeaderField(host, 255)
	s.procID = strconv.Itoa(os.Getpid())
	s.opts.AppName = syslogHeaderField(o.AppName, 48)
	return s, nil
}

// maxSize is the message bound for the connection's transport.
func (s *Syslog) maxSize(k syslogKind) int {
	if s.opts.MaxSize > 0 {
		return s.opts.MaxSize
	}
	switch k {
	case syslogUDP:
		return SyslogMaxUDP
	case syslogUnixgram, syslogUnix:
		return SyslogMaxUnixgram
	}
	return SyslogMaxStream
}

// connect returns the current connection, dialing if there is none.
func (s *Syslog) connect() (*syslogConn, error) {
	s.mu.Lock()
	closed, sc := s.closed, s.conn
	s.mu.Unlock()
	if closed {
		return nil, errors.New("audit: syslog destination closed")
	}
	if sc != nil {
		select {
		case <-sc.dead:
			s.drop(sc)
			return nil, fmt.Errorf("audit: syslog %s %s: connection lost: %w", s.network, s.addr, sc.err)
		default:
			return sc, nil
		}
	}
	var c net.Conn
	var err error
	kind := s.kind
	switch kind {
	case syslogTCP, syslogUDP:
		c, err = net.DialTimeout(s.network, s.addr, s.opts.DialTimeout)
	case syslogUnixgram:
		c, err = net.DialTimeout("unixgram", s.addr, s.opts.DialTimeout)
	case syslogUnix:
		kind = syslogUnixgram
		c, err = net.DialTimeout("unixgram", s.addr, s.opts.DialTimeout)
		if errors.Is(err, syscall.EPROTOTYPE) {
			kind = syslogUnixStream
			c, err = net.DialTimeout("unix", s.addr, s.opts.DialTimeout)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("audit: syslog: %w", err)
	}
	sc = &syslogConn{c: c, kind: kind, dead: make(chan struct{})}
	if kind == syslogUnixgram {
		sc.sock, _ = os.Stat(s.addr) // for probe
	}
	go func() {
		// Receivers never write; a read returns when the peer closes or
		// resets the connection (or when we close it).
		var b [512]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				sc.err = err
				close(sc.dead)
				return
			}
		}
	}()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return nil, errors.New("audit: syslog destination closed")
	}
	s.conn = sc
	s.mu.Unlock()
	s.inflight, s.delivered = s.inflight[:0], 0
	return sc, nil
}

// dropLocked closes the current connection; what was in flight on it is
// the shipper's to resend.
func (s *Syslog) dropLocked() {
	if s.conn != nil {
		s.conn.c.Close()
		s.conn = nil
	}
}

func (s *Syslog) drop(sc *syslogConn) {
	s.mu.Lock()
	if s.conn == sc {
		s.dropLocked()
	}
	s.mu.Unlock()
}

// Send writes one record as a syslog message.
func (s *Syslog) Send(line []byte, rec *Record) error {
	sc, err := s.connect()
	if err != nil {
		return err
	}
	s.msg = s.appendMessage(s.msg[:0], line, rec, s.maxSize(sc.kind))
	out := s.msg
	if sc.kind.stream() {
		s.frame = append(strconv.AppendInt(s.frame[:0], int64(len(s.msg)), 10), ' ')
		s.frame = append(s.frame, s.msg...)
		out = s.frame
	}
	sc.c.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	n, err := sc.c.Write(out)
	if err == nil && n < len(out) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.drop(sc)
		return fmt.Errorf("audit: syslog %s %s: %w", s.network, s.addr, err)
	}
	now := time.Now()
	sc.written += int64(n)
	s.inflight = append(s.inflight, syslogInflight{end: sc.written, sent: now})
	s.alive = now
	return nil
}

// Unacked implements Acker (see [Syslog] for what confirmed means).
func (s *Syslog) Unacked() (int, error) {
	s.mu.Lock()
	sc := s.conn
	s.mu.Unlock()
	if sc == nil {
		s.inflight = s.inflight[:0]
		return 0, errors.New("audit: syslog: not connected")
	}
	select {
	case <-sc.dead:
		s.drop(sc)
		return 0, fmt.Errorf("audit: syslog %s %s: connection lost: %w", s.network, s.addr, sc.err)
	default:
	}
	if len(s.inflight) == 0 {
		return 0, nil
	}
	switch q, ok := syslogOutq(sc.c); {
	case !ok || sc.kind == syslogUDP:
		s.delivered = sc.written
	case sc.kind == syslogTCP:
		s.delivered = sc.written - int64(q) // unacknowledged bytes
	case q == 0:
		s.delivered = sc.written // unix: queued memory, not bytes; 0 means all read
	}
	now := time.Now()
	for i := range s.inflight {
		f := &s.inflight[i]
		if f.end > s.delivered {
			break
		}
		if f.seen.IsZero() {
			f.seen = now
		}
	}
	n := 0
	for _, f := range s.inflight {
		ripe := f.seen.Add(s.opts.AckDelay)
		if f.seen.IsZero() || now.Before(ripe) {
			break
		}
		// A unix datagram receiver's death shows only on a later send:
		// confirm once a send or a probe after ripe found it still up.
		if sc.kind == syslogUnixgram && s.alive.Before(ripe) {
			if err := s.probe(sc); err != nil {
				s.drop(sc)
				return 0, fmt.Errorf("audit: syslog %s %s: receiver gone: %w", s.network, s.addr, err)
			}
			s.alive = now
		}
		n++
	}
	s.inflight = append(s.inflight[:0], s.inflight[n:]...)
	return len(s.inflight), nil
}

// probe checks that the unix datagram socket sc was connected to is still
// there and bound: the same file (a restarted daemon makes a new one) and
// a fresh connect succeeds (it is refused once the daemon died).
func (s *Syslog) probe(sc *syslogConn) error {
	fi, err := os.Stat(s.addr)
	if err != nil {
		return err
	}
	if sc.sock == nil || !os.SameFile(fi, sc.sock) {
		return errors.New("socket replaced (receiver restarted)")
	}
	c, err := net.DialTimeout("unixgram", s.addr, s.opts.DialTimeout)
	if err != nil {
		return err
	}
	return c.Close()
}

// Close closes the connection; a Send blocked on it returns.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.dropLocked()
	return nil
}

// appendMessage appends the RFC 5424 message for one record, at most limit
// bytes.
func (s *Syslog) appendMessage(dst, line []byte, rec *Record, limit int) []byte {
	start := len(dst)
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(s.opts.Facility*8+SyslogSeverity(rec)), 10)
	dst = append(dst, ">1 "...)
	if t := rec.Time.UTC(); t.IsZero() || t.Year() > 9999 {
		dst = append(dst, '-')
	} else {
		dst = t.AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	}
	dst = append(dst, ' ')
	dst = append(dst, s.hostname...)
	dst = append(dst, ' ')
	dst = append(dst, s.opts.AppName...)
	dst = append(dst, ' ')
	dst = append(dst, s.procID...)
	dst = append(dst, ' ')
	dst = append(dst, syslogHeaderField(string(rec.Event), 32)...)
	dst = append(dst, ' ')
	head := len(dst)
	bom := ""
	if s.opts.BOM {
		bom = "\xEF\xBB\xBF"
	}
	if !utf8.Valid(line) { // never for a line this package wrote
		line = []byte(strings.ToValidUTF8(string(line), "\uFFFD"))
	}
	dst = s.appendSD(dst, rec, true, 0)
	if len(dst)-start+1+len(bom)+len(line) > limit {
		// Mark it, then cut MSG to what fits, at a rune boundary.
		dst = s.appendSD(dst[:head], rec, true, len(line))
		if len(dst)-start+1+len(bom) > limit-64 {
			dst = s.appendSD(dst[:head], rec, false, len(line))
		}
		room := limit - (len(dst) - start) - 1 - len(bom)
		line = line[:syslogCut(line, room)]
	}
	dst = append(dst, ' ')
	dst = append(dst, bom...)
	return append(dst, line...)
}

// appendSD appends the STRUCTURED-DATA element: seq, the optional fields
// when all is set, and truncated when full > 0.
func (s *Syslog) appendSD(dst []byte, rec *Record, all bool, full int) []byte {
	dst = append(dst, '[')
	dst = append(dst, s.opts.SDID...)
	dst = append(dst, ` seq="`...)
	dst = strconv.AppendUint(dst, rec.Seq, 10)
	dst = append(dst, '"')
	if all {
		for _, p := range [...]struct{ k, v string }{
			{"user", rec.User}, {"session", rec.Session}, {"decision", string(rec.Decision)},
			{"target", rec.Target}, {"cluster", rec.Cluster},
		} {
			if p.v == "" {
				continue
			}
			dst = append(dst, ' ')
			dst = append(dst, p.k...)
			dst = append(dst, `="`...)
			dst = syslogAppendParam(dst, p.v, 128)
			dst = append(dst, '"')
		}
	}
	if full > 0 {
		dst = append(dst, ` truncated="`...)
		dst = strconv.AppendInt(dst, int64(full), 10)
		dst = append(dst, '"')
	}
	return append(dst, ']')
}

// syslogAppendParam appends an SD PARAM-VALUE: at most limit bytes of v
// (at a rune boundary), valid UTF-8, with '"', '\' and ']' escaped and
// control characters replaced by '?'.
func syslogAppendParam(dst []byte, v string, limit int) []byte {
	v = strings.ToValidUTF8(v, "\uFFFD")
	if len(v) > limit {
		v = v[:syslogCut([]byte(v), limit)]
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\' || c == ']':
			dst = append(dst, '\\', c)
		case c < 0x20 || c == 0x7f:
			dst = append(dst, '?')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// syslogHeaderField makes s a header field: printable ASCII only (others
// become '_'), at most limit bytes, "-" (NILVALUE) when empty.
func syslogHeaderField(s string, limit int) string {
	if s == "" {
		return "-"
	}
	b := []byte(s)
	if len(b) > limit {
		b = b[:limit]
	}
	for i, c := range b {
		if c < 33 || c > 126 {
			b[i] = '_'
		}
	}
	return string(b)
}

// syslogName is s with the characters an SD-NAME may not hold replaced,
// cut to limit bytes.
func syslogName(s string, limit int) string {
	b := []byte(syslogHeaderField(s, limit))
	for i, c := range b {
		if c == '=' || c == ']' || c == '"' {
			b[i] = '_'
		}
	}
	return string(b)
}

// syslogCut returns the largest n <= limit such that b[:n] ends at a rune
// boundary.
func syslogCut(b []byte, limit int) int {
	if limit <= 0 {
		return 0
	}
	if limit >= len(b) {
		return len(b)
	}
	n := limit
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return n
}
