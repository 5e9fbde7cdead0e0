package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ticketflow/ticketflow/libs/workflow"
	"github.com/ticketflow/ticketflow/services/processor/ci"
)

// ByteSize is a size in bytes read from the environment as a plain number or with a unit
// (KiB, MiB, GiB; KB, MB, GB are read as the same binary units).
type ByteSize int64

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size (e.g. 5MiB, 2GiB, 1048576)", string(text))
	}
	*b = ByteSize(n * mult)
	return nil
}

// Defaults of the CI output caps.
const (
	defaultCIMaxLogLines      = 10000
	defaultCIMaxLogBytes      = 5 << 20
	defaultCIArtifactMaxBytes = 64 << 20
)

// validateCI rejects negative CI limits and fills the zero ones (a RealConfig built in code)
// with the documented defaults.
func (c *RealConfig) validateCI() error {
	for name, v := range map[string]int64{
		"TICKETFLOW_CI_MAX_PROCS": int64(c.CIMaxProcs), "TICKETFLOW_CI_MAX_MEMORY": int64(c.CIMaxMemory),
		"TICKETFLOW_CI_MAX_CPU": int64(c.CIMaxCPU), "TICKETFLOW_CI_MAX_LOG_LINES": c.CIMaxLogLines,
		"TICKETFLOW_CI_MAX_LOG_BYTES": int64(c.CIMaxLogBytes), "TICKETFLOW_CI_ARTIFACT_MAX_BYTES": int64(c.CIArtifactMaxBytes),
		"TICKETFLOW_CI_SANDBOX_UID": int64(c.CISandboxUID),
	} {
		if v < 0 {
			return fmt.Errorf("%s must not be negative", name)
		}
	}
	if c.CIMaxProcs == 0 {
		c.CIMaxProcs = ci.DefaultProcesses
	}
	if c.CIMaxMemory == 0 {
		c.CIMaxMemory = ci.DefaultMemoryBytes
	}
	if c.CIMaxCPU == 0 {
		c.CIMaxCPU = ci.DefaultCPUTime
	}
	if c.CIMaxLogLines == 0 {
		c.CIMaxLogLines = defaultCIMaxLogLines
	}
	if c.CIMaxLogBytes == 0 {
		c.CIMaxLogBytes = defaultCIMaxLogBytes
	}
	if c.CIArtifactMaxBytes == 0 {
		c.CIArtifactMaxBytes = defaultCIArtifactMaxBytes
	}
	if c.CIMaxCPU < time.Second {
		return errors.New("TICKETFLOW_CI_MAX_CPU must be at least 1s")
	}
	for _, p := range c.CINetworkRepos {
		if strings.TrimSpace(p) == "" || strings.Contains(p, "://") {
			return fmt.Errorf("TICKETFLOW_CI_NETWORK_REPOS: %q is not a host or host/owner pattern", p)
		}
	}
	return nil
}

func (c RealConfig) ciLimits() ci.Limits {
	return ci.Limits{Processes: c.CIMaxProcs, MemoryBytes: int64(c.CIMaxMemory), CPUTime: c.CIMaxCPU}
}

// networkAllowed reports whether repoURL matches one of the host or host/owner[/repo]
// patterns ("*" matches any one segment; hosts compare case-insensitively).
func networkAllowed(repoURL string, patterns []string) bool {
	host, path, ok := repoHostPath(repoURL)
	if !ok || host == "" {
		return false
	}
	segs := strings.Split(strings.Trim(strings.TrimSuffix(path, ".git"), "/"), "/")
	for _, p := range patterns {
		parts := strings.Split(strings.Trim(strings.TrimSpace(p), "/"), "/")
		if parts[0] != "*" && !strings.EqualFold(parts[0], host) {
			continue
		}
		rest := parts[1:]
		if len(rest) > len(segs) {
			continue
		}
		match := true
		for i, r := range rest {
			if r != "*" && r != segs[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// repoHostPath splits a git URL (scheme://host/path or the scp form user@host:path).
func repoHostPath(repoURL string) (host, path string, ok bool) {
	if !strings.Contains(repoURL, "://") {
		at := strings.LastIndex(repoURL, "@")
		colon := strings.Index(repoURL[at+1:], ":")
		if colon < 0 {
			return "", "", false
		}
		return strings.ToLower(repoURL[at+1 : at+1+colon]), repoURL[at+2+colon:], true
	}
	u, err := url.Parse(repoURL)
	if err != nil {
		return "", "", false
	}
	return strings.ToLower(u.Hostname()), u.Path, true
}

// ciCapture applies the output caps of one CI execution: which lines become events, and the
// full output kept for the artifact.
type ciCapture struct {
	maxLines, maxBytes, artifactMax int64

	linesTotal, bytesTotal     int64
	linesEmitted, bytesEmitted int64
	capped                     bool

	buf           bytes.Buffer
	artifactLines int64
	artifactCut   bool
}

func newCICapture(maxLines, maxBytes, artifactMax int64) *ciCapture {
	return &ciCapture{maxLines: maxLines, maxBytes: maxBytes, artifactMax: artifactMax}
}

// add records lines and returns those to emit as events.
func (c *ciCapture) add(lines []OutputLine) []OutputLine {
	emit := lines[:0:0]
	for _, l := range lines {
		n := int64(len(l.Text)) + 1
		c.linesTotal++
		c.bytesTotal += n
		if !c.capped && (c.linesEmitted+1 > c.maxLines || c.bytesEmitted+n > c.maxBytes) {
			c.capped = true
		}
		if !c.capped {
			c.linesEmitted++
			c.bytesEmitted += n
			emit = append(emit, l)
		}
		if c.artifactCut {
			continue
		}
		if int64(c.buf.Len())+n > c.artifactMax {
			c.artifactCut = true
			continue
		}
		c.buf.WriteString(l.Text)
		c.buf.WriteByte('\n')
		c.artifactLines++
	}
	return emit
}

func (c *ciCapture) truncated() bool { return c.capped }

// artifact returns the artifact's content and line count, with a trailer when it was cut.
func (c *ciCapture) artifact() ([]byte, int64) {
	content, lines := c.buf.Bytes(), c.artifactLines
	if c.artifactCut {
		trailer := fmt.Sprintf(workflow.ArtifactCut,
			c.artifactMax, c.artifactLines, c.linesTotal, c.bytesTotal)
		content = append(content[:len(content):len(content)], trailer...)
		lines++
	}
	if content == nil {
		content = []byte{} // a silent CI has an empty artifact, not a NULL one (run_artifacts.content is NOT NULL)
	}
	return content, lines
}

// Artifacts stores run artifacts (the adapters write them to run_artifacts).
type Artifacts interface {
	// Put writes or rewrites (a retried step) one artifact.
	Put(ctx context.Context, runID, ticketID, name string, content []byte, lines int64) error
}
