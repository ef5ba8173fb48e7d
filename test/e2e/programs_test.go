package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func needProgram(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Fatalf("%s is not installed (make test installs it)", name)
	}
	return p
}

// TestRealPrograms is case h: curl fetching from nginx, and iperf3 for 10 s,
// both through the two gateways.
func TestRealPrograms(t *testing.T) {
	nginx := needProgram(t, "nginx")
	curl := needProgram(t, "curl")
	iperf := needProgram(t, "iperf3")
	e := newEnv(t, envOptions{})

	t.Run("curl from nginx", func(t *testing.T) {
		dir := t.TempDir()
		content := make([]byte, 32<<20)
		rand.Read(content)
		if err := os.WriteFile(filepath.Join(dir, "file.bin"), content, 0o644); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf(`daemon off;
user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s;
  uwsgi_temp_path %[1]s;
  scgi_temp_path %[1]s;
  server { listen 8081; root %[1]s; }
}
`, dir)
		confPath := filepath.Join(dir, "nginx.conf")
		os.WriteFile(confPath, []byte(conf), 0o644)
		p, err := e.topo.Server.Start(context.Background(), filepath.Join(dir, "nginx.log"), nginx, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		out := filepath.Join(t.TempDir(), "got.bin")
		url := fmt.Sprintf("http://%s:8081/file.bin", e.topo.ServerAddr4)
		var lastErr error
		for i := 0; i < 50; i++ { // nginx needs a moment to listen
			_, lastErr = e.topo.Client.Run(context.Background(), curl, "-sS", "--fail", "--max-time", "120", "-o", out, url)
			if lastErr == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if lastErr != nil {
			t.Fatalf("curl: %v", lastErr)
		}
		got, err := os.ReadFile(out)
		if err != nil || sha256.Sum256(got) != sha256.Sum256(content) {
			t.Fatalf("curl got %d bytes, hash mismatch (err %v)", len(got), err)
		}
		if f := flowWithPort(e.flows(e.topo.GwA), 8081); f == nil || !f.Encrypted {
			t.Fatalf("nginx flow not encrypted: %+v", f)
		}
	})

	t.Run("iperf3 10s", func(t *testing.T) {
		dir := t.TempDir()
		srv, err := e.topo.Server.Start(context.Background(), filepath.Join(dir, "iperf-s.log"), iperf, "-s", "-1", "-p", "5201")
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Stop()
		// iperf3 -s -1 serves one client: wait until it listens rather than
		// probing it with a connection.
		for i := 0; ; i++ {
			ss, _ := e.topo.Server.Run(context.Background(), "ss", "-Hltn", "sport = :5201")
			if len(ss) > 0 {
				break
			}
			if i == 100 {
				t.Fatal("iperf3 server does not listen")
			}
			time.Sleep(50 * time.Millisecond)
		}
		var out []byte
		for i := 0; i < 50; i++ {
			out, err = e.topo.Client.Run(context.Background(), iperf, "-c", e.topo.ServerAddr4.String(), "-p", "5201", "-t", "10", "-J")
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("iperf3: %v\n%s", err, out)
		}
		var res struct {
			End struct {
				SumReceived struct {
					Bytes         float64 `json:"bytes"`
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(out, &res); err != nil || res.Error != "" {
			t.Fatalf("iperf3 output: %v %s", err, res.Error)
		}
		if res.End.SumReceived.Bytes <= 0 {
			t.Fatalf("iperf3 moved no data: %s", out)
		}
		t.Logf("iperf3 through both gateways: %.0f Mbit/s", res.End.SumReceived.BitsPerSecond/1e6)
		if f := flowWithPort(e.flows(e.topo.GwA), 5201); f == nil || !f.Encrypted {
			t.Fatalf("iperf3 flow not encrypted: %+v", f)
		}
	})
}
