// Package redact removes configured secrets (API keys, git tokens) and URL credentials from
// text before it becomes an event, a log line or an error message.
package redact

import (
	"encoding/base64"
	"regexp"
	"strings"
)

// Mask replaces every secret.
const Mask = "[REDACTED]"

// userinfo matches the credentials part of a URL ("https://user:pass@host").
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@`)

// Redactor knows the secret values of one process.
type Redactor struct{ secrets []string }

// New returns a Redactor for the given secret values; empty and very short values (under 4
// bytes, which would mask ordinary text) are ignored. The base64 forms are masked too, since
// a token travels base64-encoded in HTTP Basic authentication headers.
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	for _, s := range secrets {
		if len(s) < 4 {
			continue
		}
		r.secrets = append(r.secrets, s, base64.StdEncoding.EncodeToString([]byte(s)))
	}
	return r
}

// String masks the secrets and URL credentials in s.
func (r *Redactor) String(s string) string {
	if r != nil {
		for _, secret := range r.secrets {
			s = strings.ReplaceAll(s, secret, Mask)
		}
	}
	return userinfo.ReplaceAllString(s, "${1}"+Mask+"@")
}

// Error returns err with its message redacted (nil stays nil). errors.Is still sees the
// original chain through Unwrap.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := r.String(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redacted{msg: msg, err: err}
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
