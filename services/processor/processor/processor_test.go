package processor

import (
	"strings"
	"testing"
)

func TestConfiguredSecrets(t *testing.T) {
	s := ConfiguredSecrets("jwt-secret-value", "postgres://app:p%40ss-w0rd@db:5432/ticketflow")
	if strings.Join(s, " ") != "jwt-secret-value p@ss-w0rd p%40ss-w0rd p@ss-w0rd" {
		t.Errorf("secrets %q", s)
	}
	if s := ConfiguredSecrets("x", "host=db user=app password=kv-secret dbname=t"); len(s) < 2 || s[1] != "kv-secret" {
		t.Errorf("key=value DSN secrets %q", s)
	}
}
