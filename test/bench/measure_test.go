package main

import "testing"

// TestSNMPField reads counters the way the kernel lays them out: names and
// values on two lines of the same table, several tables in one file.
func TestSNMPField(t *testing.T) {
	text := `Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm RtoMin RetransSegs InErrs
Tcp: 1 200 4711 0
TcpExt: SyncookiesSent TCPSynRetrans
TcpExt: 0 42
`
	for _, c := range []struct {
		table, field string
		want         uint64
	}{{"Tcp:", "RetransSegs", 4711}, {"TcpExt:", "TCPSynRetrans", 42}, {"Ip:", "DefaultTTL", 64}, {"Tcp:", "Nope", 0}, {"Udp:", "InErrors", 0}} {
		if got := snmpField(text, c.table, c.field); got != c.want {
			t.Errorf("%s %s = %d, want %d", c.table, c.field, got, c.want)
		}
	}
}
