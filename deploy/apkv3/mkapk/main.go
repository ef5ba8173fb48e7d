// Command mkapk writes an apk-tools 3 package (OpenWrt 25's .apk) with
// package apkv3; scripts/package.sh runs it (`go run`) for `make package`.
//
//	mkapk -name tcpcrypt-gw -version 1.2.3-r1 -arch mipsel_24kc \
//	  -depends "kmod-tun nftables" \
//	  -file bin/tcpcrypt-gw:/usr/bin/tcpcrypt-gw:0755 \
//	  -conffile /etc/config/tcpcrypt-gw \
//	  -script post-install:postinst.sh -o out.apk
//
// The build time (and every file's mtime) is SOURCE_DATE_EPOCH when set,
// else now.
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"tcpcrypt-gw/deploy/apkv3"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, " ") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkapk:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("mkapk", flag.ContinueOnError)
	var p apkv3.Package
	var files, scripts, conffiles list
	var depends, output string
	fl.StringVar(&p.Name, "name", "", "package name")
	fl.StringVar(&p.Version, "version", "", "apk version, e.g. 1.2.3-r1")
	fl.StringVar(&p.Arch, "arch", "", "architecture (OpenWrt's, e.g. mipsel_24kc)")
	fl.StringVar(&p.Description, "description", "", "one line")
	fl.StringVar(&p.Maintainer, "maintainer", "", "")
	fl.StringVar(&p.URL, "url", "", "")
	fl.StringVar(&p.License, "license", "", "")
	fl.StringVar(&p.Origin, "origin", "", "source package")
	fl.StringVar(&depends, "depends", "", "dependencies, separated by spaces")
	fl.Var(&files, "file", "src:dst:mode (octal), repeated")
	fl.Var(&conffiles, "conffile", "a dst that is a configuration file, repeated")
	fl.Var(&scripts, "script", "kind:path, kind one of "+strings.Join(apkv3.Scripts, ", ")+"; repeated")
	fl.StringVar(&output, "o", "", "output file")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if output == "" {
		return fmt.Errorf("no output (-o)")
	}
	p.Depends = strings.Fields(depends)
	p.Conffiles = conffiles
	p.BuildTime = time.Now().Unix()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		t, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %v", s, err)
		}
		p.BuildTime = t
	}
	for _, f := range files {
		parts := strings.Split(f, ":")
		if len(parts) != 3 {
			return fmt.Errorf("-file %q: want src:dst:mode", f)
		}
		mode, err := strconv.ParseUint(parts[2], 8, 32)
		if err != nil || mode > 0o7777 {
			return fmt.Errorf("-file %q: mode %q is not octal permission bits", f, parts[2])
		}
		data, err := os.ReadFile(parts[0])
		if err != nil {
			return err
		}
		p.Files = append(p.Files, apkv3.File{Path: parts[1], Mode: fs.FileMode(mode), Data: data})
	}
	p.Scripts = map[string][]byte{}
	for _, s := range scripts {
		kind, file, ok := strings.Cut(s, ":")
		if !ok {
			return fmt.Errorf("-script %q: want kind:path", s)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		p.Scripts[kind] = data
	}
	out, err := os.Create(output)
	if err != nil {
		return err
	}
	if err := p.Write(out); err != nil {
		out.Close()
		os.Remove(output)
		return err
	}
	return out.Close()
}
