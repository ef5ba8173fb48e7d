//go:build !faultinject

package main

import "tcpcrypt-gw/gateway/engine"

// faultKeys is the key source as it is: only test builds inject faults
// (fault_on.go).
func faultKeys(k engine.KeySource) engine.KeySource { return k }
