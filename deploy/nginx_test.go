package deploy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nginxBinary finds an nginx to run deploy/nginx/default.conf with: $NGINX, or nginx on PATH
// (Debian: `apt-get install nginx`; no daemon is needed, only the binary).
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NGINX"); p != "" {
		return p
	}
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("no nginx binary (set NGINX or install Debian's nginx): the web proxy configuration is not run")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestNginxProxies runs the web app's nginx configuration for real, with the command and notifier
// upstreams replaced by local fakes: static files with SPA fallback, /healthz, /api proxied with
// forwarding headers, and a WebSocket upgrade through /ws.
func TestNginxProxies(t *testing.T) {
	bin := nginxBinary(t)
	dir := t.TempDir()
	html := filepath.Join(dir, "html")
	if err := os.MkdirAll(filepath.Join(html, "assets"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(html, "index.html"), "<!doctype html><title>ticketflow</title>")
	mustWrite(t, filepath.Join(html, "assets", "app-123.js"), "console.log(1)")

	command := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"xff":%q,"host":%q}`, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"), r.Host)
	}))
	defer command.Close()
	notifier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
			http.Error(w, "not an upgrade: Upgrade="+r.Header.Get("Upgrade")+" Connection="+r.Header.Get("Connection"), http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		// Not a real WebSocket handshake: enough to prove nginx switches protocols and then
		// relays raw bytes both ways.
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, err := rw.ReadString('\n')
		if err != nil {
			return
		}
		fmt.Fprintf(rw, "echo %s %s", r.URL.RequestURI(), line)
		rw.Flush()
	}))
	defer notifier.Close()

	conf, err := os.ReadFile(filepath.Join("nginx", "default.conf"))
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	site := strings.NewReplacer(
		"listen 8080;", fmt.Sprintf("listen 127.0.0.1:%d;", port),
		"root /usr/share/nginx/html;", "root "+html+";",
		"http://command:8000", "http://"+command.Listener.Addr().String(),
		"http://notifier:8000", "http://"+notifier.Listener.Addr().String(),
	).Replace(string(conf))
	for _, want := range []string{fmt.Sprintf("127.0.0.1:%d", port), html, command.Listener.Addr().String(), notifier.Listener.Addr().String()} {
		if !strings.Contains(site, want) {
			t.Fatalf("default.conf changed shape: could not substitute %s", want)
		}
	}
	mustWrite(t, filepath.Join(dir, "site.conf"), site)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must read the 0700 temp dir
	}
	main := fmt.Sprintf(`%s
pid %[2]s/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    types { text/html html; application/javascript js; }
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/site.conf;
}
`, user, dir)
	mustWrite(t, filepath.Join(dir, "nginx.conf"), main)

	if out, err := exec.Command(bin, "-t", "-p", dir, "-e", "stderr", "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-p", dir, "-e", "stderr", "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off; master_process off;")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, base+"/healthz", &stderr)

	get := func(path string) (int, string, http.Header) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	if code, body, _ := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body, h := get("/tickets/abc123"); code != 200 || !strings.Contains(body, "<title>ticketflow</title>") || h.Get("Cache-Control") != "no-cache" {
		t.Errorf("SPA route: %d %q cache %q, want index.html, no-cache", code, body, h.Get("Cache-Control"))
	}
	if code, _, h := get("/assets/app-123.js"); code != 200 || !strings.Contains(h.Get("Cache-Control"), "immutable") {
		t.Errorf("asset: %d cache %q", code, h.Get("Cache-Control"))
	}
	if code, _, _ := get("/assets/missing.js"); code != 404 {
		t.Errorf("missing asset: %d, want 404 (not index.html)", code)
	}
	code, body, _ := get("/api/tickets?limit=5")
	if code != 200 || !strings.Contains(body, `"path":"/api/tickets?limit=5"`) || !strings.Contains(body, `"xff":"127.0.0.1"`) || !strings.Contains(body, fmt.Sprintf(`"host":"127.0.0.1:%d"`, port)) {
		t.Errorf("/api proxy: %d %s", code, body)
	}

	// WebSocket upgrade through /ws/.
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws/tickets/abc123?cursor=v1.0-5 HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade response: %v\nnginx: %s", err, stderr.String())
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/ws upgrade: %s %s", resp.Status, b)
	}
	fmt.Fprintf(conn, "ping\n")
	echo, err := br.ReadString('\n')
	if err != nil || echo != "echo /ws/tickets/abc123?cursor=v1.0-5 ping\n" {
		t.Errorf("after the upgrade: %q, %v", echo, err)
	}
}

func waitFor(t *testing.T, url string, logs fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nginx did not answer %s\n%s", url, logs.String())
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
