package postgres

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// PoolCollector exposes a pool's statistics as ticketflow_pg_pool_* with a "pool" label
// (a process may hold several pools: `ticketflow dev` gives each service its own).
type PoolCollector struct {
	pool                                      *pgxpool.Pool
	name                                      string
	acquired, idle, total, max, waitSec, acqs *prometheus.Desc
	empty                                     *prometheus.Desc
}

// NewPoolCollector describes pool under the label pool=name.
func NewPoolCollector(pool *pgxpool.Pool, name string) *PoolCollector {
	labels := prometheus.Labels{"pool": name}
	d := func(n, help string) *prometheus.Desc {
		return prometheus.NewDesc("ticketflow_pg_pool_"+n, help, nil, labels)
	}
	return &PoolCollector{pool: pool, name: name,
		acquired: d("acquired_conns", "Connections currently handed out."),
		idle:     d("idle_conns", "Idle connections in the pool."),
		total:    d("total_conns", "Connections open (acquired, idle and being opened)."),
		max:      d("max_conns", "The pool's maximum size."),
		waitSec:  d("acquire_wait_seconds_total", "Time spent waiting for a connection because the pool was full."),
		acqs:     d("acquires_total", "Connections handed out."),
		empty:    d("empty_acquires_total", "Acquires that had to wait because no connection was idle."),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.waitSec, c.acqs, c.empty} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(st.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(st.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(st.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(st.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.waitSec, prometheus.CounterValue, st.AcquireDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(c.acqs, prometheus.CounterValue, float64(st.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.empty, prometheus.CounterValue, float64(st.EmptyAcquireCount()))
}
