// Memory: the Go runtime's memory limit (GOMEMLIMIT) and GC target (GOGC)
// derived from the configured limits, so that a gateway on a 128 MB router
// is held to a heap it can afford instead of being killed by the kernel's
// OOM killer (docs/deploy.md, "Memory").
//
// The derivation:
//  1. The live memory at the configured maxima: a fixed base (runtime, the
//     TUN batch buffers, the API) + flows.max flows at the measured size of
//     an active flow + flows.max_buffer_total held in ring buffers of up
//     to twice their content (the worst case check-config also reports,
//     gateway/engine/budget.go) + the session cache at its size.
//  2. The limit (memory.limit: auto) is that live maximum (rounded up to
//     MiB) plus a quarter,
//     room for the garbage the GC has not collected yet: with the limit
//     set, the runtime collects more often as the heap approaches it rather
//     than let it grow to GOGC's target.
//  3. The expected peak is the limit when there is one (the runtime keeps
//     its memory under it as long as the live data fits), otherwise the
//     live maximum grown by GOGC.

package config

import "fmt"

// Memory configures the Go runtime's memory limit and GC target. Both are
// applied at start; GOMEMLIMIT and GOGC in the environment win.
type Memory struct {
	// Limit is "auto" (derived from the flow and buffer limits), "off"
	// (no limit), or a size.
	Limit string `yaml:"limit"`
	// GOGC is the GC target percentage (runtime/debug.SetGCPercent).
	GOGC int `yaml:"gogc"`
}

// Memory limit modes (memory.limit), besides a size.
const (
	MemoryLimitAuto = "auto"
	MemoryLimitOff  = "off"
)

// The parts of the estimate. They are estimates from measurements on
// amd64 (docs/performance.md); 32-bit routers use somewhat less per flow.
const (
	// MemoryBase is what the gateway holds with no flow: the Go runtime
	// and its stacks, the TUN device's batch of 128 receive buffers of
	// 64 KiB (one GSO super-packet each), the key pool and the HTTP API.
	MemoryBase = 16 * MiB
	// MemoryPerFlow is the heap of one active encrypted flow with its
	// share of the flow table: engine.ActiveFlowBytes (measured by
	// BenchmarkIdleFlowMemory before the idle flows give their buffers
	// back; a test in cmd/tcpcrypt-gw keeps the two equal).
	MemoryPerFlow ByteSize = 3200
	// MemoryBufferFactor: buffered bytes live in ring buffers of up to
	// twice their content (gateway/engine/budget.go).
	MemoryBufferFactor = 2
	// MemoryParkedShare: the empty ring buffers bulk flows keep for their
	// next burst take at most 1/MemoryParkedShare of the buffer budget
	// more (engine.ParkShare; a test in cmd/tcpcrypt-gw keeps the two
	// equal).
	MemoryParkedShare = 8
	// MemoryPerSession is one cached session secret for resumption.
	MemoryPerSession = 256
	minMemoryLimit   = 16 * MiB
	maxMemoryLimit   = TiB
	minGOGC          = 10
	maxGOGC          = 1000
)

// MemoryPlan is the memory derivation of one configuration.
type MemoryPlan struct {
	Live  ByteSize // live memory at the configured maxima
	Limit ByteSize // the memory limit to set; 0 = none
	GOGC  int
	Peak  ByteSize // expected peak of the Go runtime's memory
}

// MemoryPlan derives the memory limit and the expected peak. It assumes a
// valid configuration.
func (c *Config) MemoryPlan() MemoryPlan {
	p := MemoryPlan{GOGC: c.Memory.GOGC}
	p.Live = roundUpMiB(MemoryBase + ByteSize(c.Flows.Max)*MemoryPerFlow + MemoryBufferFactor*c.Flows.MaxBufferTotal + c.Flows.MaxBufferTotal/MemoryParkedShare +
		ByteSize(c.TCPCrypt.SessionCache.Size)*MemoryPerSession)
	switch c.Memory.Limit {
	case MemoryLimitOff:
	case MemoryLimitAuto:
		p.Limit = roundUpMiB(p.Live + p.Live/4)
	default:
		p.Limit, _ = ParseByteSize(c.Memory.Limit)
	}
	if p.Limit > 0 {
		p.Peak = p.Limit
	} else {
		p.Peak = roundUpMiB(p.Live + p.Live*ByteSize(p.GOGC)/100)
	}
	return p
}

func roundUpMiB(b ByteSize) ByteSize { return (b + MiB - 1) / MiB * MiB }

// String is what check-config prints.
func (p MemoryPlan) String() string {
	limit := "none (memory.limit: off)"
	if p.Limit > 0 {
		limit = p.Limit.String()
	}
	return fmt.Sprintf("live at the configured maxima %s, memory limit %s, GOGC %d, expected peak %s",
		p.Live, limit, p.GOGC, p.Peak)
}

func (v *validator) memory() {
	m := &v.c.Memory
	switch m.Limit {
	case MemoryLimitAuto, MemoryLimitOff:
	default:
		size, err := ParseByteSize(m.Limit)
		if err != nil {
			v.add("memory.limit", "%q is not auto, off or a size (%v)", m.Limit, err)
			break
		}
		v.sizeRange("memory.limit", size, minMemoryLimit, maxMemoryLimit, false)
		if live := v.c.MemoryPlan().Live; size < live {
			v.add("memory.limit", "%s is less than the %s the flow and buffer limits can hold "+
				"(lower flows.max or flows.max_buffer_total, or raise the limit)", size, live)
		}
	}
	v.intRange("memory.gogc", m.GOGC, minGOGC, maxGOGC)
}
