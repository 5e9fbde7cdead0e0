package config

import (
	"fmt"

	"github.com/caarlos0/env/v11"
)

// Defaults returns a T holding every envDefault of its tags, as Load would with an empty
// environment: the defaults are written once, in the struct tags, and tests and embedders
// start from them.
func Defaults[T any]() (T, error) {
	var cfg T
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: map[string]string{}}); err != nil {
		return cfg, fmt.Errorf("configuration defaults: %w", err)
	}
	return cfg, nil
}
