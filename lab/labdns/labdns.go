package labdns

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Zone maps a name (lower case, no trailing dot) to every address hosting
// it, IPv4 and IPv6 together.
type Zone map[string][]netip.Addr

// TTL is the time to live of every answer, in seconds.
const TTL = 300

// maxMessage bounds the datagrams read and written: plain DNS over UDP.
const maxMessage = 512

// Answer appends to buf the response to query from zone. It returns false
// when the message does not deserve an answer — a response, or bytes too
// short to hold a header — so the caller drops it, as servers drop noise.
func Answer(buf, query []byte, zone Zone) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return buf, false
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired}
	q, err := p.Question()
	if err != nil {
		rh.RCode = dnsmessage.RCodeFormatError
		return build(buf, rh, nil, nil)
	}
	switch {
	case h.OpCode != 0:
		rh.RCode = dnsmessage.RCodeNotImplemented
		return build(buf, rh, &q, nil)
	case q.Class != dnsmessage.ClassINET:
		rh.RCode = dnsmessage.RCodeRefused
		return build(buf, rh, &q, nil)
	}
	addrs, ok := zone[strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")]
	rh.Authoritative = true
	if !ok {
		rh.RCode = dnsmessage.RCodeNameError
		return build(buf, rh, &q, nil)
	}
	var answer []netip.Addr
	for _, a := range addrs {
		if (q.Type == dnsmessage.TypeA && a.Is4()) || (q.Type == dnsmessage.TypeAAAA && a.Is6() && !a.Is4In6()) {
			answer = append(answer, a)
		}
	}
	return build(buf, rh, &q, answer)
}

func build(buf []byte, h dnsmessage.Header, q *dnsmessage.Question, answer []netip.Addr) ([]byte, bool) {
	b := dnsmessage.NewBuilder(buf, h)
	b.EnableCompression()
	start := len(buf)
	fail := func() ([]byte, bool) { return buf[:start], false }
	if q != nil {
		if b.StartQuestions() != nil || b.Question(*q) != nil {
			return fail()
		}
	}
	if b.StartAnswers() != nil {
		return fail()
	}
	for _, a := range answer {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: TTL}
		var err error
		if a.Is4() {
			err = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		} else {
			err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return fail()
		}
	}
	out, err := b.Finish()
	if err != nil {
		return fail()
	}
	return out, true
}

// Server answers queries on UDP until Close.
type Server struct {
	conns    []*net.UDPConn
	wg       sync.WaitGroup
	answered atomic.Uint64
	dropped  atomic.Uint64
}

// Start listens on every address of zones, in the calling thread's network
// namespace, and answers the queries reaching an address from its zone.
func Start(zones map[netip.AddrPort]Zone) (*Server, error) {
	s := &Server{}
	for ap, z := range zones {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("start dns server: %w", err)
		}
		s.conns = append(s.conns, c)
		s.wg.Add(1)
		go s.serve(c, z)
	}
	return s, nil
}

func (s *Server) serve(c *net.UDPConn, zone Zone) {
	defer s.wg.Done()
	in := make([]byte, maxMessage)
	out := make([]byte, 0, maxMessage)
	for {
		n, from, err := c.ReadFromUDPAddrPort(in)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.dropped.Add(1)
			continue
		}
		resp, ok := Answer(out[:0], in[:n], zone)
		if !ok || len(resp) > maxMessage {
			s.dropped.Add(1)
			continue
		}
		// Counted before it is sent: whoever reads Stats after getting
		// the answer must see it counted.
		s.answered.Add(1)
		if _, err := c.WriteToUDPAddrPort(resp, from); err != nil {
			s.answered.Add(^uint64(0))
			s.dropped.Add(1)
		}
	}
}

// Stats returns how many queries were answered and how many messages were
// dropped (malformed, responses, or unsendable answers).
func (s *Server) Stats() (answered, dropped uint64) {
	return s.answered.Load(), s.dropped.Load()
}

// Close stops every listener and waits for them.
func (s *Server) Close() {
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.wg.Wait()
}

// ErrNXDomain is returned by Resolve and ParseAnswer for a name the server
// does not hold.
var ErrNXDomain = errors.New("no such name")

// Query builds a recursion-desired query for name's A (v6 false) or AAAA
// records.
func Query(id uint16, name string, v6 bool) ([]byte, error) {
	n, err := dnsmessage.NewName(strings.TrimSuffix(name, ".") + ".")
	if err != nil {
		return nil, fmt.Errorf("build query for %q: %w", name, err)
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, maxMessage), dnsmessage.Header{ID: id, RecursionDesired: true})
	_ = b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: n, Type: qtype(v6), Class: dnsmessage.ClassINET}); err != nil {
		return nil, fmt.Errorf("build query for %q: %w", name, err)
	}
	msg, err := b.Finish()
	if err != nil {
		return nil, fmt.Errorf("build query for %q: %w", name, err)
	}
	return msg, nil
}

func qtype(v6 bool) dnsmessage.Type {
	if v6 {
		return dnsmessage.TypeAAAA
	}
	return dnsmessage.TypeA
}

// errForeign marks a datagram that is not the answer to our query; Resolve
// keeps waiting for the right one.
var errForeign = errors.New("not the answer to this query")

// ParseAnswer reads the response to query id for name's A (v6 false) or
// AAAA records and returns the addresses of the answer section, in order.
func ParseAnswer(msg []byte, id uint16, name string, v6 bool) ([]netip.Addr, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, fmt.Errorf("parse answer: %w", err)
	}
	if !h.Response || h.ID != id {
		return nil, errForeign
	}
	q, err := p.Question()
	if err != nil {
		return nil, fmt.Errorf("parse answer question: %w", err)
	}
	if !strings.EqualFold(strings.TrimSuffix(q.Name.String(), "."), strings.TrimSuffix(name, ".")) || q.Type != qtype(v6) {
		return nil, errForeign
	}
	switch h.RCode {
	case dnsmessage.RCodeSuccess:
	case dnsmessage.RCodeNameError:
		return nil, fmt.Errorf("resolve %s: %w", name, ErrNXDomain)
	default:
		return nil, fmt.Errorf("resolve %s: server answered %s", name, h.RCode)
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, fmt.Errorf("parse answer: %w", err)
	}
	var out []netip.Addr
	for {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse answer record: %w", err)
		}
		switch rh.Type {
		case dnsmessage.TypeA:
			r, err := p.AResource()
			if err != nil {
				return nil, fmt.Errorf("parse A record: %w", err)
			}
			if !v6 {
				out = append(out, netip.AddrFrom4(r.A))
			}
		case dnsmessage.TypeAAAA:
			r, err := p.AAAAResource()
			if err != nil {
				return nil, fmt.Errorf("parse AAAA record: %w", err)
			}
			if v6 {
				out = append(out, netip.AddrFrom16(r.AAAA))
			}
		default:
			if err := p.SkipAnswer(); err != nil {
				return nil, fmt.Errorf("parse answer record: %w", err)
			}
		}
	}
}

// Resend is how long Resolve waits for an answer before sending its query
// again, as stub resolvers do.
const Resend = time.Second

// Resolve asks server for name's A (v6 false) or AAAA records over UDP,
// from a socket created in the calling thread's network namespace, and
// returns the answer's addresses. It resends the query every Resend until
// ctx ends.
func Resolve(ctx context.Context, server netip.AddrPort, name string, v6 bool) ([]netip.Addr, error) {
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	q, err := Query(id, name, v6)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", name, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, maxMessage)
	for {
		if _, err := c.Write(q); err != nil {
			return nil, fmt.Errorf("resolve %s: %w", name, err)
		}
		deadline := time.Now().Add(Resend)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = c.SetReadDeadline(deadline)
		for {
			n, err := c.Read(buf)
			if cerr := ctx.Err(); cerr != nil {
				return nil, fmt.Errorf("resolve %s: %w", name, cerr)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // resend
			}
			if err != nil {
				return nil, fmt.Errorf("resolve %s: %w", name, err)
			}
			addrs, err := ParseAnswer(buf[:n], id, name, v6)
			if errors.Is(err, errForeign) {
				continue
			}
			if err != nil {
				return nil, err
			}
			return slices.Clip(addrs), nil
		}
	}
}
