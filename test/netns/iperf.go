package netns

import (
	"encoding/json"
	"fmt"
)

// Iperf3Result reads what `iperf3 -c ... -J` printed: the receiver's
// bits per second and the sender's retransmissions, or an error when the
// run measured nothing.
func Iperf3Result(out []byte) (bitsPerSecond float64, retransmits int, err error) {
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, 0, err
	}
	if res.Error != "" || res.End.SumReceived.BitsPerSecond == 0 {
		return 0, 0, fmt.Errorf("iperf3 measured nothing: %q", res.Error)
	}
	return res.End.SumReceived.BitsPerSecond, res.End.SumSent.Retransmits, nil
}
