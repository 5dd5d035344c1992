package tlshello

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
)

// certNames returns the subject and issuer of a DER certificate. It asks
// crypto/x509 first; when that refuses the certificate (interception
// appliances and test CAs produce certificates it rejects: bad
// extensions, mismatched algorithm identifiers) it walks the
// TBSCertificate itself, because the issuer of a broken certificate is
// exactly what an interception study needs to see.
func certNames(der []byte) (subject, issuer string, parsed, ok bool) {
	if c, err := x509.ParseCertificate(der); err == nil {
		return c.Subject.String(), c.Issuer.String(), true, true
	}
	subj, iss, ok := tbsNames(der)
	if !ok {
		return "", "", false, false
	}
	subject, ok1 := rdnString(subj)
	issuer, ok2 := rdnString(iss)
	return subject, issuer, false, ok1 || ok2
}

// tbsNames finds the issuer and subject Names in
//
//	Certificate ::= SEQUENCE { tbsCertificate SEQUENCE {
//	    version [0] EXPLICIT OPTIONAL, serialNumber INTEGER,
//	    signature AlgorithmIdentifier, issuer Name, validity Validity,
//	    subject Name, ... }, ... }
func tbsNames(der []byte) (subject, issuer []byte, ok bool) {
	cert, _, ok := derElem(der, 0x30)
	if !ok {
		return nil, nil, false
	}
	tbs, _, ok := derElem(cert, 0x30)
	if !ok {
		return nil, nil, false
	}
	if len(tbs) > 0 && tbs[0] == 0xa0 {
		if _, tbs, ok = derElem(tbs, 0xa0); !ok {
			return nil, nil, false
		}
	}
	var issuerFull, subjectFull []byte
	steps := []struct {
		tag byte
		out *[]byte
	}{{0x02, nil}, {0x30, nil}, {0x30, &issuerFull}, {0x30, nil}, {0x30, &subjectFull}}
	for _, s := range steps {
		start := tbs
		var rest []byte
		if _, rest, ok = derElem(tbs, s.tag); !ok {
			return nil, nil, false
		}
		if s.out != nil {
			*s.out = start[:len(start)-len(rest)]
		}
		tbs = rest
	}
	return subjectFull, issuerFull, true
}

// derElem reads one DER element with the given tag from the start of b
// and returns its contents and the bytes after it. Only definite lengths
// up to 4 bytes are accepted, which covers every certificate.
func derElem(b []byte, tag byte) (contents, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag {
		return nil, nil, false
	}
	n, hdr := int(b[1]), 2
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 4 || len(b) < 2+k {
			return nil, nil, false
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		hdr += k
	}
	if n < 0 || len(b)-hdr < n {
		return nil, nil, false
	}
	return b[hdr : hdr+n], b[hdr+n:], true
}

// rdnString renders a DER Name as crypto/x509 would.
func rdnString(name []byte) (string, bool) {
	var rdn pkix.RDNSequence
	rest, err := asn1.Unmarshal(name, &rdn)
	if err != nil || len(rest) != 0 {
		return "", false
	}
	return rdn.String(), true
}
