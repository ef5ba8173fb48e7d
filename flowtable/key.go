/* The flow key and its hash.
 *
 * A TCP connection through the gateway is named by its two endpoints: the
 * host on the LAN side and the host on the WAN side. Both directions of the
 * connection build the same Key (the engine puts the LAN endpoint first
 * whatever the packet's direction), so one entry serves both.
 *
 * Key.Hash picks the shard, and so the worker goroutine, that owns a flow:
 *
 *  1. Each address is widened to 16 bytes (IPv4 as ::ffff:a.b.c.d) and read
 *     as two 64-bit words; the ports and the address families form a fifth.
 *  2. The words are folded pairwise with a 64x64->128 multiply ("mum", as in
 *     wyhash), each word first XORed with a per-process random seed, so an
 *     outsider who chooses ports and addresses cannot aim a flood at one
 *     worker without knowing the seed.
 *
 * No allocation, no loops: a handful of multiplies per packet.
 */

package flowtable

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
)

// Key names one TCP connection by its LAN and WAN endpoints. It is
// comparable and works for IPv4 and IPv6 alike.
type Key struct {
	LAN netip.AddrPort
	WAN netip.AddrPort
}

// hashSeed is drawn once per process from the runtime's random source
// (math/rand/v2's global generator is seeded from OS randomness), so shard
// placement differs between runs and cannot be predicted from outside.
var hashSeed = [6]uint64{
	rand.Uint64(), rand.Uint64(), rand.Uint64(),
	rand.Uint64(), rand.Uint64(), rand.Uint64(),
}

// mum multiplies a and b to 128 bits and folds the halves together: every
// input bit reaches many output bits in one instruction pair.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// Hash returns a well-mixed, per-process seeded 64-bit hash of k. It does
// not allocate.
func (k Key) Hash() uint64 {
	lan := k.LAN.Addr().As16()
	wan := k.WAN.Addr().As16()
	// Ports in the low 32 bits; the address families above them, so that
	// 1.2.3.4 and ::ffff:1.2.3.4 (different Keys) also hash apart.
	meta := uint64(k.LAN.Port()) | uint64(k.WAN.Port())<<16
	if k.LAN.Addr().Is4() {
		meta |= 1 << 32
	}
	if k.WAN.Addr().Is4() {
		meta |= 1 << 33
	}
	h := mum(binary.LittleEndian.Uint64(lan[:8])^hashSeed[0], binary.LittleEndian.Uint64(lan[8:])^hashSeed[1])
	h = mum(h^binary.LittleEndian.Uint64(wan[:8])^hashSeed[2], binary.LittleEndian.Uint64(wan[8:])^hashSeed[3])
	h = mum(h^meta^hashSeed[4], hashSeed[5]|1)
	// A final avalanche (MurmurHash3's fmix64): with some seeds the last
	// multiplication alone left the top bits, which pick the shard
	// (ShardOf), uneven for keys that differ only in a port (seen once in
	// TestHashSpreadAcrossShards).
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// String formats k as "lan<->wan"; it is for logs and the HTTP API.
func (k Key) String() string {
	return k.LAN.String() + "<->" + k.WAN.String()
}
