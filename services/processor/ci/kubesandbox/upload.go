package kubesandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
)

// Uploader streams a tar archive to the stdin of a pod's container that is waiting for it
// (the CI pod's "workspace" init container) and returns once the container has read it all
// and closed its stdin. The fake clientset cannot stream, hence the interface.
type Uploader interface {
	Upload(ctx context.Context, namespace, pod, container string, archive io.Reader) error
}

// AttachUploader uploads through the API server's pods/attach subresource (WebSocket, or SPDY
// on API servers that do not speak it), like `kubectl attach -i`: the pod itself needs no
// network at all.
type AttachUploader struct {
	Config *rest.Config
	Client kubernetes.Interface
}

// Upload implements Uploader.
func (u *AttachUploader) Upload(ctx context.Context, namespace, pod, container string, archive io.Reader) error {
	req := u.Client.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(namespace).Name(pod).SubResource("attach").
		VersionedParams(&corev1.PodAttachOptions{Container: container, Stdin: true, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(u.Config, "GET", req.URL().String())
	if err != nil {
		return fmt.Errorf("attach to %s/%s: %w", pod, container, err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(u.Config, "POST", req.URL())
	if err != nil {
		return fmt.Errorf("attach to %s/%s: %w", pod, container, err)
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return fmt.Errorf("attach to %s/%s: %w", pod, container, err)
	}
	// tar's own complaints, for the error message.
	out := &cappedBuffer{max: 4 << 10}
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: archive, Stdout: out, Stderr: out}); err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("attach to %s/%s: %w (%s)", pod, container, err, msg)
		}
		return fmt.Errorf("attach to %s/%s: %w", pod, container, err)
	}
	return nil
}

type cappedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *cappedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// errTreeTooLarge is returned when the work tree does not fit the pod's /work.
var errTreeTooLarge = errors.New("work tree larger than TICKETFLOW_CI_K8S_WORK_SIZE")

// writeTree writes dir as a tar archive: directories, regular files and symbolic links (as
// links: nothing is followed, so a link in the repository cannot pull a file of the
// processor's host into the archive), without owners. skip names paths (relative, slash
// separated) left out; maxBytes bounds the file contents.
func writeTree(w io.Writer, dir string, skip func(rel string) bool, maxBytes int64) error {
	tw := tar.NewWriter(w)
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch mode := info.Mode(); {
		case mode.IsDir(), mode.IsRegular():
		case mode&fs.ModeSymlink != 0:
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		default:
			return nil // sockets, pipes, devices: nothing CI needs, nothing to copy
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		hdr.Name = rel
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.Mode &= 0o777 // no setuid, setgid or sticky bits reach the pod
		if info.Mode().IsRegular() {
			total += info.Size()
			if total > maxBytes {
				return errTreeTooLarge
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		// O_NOFOLLOW: the entry was a regular file when listed; if it became a link since,
		// refuse instead of reading whatever it points to.
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if n != hdr.Size {
			return fmt.Errorf("%s: changed while it was archived", rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
