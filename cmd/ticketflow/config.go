package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ticketflow/ticketflow/cmd/ticketflow/client"
)

// defaultURL is where `ticketflow dev` listens by default (TICKETFLOW_HTTP_ADDR 127.0.0.1:8000).
const defaultURL = "http://127.0.0.1:8000"

// cliConfig is what `ticketflow login` stores.
type cliConfig struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// configPath is os.UserConfigDir()/ticketflow/config.json.
func configPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "ticketflow", "config.json"), nil
}

// loadConfig reads the stored config (missing file: empty), then applies TICKETFLOW_URL and
// TICKETFLOW_TOKEN, then the default URL.
func loadConfig() (cliConfig, error) {
	var c cliConfig
	p, err := configPath()
	if err == nil {
		raw, rerr := os.ReadFile(p)
		switch {
		case rerr == nil:
			if err := json.Unmarshal(raw, &c); err != nil {
				return c, fmt.Errorf("%s: %w", p, err)
			}
		case !errors.Is(rerr, fs.ErrNotExist):
			return c, rerr
		}
	}
	if v := os.Getenv("TICKETFLOW_URL"); v != "" {
		c.URL = v
	}
	if v := os.Getenv("TICKETFLOW_TOKEN"); v != "" {
		c.Token = v
	}
	if c.URL == "" {
		c.URL = defaultURL
	}
	c.URL = strings.TrimRight(c.URL, "/")
	return c, nil
}

// saveConfig writes c with mode 0600 in a 0700 directory.
func saveConfig(c cliConfig) (string, error) {
	p, err := configPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	// MkdirAll keeps the mode of a directory that exists; tighten it.
	if err := os.Chmod(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	raw, _ := json.MarshalIndent(c, "", "  ")
	tmp, err := os.CreateTemp(filepath.Dir(p), ".config-*.json")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", err
	}
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return p, os.Rename(tmp.Name(), p)
}

// apiClient is the client for the configured server; it fails without a token.
func apiClient() (*client.Client, error) {
	c, err := loadConfig()
	if err != nil {
		return nil, err
	}
	if c.Token == "" {
		return nil, errors.New("not logged in: run `ticketflow login` or set TICKETFLOW_TOKEN")
	}
	return client.New(c.URL, c.Token), nil
}
