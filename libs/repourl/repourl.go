// Package repourl is ticketflow's repository policy: it parses the repository URL a ticket
// names into one normalised form, and decides whether ticketflow may reach it and with which
// credentials. The command service applies it when a ticket is created (a clear 422), the
// processor again before every clone, fetch and push, where it also resolves the host once
// and hands git the checked address (see gitrepo), so DNS rebinding between the check and
// the connection cannot reach an internal address.
//
// Accepted forms: https://host[:port]/path, ssh://[user@]host[:port]/path, scp-like
// user@host:path, and file:///abs/path under a configured root. Refused: credentials in the
// URL, any user, host or path component starting with '-', whitespace, control and non-ASCII
// characters, percent-encoding, '..' segments, transport helpers (::), hosts written as
// non-canonical IPv4 numbers (2130706433, 0x7f.1, 0177.0.0.1, 127.1: curl accepts them),
// IPv6 zones, and hosts that are or resolve to loopback, private, link-local, CGNAT,
// unspecified, multicast, reserved or documentation addresses (IPv4-mapped, NAT64 and 6to4
// forms included), unless the configuration allows them (development).
package repourl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Scheme is how git reaches a repository.
type Scheme string

// The schemes a repository URL may use.
const (
	HTTPS Scheme = "https"
	SSH   Scheme = "ssh"
	File  Scheme = "file"
)

// URL is a parsed, normalised repository URL.
type URL struct {
	Scheme Scheme
	// User is the ssh login ("git"); empty for https and file.
	User string
	// Host is lower-case, an IPv6 literal without brackets; empty for file.
	Host string
	// Port is 0 for the scheme's default.
	Port int
	// Path is the repository path: without its leading '/' for https and ssh (scp-like
	// paths keep theirs: "/srv/x" is absolute on the server, "x" relative to the login's
	// home), absolute and cleaned for file.
	Path string
	// SCP is set for the scp-like form user@host:path.
	SCP bool
}

// DefaultPort is the port git connects to.
func (u URL) DefaultPort() int {
	switch {
	case u.Port != 0:
		return u.Port
	case u.Scheme == HTTPS:
		return 443
	case u.Scheme == SSH:
		return 22
	}
	return 0
}

// HostPort is host[:port] as written in a URL (brackets around IPv6 literals).
func (u URL) HostPort() string {
	h := u.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if u.Port != 0 {
		h += ":" + strconv.Itoa(u.Port)
	}
	return h
}

// String is the URL git is given: built from the parsed parts only, so what was checked is
// what git reads.
func (u URL) String() string {
	switch {
	case u.Scheme == File:
		return "file://" + u.Path
	case u.SCP:
		return u.User + "@" + u.HostPort() + ":" + u.Path
	case u.Scheme == SSH && u.User != "":
		return "ssh://" + u.User + "@" + u.HostPort() + "/" + u.Path
	}
	return string(u.Scheme) + "://" + u.HostPort() + "/" + u.Path
}

// Error is a refused repository URL. Error() is safe to show to the ticket's author: it never
// names the addresses a host resolved to (Detail does, for the server log).
type Error struct {
	Reason string
	Detail string
}

func (e *Error) Error() string { return "repository_url refused: " + e.Reason }

// ErrRefused matches every *Error (errors.Is).
var ErrRefused = errors.New("repository_url refused")

// Is makes errors.Is(err, ErrRefused) true for every *Error.
func (e *Error) Is(target error) bool { return target == ErrRefused }

func refuse(format string, args ...any) *Error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

const maxURLLength = 2048

// Parse checks the syntax of raw and normalises it. It does no DNS and no file system
// access: Policy.Check does.
func Parse(raw string) (URL, error) {
	switch {
	case raw == "":
		return URL{}, refuse("empty")
	case len(raw) > maxURLLength:
		return URL{}, refuse("longer than %d characters", maxURLLength)
	case strings.HasPrefix(raw, "-"):
		return URL{}, refuse("must not start with '-'")
	case strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
		return URL{}, refuse("contains whitespace, control or non-ASCII characters")
	case strings.Contains(raw, "::") && !strings.Contains(raw, "["):
		return URL{}, refuse("transport helpers (::) are not allowed")
	case strings.ContainsAny(raw, `%\?#"'`+"`"):
		return URL{}, refuse(`must not contain '%%', '\', '?', '#' or quotes`)
	}
	scheme, rest, hasScheme := strings.Cut(raw, "://")
	if !hasScheme {
		return parseSCP(raw)
	}
	switch Scheme(scheme) {
	case HTTPS, SSH:
	case File:
		return parseFile(rest)
	default:
		return URL{}, refuse("scheme %q is not allowed (https, ssh, user@host:path, file)", scheme)
	}
	authority, path, _ := strings.Cut(rest, "/")
	u := URL{Scheme: Scheme(scheme)}
	if userinfo, hostport, ok := strings.Cut(authority, "@"); ok {
		if u.Scheme == HTTPS || strings.Contains(userinfo, ":") {
			return URL{}, refuse("must not embed credentials; they are configured on the server")
		}
		if err := checkUser(userinfo); err != nil {
			return URL{}, err
		}
		u.User, authority = userinfo, hostport
	}
	host, port, err := splitHostPort(authority)
	if err != nil {
		return URL{}, err
	}
	if u.Host, err = checkHost(host); err != nil {
		return URL{}, err
	}
	u.Port = port
	if u.Path, err = checkPath(path, false); err != nil {
		return URL{}, err
	}
	return u, nil
}

func parseSCP(raw string) (URL, error) {
	user, rest, ok := strings.Cut(raw, "@")
	if !ok || strings.Contains(user, "/") {
		if strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, ".") {
			return URL{}, refuse("local paths are not allowed; use file:// under the configured root")
		}
		return URL{}, refuse("not a URL: use https://host/path, ssh://host/path or user@host:path")
	}
	if err := checkUser(user); err != nil {
		return URL{}, err
	}
	var host, path string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return URL{}, refuse("unterminated IPv6 address")
		}
		host, path = rest[:end+1], rest[end+2:]
	} else if host, path, ok = strings.Cut(rest, ":"); !ok {
		return URL{}, refuse("scp-like URLs are user@host:path")
	}
	h, err := checkHost(host)
	if err != nil {
		return URL{}, err
	}
	p, err := checkPath(path, true)
	if err != nil {
		return URL{}, err
	}
	return URL{Scheme: SSH, User: user, Host: h, Path: p, SCP: true}, nil
}

func parseFile(rest string) (URL, error) {
	if !strings.HasPrefix(rest, "/") {
		return URL{}, refuse("file:// URLs need an absolute local path (file:///path)")
	}
	if strings.ContainsAny(rest, ":@") {
		return URL{}, refuse("file:// paths must not contain ':' or '@'")
	}
	for _, seg := range strings.Split(rest, "/") {
		if strings.HasPrefix(seg, "-") {
			return URL{}, refuse("path components must not start with '-'")
		}
	}
	return URL{Scheme: File, Path: filepath.Clean(rest)}, nil
}

func checkUser(user string) error {
	if user == "" || len(user) > 64 || strings.HasPrefix(user, "-") || strings.HasPrefix(user, ".") {
		return refuse("invalid ssh user name")
	}
	for _, r := range user {
		if !isAlnum(r) && r != '.' && r != '_' && r != '-' {
			return refuse("invalid ssh user name")
		}
	}
	return nil
}

func splitHostPort(s string) (string, int, error) {
	host, portText := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return "", 0, refuse("unterminated IPv6 address")
		}
		host, portText = s[:end+1], s[end+1:]
		if portText != "" && !strings.HasPrefix(portText, ":") {
			return "", 0, refuse("invalid host")
		}
		portText = strings.TrimPrefix(portText, ":")
	} else if h, p, ok := strings.Cut(s, ":"); ok {
		host, portText = h, p
	}
	if portText == "" {
		if strings.HasSuffix(s, ":") {
			return "", 0, refuse("empty port")
		}
		return host, 0, nil
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 || strings.HasPrefix(portText, "0") || strings.HasPrefix(portText, "+") {
		return "", 0, refuse("invalid port %q", portText)
	}
	return host, port, nil
}

// checkHost returns the normalised host: a canonical IP literal or a DNS name.
func checkHost(h string) (string, error) {
	if h == "" {
		return "", refuse("missing host")
	}
	if strings.HasPrefix(h, "[") {
		inner := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		a, err := netip.ParseAddr(inner)
		if err != nil || !a.Is6() || !strings.HasSuffix(h, "]") {
			return "", refuse("invalid IPv6 address")
		}
		if a.Zone() != "" {
			return "", refuse("IPv6 zones are not allowed")
		}
		return a.String(), nil
	}
	if a, err := netip.ParseAddr(h); err == nil && a.Is4() {
		return a.String(), nil
	}
	h = strings.ToLower(h)
	if len(h) > 253 || strings.HasSuffix(h, ".") {
		return "", refuse("invalid host name")
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return "", refuse("invalid host name")
		}
		for _, r := range l {
			if !isAlnum(r) && r != '-' {
				return "", refuse("invalid host name")
			}
		}
	}
	// A name whose last label is a number is an IPv4 address in a form curl and git accept
	// (2130706433, 0x7f.1, 0177.0.0.1, 127.1): no top-level domain looks like that.
	last := labels[len(labels)-1]
	if isNumeric(last) {
		return "", refuse("IP addresses must be written as four decimal numbers (a.b.c.d)")
	}
	return h, nil
}

func isNumeric(label string) bool {
	digits := strings.TrimPrefix(label, "0x")
	if digits == "" {
		return label == "0x"
	}
	hex := digits != label
	for _, r := range digits {
		if !(r >= '0' && r <= '9' || hex && (r >= 'a' && r <= 'f')) {
			return false
		}
	}
	return true
}

func checkPath(p string, scp bool) (string, error) {
	if !scp {
		p = strings.TrimPrefix(p, "/")
	}
	p = strings.TrimRight(p, "/")
	if p == "" || p == "/" {
		return "", refuse("missing repository path")
	}
	for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		switch {
		case seg == "":
			return "", refuse("empty path component")
		case seg == "." || seg == "..":
			return "", refuse("'.' and '..' path components are not allowed")
		case strings.HasPrefix(seg, "-"):
			return "", refuse("path components must not start with '-'")
		}
		for _, r := range seg {
			if !isAlnum(r) && !strings.ContainsRune("._~+-", r) {
				return "", refuse("path may contain only letters, digits and . _ ~ + -")
			}
		}
	}
	return p, nil
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// Resolver looks host names up; *net.Resolver implements it, tests inject their own.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config is the repository policy, read from the environment by every service that applies it.
type Config struct {
	// TICKETFLOW_REPOSITORY_ALLOWLIST: host/owner patterns of the repositories the server's
	// git credentials (TICKETFLOW_GIT_TOKEN, the ssh agent) are used for, e.g.
	// github.com/acme/*,gitlab.example.com/team/*,github.com/acme/widgets. When set, tickets
	// may only name https/ssh repositories that match it. Default: empty (no repository gets
	// credentials; public clones only).
	Allowlist []string `env:"TICKETFLOW_REPOSITORY_ALLOWLIST" envSeparator:","`
	// TICKETFLOW_ALLOW_PRIVATE_REPOS: accept hosts on loopback, private, link-local and CGNAT
	// addresses (development only). Default: false.
	AllowPrivate bool `env:"TICKETFLOW_ALLOW_PRIVATE_REPOS" envDefault:"false"`
	// TICKETFLOW_REPOSITORY_ALLOWED_NETS: CIDRs accepted although non-public, e.g. a
	// self-hosted forge at 10.1.2.0/24. Default: none.
	AllowedNets []string `env:"TICKETFLOW_REPOSITORY_ALLOWED_NETS" envSeparator:","`
	// TICKETFLOW_FILE_REPO_ROOT: the directory file:// repositories must be inside (after
	// symbolic links are resolved). Default: empty, file:// refused (`ticketflow dev`
	// defaults it to $TICKETFLOW_DATA_DIR/repos).
	FileRoot string `env:"TICKETFLOW_FILE_REPO_ROOT"`
	// TICKETFLOW_ALLOW_FILE_REPOS was replaced by TICKETFLOW_FILE_REPO_ROOT: true is refused
	// at startup so that nobody believes file:// is on when it is not.
	RemovedAllowFile bool `env:"TICKETFLOW_ALLOW_FILE_REPOS" envDefault:"false"`
}

// Policy decides which repositories may be reached, and with credentials.
type Policy struct {
	allow        []pattern
	allowPrivate bool
	nets         []netip.Prefix
	fileRoot     string
	forbidden    []string
	resolver     Resolver
}

// New builds the policy; resolver nil means the system resolver.
func New(cfg Config, resolver Resolver) (*Policy, error) {
	if cfg.RemovedAllowFile {
		return nil, errors.New("TICKETFLOW_ALLOW_FILE_REPOS was removed: file:// repositories are accepted only under TICKETFLOW_FILE_REPO_ROOT")
	}
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	p := &Policy{allowPrivate: cfg.AllowPrivate, resolver: resolver}
	for _, s := range cfg.Allowlist {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		pat, err := parsePattern(s)
		if err != nil {
			return nil, fmt.Errorf("TICKETFLOW_REPOSITORY_ALLOWLIST: %w", err)
		}
		p.allow = append(p.allow, pat)
	}
	for _, s := range cfg.AllowedNets {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("TICKETFLOW_REPOSITORY_ALLOWED_NETS: %w", err)
		}
		p.nets = append(p.nets, n.Masked())
	}
	if cfg.FileRoot != "" {
		root, err := realDir(cfg.FileRoot)
		if err != nil {
			return nil, fmt.Errorf("TICKETFLOW_FILE_REPO_ROOT: %w", err)
		}
		p.fileRoot = root
	}
	return p, nil
}

// Forbid refuses file:// repositories inside dir (the processor's work dir: other tickets'
// clones), whatever the root.
func (p *Policy) Forbid(dir string) error {
	d, err := realDir(dir)
	if err != nil {
		return err
	}
	p.forbidden = append(p.forbidden, d)
	return nil
}

// FileRoot is the resolved file:// root ("" when file:// is refused).
func (p *Policy) FileRoot() string { return p.fileRoot }

// HasAllowlist reports whether TICKETFLOW_REPOSITORY_ALLOWLIST is set.
func (p *Policy) HasAllowlist() bool { return len(p.allow) > 0 }

func realDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", dir)
	}
	return real, nil
}

// Target is a repository the policy accepted, as git must reach it.
type Target struct {
	URL URL
	// Addrs are the checked addresses of URL.Host (https, ssh); git must connect to Addrs[0].
	Addrs []netip.Addr
	// Credentials: the repository is on the allow-list, the server's credentials may be used.
	Credentials bool
}

// Check is the processor's check before every clone, fetch and push: the URL is parsed, a
// file:// path resolved inside the root, the host resolved (a failed lookup refuses) and every
// address it resolves to checked.
func (p *Policy) Check(ctx context.Context, raw string) (Target, error) {
	return p.check(ctx, raw, true)
}

// Admit is the check at ticket creation: as Check, and when the allow-list is set the
// repository must match it; a host that does not resolve (yet) is accepted, since the
// processor checks again at use.
func (p *Policy) Admit(ctx context.Context, raw string) error {
	t, err := p.check(ctx, raw, false)
	if err != nil {
		return err
	}
	if t.URL.Scheme != File && p.HasAllowlist() && !t.Credentials {
		return refuse("%s is not on the server's repository allow-list (TICKETFLOW_REPOSITORY_ALLOWLIST)", t.URL.Host+"/"+strings.TrimPrefix(t.URL.Path, "/"))
	}
	return nil
}

func (p *Policy) check(ctx context.Context, raw string, strictDNS bool) (Target, error) {
	u, err := Parse(raw)
	if err != nil {
		return Target{}, err
	}
	t := Target{URL: u}
	if u.Scheme == File {
		t.URL.Path, err = p.checkFile(u.Path)
		return t, err
	}
	t.Credentials = p.allowed(u)
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(u.Host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = p.resolver.LookupNetIP(ctx, "ip", u.Host)
		if err != nil || len(addrs) == 0 {
			if !strictDNS {
				return t, nil
			}
			e := refuse("host %s does not resolve", u.Host)
			e.Detail = fmt.Sprint(err)
			return Target{}, e
		}
	}
	for _, a := range addrs {
		if class := p.blocked(a); class != "" {
			if _, literal := netip.ParseAddr(u.Host); literal == nil {
				return Target{}, refuse("%s is a %s address; repositories must be on public hosts", u.Host, class)
			}
			e := refuse("host %s resolves to a non-public address", u.Host)
			e.Detail = fmt.Sprintf("%s resolves to %s (%s)", u.Host, a, class)
			return Target{}, e
		}
		t.Addrs = append(t.Addrs, a.Unmap())
	}
	return t, nil
}

func (p *Policy) checkFile(path string) (string, error) {
	if p.fileRoot == "" {
		return "", refuse("file:// repositories are disabled (set TICKETFLOW_FILE_REPO_ROOT)")
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", refuse("file:// repository not found under the configured root")
	}
	if !inside(real, p.fileRoot) {
		return "", refuse("file:// repositories must be inside TICKETFLOW_FILE_REPO_ROOT")
	}
	for _, f := range p.forbidden {
		if inside(real, f) || inside(f, real) {
			return "", refuse("file:// repositories must not be in or around the processor's work directory")
		}
	}
	return real, nil
}

func inside(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// Blocked classes: always refused (no allowance makes them reachable repositories).
var never = map[string]bool{"unspecified": true, "multicast": true, "broadcast": true}

type netClass struct {
	prefix netip.Prefix
	class  string
}

var classes = func() []netClass {
	var cs []netClass
	for class, prefixes := range map[string][]string{
		"unspecified":       {"0.0.0.0/8", "::/128"},
		"loopback":          {"127.0.0.0/8", "::1/128"},
		"private":           {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"},
		"link-local":        {"169.254.0.0/16", "fe80::/10"},
		"shared (CGNAT)":    {"100.64.0.0/10"},
		"multicast":         {"224.0.0.0/4", "ff00::/8"},
		"broadcast":         {"255.255.255.255/32"},
		"reserved":          {"192.0.0.0/24", "240.0.0.0/4", "::/96", "100::/64", "fec0::/10", "64:ff9b:1::/48", "2001::/23"},
		"documentation":     {"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"},
		"benchmarking":      {"198.18.0.0/15"},
		"IPv6 transitional": {"2001::/32"},
	} {
		for _, s := range prefixes {
			cs = append(cs, netClass{netip.MustParsePrefix(s), class})
		}
	}
	return cs
}()

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// blocked returns the class of a non-public address the policy refuses, or "".
func (p *Policy) blocked(a netip.Addr) string {
	a = a.Unmap()
	if a.Zone() != "" {
		return "zoned"
	}
	class := classOf(a)
	if class == "" || never[class] {
		return class
	}
	for _, n := range p.nets {
		if n.Contains(a) {
			return ""
		}
	}
	if p.allowPrivate {
		return ""
	}
	return class
}

func classOf(a netip.Addr) string {
	// Addresses that embed an IPv4 address reach it: judge the embedded one.
	if a.Is6() && (nat64.Contains(a) || sixToFour.Contains(a)) {
		b := a.As16()
		var v4 [4]byte
		if nat64.Contains(a) {
			copy(v4[:], b[12:])
		} else {
			copy(v4[:], b[2:6])
		}
		return classOf(netip.AddrFrom4(v4))
	}
	best, bits := "", -1
	for _, c := range classes {
		if c.prefix.Contains(a) && c.prefix.Bits() > bits {
			best, bits = c.class, c.prefix.Bits()
		}
	}
	return best
}

// pattern is one allow-list entry: host[:port]/seg/..., the last segment "*" for "anything
// below".
type pattern struct {
	host     string
	port     int
	segments []string
	prefix   bool
}

func parsePattern(s string) (pattern, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "ssh://")
	hostport, path, _ := strings.Cut(s, "/")
	host, port, err := splitHostPort(hostport)
	if err != nil {
		return pattern{}, fmt.Errorf("%q: %v", s, err)
	}
	if host, err = checkHost(host); err != nil {
		return pattern{}, fmt.Errorf("%q: %v", s, err)
	}
	p := pattern{host: host, port: port}
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	if path == "" {
		return pattern{}, fmt.Errorf("%q: needs at least an owner (host/owner/* or host/owner/repo)", s)
	}
	segs := strings.Split(strings.ToLower(path), "/")
	for i, seg := range segs {
		if seg == "*" && i == len(segs)-1 {
			p.prefix = true
			continue
		}
		if seg == "" || strings.Contains(seg, "*") || seg == "." || seg == ".." {
			return pattern{}, fmt.Errorf("%q: '*' is allowed only as the last component", s)
		}
		p.segments = append(p.segments, seg)
	}
	if p.prefix && len(p.segments) == 0 {
		return pattern{}, fmt.Errorf("%q: a whole host is too broad; name an owner (host/owner/*)", s)
	}
	return p, nil
}

func (pt pattern) match(u URL) bool {
	if u.Host != pt.host {
		return false
	}
	want := pt.port
	if want == 0 {
		want = u.DefaultPortOf()
	}
	if u.DefaultPort() != want {
		return false
	}
	path := strings.TrimSuffix(strings.Trim(strings.ToLower(u.Path), "/"), ".git")
	segs := strings.Split(path, "/")
	if pt.prefix {
		if len(segs) <= len(pt.segments) {
			return false
		}
		segs = segs[:len(pt.segments)]
	}
	if len(segs) != len(pt.segments) {
		return false
	}
	for i := range segs {
		if segs[i] != pt.segments[i] {
			return false
		}
	}
	return true
}

// DefaultPortOf is the scheme's standard port (443 for https, 22 for ssh).
func (u URL) DefaultPortOf() int {
	return URL{Scheme: u.Scheme}.DefaultPort()
}

func (p *Policy) allowed(u URL) bool {
	for _, pt := range p.allow {
		if pt.match(u) {
			return true
		}
	}
	return false
}

// Pattern is one host/owner pattern as TICKETFLOW_REPOSITORY_ALLOWLIST spells them
// (github.com/acme/*, gitlab.example.com/team/app), for other per-repository settings such as
// the forge tokens.
type Pattern struct{ p pattern }

// ParsePattern parses one host/owner pattern.
func ParsePattern(s string) (Pattern, error) {
	p, err := parsePattern(strings.TrimSpace(s))
	return Pattern{p}, err
}

// Matches reports whether the repository u is covered by the pattern.
func (p Pattern) Matches(u URL) bool { return p.p.match(u) }

// Allowed reports whether u is on the allow-list (the server's credentials may be used for it).
func (p *Policy) Allowed(u URL) bool { return u.Scheme != File && p.allowed(u) }
