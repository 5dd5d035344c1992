package injector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/tamperscope/tamperscope/analyzer/quic"
	"github.com/tamperscope/tamperscope/analyzer/tlshello"
	"github.com/tamperscope/tamperscope/lab/netns"
)

// Mode selects how the injector reacts to a trigger.
type Mode string

// Modes.
const (
	Burst Mode = "burst" // GFW-style burst of resets
	Copy  Mode = "copy"  // one reset per direction imitating TTL and IP ID
	QUIC  Mode = "quic"  // blackhole the UDP 4-tuple after a matching Initial
)

// Config describes one injector.
type Config struct {
	Mode    Mode
	Names   []string     // trigger names, matched in ClientHellos / QUIC Initial SNI
	Targets []netip.Addr // server addresses watched; traffic to others is ignored
	Port    uint16       // server port watched; the default is 443
	// Residual, when positive, resets every new flow to a triggered
	// server address and port for this long after the trigger.
	Residual time.Duration
	// Seed drives the random IP IDs, windows and the foreign TTL.
	Seed int64
	// RouterNS is the namespace whose iptables QUIC mode edits.
	RouterNS string
	// Interfaces and MAC addresses of the router and its neighbours.
	ClientIf, ServerIf               string
	ClientMAC, ServerMAC             net.HardwareAddr
	RouterClientMAC, RouterServerMAC net.HardwareAddr
}

// Event is one reaction of the injector.
type Event struct {
	Time     time.Time      `json:"time"`
	Kind     string         `json:"kind"` // trigger, residual or quic_block
	Client   netip.AddrPort `json:"client"`
	Server   netip.AddrPort `json:"server"`
	Name     string         `json:"name,omitempty"`
	Injected int            `json:"injected"` // forged segments sent
}

type flowKey struct{ client, server netip.AddrPort }

type serverState struct {
	ttl    uint8
	id     uint16
	window uint16
}

// Injector runs until Close.
type Injector struct {
	cfg        Config
	foreignTTL uint8
	targets    map[netip.Addr]bool
	names      [][]byte

	mu       sync.Mutex
	rng      *rand.Rand
	buf      gopacket.SerializeBuffer
	fdC, fdS int
	ifC, ifS int
	seen     map[flowKey]serverState
	trigged  map[flowKey]bool
	residual map[netip.AddrPort]time.Time
	blocked  map[flowKey]bool
	events   []Event
	hellos   map[flowKey]*quic.Flow // Initials being reassembled; client-side loop only
	quicDec  quic.Decoder
	errs     []error

	stop chan struct{}
	wg   sync.WaitGroup
}

// Start opens the sniffing sockets in the calling thread's namespace (the
// router's) and starts watching.
func Start(cfg Config) (*Injector, error) {
	if cfg.Port == 0 {
		cfg.Port = 443
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x7473))
	in := &Injector{
		cfg:        cfg,
		foreignTTL: uint8(40 + rng.IntN(12)),
		targets:    map[netip.Addr]bool{},
		rng:        rng,
		buf:        gopacket.NewSerializeBuffer(),
		seen:       map[flowKey]serverState{},
		trigged:    map[flowKey]bool{},
		residual:   map[netip.AddrPort]time.Time{},
		blocked:    map[flowKey]bool{},
		stop:       make(chan struct{}),
		fdC:        -1,
		fdS:        -1,
	}
	for _, a := range cfg.Targets {
		in.targets[a.Unmap()] = true
	}
	for _, n := range cfg.Names {
		in.names = append(in.names, []byte(n))
	}
	if cfg.Mode == QUIC {
		if err := in.quicChains(); err != nil {
			return nil, err
		}
	}
	var err error
	if in.fdC, in.ifC, err = openPacket(cfg.ClientIf); err != nil {
		return nil, err
	}
	if in.fdS, in.ifS, err = openPacket(cfg.ServerIf); err != nil {
		unix.Close(in.fdC)
		return nil, err
	}
	in.wg.Add(2)
	go in.loop(in.fdC, true)
	go in.loop(in.fdS, false)
	return in, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openPacket(ifName string) (fd, ifIndex int, err error) {
	ifi, err := net.InterfaceByName(ifName)
	if err != nil {
		return -1, 0, fmt.Errorf("open packet socket on %s: %w", ifName, err)
	}
	fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, 0, fmt.Errorf("open packet socket on %s: %w", ifName, err)
	}
	fail := func(err error) (int, int, error) {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("open packet socket on %s: %w", ifName, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return fail(err)
	}
	// Only what arrives from the neighbour: the router's own egress copy of
	// a forwarded packet and our forgeries would otherwise be seen twice.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail(err)
	}
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail(err)
	}
	return fd, ifi.Index, nil
}

// Close stops the injector and returns what it did. Errors met while
// running (a failed send, a failed iptables call) are returned here.
func (in *Injector) Close() ([]Event, error) {
	close(in.stop)
	in.wg.Wait()
	unix.Close(in.fdC)
	unix.Close(in.fdS)
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.events, errors.Join(in.errs...)
}

type packet struct {
	src, dst netip.AddrPort
	ttl      uint8
	id       uint16
	tcp      *layers.TCP
	udp      bool
	payload  []byte
}

func (in *Injector) loop(fd int, fromClient bool) {
	defer in.wg.Done()
	var (
		eth     layers.Ethernet
		ip4     layers.IPv4
		ip6     layers.IPv6
		tcp     layers.TCP
		udp     layers.UDP
		payload gopacket.Payload
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &tcp, &udp, &payload)
	parser.IgnoreUnsupported = true
	decoded := make([]gopacket.LayerType, 0, 8)
	buf := make([]byte, 65536)
	for {
		select {
		case <-in.stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue // EAGAIN from SO_RCVTIMEO: look at stop again
		}
		if err := parser.DecodeLayers(buf[:n], &decoded); err != nil {
			continue
		}
		var p packet
		var srcIP, dstIP netip.Addr
		for _, lt := range decoded {
			switch lt {
			case layers.LayerTypeIPv4:
				srcIP, _ = netip.AddrFromSlice(ip4.SrcIP.To4())
				dstIP, _ = netip.AddrFromSlice(ip4.DstIP.To4())
				p.ttl, p.id = ip4.TTL, ip4.Id
			case layers.LayerTypeIPv6:
				srcIP, _ = netip.AddrFromSlice(ip6.SrcIP)
				dstIP, _ = netip.AddrFromSlice(ip6.DstIP)
				p.ttl = ip6.HopLimit
			case layers.LayerTypeTCP:
				p.src, p.dst = netip.AddrPortFrom(srcIP, uint16(tcp.SrcPort)), netip.AddrPortFrom(dstIP, uint16(tcp.DstPort))
				p.tcp, p.payload = &tcp, tcp.Payload
			case layers.LayerTypeUDP:
				p.src, p.dst = netip.AddrPortFrom(srcIP, uint16(udp.SrcPort)), netip.AddrPortFrom(dstIP, uint16(udp.DstPort))
				p.udp, p.payload = true, udp.Payload
			}
		}
		if !p.src.IsValid() {
			continue
		}
		if fromClient {
			in.fromClient(&p)
		} else {
			in.fromServer(&p)
		}
	}
}

func (in *Injector) watched(server netip.AddrPort) bool {
	return in.targets[server.Addr()] && server.Port() == in.cfg.Port
}

func (in *Injector) match(payload []byte) string {
	for _, n := range in.names {
		if bytes.Contains(payload, n) {
			return string(n)
		}
	}
	return ""
}

func (in *Injector) fromClient(p *packet) {
	if !in.watched(p.dst) {
		return
	}
	if p.udp {
		if in.cfg.Mode == QUIC {
			in.quicInitial(p)
		}
		return
	}
	if in.cfg.Mode == QUIC || len(p.payload) == 0 || p.payload[0] != 0x16 {
		return
	}
	name := in.match(p.payload)
	if name == "" {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	key := flowKey{p.src, p.dst}
	if in.trigged[key] {
		return
	}
	in.trigged[key] = true
	s, c := p.tcp.Ack, p.tcp.Seq+uint32(len(p.payload))
	st := in.seen[key]
	var sent int
	if in.cfg.Mode == Copy {
		toClient := Reset{Src: p.dst, Dst: p.src, Seq: s, Ack: c, ACK: true, TTL: st.ttl - 1, IPID: st.id + 1, Window: st.window}
		if st.ttl == 0 { // no server packet seen: use what a one-hop Linux server shows
			toClient.TTL = 63
		}
		toServer := Reset{Src: p.src, Dst: p.dst, Seq: c, Ack: s, ACK: true, TTL: p.ttl - 1, IPID: p.id + 1, Window: p.tcp.Window}
		sent += in.send(toClient, true) + in.send(toServer, false)
	} else {
		sent += in.burst(p.dst, p.src, s, c, true)
		sent += in.burst(p.src, p.dst, c, s, false)
	}
	now := time.Now()
	in.events = append(in.events, Event{Time: now, Kind: "trigger", Client: p.src, Server: p.dst, Name: name, Injected: sent})
	if in.cfg.Residual > 0 {
		in.residual[p.dst] = now.Add(in.cfg.Residual)
	}
}

// burst sends the GFW-style sequence from src to dst: RST with ack 0, three
// RST+ACKs, then RST+ACKs with shifted sequence numbers.
func (in *Injector) burst(src, dst netip.AddrPort, seq, ack uint32, toClient bool) int {
	sent := 0
	base := Reset{Src: src, Dst: dst, TTL: in.foreignTTL}
	for i, r := range []struct {
		seq, ack uint32
		flag     bool
	}{
		{seq, 0, false},
		{seq, ack, true}, {seq, ack, true}, {seq, ack, true},
		{seq + 1460, ack, true}, {seq + 4380, ack, true},
	} {
		f := base
		f.Seq, f.Ack, f.ACK = r.seq, r.ack, r.flag
		f.IPID = uint16(in.rng.UintN(65536))
		f.Window = uint16(in.rng.UintN(65536))
		if i == 0 {
			f.Window = 0
		}
		sent += in.send(f, toClient)
	}
	return sent
}

func (in *Injector) fromServer(p *packet) {
	if p.udp || !in.watched(p.src) {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	key := flowKey{p.dst, p.src}
	in.seen[key] = serverState{ttl: p.ttl, id: p.id, window: p.tcp.Window}
	if !p.tcp.SYN || !p.tcp.ACK {
		return
	}
	until, ok := in.residual[p.src]
	if !ok || time.Now().After(until) {
		return
	}
	// Answer the SYN-ACK: the client's next expected sequence number is
	// the server's ISN+1 and the server expects the acknowledged one.
	sent := 0
	if in.cfg.Mode == Copy {
		sent += in.send(Reset{Src: p.src, Dst: p.dst, Seq: p.tcp.Seq + 1, Ack: p.tcp.Ack, ACK: true, TTL: p.ttl - 1, IPID: p.id + 1, Window: p.tcp.Window}, true)
		sent += in.send(Reset{Src: p.dst, Dst: p.src, Seq: p.tcp.Ack, TTL: 63}, false)
	} else {
		sent += in.burst(p.src, p.dst, p.tcp.Seq+1, p.tcp.Ack, true)
		sent += in.burst(p.dst, p.src, p.tcp.Ack, p.tcp.Seq+1, false)
	}
	in.events = append(in.events, Event{Time: time.Now(), Kind: "residual", Client: p.dst, Server: p.src, Injected: sent})
}

// send must be called with in.mu held.
func (in *Injector) send(r Reset, toClient bool) int {
	fd, ifIndex := in.fdS, in.ifS
	r.SrcMAC, r.DstMAC = in.cfg.RouterServerMAC, in.cfg.ServerMAC
	if toClient {
		fd, ifIndex = in.fdC, in.ifC
		r.SrcMAC, r.DstMAC = in.cfg.RouterClientMAC, in.cfg.ClientMAC
	}
	frame, err := r.Frame(in.buf)
	if err != nil {
		in.errs = append(in.errs, err)
		return 0
	}
	var proto uint16 = unix.ETH_P_IP
	if r.Src.Addr().Is6() {
		proto = unix.ETH_P_IPV6
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifIndex, Halen: 6}
	copy(sa.Addr[:], r.DstMAC)
	if err := unix.Sendto(fd, frame, 0, sa); err != nil {
		in.errs = append(in.errs, fmt.Errorf("send forged reset %s -> %s: %w", r.Src, r.Dst, err))
		return 0
	}
	return 1
}

func (in *Injector) quicInitial(p *packet) {
	name, ok := in.quicServerName(p)
	if !ok || in.match([]byte(name)) == "" {
		return
	}
	key := flowKey{p.src, p.dst}
	in.mu.Lock()
	if in.blocked[key] {
		in.mu.Unlock()
		return
	}
	in.blocked[key] = true
	in.mu.Unlock()
	// iptables takes tens of milliseconds; other flows' Initials must not
	// wait behind it.
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		in.blockUDP(p.src, p.dst, name)
	}()
}

// quicServerName decrypts a client Initial the way an on-path censor does
// (RFC 9001: the keys derive from the connection ID alone) and returns the
// ClientHello's server name once the CRYPTO data holding it has arrived.
func (in *Injector) quicServerName(p *packet) (string, bool) {
	key := flowKey{p.src, p.dst}
	if in.hellos == nil || len(in.hellos) >= maxQUICFlows {
		in.hellos = map[flowKey]*quic.Flow{}
	}
	f := in.hellos[key]
	if f == nil {
		f = &quic.Flow{}
		in.hellos[key] = f
	}
	if _, err := f.Add(&in.quicDec, p.payload); err != nil {
		return "", false
	}
	hs, ok := f.ClientHello()
	if !ok {
		return "", false
	}
	delete(in.hellos, key)
	ch, err := tlshello.ParseClientHelloHandshake(hs)
	if err != nil && ch.ServerName == "" {
		return "", false
	}
	return ch.ServerName, true
}

// maxQUICFlows bounds the Initials reassembled at once.
const maxQUICFlows = 4096

func (in *Injector) blockUDP(client, server netip.AddrPort, name string) {
	cmd := "iptables"
	if client.Addr().Is6() {
		cmd = "ip6tables"
	}
	var errs []error
	for _, dir := range [][2]netip.AddrPort{{server, client}, {client, server}} {
		errs = append(errs, execNS(in.cfg.RouterNS, cmd, "-I", quicChain, "-p", "udp",
			"-s", dir[0].Addr().String(), "--sport", strconv.Itoa(int(dir[0].Port())),
			"-d", dir[1].Addr().String(), "--dport", strconv.Itoa(int(dir[1].Port())), "-j", "DROP"))
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		in.errs = append(in.errs, fmt.Errorf("block quic flow %s -> %s: %w", client, server, err))
	}
	in.events = append(in.events, Event{Time: time.Now(), Kind: "quic_block", Client: client, Server: server, Name: name})
}

// quicChain holds the injector's UDP blocks. Creating it at start also
// takes the first, slow iptables call out of the race with the server's
// first flight.
const quicChain = "TSLAB-QUIC"

func (in *Injector) quicChains() error {
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if err := execNS(in.cfg.RouterNS, cmd, "-N", quicChain); err != nil {
			return fmt.Errorf("start injector: %w", err)
		}
		if err := execNS(in.cfg.RouterNS, cmd, "-I", "FORWARD", "-j", quicChain); err != nil {
			return fmt.Errorf("start injector: %w", err)
		}
	}
	return nil
}

func execNS(ns, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := netns.Exec(ctx, ns, name, args...)
	return err
}
