// The wireguard-go path: a WireGuard tunnel between gwa and gwb, built from
// the golang.zx2c4.com/wireguard version go.mod pins. The kernel module
// does not exist on these machines; wireguard-go is the userspace
// implementation, on the same tun package as the gateway.
//
//  1. go build golang.zx2c4.com/wireguard (the module's main).
//  2. Start it in gwa and gwb (`wireguard-go -f <if>`); it creates the TUN
//     device and its UAPI socket /var/run/wireguard/<if>.sock.
//  3. Configure keys, ports, endpoints (the routers' wan0 addresses) and
//     allowed IPs with wg (Debian's wireguard-tools, installed when missing)
//     or, when wg cannot be had, by writing the UAPI socket directly.
//  4. Address the tunnel (10.91.10.1/24 and .2) and route the far LAN into
//     it, so that client <-> server traffic crosses the wan as UDP.
//  5. Stop: SIGTERM to both; the devices and their routes go with them.

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/curve25519"

	"tcpcrypt-gw/test/netns"
)

const wgSockDir = "/var/run/wireguard"

type wgKey [32]byte

func newWGKey() (priv, pub wgKey, err error) {
	if _, err = rand.Read(priv[:]); err != nil {
		return
	}
	priv[0] &= 248
	priv[31] = priv[31]&127 | 64
	p, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	copy(pub[:], p)
	return
}

// wgEnd is one end of the tunnel.
type wgEnd struct {
	ns        *netns.NS
	ifname    string
	priv, pub wgKey
	port      int
	endpoint  string // this end's address on the wan, for the other end
	tunAddr   string // address inside the tunnel
	lan       string // the LAN behind this end
}

func (e *env) startWireGuard() (func(), error) {
	bin, err := e.build("wireguard-go", "golang.zx2c4.com/wireguard")
	if err != nil {
		return nil, fmt.Errorf("cannot build wireguard-go: %w", err)
	}
	wg := ""
	if !e.o.wgUAPI {
		var note string
		if wg, note = ensureWG(); note != "" {
			fmt.Fprintln(os.Stderr, "bench: wireguard:", note)
		}
	}
	t := e.topo
	ends := []*wgEnd{
		{ns: t.GwA, ifname: fmt.Sprintf("tcgwA%d", os.Getpid()), port: 51820, endpoint: t.GwAWANAddr4.String(), tunAddr: "10.91.10.1", lan: t.GwALANPrefixes[0].String()},
		{ns: t.GwB, ifname: fmt.Sprintf("tcgwB%d", os.Getpid()), port: 51821, endpoint: t.GwBWANAddr4.String(), tunAddr: "10.91.10.2", lan: t.GwBLANPrefixes[0].String()},
	}
	for _, x := range ends {
		if len(x.ifname) > 15 {
			x.ifname = x.ifname[:15]
		}
		if x.priv, x.pub, err = newWGKey(); err != nil {
			return nil, err
		}
	}
	var procs []*netns.Proc
	stop := func() {
		e.cur = nil
		for _, p := range procs {
			p.Stop()
		}
		for _, x := range ends {
			os.Remove(filepath.Join(wgSockDir, x.ifname+".sock"))
		}
	}
	atCleanup(func() {
		for _, x := range ends {
			os.Remove(filepath.Join(wgSockDir, x.ifname+".sock"))
		}
	})
	fail := func(err error) (func(), error) {
		stop()
		return nil, err
	}
	// 2. The daemons.
	for _, x := range ends {
		log := filepath.Join(e.dir, x.ifname+".log")
		p, err := x.ns.Start(context.Background(), log, "env", "WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error", bin, "-f", x.ifname)
		if err != nil {
			return fail(err)
		}
		procs = append(procs, p)
		e.cur = procs
		sock := filepath.Join(wgSockDir, x.ifname+".sock")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(log)
				return fail(fmt.Errorf("wireguard-go did not start in %s: %s", x.ns.Name, strings.TrimSpace(string(b))))
			}
			select {
			case <-p.Done():
				b, _ := os.ReadFile(log)
				return fail(fmt.Errorf("wireguard-go exited in %s: %v: %s", x.ns.Name, p.Wait(), strings.TrimSpace(string(b))))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// 3 and 4. Keys, peers, addresses, routes.
	for i, x := range ends {
		peer := ends[1-i]
		allowed := []string{peer.lan, peer.tunAddr + "/32"}
		if wg != "" {
			keyFile := filepath.Join(e.dir, x.ifname+".key")
			if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(x.priv[:])+"\n"), 0o600); err != nil {
				return fail(err)
			}
			if out, err := x.ns.Run(context.Background(), wg, "set", x.ifname, "private-key", keyFile, "listen-port", fmt.Sprint(x.port),
				"peer", base64.StdEncoding.EncodeToString(peer.pub[:]), "endpoint", net.JoinHostPort(peer.endpoint, fmt.Sprint(peer.port)),
				"allowed-ips", strings.Join(allowed, ",")); err != nil {
				return fail(fmt.Errorf("wg set: %v: %s", err, out))
			}
		} else if err := uapiSet(filepath.Join(wgSockDir, x.ifname+".sock"), x, peer, allowed); err != nil {
			return fail(err)
		}
		for _, args := range [][]string{
			{"addr", "add", x.tunAddr + "/24", "dev", x.ifname},
			{"link", "set", x.ifname, "up"},
			{"route", "add", peer.lan, "dev", x.ifname},
		} {
			if out, err := x.ns.Run(context.Background(), "ip", args...); err != nil {
				return fail(fmt.Errorf("%v: %s", err, out))
			}
		}
	}
	if err := waitEcho(t.Client, e.echo, 10*time.Second); err != nil {
		return fail(fmt.Errorf("through the wireguard-go tunnel: %w", err))
	}
	return stop, nil
}

// ensureWG finds wg, installing wireguard-tools with apt-get when it is
// missing and we are root. It returns "" when wg cannot be had (the UAPI
// socket is used instead), with a note saying why.
func ensureWG() (string, string) {
	if p, err := exec.LookPath("wg"); err == nil {
		return p, ""
	}
	if os.Geteuid() != 0 {
		return "", "wg not found and not root: configuring through the UAPI socket"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fmt.Fprintln(os.Stderr, "bench: installing wireguard-tools (apt-get)")
	if out, err := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); err != nil {
		return "", fmt.Sprintf("apt-get update: %v: %s; configuring through the UAPI socket", err, strings.TrimSpace(string(out)))
	}
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "wireguard-tools")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("apt-get install wireguard-tools: %v: %s; configuring through the UAPI socket", err, strings.TrimSpace(string(out)))
	}
	if p, err := exec.LookPath("wg"); err == nil {
		return p, ""
	}
	return "", "wg still missing after installing wireguard-tools: configuring through the UAPI socket"
}

// uapiSet configures one end through wireguard-go's UAPI socket (the
// protocol wg itself speaks: key=value lines, an empty line ends the
// request, the answer carries errno).
func uapiSet(sock string, x, peer *wgEnd, allowed []string) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "set=1\nprivate_key=%s\nlisten_port=%d\nreplace_peers=true\n", hex.EncodeToString(x.priv[:]), x.port)
	fmt.Fprintf(&b, "public_key=%s\nendpoint=%s\nreplace_allowed_ips=true\n", hex.EncodeToString(peer.pub[:]), net.JoinHostPort(peer.endpoint, fmt.Sprint(peer.port)))
	for _, a := range allowed {
		fmt.Fprintf(&b, "allowed_ip=%s\n", a)
	}
	b.WriteString("\n")
	if _, err := c.Write([]byte(b.String())); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("uapi %s: %w", sock, err)
	}
	if strings.TrimSpace(line) != "errno=0" {
		return fmt.Errorf("uapi %s: %s", sock, strings.TrimSpace(line))
	}
	return nil
}
