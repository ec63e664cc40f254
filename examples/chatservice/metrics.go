package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/audittable"
	"github.com/keyward/secrets/cache"
)

// metrics is the service's Prometheus registry: resolves by backend and
// outcome (fed by the audit decorator), their latency, the cache's stats and
// cost meter, and chat responses by status.
type metrics struct {
	reg      *prometheus.Registry
	resolves *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	chats    *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		resolves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_resolves_total",
			Help: "Key resolves by backend, outcome and whether the cache answered.",
		}, []string{"backend", "outcome", "source"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyward_resolve_duration_seconds",
			Help:    "Key resolve latency by backend and outcome.",
			Buckets: []float64{0.00001, 0.0001, 0.001, 0.005, 0.02, 0.1, 0.5, 2},
		}, []string{"backend", "outcome"}),
		chats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatservice_requests_total",
			Help: "Chat requests by HTTP status.",
		}, []string{"code"}),
	}
	m.reg.MustRegister(m.resolves, m.latency, m.chats,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Audit implements secrets.Auditor.
func (m *metrics) Audit(_ context.Context, ev secrets.AuditEvent) {
	backend := ev.Backend
	if backend == "" {
		backend = "none"
	}
	source := "backend"
	if ev.CacheHit {
		source = "cache"
	}
	m.resolves.WithLabelValues(backend, ev.Outcome, source).Inc()
	m.latency.WithLabelValues(backend, ev.Outcome).Observe(ev.Latency.Seconds())
}

// watchAudit exports the audit table's counts: rows written, events dropped
// because the queue was full (a request never waits for the audit table),
// and events whose batch failed to write.
func (m *metrics) watchAudit(a *audittable.Auditor) {
	stat := func(name, help string, get func(audittable.Stats) uint64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keyward_audit_" + name, Help: help},
			func() float64 { return float64(get(a.Stats())) }))
	}
	stat("rows_written_total", "Audit rows written to the audit table.", func(s audittable.Stats) uint64 { return s.Written })
	stat("dropped_total", "Audit events dropped because the audit queue was full.", func(s audittable.Stats) uint64 { return s.Dropped })
	stat("failed_total", "Audit events whose batch could not be written.", func(s audittable.Stats) uint64 { return s.Failed })
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keyward_audit_queued", Help: "Audit events waiting to be written."},
		func() float64 { return float64(a.Stats().Queued) }))
}

// watchCache exports c's stats. They are read at scrape time, so the hit
// path pays nothing for them.
func (m *metrics) watchCache(c *cache.Cache) {
	stat := func(name, help string, get func(cache.Stats) uint64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keyward_cache_" + name, Help: help},
			func() float64 { return float64(get(c.Stats())) }))
	}
	stat("hits_total", "Resolves answered from the cache.", func(s cache.Stats) uint64 { return s.Hits })
	stat("misses_total", "Resolves that waited for a backend call.", func(s cache.Stats) uint64 { return s.Misses })
	stat("backend_calls_total", "Calls the cache made to the backends.", func(s cache.Stats) uint64 { return s.BackendCalls })
	stat("refreshes_total", "Background refreshes started.", func(s cache.Stats) uint64 { return s.Refreshes })
	stat("stale_served_total", "Stale values served while a backend was unavailable.", func(s cache.Stats) uint64 { return s.StaleServed })
	stat("negative_hits_total", "Resolves answered with a remembered not-found.", func(s cache.Stats) uint64 { return s.NegativeHits })
	stat("evictions_total", "Entries evicted to stay within the size bound.", func(s cache.Stats) uint64 { return s.Evictions })
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keyward_cache_entries", Help: "Entries in the cache."},
		func() float64 { return float64(c.Len()) }))
	m.reg.MustRegister(costMeter{c})
}

// costMeter exports the cache's cost meter (cache.Stats.Backends): the
// backend calls per ref scheme and call kind, the answers the cache gave
// without a call, and the calls' estimated list price. The schemes are
// known only at scrape time, so it is a collector of its own rather than
// counter funcs; the cache bounds them (64, then "*"), and so the series.
type costMeter struct{ c *cache.Cache }

var (
	backendCallsDesc = prometheus.NewDesc("keyward_backend_calls_total",
		"Calls the cache made to the backends, by ref scheme and kind (resolve: a fetch or refresh; batch: a ResolveMany of the warm-up; version: a version check).",
		[]string{"scheme", "kind"}, nil)
	backendAvoidedDesc = prometheus.NewDesc("keyward_backend_calls_avoided_total",
		"Resolves the cache answered without a backend call, by ref scheme.",
		[]string{"scheme"}, nil)
	backendCostDesc = prometheus.NewDesc("keyward_backend_cost_usd_total",
		"Estimated price of the backend calls in US dollars, at the list prices of the cache's prices= parameter (default awssm 0.05 and azurekv 0.03 per 10,000 calls), by ref scheme.",
		[]string{"scheme"}, nil)
)

// Describe implements prometheus.Collector.
func (costMeter) Describe(ch chan<- *prometheus.Desc) {
	ch <- backendCallsDesc
	ch <- backendAvoidedDesc
	ch <- backendCostDesc
}

// Collect implements prometheus.Collector: one Stats call a scrape, so the
// figures of a scheme are of one moment.
func (m costMeter) Collect(ch chan<- prometheus.Metric) {
	for scheme, b := range m.c.Stats().Backends {
		for kind, n := range b.Calls {
			ch <- prometheus.MustNewConstMetric(backendCallsDesc, prometheus.CounterValue, float64(n), scheme, kind)
		}
		ch <- prometheus.MustNewConstMetric(backendAvoidedDesc, prometheus.CounterValue, float64(b.Avoided), scheme)
		ch <- prometheus.MustNewConstMetric(backendCostDesc, prometheus.CounterValue, b.Cost, scheme)
	}
}
