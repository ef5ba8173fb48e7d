//go:build !demo

// `tcpcrypt-gw demo` in a router build: the demo and the test harness it
// drives are left out (see demo.go); say how to get them.

package main

import "errors"

func cmdDemo([]string) error {
	return errors.New("this binary was built without the demo; `make demo` builds one with it (go build -tags demo)")
}
