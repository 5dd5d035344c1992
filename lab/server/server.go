package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/sys/unix"

	"github.com/tamperscope/tamperscope/internal/certs"
)

// DefaultName is the subject of the certificate served for unknown names.
const DefaultName = "default.lab.test"

// ALPN is the protocol the lab's QUIC endpoints agree on.
const ALPN = "tslab"

// Config describes one server. Listeners bind the wildcard address, so the
// server answers on every address of the namespace it is started in.
type Config struct {
	CA    *certs.CA
	Names []string // names with their own certificate
	// HTTPPort, TLSPort and QUICPort default to 80, 443 and 443.
	HTTPPort, TLSPort, QUICPort uint16
	// ThinkDelay holds back the server's first TLS flight, standing in for
	// a server further away than the censor. The default is none.
	ThinkDelay time.Duration
	// ResetAfterResponse lists addresses whose connections end with a RST
	// once the response is acknowledged.
	ResetAfterResponse []netip.Addr
}

// Server runs until Close.
type Server struct {
	certs   map[string]*tls.Certificate
	deflt   *tls.Certificate
	cfg     Config
	rstAddr map[netip.Addr]bool
	tcp     []net.Listener
	https   []*http.Server
	quicLn  *quic.Listener
	quicTr  *quic.Transport
	wg      sync.WaitGroup
}

// Start issues the certificates and opens the listeners in the calling
// thread's network namespace.
func Start(cfg Config) (*Server, error) {
	if cfg.CA == nil {
		return nil, errors.New("start server: no CA")
	}
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = 80
	}
	if cfg.TLSPort == 0 {
		cfg.TLSPort = 443
	}
	if cfg.QUICPort == 0 {
		cfg.QUICPort = 443
	}
	s := &Server{certs: map[string]*tls.Certificate{}, cfg: cfg, rstAddr: map[netip.Addr]bool{}}
	for _, a := range cfg.ResetAfterResponse {
		s.rstAddr[a.Unmap()] = true
	}
	for _, n := range append([]string{DefaultName}, cfg.Names...) {
		if _, ok := s.certs[n]; ok {
			continue
		}
		c, err := cfg.CA.Server(n)
		if err != nil {
			return nil, fmt.Errorf("start server: %w", err)
		}
		s.certs[n] = &c
	}
	s.deflt = s.certs[DefaultName]

	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			if cfg.ThinkDelay > 0 {
				time.Sleep(cfg.ThinkDelay)
			}
			return nil, nil
		},
		GetCertificate: s.certificate,
		NextProtos:     []string{"http/1.1", ALPN},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /size/{n}", serveSize)

	var err error
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	for _, l := range []struct {
		port  uint16
		isTLS bool
	}{{cfg.HTTPPort, false}, {cfg.TLSPort, true}} {
		var ln net.Listener
		ln, err = net.Listen("tcp", ":"+strconv.Itoa(int(l.port)))
		if err != nil {
			return nil, fmt.Errorf("start server: %w", err)
		}
		ln = &rstListener{Listener: ln, rst: s.rstAddr}
		s.tcp = append(s.tcp, ln)
		if l.isTLS {
			ln = tls.NewListener(ln, tlsConf)
		}
		// Handshakes broken by the censor are the point of the lab, not
		// errors worth logging.
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
		s.https = append(s.https, hs)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = hs.Serve(ln)
		}()
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{Port: int(cfg.QUICPort)})
	if err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	s.quicTr = &quic.Transport{Conn: udp}
	qconf := tlsConf.Clone()
	qconf.MinVersion = tls.VersionTLS13
	qconf.NextProtos = []string{ALPN}
	s.quicLn, err = s.quicTr.Listen(qconf, &quic.Config{MaxIdleTimeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("start server: listen quic: %w", err)
	}
	s.wg.Add(1)
	go s.acceptQUIC()
	return s, nil
}

func (s *Server) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c, ok := s.certs[strings.ToLower(hello.ServerName)]; ok {
		return c, nil
	}
	return s.deflt, nil
}

// acceptQUIC completes handshakes and lets connections idle out: the lab
// measures whether a QUIC handshake gets through, not what follows.
func (s *Server) acceptQUIC() {
	defer s.wg.Done()
	for {
		c, err := s.quicLn.Accept(context.Background())
		if err != nil {
			return
		}
		go func() {
			<-c.Context().Done()
		}()
	}
}

func serveSize(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n > 64<<20 {
		http.Error(w, "bad size", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	buf := make([]byte, 16<<10)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	for n > 0 {
		k := min(n, len(buf))
		if _, err := w.Write(buf[:k]); err != nil {
			return
		}
		n -= k
	}
}

// Close stops every listener and waits for the accept loops.
func (s *Server) Close() {
	for _, hs := range s.https {
		_ = hs.Close()
	}
	for _, l := range s.tcp {
		_ = l.Close()
	}
	if s.quicLn != nil {
		_ = s.quicLn.Close()
	}
	if s.quicTr != nil {
		_ = s.quicTr.Close()
	}
	s.wg.Wait()
}

type rstListener struct {
	net.Listener
	rst map[netip.Addr]bool
}

func (l *rstListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	local := tc.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	if !l.rst[local] {
		return c, nil
	}
	return &rstConn{TCPConn: tc}, nil
}

// rstConn closes with a RST, but only after the peer acknowledged all data:
// SO_LINGER 0 discards unsent bytes, and the lab wants the response whole.
type rstConn struct {
	*net.TCPConn
	once sync.Once
}

// CloseWrite would send a FIN first (net/http half-closes before closing);
// the load balancer being imitated resets instead.
func (c *rstConn) CloseWrite() error { return c.Close() }

func (c *rstConn) Close() error {
	var err error
	c.once.Do(func() {
		if raw, rerr := c.SyscallConn(); rerr == nil {
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				var pending int
				_ = raw.Control(func(fd uintptr) {
					pending, _ = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
				})
				if pending == 0 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		_ = c.SetLinger(0)
		err = c.TCPConn.Close()
	})
	return err
}
