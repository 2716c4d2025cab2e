package broker

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// maxNameLength bounds BrokerName and ClusterName.
const maxNameLength = 127

// CheckName checks a BrokerName or ClusterName: 1 to 127 letters, digits,
// '.', '_' and '-'.
func CheckName(v string) error {
	if v == "" || len(v) > maxNameLength {
		return fmt.Errorf("want 1 to %d characters", maxNameLength)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("illegal character %q (want letters, digits, '.', '_', '-')", c)
		}
	}
	return nil
}

// CheckAdvertiseAddr checks an AdvertiseAddr: host:port that clients can
// dial, so a host that is not every interface, and a port from 1 to 65535.
func CheckAdvertiseAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q: want 1 to 65535", port)
	}
	if host == "" {
		return errors.New("no host")
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		return fmt.Errorf("%s means every interface, which no client can dial", host)
	}
	return nil
}

// advertised returns the address to tell clients: advertise when set, else
// the address listened on, with an unspecified host (every interface)
// replaced by the machine's first non-loopback IPv4 address.
func advertised(advertise string, listened net.Addr) string {
	if advertise != "" {
		return advertise
	}
	ap, err := netip.ParseAddrPort(listened.String())
	if err != nil || !ap.Addr().IsUnspecified() {
		return listened.String()
	}
	return netip.AddrPortFrom(localIPv4(interfaceAddrs), ap.Port()).String()
}

// interfaceAddrs lists the machine's interface addresses.
func interfaceAddrs() ([]net.Addr, error) { return net.InterfaceAddrs() }

// localIPv4 picks the first global or private unicast IPv4 address that
// addrs returns, else loopback.
func localIPv4(addrs func() ([]net.Addr, error)) netip.Addr {
	list, err := addrs()
	if err == nil {
		for _, a := range list {
			p, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			if ip := p.Addr().Unmap(); ip.Is4() && ip.IsGlobalUnicast() {
				return ip
			}
		}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}
