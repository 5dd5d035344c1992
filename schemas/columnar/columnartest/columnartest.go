// Package columnartest makes random records and states, independently of
// package columnar's field offsets, what every dataset column must hold for
// a record. Tests of columnar and of the Parquet writer compare what they
// read back against it.
package columnartest

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
)

// Fill sets every exported field of the struct *p to a random value: about
// one field in eight is left at its zero value, so empty strings, nil slices
// and invalid addresses are exercised too.
func Fill(p any, r *rand.Rand) {
	fill(reflect.ValueOf(p).Elem(), r)
}

var addrType = reflect.TypeFor[netip.Addr]()

func fill(v reflect.Value, r *rand.Rand) {
	if v.Type() == addrType {
		switch r.IntN(3) {
		case 0:
			v.Set(reflect.ValueOf(netip.Addr{}))
		case 1:
			var b [4]byte
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			v.Set(reflect.ValueOf(netip.AddrFrom4(b)))
		default:
			var b [16]byte
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			v.Set(reflect.ValueOf(netip.AddrFrom16(b)))
		}
		return
	}
	if v.Kind() == reflect.Struct {
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), r)
			}
		}
		return
	}
	if r.IntN(8) == 0 {
		v.SetZero()
		return
	}
	switch v.Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(r.Uint64()))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(r.Uint64())
	case reflect.Float64:
		v.SetFloat(r.NormFloat64() * 1e6)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.String:
		v.SetString(randString(r))
	case reflect.Slice:
		n := r.IntN(4)
		s := reflect.MakeSlice(v.Type(), n, n)
		if v.Type().Elem().Kind() == reflect.Uint8 {
			s = reflect.MakeSlice(v.Type(), n*50+1, n*50+1)
		}
		for i := range s.Len() {
			fill(s.Index(i), r)
		}
		v.Set(s)
	default:
		panic("columnartest: cannot fill " + v.Type().String())
	}
}

var alphabet = []rune("abcdefghijklmnopqrstuvwxyz0123456789.-_ äöüЖ中🙂")

func randString(r *rand.Rand) string {
	n := 1 + r.IntN(24)
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// Values returns what each column must hold for record rec (a struct or a
// pointer to one), keyed by column name, in a canonical form: int64 for
// signed integers and times, uint64 for unsigned integers, float64, bool,
// string, []string (never nil), []byte, and nil for null (an invalid
// address, an empty byte slice). Nested structs are flattened to
// <parent>_<field>, as the datasets do.
func Values(rec any) map[string]any {
	m := make(map[string]any)
	v := reflect.Indirect(reflect.ValueOf(rec))
	values(v, "", m)
	return m
}

func values(v reflect.Value, prefix string, m map[string]any) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		name = prefix + name
		fv := v.Field(i)
		switch {
		case f.Type == addrType:
			a := fv.Interface().(netip.Addr)
			if !a.IsValid() {
				m[name] = nil
			} else {
				m[name] = a.String()
			}
		case fv.Kind() == reflect.Struct:
			values(fv, name+"_", m)
		case fv.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			m[name] = append([]string{}, fv.Interface().([]string)...)
		case fv.Kind() == reflect.Slice:
			if fv.Len() == 0 {
				m[name] = nil
			} else {
				m[name] = fv.Bytes()
			}
		case fv.CanInt():
			m[name] = fv.Int()
		case fv.CanUint():
			m[name] = fv.Uint()
		case fv.CanFloat():
			m[name] = fv.Float()
		case fv.Kind() == reflect.Bool:
			m[name] = fv.Bool()
		case fv.Kind() == reflect.String:
			m[name] = fv.String()
		}
	}
}
