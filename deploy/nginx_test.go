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

	// Two command replicas: nginx must spread requests over both.
	commandReplica := func(id string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"replica":%q,"path":%q,"xff":%q,"real_ip":%q,"host":%q}`, id, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Real-IP"), r.Host)
		}))
	}
	command, command2 := commandReplica("c1"), commandReplica("c2")
	defer command.Close()
	defer command2.Close()
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
		// What Docker's DNS does for "command" with two replicas: two peers.
		"server command:8000 ", "server "+command.Listener.Addr().String()+" max_fails=1 fail_timeout=5s; server "+command2.Listener.Addr().String()+" ",
		"server notifier:8000 ", "server "+notifier.Listener.Addr().String()+" ",
		"access_log /dev/stdout ticketflow;", "access_log "+filepath.Join(dir, "access.log")+" ticketflow;",
	).Replace(string(conf))
	for _, want := range []string{fmt.Sprintf("127.0.0.1:%d", port), html, command.Listener.Addr().String(), command2.Listener.Addr().String(), notifier.Listener.Addr().String(), "access.log"} {
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
	if code != 200 || !strings.Contains(body, `"path":"/api/tickets?limit=5"`) || !strings.Contains(body, `"xff":"127.0.0.1"`) || !strings.Contains(body, `"real_ip":"127.0.0.1"`) || !strings.Contains(body, fmt.Sprintf(`"host":"127.0.0.1:%d"`, port)) {
		t.Errorf("/api proxy: %d %s", code, body)
	}
	// The security headers, on proxied, static and SPA responses alike.
	wantHeaders := map[string]string{
		"Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	}
	for _, path := range []string{"/api/tickets", "/tickets/abc123", "/assets/app-123.js", "/assets/missing.js", "/healthz"} {
		_, _, h := get(path)
		for k, v := range wantHeaders {
			if got := h.Get(k); got != v {
				t.Errorf("GET %s: %s %q, want %q", path, k, got, v)
			}
		}
	}
	// A client-sent X-Forwarded-For is kept, with nginx's peer appended last: the services take
	// the right-most untrusted address, so the forged one gains nothing.
	req, _ := http.NewRequest("GET", base+"/api/tickets", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"xff":"6.6.6.6, 127.0.0.1"`) || !strings.Contains(string(b), `"real_ip":"127.0.0.1"`) {
			t.Errorf("forwarding headers with a client X-Forwarded-For: %s", b)
		}
	}
	// Round robin over the replicas.
	seen := map[string]int{}
	for range 6 {
		_, body, _ := get("/api/tickets")
		for _, id := range []string{"c1", "c2"} {
			if strings.Contains(body, `"replica":"`+id+`"`) {
				seen[id]++
			}
		}
	}
	if seen["c1"] == 0 || seen["c2"] == 0 {
		t.Errorf("requests over 2 command replicas: %v; nginx should balance them", seen)
	}
	// A dead replica is skipped: the request goes to the other one.
	command2.Close()
	for range 4 {
		if code, body, _ := get("/api/tickets"); code != 200 || !strings.Contains(body, `"replica":"c1"`) {
			t.Errorf("with replica c2 down: %d %s", code, body)
		}
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

	// The access log never carries a query string: tokens and tickets travel there.
	get("/api/tickets?access_token=x-secret-token")
	conn.Close()
	var logged string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		raw, _ := os.ReadFile(filepath.Join(dir, "access.log"))
		logged = string(raw)
		if strings.Contains(logged, "/ws/tickets/abc123") && strings.Count(logged, "GET /api/tickets ") >= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logged, `"GET /api/tickets HTTP/1.1" 200`) {
		t.Errorf("access log lacks the /api/tickets request line without its query string:\n%s", logged)
	}
	for _, leak := range []string{"access_token", "x-secret-token", "?", "limit=5", "cursor="} {
		if strings.Contains(logged, leak) {
			t.Errorf("access log contains %q:\n%s", leak, logged)
		}
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
