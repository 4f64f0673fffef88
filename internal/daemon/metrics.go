package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector produces the Prometheus metrics from the switch's counters at
// scrape time: nothing is done per frame.
type collector struct {
	d *Daemon
}

var (
	descRxPackets = prometheus.NewDesc("vswitch_port_rx_packets_total", "Frames received from the port.", []string{"port"}, nil)
	descRxBytes   = prometheus.NewDesc("vswitch_port_rx_bytes_total", "Bytes received from the port.", []string{"port"}, nil)
	descTxPackets = prometheus.NewDesc("vswitch_port_tx_packets_total", "Frames sent out of the port.", []string{"port"}, nil)
	descTxBytes   = prometheus.NewDesc("vswitch_port_tx_bytes_total", "Bytes sent out of the port.", []string{"port"}, nil)
	descDrops     = prometheus.NewDesc("vswitch_port_drops_total", "Frames dropped, by reason (tx_full counts on the egress port, the rest on the ingress port).", []string{"port", "reason"}, nil)
	descUp        = prometheus.NewDesc("vswitch_port_up", "1 if the port's link is up and it forwards.", []string{"port"}, nil)
	descRuns      = prometheus.NewDesc("vswitch_program_runs_total", "Runs of the installed forwarding program.", []string{"program", "engine"}, nil)
	descInsns     = prometheus.NewDesc("vswitch_program_instructions_total", "Instructions the installed program executed.", []string{"program", "engine"}, nil)
	descFaults    = prometheus.NewDesc("vswitch_program_faults_total", "Runs stopped by a fault, by kind.", []string{"program", "kind"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRxPackets, descRxBytes, descTxPackets, descTxBytes, descDrops, descUp, descRuns, descInsns, descFaults} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, p := range c.d.Ports(true) {
		s := p.Stats
		counter(descRxPackets, s.RxPackets, p.Name)
		counter(descRxBytes, s.RxBytes, p.Name)
		counter(descTxPackets, s.TxPackets, p.Name)
		counter(descTxBytes, s.TxBytes, p.Name)
		for reason, n := range s.Drops {
			counter(descDrops, n, p.Name, reason)
		}
		up := 0.0
		if p.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, p.Name)
	}
	if st, ok := c.d.sw.ProgramStats(); ok {
		counter(descRuns, st.Runs, st.Name, st.Engine)
		counter(descInsns, st.Instructions, st.Name, st.Engine)
		for kind, n := range st.FaultsByKind {
			counter(descFaults, n, st.Name, kind)
		}
	}
}

// Registry returns a Prometheus registry exposing the daemon's counters.
func (d *Daemon) Registry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collector{d})
	return r
}
