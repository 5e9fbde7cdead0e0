package kafka

import "github.com/twmb/franz-go/pkg/kfake"

// ClusterOf is the embedded broker's kfake cluster, for tests that inject faults into its
// request handling.
func ClusterOf(e *Embedded) *kfake.Cluster { return e.cluster }
