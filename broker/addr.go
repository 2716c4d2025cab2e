package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"
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
// replaced by the machine's first non-loopback IPv4 address; loopback
// reports that there was none, so loopback stands in.
func advertised(advertise string, listened net.Addr) (addr string, loopback bool) {
	if advertise != "" {
		return advertise, false
	}
	ap, err := netip.ParseAddrPort(listened.String())
	if err != nil || !ap.Addr().IsUnspecified() {
		return listened.String(), false
	}
	ip := localIPv4(net.InterfaceAddrs)
	return netip.AddrPortFrom(ip, ap.Port()).String(), ip.IsLoopback()
}

// storeHost is the IP address and port that message ids carry for the
// advertised address addr: addr itself when its host is an IP address,
// else the host name's first IPv4 address, else the machine's.
func storeHost(addr string, log *slog.Logger) netip.AddrPort {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap
	}
	host, portStr, err := net.SplitHostPort(addr)
	port, perr := strconv.ParseUint(portStr, 10, 16)
	if err != nil || perr != nil {
		return netip.AddrPort{} // Validate refused it already; the store's default applies
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(ips) == 0 {
		ip := localIPv4(net.InterfaceAddrs)
		log.Warn("broker: cannot resolve the advertised host for message ids; using the machine's address",
			"advertised", addr, "ip", ip, "err", err)
		return netip.AddrPortFrom(ip, uint16(port))
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(port))
}

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
