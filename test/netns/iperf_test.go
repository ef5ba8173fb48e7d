package netns

import "testing"

func TestIperf3Result(t *testing.T) {
	bps, retr, err := Iperf3Result([]byte(`{"end":{"sum_received":{"bits_per_second":9.5e8},"sum_sent":{"retransmits":7}}}`))
	if err != nil || bps != 9.5e8 || retr != 7 {
		t.Fatalf("got %v %v %v", bps, retr, err)
	}
	if _, _, err := Iperf3Result([]byte(`{"error":"the server is busy running a test"}`)); err == nil {
		t.Fatal("a refused run measured something")
	}
}
