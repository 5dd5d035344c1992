package corpustest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Capture reads a pcap or pcapng file, whichever its first bytes say it is,
// whatever its name.
type Capture struct {
	f  *os.File
	pr *pcapgo.Reader
	ng *pcapgo.NgReader
}

// OpenCapture opens the capture at path.
func OpenCapture(path string) (*Capture, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	c := &Capture{f: f}
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		c.ng, err = pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	} else {
		c.pr, err = pcapgo.NewReader(br)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return c, nil
}

// ReadPacketData returns the next packet in a buffer of its own.
func (c *Capture) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	if c.ng != nil {
		return c.ng.ReadPacketData()
	}
	return c.pr.ReadPacketData()
}

// ZeroCopyReadPacketData returns the next packet in a buffer the next call
// reuses.
func (c *Capture) ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	if c.ng != nil {
		return c.ng.ZeroCopyReadPacketData()
	}
	return c.pr.ZeroCopyReadPacketData()
}

// LinkType is the link type of the packet ci describes: in a pcapng file,
// that of the interface it was captured on.
func (c *Capture) LinkType(ci gopacket.CaptureInfo) layers.LinkType {
	if c.ng == nil {
		return c.pr.LinkType()
	}
	if intf, err := c.ng.Interface(ci.InterfaceIndex); err == nil {
		return intf.LinkType
	}
	return c.ng.LinkType()
}

// Close closes the file.
func (c *Capture) Close() error { return c.f.Close() }
