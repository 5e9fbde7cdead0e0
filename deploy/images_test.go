package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// stage is one FROM section of a Dockerfile: its base image, name and instructions.
type stage struct {
	from, name string
	lines      []string // instructions with continuation lines joined
}

func (s stage) has(prefix string) []string {
	var out []string
	for _, l := range s.lines {
		if strings.HasPrefix(strings.ToUpper(l), prefix+" ") {
			out = append(out, strings.TrimSpace(l[len(prefix):]))
		}
	}
	return out
}

func (s stage) last(instruction string) string {
	all := s.has(instruction)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// parseDockerfile splits a Dockerfile into its global ARGs and stages.
func parseDockerfile(t *testing.T, path string) (globals []string, stages []stage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cur *stage
	var buf strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && buf.Len() == 0) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			buf.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		buf.WriteString(line)
		ins := buf.String()
		buf.Reset()
		if fields := strings.Fields(ins); len(fields) >= 2 && strings.EqualFold(fields[0], "FROM") {
			st := stage{from: fields[1]}
			if len(fields) == 4 && strings.EqualFold(fields[2], "AS") {
				st.name = fields[3]
			}
			stages = append(stages, st)
			cur = &stages[len(stages)-1]
			continue
		}
		if cur == nil {
			globals = append(globals, ins)
		} else {
			cur.lines = append(cur.lines, ins)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return globals, stages
}

func stageNamed(t *testing.T, stages []stage, name string) stage {
	t.Helper()
	for _, s := range stages {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("Dockerfile has no stage %q", name)
	return stage{}
}

// numericUser returns the uid of a USER instruction, which must be numeric: Kubernetes can only
// verify runAsNonRoot against a numeric user.
func numericUser(t *testing.T, where, user string) int64 {
	t.Helper()
	uid, _, _ := strings.Cut(user, ":")
	n, err := strconv.ParseInt(uid, 10, 64)
	if err != nil || n == 0 {
		t.Errorf("%s: USER %q must be a numeric non-root uid", where, user)
	}
	return n
}

func TestServiceDockerfile(t *testing.T) {
	globals, stages := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))

	// The builder's Go is the workspace's Go.
	work, err := os.ReadFile(filepath.Join(repoRoot, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(work)
	if goLine == nil || !slices.Contains(globals, "ARG GO_VERSION="+string(goLine[1])) {
		t.Errorf("Dockerfile GO_VERSION should be go.work's %s (globals %v)", goLine[1], globals)
	}

	build := stageNamed(t, stages, "build")
	if !strings.HasPrefix(build.from, "golang:${GO_VERSION}") {
		t.Errorf("build stage FROM %s, want golang:${GO_VERSION}", build.from)
	}
	if !slices.Contains(build.has("ARG"), "SERVICE") {
		t.Error("build stage has no ARG SERVICE")
	}
	if env := strings.Join(build.has("ENV"), " "); !strings.Contains(env, "CGO_ENABLED=0") {
		t.Error("binaries must be static: CGO_ENABLED=0")
	}
	run := strings.Join(build.has("RUN"), "\n")
	for _, want := range []string{`services/${SERVICE}`, `cmd/${SERVICE}`, "-o /out/app", "-o /out/healthcheck ./healthcheck"} {
		if !strings.Contains(run, want) {
			t.Errorf("build stage RUN lacks %q", want)
		}
	}

	// Two runtimes; the default (last) one is distroless.
	if last := stages[len(stages)-1]; last.name != "runtime" || !strings.HasPrefix(last.from, "gcr.io/distroless/static") {
		t.Errorf("the default (last) stage is %s FROM %s, want runtime FROM distroless static", last.name, last.from)
	}
	proc := stageNamed(t, stages, "processor")
	// Debian's bubblewrap is the CI sandbox (.ci/run installs the same package for the tests).
	procRun := strings.Join(proc.has("RUN"), " ")
	if !strings.HasPrefix(proc.from, "debian:") || !regexp.MustCompile(`apt-get install [^&]*\bbubblewrap\b`).MatchString(procRun) || !regexp.MustCompile(`apt-get install [^&]*\bgit\b`).MatchString(procRun) {
		t.Errorf("processor stage FROM %s: want Debian with bubblewrap and git installed", proc.from)
	}
	if !strings.Contains(procRun, "rm -rf /var/lib/apt/lists/*") {
		t.Error("processor stage keeps the apt lists in the image")
	}
	// The image's non-root uid must be the one the Kubernetes pods run as.
	k8s := kustomizeBuild(t, "base")
	wantUID := map[string]string{"command": "runtime", "notifier": "runtime", "projector": "runtime", "processor": "processor"}
	for deployment, stageName := range wantUID {
		st := stageNamed(t, stages, stageName)
		uid := numericUser(t, stageName, st.last("USER"))
		d := k8s.deployments[deployment]
		if d == nil || d.Spec.Template.Spec.SecurityContext.RunAsUser == nil || *d.Spec.Template.Spec.SecurityContext.RunAsUser != uid {
			t.Errorf("Deployment %s should run as uid %d, the USER of Dockerfile stage %s", deployment, uid, stageName)
		}
		if ep := st.last("ENTRYPOINT"); ep != `["/usr/local/bin/app"]` {
			t.Errorf("stage %s: ENTRYPOINT %s", stageName, ep)
		}
		// docker compose healthchecks run /usr/local/bin/healthcheck.
		if !slices.Contains(st.has("COPY"), "--from=build /out/healthcheck /usr/local/bin/healthcheck") {
			t.Errorf("stage %s does not ship /usr/local/bin/healthcheck", stageName)
		}
	}
	// The port a stage exposes is the one compose and k8s give its services.
	compose := loadCompose(t, nil)
	for svc, port := range goServices {
		st := stageNamed(t, stages, wantUID[svc])
		if st.last("EXPOSE") != "${PORT}" || !slices.Contains(strings.Fields(strings.Join(st.has("ENV"), " ")), "TICKETFLOW_HTTP_ADDR=:${PORT}") {
			t.Errorf("stage %s should EXPOSE ${PORT} and listen on :${PORT}", st.name)
		}
		imagePort := ""
		for _, arg := range st.has("ARG") {
			if v, ok := strings.CutPrefix(arg, "PORT="); ok {
				imagePort = v
			}
		}
		s, _ := compose.GetService(svc)
		if s.Build == nil {
			t.Fatalf("compose %s has no build", svc)
		}
		if v := s.Build.Args["PORT"]; v != nil {
			imagePort = *v
		}
		if imagePort != port {
			t.Errorf("%s listens on %s but its image is built for port %q", svc, port, imagePort)
		}
	}
}

func TestWebDockerfile(t *testing.T) {
	_, stages := parseDockerfile(t, filepath.Join(repoRoot, "frontend", "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("frontend/Dockerfile: %d stages, want node build + nginx", len(stages))
	}
	build, web := stages[0], stages[1]
	if !strings.HasPrefix(build.from, "node:20") {
		t.Errorf("web build FROM %s, want node:20 (the project's Node)", build.from)
	}
	runs := strings.Join(build.has("RUN"), "\n")
	if !strings.Contains(runs, "npm ci") || !strings.Contains(runs, "npm run build") {
		t.Errorf("web build should npm ci && npm run build: %s", runs)
	}
	if !strings.HasPrefix(web.from, "nginxinc/nginx-unprivileged:") {
		t.Errorf("web FROM %s, want nginx-unprivileged", web.from)
	}
	if !slices.Contains(web.has("COPY"), "deploy/nginx/default.conf /etc/nginx/conf.d/default.conf") {
		t.Error("web image does not install deploy/nginx/default.conf")
	}
	if !slices.Contains(web.has("COPY"), "--from=build /app/dist /usr/share/nginx/html") {
		t.Error("web image does not serve the built dist/")
	}
	uid := numericUser(t, "web", web.last("USER"))
	k8s := kustomizeBuild(t, "base")
	if d := k8s.deployments["web"]; d == nil || *d.Spec.Template.Spec.SecurityContext.RunAsUser != uid {
		t.Errorf("Deployment web should run as uid %d", uid)
	}
	conf := nginxConf(t)
	if web.last("EXPOSE") != conf.listen {
		t.Errorf("web exposes %s, nginx listens on %s", web.last("EXPOSE"), conf.listen)
	}
}

// TestDockerignore checks that the build context keeps what the Dockerfiles copy and drops the
// heavy or irrelevant parts.
func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimPrefix(l, "/"))
		}
	}
	ignored := func(path string) bool {
		parts := strings.Split(path, "/")
		for _, p := range patterns {
			for i := range parts {
				prefix := strings.Join(parts[:i+1], "/")
				if ok, _ := filepath.Match(p, prefix); ok {
					return true
				}
				if rest, found := strings.CutPrefix(p, "**/"); found {
					for j := 0; j <= i; j++ {
						if ok, _ := filepath.Match(rest, strings.Join(parts[j:i+1], "/")); ok {
							return true
						}
					}
				}
			}
		}
		return false
	}
	for _, keep := range []string{"go.work", "libs/go.mod", "services/command/main.go", "cmd/ticketflow/main.go",
		"deploy/go.mod", "deploy/go.sum", "deploy/healthcheck/main.go", "deploy/nginx/default.conf",
		"frontend/package.json", "frontend/package-lock.json", "frontend/src/main.tsx"} {
		if ignored(keep) {
			t.Errorf(".dockerignore drops %s, which a build needs", keep)
		}
	}
	for _, drop := range []string{".git/HEAD", "frontend/node_modules/react/index.js", "frontend/dist/index.html", ".data/x", "deploy/k8s/base/kustomization.yaml"} {
		if !ignored(drop) {
			t.Errorf(".dockerignore keeps %s", drop)
		}
	}
}

// nginxConfig is what the tests read from deploy/nginx/default.conf.
type nginxConfig struct {
	listen    string
	locations map[string]string // location argument -> body
	upstreams map[string]string // upstream name -> body
	text      string            // without comments
}

func nginxConf(t *testing.T) nginxConfig {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("nginx", "default.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range strings.Split(string(raw), "\n") {
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i]
		}
		b.WriteString(l + "\n")
	}
	text := b.String()
	c := nginxConfig{locations: map[string]string{}, upstreams: map[string]string{}, text: text}
	for _, m := range regexp.MustCompile(`upstream\s+(\S+)\s*\{([^}]*)\}`).FindAllStringSubmatch(text, -1) {
		c.upstreams[m[1]] = m[2]
	}
	if m := regexp.MustCompile(`(?m)^\s*listen\s+(\d+);`).FindStringSubmatch(text); m != nil {
		c.listen = m[1]
	}
	for _, m := range regexp.MustCompile(`location\s+([^{]+?)\s*\{([^}]*)\}`).FindAllStringSubmatch(text, -1) {
		c.locations[m[1]] = m[2]
	}
	return c
}

func directive(body, name string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^\s*`+regexp.QuoteMeta(name)+`\s+([^;]+);`).FindAllStringSubmatch(body, -1) {
		out = append(out, strings.Join(strings.Fields(m[1]), " "))
	}
	return out
}

// TestNginxRoutes checks deploy/nginx/default.conf against compose and Kubernetes: /api goes to
// command, /ws to notifier with the WebSocket upgrade, on ports both environments serve.
func TestNginxRoutes(t *testing.T) {
	conf := nginxConf(t)
	if conf.listen != "8080" {
		t.Errorf("nginx listens on %q; nginx-unprivileged cannot bind below 1024, the manifests use 8080", conf.listen)
	}
	health, ok := conf.locations["= /healthz"]
	if !ok || !slices.Contains(directive(health, "return"), `200 "ok\n"`) {
		t.Error("nginx should answer /healthz itself (compose healthcheck and k8s probes use it)")
	}
	compose := loadCompose(t, nil)
	k8s := kustomizeBuild(t, "base")
	routes := map[string]string{"/api/": "command", "/ws/": "notifier"}
	for loc, service := range routes {
		body, ok := conf.locations[loc]
		if !ok {
			t.Errorf("nginx has no location %s", loc)
			continue
		}
		// proxy_pass names an upstream whose one server is the service name: Docker's DNS
		// answers it with every replica, each a peer (Kubernetes: the Service's cluster IP).
		pass := directive(body, "proxy_pass")
		if !slices.Equal(pass, []string{"http://" + service}) {
			t.Errorf("location %s proxies to %v, want the upstream http://%s", loc, pass, service)
		}
		servers := directive(conf.upstreams[service], "server")
		if len(servers) != 1 || strings.Fields(servers[0])[0] != service+":"+goServices[service] {
			t.Errorf("upstream %s: servers %v, want one: %s:%s", service, servers, service, goServices[service])
		}
		if _, err := compose.GetService(service); err != nil {
			t.Errorf("location %s: no compose service %s", loc, service)
		}
		port, _ := strconv.Atoi(goServices[service])
		if svc := k8s.services[service]; svc == nil || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port }) {
			t.Errorf("location %s: no Kubernetes Service %s with port %d", loc, service, port)
		}
		if !slices.Equal(directive(body, "proxy_http_version"), []string{"1.1"}) {
			t.Errorf("location %s: proxy_http_version 1.1 is needed for keep-alive and upgrades", loc)
		}
		headers := strings.Join(directive(body, "proxy_set_header"), "\n")
		for _, h := range []string{"Host $http_host", "X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $scheme"} {
			if !strings.Contains(headers, h) {
				t.Errorf("location %s does not set %s (a location with any proxy_set_header inherits none)", loc, h)
			}
		}
	}
	ws := conf.locations["/ws/"]
	headers := directive(ws, "proxy_set_header")
	if !slices.Contains(headers, "Upgrade $http_upgrade") || !slices.Contains(headers, "Connection $connection_upgrade") {
		t.Errorf("/ws/ does not forward the WebSocket upgrade: %v", headers)
	}
	for _, d := range []string{"proxy_read_timeout", "proxy_send_timeout"} {
		v := directive(ws, d)
		secs, err := strconv.Atoi(strings.TrimSuffix(strings.Join(v, ""), "s"))
		if err != nil || secs < 3600 {
			t.Errorf("/ws/ %s %v: WebSockets need at least 3600s", d, v)
		}
	}
	if root, ok := conf.locations["/"]; !ok || !slices.Contains(directive(root, "try_files"), "$uri $uri/ /index.html") {
		t.Error("location / should fall back to index.html (single-page app)")
	}

	// Logs: a format without query strings, used by the server.
	formats := directive(conf.text, "log_format")
	if len(formats) != 1 {
		t.Fatalf("want one log_format, got %v", formats)
	}
	for _, leak := range []string{"$request_uri", "$request ", "$request\"", "$args", "$query_string", "$http_referer", "$arg_"} {
		if strings.Contains(formats[0]+" ", leak) {
			t.Errorf("log_format contains %s, which carries query strings (tokens, WebSocket tickets)", strings.TrimSpace(leak))
		}
	}
	name := strings.Fields(formats[0])[0]
	if logs := directive(conf.text, "access_log"); !slices.ContainsFunc(logs, func(l string) bool { return strings.HasSuffix(l, " "+name) }) {
		t.Errorf("no access_log uses the %s format: %v", name, logs)
	}
	// Every location that adds its own headers repeats the security headers (add_header does
	// not inherit into a location that has any).
	for loc, body := range conf.locations {
		if len(directive(body, "add_header")) == 0 {
			continue
		}
		for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"} {
			if !slices.ContainsFunc(directive(body, "add_header"), func(d string) bool { return strings.HasPrefix(d, h+" ") }) {
				t.Errorf("location %s has add_header but not %s: it loses the server's", loc, h)
			}
		}
	}
}
