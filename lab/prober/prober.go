package prober

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tamperscope/tamperscope/lab/labdns"
)

// Protocols.
const (
	TLS  = "tls"
	HTTP = "http"
	QUIC = "quic"
)

// Outcomes as the client sees them.
const (
	OK          = "ok"
	Reset       = "reset"       // connection reset after the handshake started
	Refused     = "refused"     // RST answering the SYN
	Unreachable = "unreachable" // ICMP destination unreachable / prohibited
	Timeout     = "timeout"
	Aborted     = "aborted"   // the client reset the connection on purpose
	Abandoned   = "abandoned" // a Happy-Eyeballs loser the client dropped
	Failed      = "failed"    // any other error, see Attempt.Error
)

// Request is one attempt to make.
type Request struct {
	Proto  string
	Local  netip.AddrPort // client address and port to bind
	Remote netip.AddrPort
	Name   string // SNI and Host
	Size   int    // body bytes to ask for (/size/N)
	// TLS12 caps the handshake at TLS 1.2; the default is TLS 1.3.
	TLS12 bool
	// AbortAfter, when positive, makes the client reset the connection
	// with SO_LINGER 0 after reading that many body bytes.
	AbortAfter int
	// Timeout bounds the attempt once its name is resolved. The default
	// is DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout is how long an attempt may take by default. Real clients
// wait longer than the 3 s after which a passive observer calls a silent
// flow timed out, so the kernel's SYN retransmissions at 1 s and 3 s, or a
// QUIC client's Initials, show at least 3 s of unanswered retries.
const DefaultTimeout = 4 * time.Second

// ResolveTimeout bounds the DNS lookup before an attempt.
const ResolveTimeout = 2 * time.Second

// Attempt is what happened.
type Attempt struct {
	Start    time.Time
	Duration time.Duration
	Outcome  string
	Error    string
	Bytes    int     // body bytes received
	RateBps  float64 // body goodput between the first and last body byte
	// ServerClose tells how the server ended a complete exchange: "fin",
	// "reset", or empty when it did not within a second or two.
	ServerClose string
	// Resolved lists the addresses the DNS answer for the name gave, when
	// the Prober has a Resolver.
	Resolved []netip.Addr
}

// Prober holds what every attempt shares.
type Prober struct {
	Roots *x509.CertPool
	// Enter runs fn where the attempt's sockets must be created, such as
	// inside the client's network namespace. The default runs fn as is.
	Enter func(fn func() error) error
	// Resolver, when set, is the DNS server every attempt first asks for
	// its name's A (IPv4 remote) or AAAA (IPv6 remote) records, the way a
	// client resolves before it connects; an answer without the remote
	// address fails the attempt. The default skips resolution.
	Resolver netip.AddrPort
}

func (p *Prober) enter(fn func() error) error {
	if p.Enter == nil {
		return fn()
	}
	return p.Enter(fn)
}

// resolve looks req.Name up through the Resolver. It returns no error and
// no addresses when the Prober has no Resolver.
func (p *Prober) resolve(ctx context.Context, req Request) ([]netip.Addr, error) {
	if !p.Resolver.IsValid() {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, ResolveTimeout)
	defer cancel()
	var addrs []netip.Addr
	err := p.enter(func() error {
		var err error
		addrs, err = labdns.Resolve(ctx, p.Resolver, req.Name, req.Remote.Addr().Is6())
		return err
	})
	if err == nil && !slices.Contains(addrs, req.Remote.Addr()) {
		err = fmt.Errorf("resolve %s: %s is not among the answers %v", req.Name, req.Remote.Addr(), addrs)
	}
	return addrs, err
}

// Do makes one attempt: the DNS lookup, if the Prober has a Resolver, then
// the connection. Interference is reported in the Attempt, never as an
// error; a failed lookup is outcome Failed.
func (p *Prober) Do(ctx context.Context, req Request) Attempt {
	if req.Timeout == 0 {
		req.Timeout = DefaultTimeout
	}
	resolved, err := p.resolve(ctx, req)
	a := Attempt{Start: time.Now(), Resolved: resolved}
	if err != nil {
		a.Outcome, a.Error = Failed, err.Error()
		return a
	}
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	if eerr := p.enter(func() error {
		if req.Proto == QUIC {
			err = p.quic(ctx, req)
		} else {
			err = p.stream(ctx, req, &a)
		}
		return nil
	}); eerr != nil {
		err = eerr
	}
	a.Duration = time.Since(a.Start)
	if a.Outcome == "" {
		a.Outcome = Classify(err)
	}
	if err != nil {
		a.Error = err.Error()
	}
	return a
}

// Dial opens a TCP connection from req.Local without any TLS or HTTP.
func Dial(ctx context.Context, req Request) (*net.TCPConn, error) {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(req.Local)}
	c, err := d.DialContext(ctx, "tcp", req.Remote.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

func (p *Prober) stream(ctx context.Context, req Request, a *Attempt) error {
	tc, err := Dial(ctx, req)
	if err != nil {
		return err
	}
	return p.exchange(ctx, tc, req, a)
}

// exchange runs TLS (for TLS requests) and one HTTP request on tc, and
// closes it.
func (p *Prober) exchange(ctx context.Context, tc *net.TCPConn, req Request, a *Attempt) error {
	defer tc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetDeadline(dl)
	}
	var conn net.Conn = tc
	if req.Proto == TLS {
		conf := &tls.Config{ServerName: req.Name, RootCAs: p.Roots, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
		if req.TLS12 {
			conf.MaxVersion = tls.VersionTLS12
		}
		tlc := tls.Client(tc, conf)
		if err := tlc.HandshakeContext(ctx); err != nil {
			return err
		}
		conn = tlc
	}
	if _, err := fmt.Fprintf(conn, "GET /size/%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: tslab\r\nConnection: close\r\n\r\n", req.Size, req.Name); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1500), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("read response: status %s", resp.Status)
	}
	buf := make([]byte, 1500)
	var first, last time.Time
	firstBytes := 0
	for a.Bytes < req.Size {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			last = time.Now()
			if first.IsZero() {
				first, firstBytes = last, n
			}
			a.Bytes += n
		}
		if req.AbortAfter > 0 && a.Bytes >= req.AbortAfter {
			_ = tc.SetLinger(0)
			a.Outcome = Aborted
			return nil
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if d := last.Sub(first); d > 0 {
		a.RateBps = float64(a.Bytes-firstBytes) * 8 / d.Seconds()
	}
	if a.Bytes < req.Size {
		return fmt.Errorf("read body: %d of %d bytes: %w", a.Bytes, req.Size, io.ErrUnexpectedEOF)
	}
	a.ServerClose = awaitClose(conn, tc)
	return nil
}

// awaitClose waits for the server to end the connection, the request
// having asked it to, so the capture shows whether it closed with a FIN or
// a RST rather than the client's own close.
func awaitClose(conn net.Conn, tc *net.TCPConn) string {
	_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 512)
	if conn != net.Conn(tc) {
		// Through TLS first: close_notify ends the TLS stream before the
		// TCP one.
		for {
			if _, err := conn.Read(buf); err != nil {
				if errors.Is(err, syscall.ECONNRESET) {
					return "reset"
				}
				break
			}
		}
	}
	for {
		_, err := tc.Read(buf)
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			return "fin"
		case errors.Is(err, syscall.ECONNRESET):
			return "reset"
		default:
			return ""
		}
	}
}

func (p *Prober) quic(ctx context.Context, req Request) error {
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(req.Local))
	if err != nil {
		return err
	}
	tr := &quic.Transport{Conn: udp}
	defer tr.Close()
	conf := &tls.Config{ServerName: req.Name, RootCAs: p.Roots, NextProtos: []string{"tslab"}}
	c, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(req.Remote), conf, &quic.Config{HandshakeIdleTimeout: req.Timeout})
	if err != nil {
		return err
	}
	return c.CloseWithError(0, "")
}

// Classify maps an attempt's error to an outcome.
func Classify(err error) string {
	var idle *quic.IdleTimeoutError
	var hsTimeout *quic.HandshakeTimeoutError
	switch {
	case err == nil:
		return OK
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return Reset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return Unreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT),
		errors.As(err, &idle), errors.As(err, &hsTimeout):
		return Timeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Timeout
	}
	return Failed
}

// HappyEyeballs connects to both requests' addresses at once, the way
// clients race IPv6 and IPv4: the first connection to complete carries the
// request, the other is abandoned — reset with SO_LINGER 0 if it connected,
// cancelled if not. Both must be TLS or HTTP requests.
//
// Both names are resolved first, at once, as clients send their AAAA and A
// queries together; if either lookup fails, neither connection is made and
// both attempts are Failed.
func (p *Prober) HappyEyeballs(ctx context.Context, a, b Request) (winner, loser Attempt, bWon bool) {
	var resolved [2][]netip.Addr
	var rerr [2]error
	done := make(chan struct{}, 2)
	for i, r := range []Request{a, b} {
		go func() {
			resolved[i], rerr[i] = p.resolve(ctx, r)
			done <- struct{}{}
		}()
	}
	<-done
	<-done
	if err := errors.Join(rerr[0], rerr[1]); err != nil {
		now := time.Now()
		fail := func(i int) Attempt {
			return Attempt{Start: now, Outcome: Failed, Error: err.Error(), Resolved: resolved[i]}
		}
		return fail(0), fail(1), false
	}
	timeout := max(a.Timeout, b.Timeout, DefaultTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		i    int
		conn *net.TCPConn
		err  error
	}
	start := time.Now()
	results := make(chan result, 2)
	for i, r := range []Request{a, b} {
		go func() {
			var c *net.TCPConn
			err := p.enter(func() error {
				var err error
				c, err = Dial(ctx, r)
				return err
			})
			results <- result{i, c, err}
		}()
	}
	first := <-results
	winner, loser = Attempt{Start: start}, Attempt{Start: start}
	if first.err != nil {
		winner.Outcome, winner.Error = Classify(first.err), first.err.Error()
	}
	// The loser is let to connect and then reset, as Chromium does; a
	// dial cancelled mid-handshake would end with a FIN or nothing,
	// depending on a race.
	second := <-results
	loser.Duration = time.Since(start)
	loser.Outcome = Abandoned
	if second.err == nil {
		_ = second.conn.SetLinger(0)
		_ = second.conn.Close()
	}
	if first.err == nil {
		reqs := []Request{a, b}
		err := p.enter(func() error { return p.exchange(ctx, first.conn, reqs[first.i], &winner) })
		if winner.Outcome == "" {
			winner.Outcome = Classify(err)
		}
		if err != nil {
			winner.Error = err.Error()
		}
	}
	winner.Duration = time.Since(start)
	winner.Resolved, loser.Resolved = resolved[first.i], resolved[1-first.i]
	return winner, loser, first.i == 1
}
