package redact

import (
	"encoding/base64"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestRedactsSecretsAndURLCredentials(t *testing.T) {
	r := New("sk-live-123456", "", "ab", "ghp_token_value")
	in := "key sk-live-123456 header Basic " + base64.StdEncoding.EncodeToString([]byte("ghp_token_value")) +
		" clone https://user:ghp_other@github.com/o/r.git failed; ab stays"
	got := r.String(in)
	for _, leak := range []string{"sk-live-123456", "ghp_token_value", base64.StdEncoding.EncodeToString([]byte("ghp_token_value")), "ghp_other", "user:"} {
		if strings.Contains(got, leak) {
			t.Errorf("%q still contains %q", got, leak)
		}
	}
	if !strings.Contains(got, "https://"+Mask+"@github.com/o/r.git") || !strings.Contains(got, "ab stays") {
		t.Errorf("unexpected redaction: %q", got)
	}
}

func TestErrorKeepsChain(t *testing.T) {
	r := New("secret-value")
	err := r.Error(errors.Join(fs.ErrNotExist, errors.New("open secret-value")))
	if strings.Contains(err.Error(), "secret-value") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v", err)
	}
	if r.Error(nil) != nil {
		t.Error("nil error must stay nil")
	}
}
