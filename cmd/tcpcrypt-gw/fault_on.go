//go:build faultinject

// Fault injection for the end-to-end tests only (test/e2e builds a second
// binary with -tags faultinject): TCPCRYPT_GW_FAULT=no-key-pairs makes
// every key pair fail, as a broken entropy source would, so that a test
// can watch require_encryption reset the flow (RFC 8547 §9: never plain
// where encryption is required). Other builds have no such switch
// (fault_off.go).

package main

import (
	"errors"
	"os"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/gateway/engine"
)

func faultKeys(k engine.KeySource) engine.KeySource {
	if os.Getenv("TCPCRYPT_GW_FAULT") == "no-key-pairs" {
		return noKeyPairs{}
	}
	return k
}

type noKeyPairs struct{}

func (noKeyPairs) Get(tcpcrypt.TEP) (*tcpcrypt.KeyPair, error) {
	return nil, errors.New("key generation failed (fault injected)")
}
